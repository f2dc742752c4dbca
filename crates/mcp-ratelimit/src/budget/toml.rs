//! The `[budget]` section of a TOML file: one table per budget.
//!
//! ```toml
//! [budget.daily]
//! units = 1000                 # per window, per principal (required)
//! window = "1d"                # "1h", "1d", "30d", … (required)
//! default_weight = 1           # what a call no rule matches costs (default 1)
//!
//! [budget.daily.weights]       # method or method:target = units
//! "tools/call:delete_note" = 10
//! "tools/list" = 0
//! ```
//!
//! Every error names its path: `budget.daily.units`, `budget.daily.weights."tools/call:x"`.

use mcp_security_core::config::ConfigError;
use mcp_security_core::toml::{self, integer, table};

use super::{Budget, BudgetRt};

/// The budgets of the `[budget]` table of a TOML document (none without one), validated.
///
/// ```
/// let budgets = mcp_ratelimit::budget::from_toml(r#"
///     [budget.daily]
///     units = 1000
///     window = "1d"
///     weights = { "tools/call:delete_note" = 10 }
/// "#)?;
/// assert_eq!(budgets[0].name(), "daily");
/// assert_eq!(budgets[0].weight_of("tools/call", Some("delete_note")), 10);
///
/// let err = mcp_ratelimit::budget::from_toml("[budget.daily]\nunits = 0\nwindow = \"1d\"")
///     .unwrap_err();
/// assert_eq!(err.setting(), "budget.daily.units");
/// # Ok::<(), mcp_security_core::config::ConfigError>(())
/// ```
///
/// # Errors
/// Invalid TOML (setting `budget`), or an invalid entry, naming its path.
pub fn from_toml(text: &str) -> Result<Vec<Budget>, ConfigError> {
    let doc = toml::parse(text, "budget")?;
    let Some(section) = doc.get("budget") else {
        return Ok(Vec::new());
    };
    let mut budgets = Vec::new();
    for (name, entry) in table(section, "budget")? {
        let path = format!("budget.{name}");
        let entry = table(entry, &path)?;
        let field = |key: &str| format!("{path}.{key}");
        let units = match entry.get("units") {
            Some(v) => integer(v, &field("units"))?,
            None => return Err(ConfigError::new(field("units"), "is required")),
        };
        let window = match entry.get("window") {
            Some(v) => toml::duration(v, &field("window"))?,
            None => {
                return Err(ConfigError::new(
                    field("window"),
                    "is required (e.g. \"1h\", \"1d\", \"30d\")",
                ));
            }
        };
        let mut budget = Budget::new(name.clone(), units, window);
        for (key, value) in entry {
            match key.as_str() {
                "units" | "window" => {}
                "default_weight" => {
                    budget = budget.default_weight(integer(value, &field("default_weight"))?);
                }
                "weights" => {
                    for (rule, weight) in table(value, &field("weights"))? {
                        let path = format!("{path}.weights.\"{rule}\"");
                        budget = budget.weight(rule.clone(), integer(weight, &path)?);
                    }
                }
                _ => {
                    return Err(toml::unknown_key(
                        &field(key),
                        "expected units, window, default_weight or weights",
                    ));
                }
            }
        }
        BudgetRt::new(budget.clone())?;
        budgets.push(budget);
    }
    Ok(budgets)
}
