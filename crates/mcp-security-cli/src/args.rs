//! The command line's one argument parser: `--name value` / `--name=value` options (repeatable),
//! `--switch` flags, positional arguments, and `--` to end options.

use crate::USAGE;

/// Parsed arguments of one subcommand.
pub(crate) struct Flags {
    pairs: Vec<(String, String)>,
    switches: Vec<String>,
    positional: Vec<String>,
}

impl Flags {
    /// Parse `args`; the names in `switches` take no value.
    pub(crate) fn parse(args: &[String], switches: &[&str]) -> Result<Self, String> {
        let mut flags = Flags {
            pairs: Vec::new(),
            switches: Vec::new(),
            positional: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                flags.positional.extend(it.by_ref().cloned());
                break;
            }
            let Some(name) = arg.strip_prefix("--") else {
                flags.positional.push(arg.clone());
                continue;
            };
            match name.split_once('=') {
                Some((n, _)) if switches.contains(&n) => {
                    return Err(format!("--{n} takes no value"));
                }
                Some((n, v)) => flags.pairs.push((n.to_owned(), v.to_owned())),
                None if switches.contains(&name) => flags.switches.push(name.to_owned()),
                None => {
                    let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                    flags.pairs.push((name.to_owned(), value.clone()));
                }
            }
        }
        Ok(flags)
    }

    /// Every value of a repeatable option.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of an option given at most once.
    pub(crate) fn one(&self, name: &str) -> Result<Option<&str>, String> {
        match self.all(name).as_slice() {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            _ => Err(format!("--{name} given more than once")),
        }
    }

    /// Whether a switch was given.
    pub(crate) fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// The positional arguments.
    pub(crate) fn positional(&self) -> &[String] {
        &self.positional
    }

    /// Refuse options and switches not in `allowed`, and positional arguments when none are
    /// allowed.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), String> {
        let names = self.pairs.iter().map(|(n, _)| n).chain(&self.switches);
        match names.into_iter().find(|n| !allowed.contains(&n.as_str())) {
            Some(n) => Err(format!("unknown option --{n}\n{USAGE}")),
            None => Ok(()),
        }
    }

    /// Refuse positional arguments.
    pub(crate) fn no_positional(&self) -> Result<(), String> {
        match self.positional.first() {
            Some(arg) => Err(format!("unexpected argument {arg:?}\n{USAGE}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_switches_and_positionals() {
        let f = Flags::parse(
            &args(&[
                "a.jsonl",
                "--key-file",
                "k",
                "--strict",
                "--scope=x",
                "--scope",
                "y",
                "--",
                "--b",
            ]),
            &["strict"],
        )
        .unwrap();
        assert_eq!(f.one("key-file").unwrap(), Some("k"));
        assert_eq!(f.all("scope"), ["x", "y"]);
        assert!(f.has("strict"));
        assert_eq!(f.positional(), ["a.jsonl", "--b"]);
        assert!(f.only(&["key-file", "scope", "strict"]).is_ok());
        assert!(
            f.only(&["key-file", "scope"])
                .unwrap_err()
                .starts_with("unknown option --strict")
        );
        assert!(
            f.no_positional()
                .unwrap_err()
                .starts_with("unexpected argument \"a.jsonl\"")
        );
        assert_eq!(f.one("scope").unwrap_err(), "--scope given more than once");
    }

    #[test]
    fn errors() {
        assert_eq!(
            Flags::parse(&args(&["--sub"]), &[]).err().unwrap(),
            "--sub needs a value"
        );
        assert_eq!(
            Flags::parse(&args(&["--strict=1"]), &["strict"])
                .err()
                .unwrap(),
            "--strict takes no value"
        );
    }
}
