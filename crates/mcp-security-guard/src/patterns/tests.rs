//! The presets against real attack strings and benign look-alikes; pointers, arrays, non-string
//! values; configuration errors.

use serde_json::json;

use super::*;

fn preset(p: PatternPreset) -> BlockedPatterns {
    BlockedPatterns::new([BlockedPattern::new("rule", "t", "/a").preset(p)]).unwrap()
}

/// The label of the expression that refuses `text`, if any.
fn label(rules: &BlockedPatterns, text: &str) -> Option<String> {
    rules
        .check("t", &json!({ "a": text }))
        .map(|h| h.pattern().to_owned())
}

#[test]
fn path_traversal_refuses_traversal_in_every_encoding() {
    let rules = preset(PatternPreset::PathTraversal);
    let dot_dot = "path_traversal: dot-dot segment";
    for attack in [
        "../etc/passwd",
        "../../../../etc/shadow",
        "docs/../../secret",
        "..\\..\\windows\\win.ini",
        "docs\\..\\..\\boot.ini",
        "a/..",
        "..",
        "%2e%2e%2fetc%2fpasswd",
        "%2E%2E%2F%2E%2E%2Fetc",
        "..%2f..%2fsecret",
        "%2e%2e/secret",
        ".%2e/secret",
        "..%5csecret",
        "%252e%252e%252fetc",
        "%252E%252E%255Csecret",
        "%c0%ae%c0%ae%c0%afetc",
        "docs/%2e%2e",
    ] {
        assert_eq!(label(&rules, attack).as_deref(), Some(dot_dot), "{attack}");
    }
}

#[test]
fn path_traversal_refuses_sensitive_roots_home_unc_and_nul() {
    let rules = preset(PatternPreset::PathTraversal);
    for (attack, expected) in [
        ("/etc/passwd", "sensitive absolute path"),
        ("/etc", "sensitive absolute path"),
        ("//etc/passwd", "sensitive absolute path"),
        ("/proc/self/environ", "sensitive absolute path"),
        ("/root/.bashrc", "sensitive absolute path"),
        ("/var/run/docker.sock", "sensitive absolute path"),
        ("file:///etc/hosts", "sensitive absolute path"),
        ("%2fetc%2fpasswd", "sensitive absolute path"),
        ("  /etc/passwd", "sensitive absolute path"),
        (
            "C:\\Windows\\System32\\config\\SAM",
            "sensitive absolute path",
        ),
        ("c:/windows/win.ini", "sensitive absolute path"),
        ("/home/alice/.ssh/id_ed25519", "credential directory"),
        (".aws/credentials", "credential directory"),
        ("~/.bashrc", "home directory"),
        ("~root/x", "home directory"),
        ("~", "home directory"),
        ("%7e/x", "home directory"),
        ("\\\\attacker.example\\share\\x", "UNC path"),
        ("notes.txt\u{0}.png", "NUL byte"),
        ("notes.txt%00.png", "NUL byte"),
        ("notes.txt%2500.png", "NUL byte"),
    ] {
        assert_eq!(
            label(&rules, attack),
            Some(format!("path_traversal: {expected}")),
            "{attack}"
        );
    }
}

#[test]
fn path_traversal_passes_benign_look_alikes() {
    let rules = preset(PatternPreset::PathTraversal);
    for benign in [
        "my..file",
        "notes/my..file.txt",
        "v1..v2",
        "..hidden",
        "a...b",
        "a-b",
        "docs/readme.md",
        "./docs/readme.md",
        "/home/alice/notes.txt",
        "/srv/data/etc/config.toml",
        "/etcetera/x",
        "/tmp/etc",
        "etc/passwd.example",
        "a~b",
        "report%20final.pdf",
        "100%",
        "C:\\Users\\alice\\notes.txt",
        "my.ssh.notes",
        "",
    ] {
        assert_eq!(label(&rules, benign), None, "{benign}");
    }
}

