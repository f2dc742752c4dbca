use super::*;

const LIST: &str = r#"{"tools":[
    {"name":"add","inputSchema":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer","minimum":0}},"required":["a","b"],"additionalProperties":false}},
    {"name":"remote","inputSchema":{"$ref":"https://example.com/schema.json"}},
    {"name":"free"},
    {"inputSchema":{"type":"object"}}
]}"#;

fn call(args: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"add","arguments":{args}}}}}"#).into_bytes()
}

#[test]
fn arguments_are_checked_against_the_learned_schema() {
    let store = SchemaStore::default();
    assert_eq!(
        store.check("add", &call(r#"{"a":"x"}"#)),
        Ok(()),
        "unknown before the list"
    );
    store.learn(LIST);
    assert_eq!(store.len(), 2);
    assert_eq!(store.check("add", &call(r#"{"a":1,"b":2}"#)), Ok(()));
    let err = store.check("add", &call(r#"{"a":"x","b":2}"#)).unwrap_err();
    assert_eq!(
        err,
        r#"Invalid arguments for tool add: /a: "x" is not of type "integer" (keyword: type)"#
    );
    let err = store.check("add", &call(r#"{"a":1,"b":-1}"#)).unwrap_err();
    assert!(
        err.starts_with("Invalid arguments for tool add: /b: "),
        "{err}"
    );
    assert!(err.ends_with("(keyword: minimum)"), "{err}");
    let err = store.check("add", &call(r#"{"a":1}"#)).unwrap_err();
    assert!(
        err.contains(": /: ") && err.ends_with("(keyword: required)"),
        "{err}"
    );
    // No arguments at all: checked as {}.
    let no_args = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}}"#;
    assert!(store.check("add", no_args).is_err());
    // A remote $ref is never fetched: the tool is not checked.
    assert_eq!(store.check("remote", &call(r#"{"a":"x"}"#)), Ok(()));
    assert_eq!(store.check("free", &call("7")), Ok(()));
}

#[test]
fn a_changed_schema_replaces_the_old_one_and_the_store_is_bounded() {
    let store = SchemaStore::default();
    store.learn(LIST);
    store.learn(r#"{"tools":[{"name":"add","inputSchema":{"type":"object"}}]}"#);
    assert_eq!(store.check("add", &call(r#"{"a":"x"}"#)), Ok(()));
    let big = format!(
        r#"{{"tools":[{{"name":"big","inputSchema":{{"type":"object","description":"{}","required":["x"]}}}}]}}"#,
        "d".repeat(MAX_SCHEMA_BYTES)
    );
    store.learn(&big);
    assert_eq!(
        store.check("big", &call("{}")),
        Ok(()),
        "over the size: not checked"
    );
    let many: Vec<String> = (0..MAX_TOOLS + 10)
        .map(|i| format!(r#"{{"name":"t{i}","inputSchema":{{"type":"object"}}}}"#))
        .collect();
    store.learn(&format!(r#"{{"tools":[{}]}}"#, many.join(",")));
    assert_eq!(store.len(), MAX_TOOLS);
    store.learn("not json");
    store.learn(r#"{"tools":"no"}"#);
}
