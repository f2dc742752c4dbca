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

#[test]
fn mcp_param_headers_must_mirror_the_annotated_arguments() {
    let store = SchemaStore::default();
    store.learn(
        r#"{"tools":[{"name":"deploy","inputSchema":{"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "opts":{"type":"object","properties":{"dry":{"type":"boolean","x-mcp-header":"Dry"}}},
            "note":{"type":"string"}}}}]}"#,
    );
    let body = |args: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"deploy","arguments":{args}}}}}"#)
            .into_bytes()
    };
    let headers = |pairs: &[(&str, &str)]| {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    };
    let args = r#"{"region":"eu-west-1","opts":{"dry":true},"note":"x"}"#;
    let ok = headers(&[("mcp-param-region", "eu-west-1"), ("mcp-param-dry", "true")]);
    assert_eq!(store.check_params("deploy", &ok, &body(args)), Ok(()));
    // Base64-encoded values decode first: "eu-west-1".
    let b64 = headers(&[
        ("mcp-param-region", "=?base64?ZXUtd2VzdC0x?="),
        ("mcp-param-dry", "true"),
    ]);
    assert_eq!(store.check_params("deploy", &b64, &body(args)), Ok(()));
    let wrong = headers(&[("mcp-param-region", "us-east-1"), ("mcp-param-dry", "true")]);
    assert_eq!(
        store.check_params("deploy", &wrong, &body(args)),
        Err("Mcp-Param-Region header does not match `region`".to_owned())
    );
    let missing = headers(&[("mcp-param-region", "eu-west-1")]);
    assert_eq!(
        store.check_params("deploy", &missing, &body(args)),
        Err("missing Mcp-Param-Dry header for `opts.dry`".to_owned())
    );
    let extra = headers(&[("mcp-param-region", "eu-west-1")]);
    assert_eq!(
        store.check_params("deploy", &extra, &body(r#"{"region":null}"#)),
        Err("unexpected Mcp-Param-Region header for absent or null `region`".to_owned())
    );
    let twice = headers(&[
        ("mcp-param-region", "eu-west-1"),
        ("mcp-param-region", "eu-west-1"),
    ]);
    assert_eq!(
        store.check_params("deploy", &twice, &body(r#"{"region":"eu-west-1"}"#)),
        Err("Mcp-Param-Region header sent more than once".to_owned())
    );
    let bad = headers(&[("mcp-param-region", "=?base64?!!?=")]);
    assert_eq!(
        store.check_params("deploy", &bad, &body(r#"{"region":"eu-west-1"}"#)),
        Err("Mcp-Param-Region header is not valid Base64".to_owned())
    );
    // Unknown tools and tools without annotations are not checked.
    assert_eq!(store.check_params("other", &wrong, &body(args)), Ok(()));
}
