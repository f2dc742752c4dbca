//! Network allow lists: a per-path rule that allows every address.

use ipnet::IpNet;

use super::Checker;
use crate::rules;

impl Checker<'_> {
    pub(super) fn network_rules(&mut self) {
        let i = self.input;
        for (prefix, allow) in &i.network_path_allows {
            let everyone: Vec<String> = allow
                .iter()
                .filter(|n| allows_everyone(n))
                .map(ToString::to_string)
                .collect();
            if everyone.is_empty() {
                continue;
            }
            self.add(
                &rules::NETWORK_ALLOWS_EVERYONE,
                format!(
                    "the network rule for {prefix} allows {}: every client (of that address \
                     family) reaches it, while the rule looks like it restricts the path",
                    everyone.join(", ")
                ),
                format!(
                    "list the networks that may reach {prefix} (a VPN or cluster CIDR such as \
                     10.0.0.0/8) in its [[network]] allow list, or give it no lists at all to \
                     open it to everyone"
                ),
                Some(format!("network {prefix}: allow")),
            );
        }
    }
}

/// `0.0.0.0/0` or `::/0` (or an IPv4-mapped `::ffff:0:0/96`, the same thing for IPv4).
fn allows_everyone(net: &IpNet) -> bool {
    match net {
        IpNet::V4(n) => n.prefix_len() == 0,
        IpNet::V6(n) => {
            n.prefix_len() == 0 || (n.prefix_len() == 96 && n.addr().to_ipv4_mapped().is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{CheckInput, RuntimeEnvironment, Severity, check};

    fn input(allow: &[&str]) -> CheckInput {
        CheckInput {
            network_path_allows: vec![(
                "/metrics".to_owned(),
                allow.iter().map(|n| n.parse().unwrap()).collect(),
            )],
            ..CheckInput::default()
        }
    }

    #[test]
    fn an_allow_everyone_entry_on_a_path_rule_is_a_warning() {
        for (entry, shown) in [
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::/0", "::/0"),
            ("::ffff:0:0/96", "::ffff:0.0.0.0/96"),
        ] {
            let r = check(&input(&["10.0.0.0/8", entry]), &RuntimeEnvironment::new());
            let f = r
                .findings()
                .iter()
                .find(|f| f.id() == "MCP-NET-003")
                .unwrap_or_else(|| panic!("{entry}: {r}"));
            assert_eq!(f.severity(), Severity::Warning);
            assert!(f.message().contains(shown), "{}", f.message());
            assert!(
                f.message()
                    .starts_with("the network rule for /metrics allows "),
                "{}",
                f.message()
            );
            assert_eq!(f.setting(), Some("network /metrics: allow"));
        }
        for fine in [&["10.0.0.0/8"][..], &["0.0.0.0/1", "128.0.0.0/1"], &[]] {
            let r = check(&input(fine), &RuntimeEnvironment::new());
            assert!(!r.ids().contains(&"MCP-NET-003"), "{fine:?}: {r}");
        }
    }
}
