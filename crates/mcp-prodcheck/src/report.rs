//! [`Report`]: the findings of one check, and its formats — human text, JSON, and SARIF 2.1.0
//! for GitHub code scanning.

use std::collections::HashMap;
use std::fmt;

use mcp_security_core::config::{ConfigError, Environment};
use serde_json::{Value, json};

use crate::rules::{self, RULES, Rule, Severity};

/// The `$schema` of SARIF 2.1.0 documents.
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Where the project lives, for SARIF `informationUri`.
const INFORMATION_URI: &str = "https://github.com/mcp-security/mcp-security";

/// One thing the checker found. Never contains a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    rule: &'static Rule,
    severity: Severity,
    message: String,
    fix: String,
    setting: Option<String>,
}

impl Finding {
    /// A finding of `rule` at `severity`, with its message, fix, and the setting (variable or
    /// file) it is about.
    pub fn new(
        rule: &'static Rule,
        severity: Severity,
        message: impl Into<String>,
        fix: impl Into<String>,
        setting: Option<String>,
    ) -> Self {
        Finding {
            rule,
            severity,
            message: message.into(),
            fix: fix.into(),
            setting,
        }
    }

    /// The stable id, such as `MCP-AUTH-002`.
    pub fn id(&self) -> &'static str {
        self.rule.id
    }

    /// The rule.
    pub fn rule(&self) -> &'static Rule {
        self.rule
    }

    /// The severity in the checked environment.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// What was found, naming the deployment's variables.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// How to fix it.
    pub fn fix(&self) -> &str {
        &self.fix
    }

    /// The variable (such as `IQ_API_KEY`) or file the finding is about, when there is one.
    pub fn setting(&self) -> Option<&str> {
        self.setting.as_deref()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<7} {}  {}\n        fix: {}",
            self.severity.as_str(),
            self.id(),
            self.message,
            self.fix
        )
    }
}

/// Where findings point in SARIF: the checked file (an env file, a config file) and the line of
/// each setting in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SarifLocation {
    uri: String,
    lines: HashMap<String, usize>,
}

impl SarifLocation {
    /// Results point at `uri` (relative to the repository root for GitHub code scanning).
    pub fn new(uri: impl Into<String>) -> Self {
        SarifLocation {
            uri: uri.into(),
            lines: HashMap::new(),
        }
    }

    /// Findings about `setting` point at line `line` (1-based).
    #[must_use]
    pub fn line(mut self, setting: impl Into<String>, line: usize) -> Self {
        self.lines.insert(setting.into(), line);
        self
    }
}

/// The findings of one check, most severe first.
///
/// ```
/// use mcp_prodcheck::{CheckInput, RuntimeEnvironment, Severity, check};
///
/// let report = check(&CheckInput::default(), &RuntimeEnvironment::new());
/// assert!(report.has_errors());
/// assert_eq!(report.findings()[0].id(), "MCP-AUTH-002");
/// assert_eq!(report.findings()[0].severity(), Severity::Error);
/// assert!(report.to_string().contains("MCP_API_KEY"));
/// assert_eq!(report.to_sarif(None)["version"], "2.1.0");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    environment: Environment,
    findings: Vec<Finding>,
}

impl Report {
    /// A report with these findings (sorted most severe first; equal severities keep their
    /// order).
    pub fn new(environment: Environment, mut findings: Vec<Finding>) -> Self {
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        Report {
            environment,
            findings,
        }
    }

    /// A report with one `MCP-CONFIG-001` finding: the configuration could not be read, so
    /// nothing else was checked.
    pub fn invalid_setting(environment: Environment, error: &ConfigError) -> Self {
        let rule = &rules::CONFIG_INVALID;
        Report::new(
            environment,
            vec![Finding::new(
                rule,
                Severity::Error,
                format!("{error}; nothing else was checked"),
                rule.help,
                Some(error.setting().to_owned()),
            )],
        )
    }