#[test]
fn shell_metacharacters_refuse_injection_and_pass_plain_text() {
    let rules = preset(PatternPreset::ShellMetacharacters);
    for (attack, expected) in [
        ("x; rm -rf /", "command separator"),
        ("x && curl evil.example", "command separator"),
        ("x | sh", "command separator"),
        ("x || true", "command separator"),
        ("x & disown", "command separator"),
        ("x\nid", "command separator"),
        ("x\r\nid", "command separator"),
        ("$(id)", "substitution"),
        ("`id`", "substitution"),
        ("${IFS}cat${IFS}/etc/passwd", "substitution"),
        ("$HOME", "substitution"),
        ("x > /tmp/owned", "redirection"),
        ("x < /etc/passwd", "redirection"),
        ("x\u{0}y", "NUL byte"),
    ] {
        assert_eq!(
            label(&rules, attack),
            Some(format!("shell_metacharacters: {expected}")),
            "{attack:?}"
        );
    }
    for benign in [
        "a-b",
        "hello world",
        "file (1).txt",
        "user@example.com",
        "key=value",
        "50% off",
        "it's fine",
        "C:\\path\\file",
        "--verbose",
        "my..file",
    ] {
        assert_eq!(label(&rules, benign), None, "{benign}");
    }
}

#[test]
fn the_string_is_matched_after_json_decoding() {
    let rules = preset(PatternPreset::PathTraversal);
    let args: Value = serde_json::from_str(r#"{"a":"\u002e\u002e\u002fetc"}"#).unwrap();
    assert_eq!(rules.check("t", &args).unwrap().rule(), "rule");
}

#[test]
fn nested_pointers_array_elements_and_every_leaf_under_the_pointer() {
    let rules = BlockedPatterns::new([
        BlockedPattern::new("nested", "copy", "/options/target")
            .preset(PatternPreset::PathTraversal),
        BlockedPattern::new("second", "copy", "/sources/1").pattern("secret"),
        BlockedPattern::new("all_files", "bulk", "/files").preset(PatternPreset::PathTraversal),
        BlockedPattern::new("escaped", "odd", "/a~1b/c~0d").pattern("x"),
    ])
    .unwrap();
    let hit = rules
        .check("copy", &json!({"options": {"target": "../x"}}))
        .unwrap();
    assert_eq!(
        (hit.rule(), hit.pointer(), hit.at()),
        ("nested", "/options/target", "/options/target")
    );
    // Only the addressed element.
    assert!(
        rules
            .check("copy", &json!({"sources": ["secret", "ok"]}))
            .is_none()
    );
    assert_eq!(
        rules
            .check("copy", &json!({"sources": ["ok", "top secret"]}))
            .unwrap()
            .at(),
        "/sources/1"
    );
    // A pointer that addresses nothing checks nothing; a sibling is not checked.
    assert!(rules.check("copy", &json!({"target": "../x"})).is_none());
    // Every string leaf under an array, at any depth; the leaf's pointer, escaped.
    let hit = rules
        .check(
            "bulk",
            &json!({"files": [{"path": "ok.txt"}, {"meta": {"a/b": ["fine", "/etc/shadow"]}}]}),
        )
        .unwrap();
    assert_eq!(hit.pointer(), "/files");
    assert_eq!(hit.at(), "/files/1/meta/a~1b/1");
    assert_eq!(hit.pattern(), "path_traversal: sensitive absolute path");
    assert!(
        rules
            .check(
                "bulk",
                &json!({"files": [{"path": "ok.txt"}, "docs/my..notes"]})
            )
            .is_none()
    );
    // RFC 6901 escapes in the rule's pointer.
    assert!(rules.check("odd", &json!({"a/b": {"c~d": "x"}})).is_some());
    // Another tool: no rule applies.
    assert!(!rules.applies_to("other"));
    assert!(rules.check("other", &json!({"files": ["../x"]})).is_none());
}

#[test]
fn numbers_booleans_and_null_are_skipped_keys_are_not_checked() {
    let rules =
        BlockedPatterns::new([BlockedPattern::new("digits", "*", "").pattern("^[0-9]+$")]).unwrap();
    assert!(
        rules
            .check("any", &json!({"n": 42, "b": true, "z": null, "123": "x"}))
            .is_none()
    );
    assert_eq!(
        rules
            .check("any", &json!({"n": 42, "s": "42"}))
            .unwrap()
            .at(),
        "/s"
    );
}

#[test]
fn star_applies_to_every_tool_and_rules_are_tried_in_order() {
    let rules = BlockedPatterns::new([
        BlockedPattern::new("first", "*", "/q").pattern("a"),
        BlockedPattern::new("second", "search", "/q").pattern("a"),
    ])
    .unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules.ids().collect::<Vec<_>>(), ["first", "second"]);
    assert!(rules.applies_to("anything"));
    assert_eq!(
        rules.check("search", &json!({"q": "a"})).unwrap().rule(),
        "first"
    );
    assert_eq!(
        rules.check("search", &json!({"q": "a"})).unwrap().pattern(),
        "pattern 1"
    );
}

