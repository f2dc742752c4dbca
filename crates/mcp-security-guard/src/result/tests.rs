use super::*;

fn redact(json: &str) -> String {
    let raw: &RawValue = serde_json::from_str(json).unwrap();
    let mut out = String::new();
    redact_value(&SecretScanner::default(), raw, false, &mut out).unwrap();
    out
}

#[test]
fn redaction_keeps_order_escapes_and_untouched_values() {
    assert_eq!(
        redact(r#"{"z":1,"a":"caf\u00e9","k":["AKIAIOSFODNN7EXAMPLE",null,true,2.50]}"#),
        r#"{"z":1,"a":"caf\u00e9","k":["[redacted]",null,true,2.50]}"#
    );
    // A secret in a key is redacted too.
    assert_eq!(
        redact(r#"{"AKIAIOSFODNN7EXAMPLE":1}"#),
        r#"{"[redacted]":1}"#
    );
    assert_eq!(
        redact(r#"{"apiKey":"Zx9!mQ2#pL7w","apiKeyHint":"Zx9!mQ2#pL7w"}"#),
        r#"{"apiKey":"[redacted]","apiKeyHint":"Zx9!mQ2#pL7w"}"#
    );
}

#[test]
fn scanning_counts_by_kind_and_refuses_what_is_not_json() {
    let s = SecretScanner::default();
    let hits = scan_value(
        &s,
        r#"["AKIAIOSFODNN7EXAMPLE x AKIAIOSFODNN7EXAMPLF", {"token":"a1b2c3d4e5f6g7h8"}]"#,
    )
    .unwrap();
    assert_eq!(
        hits.iter().collect::<Vec<_>>(),
        [
            (SecretKind::AwsAccessKeyId, 2),
            (SecretKind::SecretAssignment, 1)
        ]
    );
    assert!(scan_value(&s, "{").is_err());
    assert!(scan_value(&s, "1 2").is_err());
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(scan_value(&s, &deep).is_err());
}

#[test]
fn modes_parse_and_name_the_setting() {
    assert_eq!(
        ResultGuardMode::parse("X", " BLOCK ").unwrap(),
        ResultGuardMode::Block
    );
    assert_eq!(
        ResultGuardMode::parse("X", "off").unwrap(),
        ResultGuardMode::Off
    );
    let err = ResultGuardMode::parse("MCP_RESULT_GUARD", "on").unwrap_err();
    assert_eq!(err.setting(), "MCP_RESULT_GUARD");
    assert_eq!(ResultGuardMode::default(), ResultGuardMode::Off);
}
