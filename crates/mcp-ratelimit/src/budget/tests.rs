use std::time::Duration;

use mcp_security_core::jsonrpc::parse_envelope;
use mcp_security_core::{BudgetOutcome, Principal, PrincipalKind};

use super::*;

const S: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * S;

fn call(tool: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
}

fn ext(principal: Option<&str>, body: Option<&str>) -> http::Extensions {
    let mut ext = http::Extensions::new();
    if let Some(id) = principal {
        ext.insert(Principal::builder(id, PrincipalKind::ApiKey).build());
    }
    if let Some(body) = body {
        ext.insert(parse_envelope(body.as_bytes()).unwrap());
    }
    ext
}

fn budgets(list: Vec<Budget>, max_principals: usize) -> Budgets {
    Budgets::new(
        list.into_iter()
            .map(|b| BudgetRt::new(b).unwrap())
            .collect(),
        max_principals,
    )
}

fn allowed(charged: Option<Charged>) -> bool {
    matches!(charged, Some(Charged::Allowed(_)))
}

#[test]
fn costs_follow_the_most_specific_rule() {
    let b = BudgetRt::new(
        Budget::per_day("daily", 1000)
            .weight("tools/call:delete_note", 10)
            .weight("tools/list", 0)
            .weight("prompts/get", 3),
    )
    .unwrap();
    let cost = |body: &str| b.cost(parse_envelope(body.as_bytes()).unwrap().messages());
    assert_eq!(cost(&call("delete_note")), 10);
    assert_eq!(cost(&call("read_note")), 1);
    assert_eq!(cost(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#), 0);
    assert_eq!(
        cost(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"x"}}"#),
        3
    );
    // A batch costs the sum; a response (no method) costs nothing, plain HTTP the default.
    let batch = format!("[{},{}]", call("delete_note"), call("read_note"));
    assert_eq!(cost(&batch), 11);
    assert_eq!(b.cost(&[]), 1);
    assert_eq!(cost(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#), 1);
    // A later rule for the same text replaces the earlier one.
    let b = Budget::per_hour("h", 5)
        .weight("tools/call", 2)
        .weight("tools/call", 4);
    assert_eq!(b.weight_of("tools/call", Some("x")), 4);
}

#[test]
fn a_weight_ten_tool_exhausts_the_budget_ten_times_faster() {
    let spend_all = |tool: &str| {
        let b = budgets(
            vec![Budget::per_day("daily", 100).weight("tools/call:delete_note", 10)],
            100,
        );
        let e = ext(Some("alice"), Some(&call(tool)));
        let mut n = 0;
        while allowed(b.spend(&e, S)) {
            n += 1;
            assert!(n <= 100);
        }
        n
    };
    assert_eq!(spend_all("read_note"), 100);
    assert_eq!(spend_all("delete_note"), 10);
}

#[test]
fn refusals_wait_for_the_cost_and_the_refill_is_continuous() {
    let b = budgets(
        vec![Budget::per_day("daily", 100).weight("tools/call:delete_note", 10)],
        100,
    );
    let delete = ext(Some("alice"), Some(&call("delete_note")));
    let read = ext(Some("alice"), Some(&call("read_note")));
    for _ in 0..9 {
        assert!(allowed(b.spend(&delete, S)));
    }
    // 10 units left: a read leaves 9, then a delete (10) must wait for one unit.
    let Some(Charged::Allowed(report)) = b.spend(&read, S) else {
        panic!("admitted")
    };
    assert_eq!(
        report.outcome,
        Some(BudgetOutcome::Allowed {
            policy: "daily".into(),
            cost: 1,
            remaining: 9,
        })
    );
    let interval = DAY / 100;
    match b.spend(&delete, S) {
        Some(Charged::Refused { budget, cost, wait }) => {
            assert_eq!((budget, cost, wait), (0, 10, interval));
        }
        _ => panic!("refused"),
    }
    // Not at midnight: one unit comes back every 864 s.
    assert!(!allowed(b.spend(&delete, S + interval - 1)));
    assert!(allowed(b.spend(&delete, S + interval)));
    assert!(!allowed(b.spend(&read, S + interval)));
    // A day later the whole budget is back.
    let later = S + interval + DAY;
    for _ in 0..10 {
        assert!(allowed(b.spend(&delete, later)));
    }
    assert!(!allowed(b.spend(&read, later)));
    // Other principals have their own.
    assert!(allowed(
        b.spend(&ext(Some("bob"), Some(&call("delete_note"))), later)
    ));
}

#[test]
fn requests_without_a_principal_or_a_cost_never_spend() {
    let b = budgets(
        vec![
            Budget::per_day("daily", 1)
                .default_weight(0)
                .weight("tools/call", 1),
        ],
        100,
    );
    for _ in 0..5 {
        assert!(b.spend(&ext(None, Some(&call("x"))), S).is_none());
        assert!(b.spend(&ext(None, None), S).is_none());
        // Free for this budget: tools/list and plain HTTP.
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(b.spend(&ext(Some("alice"), Some(list)), S).is_none());
        assert!(b.spend(&ext(Some("alice"), None), S).is_none());
    }
    assert_eq!(b.len(), 0, "nothing tracked");
    assert!(allowed(b.spend(&ext(Some("alice"), Some(&call("x"))), S)));
    assert!(!allowed(b.spend(&ext(Some("alice"), Some(&call("x"))), S)));
}

#[test]
fn budgets_are_charged_all_or_nothing() {
    let b = budgets(
        vec![
            Budget::per_day("daily", 100),
            Budget::per_hour("hourly", 3).weight("tools/call:big", 3),
        ],
        100,
    );
    let big = ext(Some("alice"), Some(&call("big")));
    let small = ext(Some("alice"), Some(&call("small")));
    assert!(allowed(b.spend(&big, S)));
    // hourly is empty: refused, and daily is not charged for it.
    for _ in 0..5 {
        match b.spend(&small, S) {
            Some(Charged::Refused {
                budget: 1, cost: 1, ..
            }) => {}
            _ => panic!("hourly refuses"),
        }
    }
    let Some(Charged::Allowed(report)) = b.spend(&small, S + 3_600 * S) else {
        panic!("admitted an hour later")
    };
    // daily: 100 − 1 (big) − 1 (this one), refilled by 1/864 s over the hour: 4 units back.
    assert_eq!(
        report.outcome,
        Some(BudgetOutcome::Allowed {
            policy: "hourly".into(),
            cost: 1,
            remaining: 2,
        })
    );
}

#[test]
fn the_store_is_bounded_and_drops_full_budgets_first() {
    // One principal per shard at most: 64 shards, 64 principals.
    let b = budgets(vec![Budget::per_day("daily", 10)], 64);
    for i in 0..1_000 {
        assert!(allowed(b.spend(&ext(Some(&format!("p{i}")), None), S)));
    }
    assert!(b.len() <= 64, "{}", b.len());
}

#[test]
fn validation_names_the_setting() {
    let err = |budget: Budget| BudgetRt::new(budget).unwrap_err();
    let e = err(Budget::per_day("daily", 0));
    assert_eq!((e.setting(), e.value()), ("budget.daily.units", Some("0")));
    let e = err(Budget::new("daily", 5, Duration::ZERO));
    assert_eq!(e.setting(), "budget.daily.window");
    let e = err(Budget::per_day("bad name", 5));
    assert_eq!(e.setting(), "budget");
    let e = err(Budget::per_day("daily", 5).weight("tools/call:", 2));
    assert_eq!(
        (e.setting(), e.value()),
        ("budget.daily.weights", Some("tools/call:"))
    );
    let e = err(Budget::per_day("daily", 5).weight(":x", 2));
    assert_eq!(e.setting(), "budget.daily.weights");
}

#[test]
fn toml_budgets_and_errors_naming_the_path() {
    let list = from_toml(
        r#"
        [budget.daily]
        units = 1000
        window = "1d"
        default_weight = 2

        [budget.daily.weights]
        "tools/call:delete_note" = 10
        "tools/list" = 0

        [budget.monthly]
        units = 20000
        window = "30d"
        "#,
    )
    .unwrap();
    assert_eq!(list.len(), 2);
    let daily = list.iter().find(|b| b.name() == "daily").unwrap();
    assert_eq!(daily.window(), Duration::from_secs(86_400));
    assert_eq!(daily.weight_of("tools/call", Some("delete_note")), 10);
    assert_eq!(daily.weight_of("tools/list", None), 0);
    assert_eq!(daily.weight_of("tools/call", Some("x")), 2);
    let monthly = list.iter().find(|b| b.name() == "monthly").unwrap();
    assert_eq!(monthly.window(), Duration::from_secs(30 * 86_400));
    assert!(from_toml("[auth]\nexempt_paths = []").unwrap().is_empty());

    let e = |text: &str| from_toml(text).unwrap_err();
    let cases = [
        ("[budget.d]\nwindow = \"1d\"", "budget.d.units"),
        ("[budget.d]\nunits = 5", "budget.d.window"),
        ("[budget.d]\nunits = -1\nwindow = \"1d\"", "budget.d.units"),
        (
            "[budget.d]\nunits = 5\nwindow = \"soon\"",
            "budget.d.window",
        ),
        (
            "[budget.d]\nunits = 5\nwindow = \"1d\"\nlimit = 3",
            "budget.d.limit",
        ),
        (
            "[budget.d]\nunits = 5\nwindow = \"1d\"\n[budget.d.weights]\n\"tools/call\" = \"ten\"",
            "budget.d.weights.\"tools/call\"",
        ),
        (
            "[budget.d]\nunits = 5\nwindow = \"1d\"\ndefault_weight = -2",
            "budget.d.default_weight",
        ),
        ("budget = 3", "budget"),
        (
            "[budget.d]\nunits = 5\nwindow = \"1d\"\nweights = 4",
            "budget.d.weights",
        ),
        ("[budget\n", "budget"),
    ];
    for (text, setting) in cases {
        assert_eq!(e(text).setting(), setting, "{text}");
    }
}