    /// The environment that was checked.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// Every finding, most severe first.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// The ids of the findings, in report order.
    pub fn ids(&self) -> Vec<&'static str> {
        self.findings.iter().map(Finding::id).collect()
    }

    /// The findings of one severity.
    pub fn with_severity(&self, severity: Severity) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.severity == severity)
    }

    /// How many findings have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.with_severity(severity).count()
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }

    /// Whether any finding is a warning.
    pub fn has_warnings(&self) -> bool {
        self.count(Severity::Warning) > 0
    }

    /// The CLI's exit code: 1 with errors, 2 with warnings when `strict`, else 0.
    pub fn exit_code(&self, strict: bool) -> u8 {
        if self.has_errors() {
            1
        } else if strict && self.has_warnings() {
            2
        } else {
            0
        }
    }

    /// `3 errors, 1 warning, 0 info`.
    pub fn summary(&self) -> String {
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        format!(
            "{}, {}, {} info",
            plural(self.count(Severity::Error), "error"),
            plural(self.count(Severity::Warning), "warning"),
            self.count(Severity::Info)
        )
    }

    /// The message a server that refuses to start prints: every error with its fix, and how
    /// many warnings there are.
    pub fn refusal(&self) -> String {
        let errors: Vec<&Finding> = self.with_severity(Severity::Error).collect();
        let mut text = format!(
            "refusing to start ({}): {} unsafe setting{}",
            self.environment.as_str(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        );
        for f in errors {
            text.push_str(&format!(
                "\n  {} {}\n    fix: {}",
                f.id(),
                f.message(),
                f.fix()
            ));
        }
        let warnings = self.count(Severity::Warning);
        if warnings > 0 {
            text.push_str(&format!(
                "\n({warnings} warning{} too: run `mcp-security check` for the full report)",
                if warnings == 1 { "" } else { "s" }
            ));
        }
        text
    }

    /// The report as JSON: `environment`, `summary` (`errors`, `warnings`, `info`) and
    /// `findings` (`id`, `severity`, `title`, `message`, `fix`, `setting`).
    pub fn to_json(&self) -> Value {
        json!({
            "environment": self.environment.as_str(),
            "summary": {
                "errors": self.count(Severity::Error),
                "warnings": self.count(Severity::Warning),
                "info": self.count(Severity::Info),
            },
            "findings": self.findings.iter().map(|f| json!({
                "id": f.id(),
                "severity": f.severity.as_str(),
                "title": f.rule.title,
                "message": f.message,
                "fix": f.fix,
                "setting": f.setting,
            })).collect::<Vec<_>>(),
        })
    }

    /// The report as a SARIF 2.1.0 log: one run whose driver lists every rule (`id`, `name`,
    /// `shortDescription`, `fullDescription`, `help`, `defaultConfiguration.level`), and one
    /// result per finding (`ruleId`, `ruleIndex`, `level`, `message`, and a location in
    /// `location`'s file when given — GitHub code scanning needs one to show a result).
    pub fn to_sarif(&self, location: Option<&SarifLocation>) -> Value {
        let rules: Vec<Value> = RULES
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "name": r.name,
                    "shortDescription": { "text": r.title },
                    "fullDescription": { "text": r.title },
                    "help": { "text": r.help, "markdown": r.help },
                    "defaultConfiguration": { "level": r.severity.sarif_level() },
                    "properties": {
                        "tags": ["security", "configuration"],
                        "precision": "high",
                        "security-severity": match r.severity {
                            Severity::Error => "8.0",
                            Severity::Warning => "5.0",
                            Severity::Info => "1.0",
                        },
                    },
                })
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut result = json!({
                    "ruleId": f.id(),
                    "ruleIndex": RULES.iter().position(|r| r.id == f.id()),
                    "level": f.severity.sarif_level(),
                    "message": { "text": format!("{} Fix: {}", f.message, f.fix) },
                });
                if let Some(loc) = location {
                    let mut physical = json!({ "artifactLocation": { "uri": loc.uri } });
                    if let Some(line) = f.setting().and_then(|s| loc.lines.get(s)) {
                        physical["region"] = json!({ "startLine": line });
                    }
                    result["locations"] = json!([{ "physicalLocation": physical }]);
                }
                result
            })
            .collect();
        json!({
            "$schema": SARIF_SCHEMA,
            "version": "2.1.0",
            "runs": [{
                "tool": {
                    "driver": {
                        "name": "mcp-security",
                        "informationUri": INFORMATION_URI,
                        "version": env!("CARGO_PKG_VERSION"),
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": { "environment": self.environment.as_str() },
            }],
        })
    }
}

impl fmt::Display for Report {
    /// The human format: one block per finding, then the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        write!(f, "{} ({})", self.summary(), self.environment.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{DEBUG, RUNNING_AS_ROOT, XSS_PROTECTION};