#[test]
fn invalid_rules_are_config_errors_naming_the_setting_and_rule() {
    let err = |rule: BlockedPattern| BlockedPatterns::new([rule]).unwrap_err();

    let e = err(BlockedPattern::new("bad", "t", "/a")
        .pattern("ok")
        .pattern("(unclosed"));
    assert_eq!(e.setting(), "blocked_pattern");
    assert!(
        e.reason()
            .starts_with("rule `bad`: pattern 2 does not compile: regex parse error:"),
        "{}",
        e.reason()
    );
    assert!(!e.reason().contains('\n'));
    assert_eq!(e.value(), Some("(unclosed"));

    // Over the compiled-size limit: a bounded repetition of a Unicode class.
    let e = err(BlockedPattern::new("huge", "t", "/a").pattern(r"\w{1000}\w{1000}"));
    assert_eq!(e.setting(), "blocked_pattern");
    assert!(
        e.reason()
            .starts_with("rule `huge`: pattern 1 does not compile"),
        "{}",
        e.reason()
    );

    let e = err(BlockedPattern::new("empty", "t", "/a"));
    assert_eq!(
        e.reason(),
        "rule `empty`: give at least one pattern or a preset"
    );

    let e = err(BlockedPattern::new("ptr", "t", "a").pattern("x"));
    assert!(
        e.reason().starts_with("rule `ptr`: the pointer"),
        "{}",
        e.reason()
    );
    assert_eq!(e.value(), Some("a"));
    let e = err(BlockedPattern::new("tilde", "t", "/a~2").pattern("x"));
    assert!(e.reason().starts_with("rule `tilde`: the pointer"));

    let e = err(BlockedPattern::new("tool", " ", "/a").pattern("x"));
    assert!(e.reason().starts_with("rule `tool`: the tool"));

    for id in ["", "has space", "quote\"", &"x".repeat(MAX_ID_BYTES + 1)] {
        let e = err(BlockedPattern::new(id, "t", "/a").pattern("x"));
        assert_eq!(e.setting(), "blocked_pattern");
        assert_eq!(e.value(), Some(id));
    }
    // The presets compile.
    for p in PatternPreset::ALL {
        assert_eq!(preset(p).len(), 1);
    }
}

#[test]
fn presets_parse_by_name() {
    assert_eq!(
        PatternPreset::parse("x", " path_traversal ").unwrap(),
        PatternPreset::PathTraversal
    );
    assert_eq!(
        PatternPreset::parse("x", "shell_metacharacters").unwrap(),
        PatternPreset::ShellMetacharacters
    );
    let e = PatternPreset::parse("blocked_pattern[0].preset", "sql").unwrap_err();
    assert_eq!(e.setting(), "blocked_pattern[0].preset");
    assert_eq!(e.value(), Some("sql"));
}

#[test]
fn the_environment_gives_preset_rules_per_tool_and_pointer() {
    let env = Env::from_pairs(
        "MCP",
        [
            (
                "MCP_BLOCK_PATH_TRAVERSAL",
                "read_file:/path, write_file:/target/0",
            ),
            ("MCP_BLOCK_SHELL_METACHARACTERS", "run"),
        ],
    );
    let rules = from_env(&env).unwrap();
    let summary: Vec<_> = rules
        .iter()
        .map(|r| (r.id(), r.tool(), r.pointer(), r.presets().to_vec()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "path_traversal",
                "read_file",
                "/path",
                vec![PatternPreset::PathTraversal]
            ),
            (
                "path_traversal",
                "write_file",
                "/target/0",
                vec![PatternPreset::PathTraversal]
            ),
            (
                "shell_metacharacters",
                "run",
                "",
                vec![PatternPreset::ShellMetacharacters]
            ),
        ]
    );
    let compiled = BlockedPatterns::new(rules).unwrap();
    assert_eq!(
        compiled
            .check("run", &json!({"cmd": "ls; id"}))
            .unwrap()
            .rule(),
        "shell_metacharacters"
    );

    for bad in [":/path", "read_file:path"] {
        let e = from_env(&Env::from_pairs("MCP", [("MCP_BLOCK_PATH_TRAVERSAL", bad)])).unwrap_err();
        assert_eq!(e.setting(), "MCP_BLOCK_PATH_TRAVERSAL");
        assert_eq!(e.value(), Some(bad));
    }
    assert!(
        from_env(&Env::from_pairs("MCP", [("MCP_X", "y")]))
            .unwrap()
            .is_empty()
    );
}