    fn sample() -> Report {
        Report::new(
            Environment::Production,
            vec![
                Finding::new(
                    &XSS_PROTECTION,
                    Severity::Info,
                    "x",
                    "y",
                    Some("x-xss-protection".into()),
                ),
                Finding::new(&RUNNING_AS_ROOT, Severity::Warning, "root", "user", None),
                Finding::new(
                    &DEBUG,
                    Severity::Error,
                    "MCP_DEBUG is on",
                    "set it off",
                    Some("MCP_DEBUG".into()),
                ),
            ],
        )
    }

    #[test]
    fn sorted_counted_and_exit_codes() {
        let r = sample();
        assert_eq!(r.ids(), ["MCP-DEBUG-001", "MCP-PROC-001", "MCP-HDR-001"]);
        assert_eq!(r.summary(), "1 error, 1 warning, 1 info");
        assert_eq!(r.exit_code(false), 1);
        let warn_only = Report::new(Environment::Production, r.findings()[1..].to_vec());
        assert_eq!(warn_only.exit_code(false), 0);
        assert_eq!(warn_only.exit_code(true), 2);
        assert_eq!(
            Report::new(Environment::Production, vec![]).exit_code(true),
            0
        );
        let text = r.refusal();
        assert!(text.starts_with("refusing to start (production): 1 unsafe setting"));
        assert!(text.contains("MCP-DEBUG-001 MCP_DEBUG is on\n    fix: set it off"));
        assert!(text.contains("(1 warning too"));
        assert!(!text.contains("MCP-HDR-001"));
    }

    #[test]
    fn json_format() {
        let j = sample().to_json();
        assert_eq!(j["environment"], "production");
        assert_eq!(j["summary"]["errors"], 1);
        assert_eq!(j["findings"][0]["id"], "MCP-DEBUG-001");
        assert_eq!(j["findings"][0]["setting"], "MCP_DEBUG");
        assert_eq!(j["findings"][1]["setting"], Value::Null);
    }

    #[test]
    fn sarif_has_the_required_fields() {
        let loc = SarifLocation::new("deploy/iq.env").line("MCP_DEBUG", 7);
        let s = sample().to_sarif(Some(&loc));
        // sarifLog: version and runs are required; $schema is recommended.
        assert_eq!(s["version"], "2.1.0");
        assert_eq!(s["$schema"], SARIF_SCHEMA);
        let run = &s["runs"][0];
        // run: tool.driver.name is required.
        let driver = &run["tool"]["driver"];
        assert_eq!(driver["name"], "mcp-security");
        let rules = driver["rules"].as_array().unwrap();
        assert_eq!(rules.len(), RULES.len());
        for (rule, r) in rules.iter().zip(RULES) {
            // reportingDescriptor: id is required; GitHub shows shortDescription and help.
            assert_eq!(rule["id"], r.id);
            assert!(rule["shortDescription"]["text"].is_string());
            assert!(rule["help"]["text"].is_string());
            assert!(
                ["error", "warning", "note"]
                    .contains(&rule["defaultConfiguration"]["level"].as_str().unwrap())
            );
        }
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        for result in results {
            // result: message.text is required; ruleId ties it to a rule.
            assert!(result["message"]["text"].is_string());
            let id = result["ruleId"].as_str().unwrap();
            let index = result["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[index]["id"], id);
            assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
            assert_eq!(
                result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                "deploy/iq.env"
            );
        }
        assert_eq!(results[0]["level"], "error");
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            7
        );
        assert!(results[1]["locations"][0]["physicalLocation"]["region"].is_null());
        assert_eq!(results[2]["level"], "note");
        assert!(sample().to_sarif(None)["runs"][0]["results"][0]["locations"].is_null());
    }

    #[test]
    fn invalid_settings_are_one_error() {
        let err = ConfigError::new("IQ_RATE_LIMIT_BURST", "must be at least 1").with_value("0");
        let r = Report::invalid_setting(Environment::Production, &err);
        assert_eq!(r.ids(), ["MCP-CONFIG-001"]);
        assert_eq!(r.findings()[0].setting(), Some("IQ_RATE_LIMIT_BURST"));
        assert!(r.findings()[0].message().contains("must be at least 1"));
    }
}
