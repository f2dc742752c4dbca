use super::digest::{hex, parse_hash};
use super::file::{parse_expiry, redact_quoted};
use super::*;
use base64::Engine as _;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcp-auth-api-key-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, file: &str, content: &str) -> PathBuf {
        let path = self.0.join(file);
        // Write then rename, as operators are told to.
        let tmp = self.0.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha_line(key: &str) -> String {
    hash_line(&KeyHasher::Sha256, key)
}

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

fn now() -> SystemTime {
    at("2026-06-01T00:00:00Z")
}

fn id(result: Result<Principal, AuthFailure>) -> Result<String, AuthFailure> {
    result.map(|p| p.id().to_owned())
}

#[test]
fn generate_key_format_and_uniqueness() {
    let a = generate_key(DEFAULT_KEY_PREFIX).unwrap();
    let b = generate_key(DEFAULT_KEY_PREFIX).unwrap();
    assert_ne!(a, b);
    for key in [&a, &b] {
        let body = key.strip_prefix("mcp-sk-").unwrap();
        assert_eq!(body.len(), 43);
        assert!(
            body.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{body}"
        );
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        assert_eq!(raw.len(), 32);
    }
    let custom = generate_key("iqmcp-sk-").unwrap();
    assert!(custom.starts_with("iqmcp-sk-"));
    assert_eq!(custom.len(), "iqmcp-sk-".len() + 43);
}

#[test]
fn generate_key_rejects_bad_prefixes() {
    let long = "p".repeat(65);
    for bad in ["", "has space", "tab\t", "new\nline", "é-", long.as_str()] {
        let err = generate_key(bad).unwrap_err();
        assert_eq!(err.setting(), "key_prefix", "{bad:?}");
        assert_eq!(err.value(), Some(bad));
    }
    assert!(generate_key(&"p".repeat(64)).is_ok());
}

#[test]
fn hash_line_known_vectors() {
    assert_eq!(
        hash_line(&KeyHasher::Sha256, "abc"),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // RFC 4231 test case 2.
    let jefe = KeyHasher::HmacSha256(Secret::new("Jefe"));
    assert_eq!(
        hash_line(&jefe, "what do ya want for nothing?"),
        "hmac-sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(KeyHasher::Sha256.label(), "sha256");
    assert_eq!(jefe.label(), "hmac-sha256");
    // RFC 4231 test case 6: a key longer than the block is hashed first.
    let long_key = [0xaa_u8; 131];
    assert_eq!(
        hex(&hmac_digest(
            &keyed_hmac(&long_key),
            "Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    // RFC 4231 test case 1 (a 20-byte key, zero-padded).
    assert_eq!(
        hex(&hmac_digest(&keyed_hmac(&[0x0b; 20]), "Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    assert_eq!(format!("{jefe:?}"), "HmacSha256(Secret(<redacted>))");
}

#[test]
fn parse_hash_accepts_only_the_two_forms() {
    let line = sha_line("abc");
    assert_eq!(parse_hash(&line), Some((HashKind::Sha256, sha256(b"abc"))));
    assert_eq!(
        parse_hash(&line.to_uppercase().replace("SHA256", "sha256")),
        Some((HashKind::Sha256, sha256(b"abc")))
    );
    let hex64 = "0".repeat(64);
    assert_eq!(
        parse_hash(&format!("hmac-sha256:{hex64}")),
        Some((HashKind::HmacSha256, [0; 32]))
    );
    for bad in [
        "",
        "sha256:",
        "sha256:abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        &format!("sha512:{hex64}"),
        &format!("sha256:{}", "g".repeat(64)),
        &format!("sha256:{}", "0".repeat(65)),
        &format!("sha256:{}é", "0".repeat(62)),
        "mcp-sk-abcdef",
    ] {
        assert_eq!(parse_hash(bad), None, "{bad:?}");
    }
}

#[test]
fn shared_prefix_keys_map_to_their_own_principal() {
    let a = "mcp-sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1";
    let b = "mcp-sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2";
    let c = "mcp-sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3";
    assert_eq!(a[..20], b[..20]);
    let store = ApiKeyStore::builder()
        .key("alpha", a, Scopes::new(["notes:read"]))
        .key("beta", b, Scopes::new(["notes:write"]))
        .build()
        .unwrap();
    assert_eq!(store.len(), 2);
    assert_eq!(id(store.verify(a, now())), Ok("alpha".to_owned()));
    assert_eq!(id(store.verify(b, now())), Ok("beta".to_owned()));
    assert_eq!(store.verify(c, now()), Err(AuthFailure::UnknownKey));
    assert_eq!(store.verify(&a[..20], now()), Err(AuthFailure::UnknownKey));
    assert_eq!(
        store.verify(&format!("{a} "), now()),
        Err(AuthFailure::UnknownKey)
    );
}

#[test]
fn scopes_and_kind_carried_into_the_principal() {
    let dir = TempDir::new("scopes");
    let path = dir.write(
        "keys.toml",
        &format!(
            "[[keys]]\nname = \"reader\"\nhash = \"{}\"\nscopes = [\"notes:read\", \"search\"]\n\
                 expires_at = \"2030-01-01T00:00:00Z\"\n",
            sha_line("reader-key")
        ),
    );
    let store = ApiKeyStore::builder()
        .key("admin", "admin-key", Scopes::new(["*"]))
        .file(&path)
        .build()
        .unwrap();
    let admin = store.verify("admin-key", now()).unwrap();
    assert_eq!(admin.kind(), PrincipalKind::ApiKey);
    assert_eq!(admin.scopes().iter().collect::<Vec<_>>(), ["*"]);
    assert_eq!(admin.expires_at(), None);
    assert!(admin.has_scope("anything"));

    let reader = store.verify("reader-key", now()).unwrap();
    assert_eq!(reader.id(), "reader");
    assert_eq!(reader.kind(), PrincipalKind::ApiKey);
    assert_eq!(
        reader.scopes().iter().collect::<Vec<_>>(),
        ["notes:read", "search"]
    );
    assert_eq!(reader.expires_at(), Some(at("2030-01-01T00:00:00Z")));
    assert_eq!(reader.audience().count(), 0);
    assert!(reader.has_scope("search:query"));
    assert!(!reader.has_scope("notes:write"));
    assert_eq!(store.file(), Some(path.as_path()));
    // Each key is its own principal, which remembers the key's audit fingerprint: computed on
    // the first request, reused by the next ones.
    assert!(admin.is_single_credential() && reader.is_single_credential());
    let f = mcp_security_core::credential::Fingerprinter::new(b"fingerprint-key");
    let fp = reader.credential_fingerprint(&f, || f.fingerprint(b"reader-key"));
    let again = store.verify("reader-key", now()).unwrap();
    assert_eq!(again.credential_fingerprint(&f, || unreachable!()), fp);
}

#[test]
fn expired_key() {
    let dir = TempDir::new("expired");
    let path = dir.write(
        "keys.toml",
        &format!(
            "[[keys]]\nname = \"temp\"\nhash = \"{}\"\nexpires_at = \"2027-01-01T00:00:00Z\"\n\n\
                 [[keys]]\nname = \"native\"\nhash = \"{}\"\nexpires_at = 2027-01-01T00:00:00Z\n",
            sha_line("temp-key"),
            sha_line("native-key"),
        ),
    );
    let store = ApiKeyStore::builder().file(&path).build().unwrap();
    let expiry = at("2027-01-01T00:00:00Z");
    for (key, name) in [("temp-key", "temp"), ("native-key", "native")] {
        assert_eq!(
            id(store.verify(key, expiry - Duration::from_secs(1))),
            Ok(name.to_owned())
        );
        assert_eq!(store.verify(key, expiry), Err(AuthFailure::ExpiredKey));
        assert_eq!(
            store.verify(key, expiry + Duration::from_secs(1)),
            Err(AuthFailure::ExpiredKey)
        );
    }
}

#[test]
fn expiry_formats() {
    let s = |v: &str| toml::Value::String(v.to_owned());
    let expected = Some(at("2027-01-01T00:00:00Z"));
    for ok in [
        "2027-01-01T00:00:00Z",
        "2027-01-01T00:00:00z",
        "2027-01-01 00:00:00Z",
        "2027-01-01T00:00:00",
        "2027-01-01T00:00:00+00:00",
        " 2027-01-01T00:00:00Z ",
    ] {
        assert_eq!(parse_expiry(&s(ok)), expected, "{ok}");
    }
    assert_eq!(
        parse_expiry(&s("2027-01-01T00:00:00.5Z")),
        Some(at("2027-01-01T00:00:00.5Z"))
    );
    for bad in [
        "2027-01-01",
        "2027-01-01T00:00:00+02:00",
        "2027-01-01T00:00:00.5+02:00",
        "2027-01-01T00:00:00-05:00",
        "2027-01-01T00:00:00Zjunk",
        "2027-13-01T00:00:00Z",
        "next year",
        "",
        "2027-01-01T00:00:0é",
    ] {
        assert_eq!(parse_expiry(&s(bad)), None, "{bad}");
    }
    assert_eq!(parse_expiry(&toml::Value::Integer(1_800_000_000)), None);
}

#[test]
fn disabled_key() {
    let dir = TempDir::new("disabled");
    let path = dir.write(
        "keys.toml",
        &format!(
            "[[keys]]\nname = \"off\"\nhash = \"{}\"\nenabled = false\n\
                 expires_at = \"2020-01-01T00:00:00Z\"\n\n\
                 [[keys]]\nname = \"on\"\nhash = \"{}\"\nenabled = true\n",
            sha_line("off-key"),
            sha_line("on-key"),
        ),
    );
    let store = ApiKeyStore::builder().file(&path).build().unwrap();
    // Disabled wins over expired: the key was revoked.
    assert_eq!(
        store.verify("off-key", now()),
        Err(AuthFailure::DisabledKey)
    );
    assert_eq!(id(store.verify("on-key", now())), Ok("on".to_owned()));
    assert_eq!(store.len(), 2);
}

fn two_keys(first_enabled: bool) -> String {
    format!(
        "# rotated by ops\n[[keys]]\nname = \"ci-bot\"\nhash = \"{}\"\nscopes = [\"notes:read\"]\n\
             enabled = {first_enabled}\n\n[[keys]]\nname = \"deploy\"\nhash = \"{}\"\n",
        sha_line("ci-key"),
        sha_line("deploy-key"),
    )
}

#[test]
fn revoked_key_via_file_reload() {
    let dir = TempDir::new("revoke");
    let path = dir.write("keys.toml", &two_keys(true));
    let store = ApiKeyStore::builder().file(&path).build().unwrap();
    let clone = store.clone();
    assert!(Arc::ptr_eq(&store.inner, &clone.inner));
    assert_eq!(store.generation(), 0);
    assert_eq!(id(store.verify("ci-key", now())), Ok("ci-bot".to_owned()));
    assert_eq!(
        id(store.verify("deploy-key", now())),
        Ok("deploy".to_owned())
    );

    // `deploy` removed, `ci-bot` disabled.
    dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"ci-bot\"\nhash = \"{}\"\nscopes = [\"notes:read\"]\nenabled = false\n",
                sha_line("ci-key")
            ),
        );
    assert_eq!(store.reload(), Ok(true));
    assert_eq!(store.generation(), 1);
    assert_eq!(clone.generation(), 1);
    assert_eq!(clone.verify("ci-key", now()), Err(AuthFailure::DisabledKey));
    assert_eq!(
        clone.verify("deploy-key", now()),
        Err(AuthFailure::UnknownKey)
    );
    assert_eq!(store.len(), 1);

    // Unchanged content: nothing to do.
    assert_eq!(store.reload(), Ok(false));
    assert_eq!(store.generation(), 1);
}

#[test]
fn reload_with_unchanged_entries_returns_false() {
    let dir = TempDir::new("unchanged");
    let path = dir.write("keys.toml", &two_keys(true));
    let store = ApiKeyStore::builder().file(&path).build().unwrap();
    assert_eq!(store.reload(), Ok(false));
    // New bytes (a comment, reordered fields) but the same entries.
    let mut same = two_keys(true);
    same.push_str("# trailing comment\n");
    dir.write("keys.toml", &same);
    assert_eq!(store.reload(), Ok(false));
    assert_eq!(store.generation(), 0);
    // And a real change after that is still seen.
    dir.write("keys.toml", &two_keys(false));
    assert_eq!(store.reload(), Ok(true));
    assert_eq!(store.generation(), 1);
    assert_eq!(store.verify("ci-key", now()), Err(AuthFailure::DisabledKey));
}

#[test]
fn broken_file_on_reload_keeps_old_entries() {
    let dir = TempDir::new("broken");
    let path = dir.write("keys.toml", &two_keys(true));
    let store = ApiKeyStore::builder()
        .key("env", "env-key", Scopes::new(["*"]))
        .file(&path)
        .build()
        .unwrap();
    assert_eq!(store.len(), 3);

    let broken = [
        "[[keys]\nname = \"x\"".to_owned(),
        String::new(),
        "keys = 5".to_owned(),
        format!(
            "[[keys]]\nname = \"x\"\nhash = \"{}\"\nscope = [\"a\"]\n",
            sha_line("k")
        ),
        format!("[[keys]]\nname = \"env\"\nhash = \"{}\"\n", sha_line("k")),
    ];
    for content in &broken {
        dir.write("keys.toml", content);
        let err = store.reload().unwrap_err();
        assert_eq!(err.setting(), "api_keys_file", "{content}");
        assert_eq!(err.value(), Some(path.display().to_string().as_str()));
        assert_eq!(store.generation(), 0);
        assert_eq!(store.len(), 3);
        assert_eq!(id(store.verify("ci-key", now())), Ok("ci-bot".to_owned()));
        assert_eq!(id(store.verify("env-key", now())), Ok("env".to_owned()));
    }

    // The file disappearing is an error too, not "no keys".
    std::fs::remove_file(&path).unwrap();
    let err = store.reload().unwrap_err();
    assert!(
        err.reason().starts_with("cannot open the key file"),
        "{err}"
    );
    assert_eq!(
        id(store.verify("deploy-key", now())),
        Ok("deploy".to_owned())
    );

    // An explicit empty list revokes every file key; code keys stay.
    dir.write("keys.toml", "keys = []\n");
    assert_eq!(store.reload(), Ok(true));
    assert_eq!(store.len(), 1);
    assert_eq!(store.verify("ci-key", now()), Err(AuthFailure::UnknownKey));
    assert_eq!(id(store.verify("env-key", now())), Ok("env".to_owned()));
}

#[test]
fn toml_errors_name_line_and_entry() {
    let dir = TempDir::new("toml-errors");
    let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"ok\"\nhash = \"{}\"\n\n[[keys]]\nname = \"typo\"\nhash = \"{}\"\nscope = [\"notes:read\"]\n",
                sha_line("a"),
                sha_line("b")
            ),
        );
    let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
    assert_eq!(err.setting(), "api_keys_file");
    assert!(
        err.reason()
            .starts_with("invalid TOML at line 8, column 1: unknown field `scope`"),
        "{err}"
    );

    let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"ok\"\nhash = \"{}\"\n\n[[keys]]\nname = \"bad-date\"\nhash = \"{}\"\nexpires_at = \"soon\"\n",
                sha_line("a"),
                sha_line("b")
            ),
        );
    let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
    assert_eq!(
        err.reason(),
        "keys[1] (\"bad-date\"): expires_at must be an RFC 3339 timestamp in UTC, such as \
             \"2027-01-01T00:00:00Z\""
    );

    let err = ApiKeyStore::builder()
        .file(dir.write("keys.yaml", "keys: []"))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "api_keys_file");
    assert_eq!(
        err.reason(),
        "expected a .toml or .json key file (by its extension)"
    );

    let err = ApiKeyStore::builder()
        .file(dir.0.join("missing.toml"))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "api_keys_file");
    assert!(
        err.reason().starts_with("cannot open the key file"),
        "{err}"
    );

    let err = ApiKeyStore::builder()
        .file(dir.write(
            "bad-scope.toml",
            &format!(
                "[[keys]]\nname = \"s\"\nhash = \"{}\"\nscopes = [\"notes read\"]\n",
                sha_line("a")
            ),
        ))
        .build()
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "keys[0] (\"s\"): scopes must be non-empty and without whitespace or control characters"
    );

    let err = ApiKeyStore::builder()
        .file(dir.write(
            "bad-name.toml",
            &format!("[[keys]]\nname = \"\"\nhash = \"{}\"\n", sha_line("a")),
        ))
        .build()
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "keys[0] (\"\"): the name must be 1 to 128 bytes"
    );
}

#[test]
fn unknown_field_is_error() {
    let dir = TempDir::new("unknown-field");
    for (file, content) in [
        (
            "a.toml",
            format!(
                "[[keys]]\nname = \"x\"\nhash = \"{}\"\nscope = [\"a\"]\n",
                sha_line("k")
            ),
        ),
        (
            "b.toml",
            format!("[[key]]\nname = \"x\"\nhash = \"{}\"\n", sha_line("k")),
        ),
        (
            "c.json",
            format!(
                r#"{{"keys":[{{"name":"x","hash":"{}","enable":false}}]}}"#,
                sha_line("k")
            ),
        ),
    ] {
        let err = ApiKeyStore::builder()
            .file(dir.write(file, &content))
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "api_keys_file");
        assert!(err.reason().contains("unknown field"), "{file}: {err}");
    }
}

#[test]
fn json_file() {
    let dir = TempDir::new("json");
    let path = dir.write(
        "keys.json",
        &format!(
            r#"{{"keys": [
                    {{"name": "ci-bot", "hash": "{}", "scopes": ["notes:read"],
                      "expires_at": "2030-01-01T00:00:00Z", "enabled": true}},
                    {{"name": "old", "hash": "{}", "enabled": false}},
                    {{"name": "no-expiry", "hash": "{}", "expires_at": null}}
                ]}}"#,
            sha_line("ci-key"),
            sha_line("old-key"),
            sha_line("plain-key"),
        ),
    );
    let store = ApiKeyStore::builder().file(&path).build().unwrap();
    let p = store.verify("ci-key", now()).unwrap();
    assert_eq!(p.id(), "ci-bot");
    assert_eq!(p.scopes().iter().collect::<Vec<_>>(), ["notes:read"]);
    assert_eq!(p.expires_at(), Some(at("2030-01-01T00:00:00Z")));
    assert_eq!(
        store.verify("old-key", now()),
        Err(AuthFailure::DisabledKey)
    );
    assert_eq!(
        id(store.verify("plain-key", now())),
        Ok("no-expiry".to_owned())
    );

    let err = ApiKeyStore::builder()
        .file(dir.write("bad.json", r#"{"keys": [{"name": "x", "hash": 5}]}"#))
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "api_keys_file");
    assert!(
        err.reason()
            .starts_with("invalid JSON: invalid type: integer `5`, expected a string"),
        "{err}"
    );
}

#[test]
fn pepper_and_hmac_entries() {
    let dir = TempDir::new("pepper");
    let pepper = Secret::new("server-pepper-0123456789abcdef");
    let hmac = KeyHasher::HmacSha256(pepper.clone());
    let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"peppered\"\nhash = \"{}\"\n\n[[keys]]\nname = \"plain\"\nhash = \"{}\"\n",
                hash_line(&hmac, "peppered-key"),
                sha_line("plain-key"),
            ),
        );
    let store = ApiKeyStore::builder()
        .pepper(pepper)
        .key("env", "env-key", Scopes::new(["*"]))
        .file(&path)
        .build()
        .unwrap();
    assert_eq!(
        id(store.verify("peppered-key", now())),
        Ok("peppered".to_owned())
    );
    assert_eq!(id(store.verify("plain-key", now())), Ok("plain".to_owned()));
    assert_eq!(id(store.verify("env-key", now())), Ok("env".to_owned()));
    assert_eq!(
        store.verify("other-key", now()),
        Err(AuthFailure::UnknownKey)
    );
    // With a pepper, code keys are stored as HMAC digests.
    let fixed = &store.inner.fixed;
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0].kind, HashKind::HmacSha256);
    assert_eq!(fixed[0].digest, hmac.digest("env-key"));
    assert!(!format!("{store:?}").contains("server-pepper"));

    // Another pepper does not verify the peppered entry.
    let other = ApiKeyStore::builder()
        .pepper(Secret::new("another-pepper"))
        .file(&path)
        .build()
        .unwrap();
    assert_eq!(
        other.verify("peppered-key", now()),
        Err(AuthFailure::UnknownKey)
    );
    assert_eq!(id(other.verify("plain-key", now())), Ok("plain".to_owned()));

    let err = ApiKeyStore::builder()
        .pepper(Secret::new(""))
        .key("env", "env-key", Scopes::default())
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "api_key_pepper: is empty");
}

#[test]
fn hmac_entry_without_pepper_is_a_build_error() {
    let dir = TempDir::new("no-pepper");
    let hmac = KeyHasher::HmacSha256(Secret::new("pepper"));
    let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"plain\"\nhash = \"{}\"\n\n[[keys]]\nname = \"peppered\"\nhash = \"{}\"\n",
                sha_line("plain-key"),
                hash_line(&hmac, "peppered-key"),
            ),
        );
    let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
    assert_eq!(err.setting(), "api_keys_file");
    assert_eq!(err.value(), Some(path.display().to_string().as_str()));
    assert_eq!(
        err.reason(),
        "keys[1] (\"peppered\"): an hmac-sha256 hash needs the server's pepper, and none is configured"
    );
}

#[test]
fn duplicate_names_and_keys_are_errors() {
    let err = ApiKeyStore::builder()
        .key("a", "key-one", Scopes::default())
        .key("a", "key-two", Scopes::default())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "api_key: key \"a\": duplicate name (also used by another key: \"a\")"
    );

    let err = ApiKeyStore::builder()
        .key("a", "key-one", Scopes::default())
        .key("b", "key-one", Scopes::default())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "api_key: key \"b\": the same key is also given as \"a\""
    );

    let dir = TempDir::new("duplicates");
    let path = dir.write(
        "keys.toml",
        &format!(
            "[[keys]]\nname = \"x\"\nhash = \"{}\"\n\n[[keys]]\nname = \"x\"\nhash = \"{}\"\n",
            sha_line("k1"),
            sha_line("k2")
        ),
    );
    let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
    assert_eq!(
        err.reason(),
        "keys[1] (\"x\"): duplicate name (also keys[0])"
    );

    let path = dir.write(
        "keys.toml",
        &format!(
            "[[keys]]\nname = \"x\"\nhash = \"{}\"\n\n[[keys]]\nname = \"y\"\nhash = \"{}\"\n",
            sha_line("k1"),
            sha_line("k1")
        ),
    );
    let err = ApiKeyStore::builder().file(&path).build().unwrap_err();
    assert_eq!(err.reason(), "keys[1] (\"y\"): the same hash as keys[0]");

    let path = dir.write(
        "keys.toml",
        &format!("[[keys]]\nname = \"env\"\nhash = \"{}\"\n", sha_line("k1")),
    );
    let err = ApiKeyStore::builder()
        .key("env", "env-key", Scopes::new(["*"]))
        .file(&path)
        .build()
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "keys[0] (\"env\"): duplicate name (also a key given in code)"
    );
    let err = ApiKeyStore::builder()
        .key("env", "k1", Scopes::new(["*"]))
        .file(dir.write(
            "same.toml",
            &format!("[[keys]]\nname = \"file\"\nhash = \"{}\"\n", sha_line("k1")),
        ))
        .build()
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "keys[0] (\"file\"): the same key as \"env\", given in code"
    );
}

#[test]
fn empty_store_and_bad_code_keys() {
    let err = ApiKeyStore::builder().build().unwrap_err();
    assert_eq!(err.setting(), "api_keys");
    assert!(err.reason().starts_with("no API keys"), "{err}");

    let dir = TempDir::new("empty");
    let err = ApiKeyStore::builder()
        .file(dir.write("keys.toml", "keys = []\n"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no API keys"), "{err}");

    let err = ApiKeyStore::builder()
        .key("env", "", Scopes::default())
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "api_key: key \"env\": the key is empty");

    let err = ApiKeyStore::builder()
        .key("env", &"k".repeat(MAX_KEY_LEN + 1), Scopes::default())
        .build()
        .unwrap_err();
    assert_eq!(err.setting(), "api_key");
    assert!(
        ApiKeyStore::builder()
            .key("env", &"k".repeat(MAX_KEY_LEN), Scopes::default())
            .build()
            .is_ok()
    );

    let err = ApiKeyStore::builder()
        .key(" env", "env-key", Scopes::default())
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "api_key: key \" env\": the name has surrounding whitespace or control characters"
    );
}

#[test]
fn errors_never_contain_the_plaintext_key() {
    let key = "mcp-sk-Zq3vR8sK2mW9xT4yL6nB1cD5fG7hJ0pQ2rS4uV6wX8z";
    let dir = TempDir::new("no-leak");
    let cases = [
        // The key pasted where its hash belongs.
        format!("[[keys]]\nname = \"a\"\nhash = \"{key}\"\n"),
        format!("[[keys]]\nname = \"a\"\nhash = \"sha256:{key}\"\n"),
        // The key where a list belongs: serde quotes the refused value.
        format!(
            "[[keys]]\nname = \"a\"\nhash = \"{}\"\nscopes = \"{key}\"\n",
            sha_line(key)
        ),
        format!(
            "[[keys]]\nname = \"a\"\nhash = \"{}\"\nenabled = \"{key}\"\n",
            sha_line(key)
        ),
        format!(
            "[[keys]]\nname = \"a\"\nhash = \"{}\"\nexpires_at = \"{key}\"\n",
            sha_line(key)
        ),
        // A syntax error on the line holding the key (toml's Display would quote the line).
        format!("[[keys]]\nname = \"a\"\nhash = \"{key}\" oops\n"),
        format!("[[keys]]\nname = \"a\"\nhash = {key}\n"),
        format!("[[keys]]\nname = \"a\"\nhash = \"{key}\n"),
    ];
    for content in &cases {
        let err = ApiKeyStore::builder()
            .file(dir.write("keys.toml", content))
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "api_keys_file");
        assert!(!err.to_string().contains(key), "{err}");
        assert!(!format!("{err:?}").contains(key), "{err:?}");
    }
    let json_cases = [
        format!(
            r#"{{"keys":[{{"name":"a","hash":"{}","scopes":"{key}"}}]}}"#,
            sha_line(key)
        ),
        format!(r#"{{"keys":[{{"name":"a","hash":"{key}"}}]}}"#),
        format!(r#"{{"keys":[{{"name":"a","hash":{key}}}]}}"#),
    ];
    for content in &json_cases {
        let err = ApiKeyStore::builder()
            .file(dir.write("keys.json", content))
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains(key), "{err}");
    }
    // Keys given in code.
    for (name, bad) in [("env", format!("{key}\n")), ("env", format!(" {key}"))] {
        let err = ApiKeyStore::builder()
            .key(name, &bad, Scopes::default())
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), "api_key");
        assert!(!err.to_string().contains(key), "{err}");
    }
    let err = ApiKeyStore::builder()
        .key("a", key, Scopes::default())
        .key("b", key, Scopes::default())
        .build()
        .unwrap_err();
    assert!(!err.to_string().contains(key), "{err}");
    let builder = ApiKeyStore::builder()
        .pepper(Secret::new("pepper-value"))
        .key("a", key, Scopes::default());
    let debug = format!("{builder:?}");
    assert!(
        !debug.contains(key) && !debug.contains("pepper-value"),
        "{debug}"
    );
    let store = builder.build().unwrap();
    assert!(!format!("{store:?}").contains(key));
}

#[test]
fn redaction_of_quoted_values() {
    assert_eq!(
        redact_quoted(r#"invalid type: string "mcp-sk-abc", expected a sequence"#),
        "invalid type: string \"…\", expected a sequence"
    );
    assert_eq!(redact_quoted(r#"a "b\"c" d "e"#), "a \"…\" d \"…");
    assert_eq!(
        redact_quoted("unknown field `scope`"),
        "unknown field `scope`"
    );
    assert_eq!(
        redact_quoted("invalid basic string, expected `\"`"),
        "invalid basic string, expected `\"`"
    );
    assert_eq!(
        redact_quoted("expected `\"`, found string \"secret\""),
        "expected `\"`, found string \"…\""
    );
}

#[test]
fn hostile_presented_keys_are_refused_without_panicking() {
    let store = ApiKeyStore::builder()
        .key("k", "mcp-sk-valid", Scopes::default())
        .build()
        .unwrap();
    let long = "a".repeat(MAX_KEY_LEN + 1);
    let long_match = format!("mcp-sk-valid{}", "a".repeat(MAX_KEY_LEN));
    for bad in [
        "",
        long.as_str(),
        long_match.as_str(),
        "\0",
        "mcp-sk-valid\0",
        "é🔑",
        "mcp-sk-vali",
        "MCP-SK-VALID",
    ] {
        assert_eq!(
            store.verify(bad, now()),
            Err(AuthFailure::UnknownKey),
            "{bad:?}"
        );
    }
    assert_eq!(
        store.verify(&"a".repeat(MAX_KEY_LEN), now()),
        Err(AuthFailure::UnknownKey)
    );
    assert_eq!(id(store.verify("mcp-sk-valid", now())), Ok("k".to_owned()));
    // Far past and far future clocks.
    assert_eq!(
        id(store.verify("mcp-sk-valid", SystemTime::UNIX_EPOCH)),
        Ok("k".to_owned())
    );
}

#[test]
fn store_without_file() {
    let store = ApiKeyStore::builder()
        .key("env", "env-key", Scopes::new(["*"]))
        .build()
        .unwrap();
    assert_eq!(store.reload(), Ok(false));
    assert_eq!(store.generation(), 0);
    assert_eq!(store.len(), 1);
    assert!(!store.is_empty());
    assert_eq!(store.file(), None);
    assert!(store.spawn_reloader(Duration::from_millis(10)).is_none());
}

#[test]
fn spawn_reloader_needs_a_runtime() {
    let dir = TempDir::new("no-runtime");
    let path = dir.write("keys.toml", &two_keys(true));
    let store = ApiKeyStore::builder().file(&path).build().unwrap();
    assert!(store.spawn_reloader(Duration::from_millis(10)).is_none());
}

#[tokio::test]
async fn spawned_reloader_picks_up_a_change() {
    let dir = TempDir::new("reloader");
    let path = dir.write("keys.toml", &two_keys(true));
    let store = ApiKeyStore::builder().file(&path).build().unwrap();
    let task = store.spawn_reloader(Duration::from_millis(10)).unwrap();

    // A broken edit first: it is logged and ignored.
    dir.write("keys.toml", "[[keys]\n");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.generation(), 0);
    assert_eq!(id(store.verify("ci-key", now())), Ok("ci-bot".to_owned()));

    dir.write("keys.toml", &two_keys(false));
    let mut waited = 0;
    while store.generation() == 0 && waited < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(store.generation(), 1, "no reload within 5 s");
    assert_eq!(store.verify("ci-key", now()), Err(AuthFailure::DisabledKey));
    assert_eq!(
        id(store.verify("deploy-key", now())),
        Ok("deploy".to_owned())
    );

    // The task ends once the store is gone.
    drop(store);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the reloader stops when the store is dropped")
        .unwrap();
}

#[test]
fn created_at_dates_keys_and_old_files_still_load() {
    let dir = TempDir::new("created");
    let path = dir.write(
        "keys.toml",
        &format!(
            "[[keys]]\nname = \"dated\"\nhash = \"{}\"\ncreated_at = \"2026-03-01T00:00:00Z\"\n\
             expires_at = \"2027-03-01T00:00:00Z\"\n\n\
             [[keys]]\nname = \"native\"\nhash = \"{}\"\ncreated_at = 2026-04-01T12:30:00Z\n\n\
             [[keys]]\nname = \"legacy\"\nhash = \"{}\"\nenabled = false\n",
            sha_line("dated-key"),
            sha_line("native-key"),
            sha_line("legacy-key"),
        ),
    );
    let store = ApiKeyStore::builder()
        .key("env", "code-key", Scopes::new(["*"]))
        .file(&path)
        .build()
        .unwrap();
    // created_at changes nothing about which keys are accepted.
    assert_eq!(id(store.verify("dated-key", now())), Ok("dated".to_owned()));
    assert_eq!(
        id(store.verify("native-key", now())),
        Ok("native".to_owned())
    );
    let dates = store.key_dates();
    let got: Vec<(&str, Option<SystemTime>, Option<SystemTime>, bool)> = dates
        .iter()
        .map(|d| (d.name.as_str(), d.created_at, d.expires_at, d.enabled))
        .collect();
    assert_eq!(
        got,
        [
            ("env", None, None, true),
            (
                "dated",
                Some(at("2026-03-01T00:00:00Z")),
                Some(at("2027-03-01T00:00:00Z")),
                true
            ),
            ("native", Some(at("2026-04-01T12:30:00Z")), None, true),
            ("legacy", None, None, false),
        ]
    );
    assert_eq!(read_key_dates(&path).unwrap(), dates[1..]);
    assert_eq!(
        store.oldest_created_at(now()),
        Some(at("2026-03-01T00:00:00Z"))
    );
    // Once the oldest key has expired, the next one is the oldest in use.
    assert_eq!(
        store.oldest_created_at(at("2027-03-01T00:00:00Z")),
        Some(at("2026-04-01T12:30:00Z"))
    );
    assert!(dates[1].is_usable(now()));
    assert!(!dates[1].is_usable(at("2027-03-01T00:00:00Z")));
    assert!(!dates[3].is_usable(now()));

    // A reload changes the dates.
    dir.write(
        "keys.toml",
        &format!(
            "[[keys]]\nname = \"dated\"\nhash = \"{}\"\ncreated_at = \"2026-05-01T00:00:00Z\"\n",
            sha_line("rotated-key"),
        ),
    );
    assert!(store.reload().unwrap());
    assert_eq!(
        store.oldest_created_at(now()),
        Some(at("2026-05-01T00:00:00Z"))
    );

    // JSON, with and without the field.
    let json = dir.write(
        "keys.json",
        &format!(
            r#"{{"keys": [{{"name": "a", "hash": "{}", "created_at": "2026-02-01T00:00:00Z"}},
                          {{"name": "b", "hash": "{}", "created_at": null}}]}}"#,
            sha_line("a"),
            sha_line("b"),
        ),
    );
    let dates = read_key_dates(&json).unwrap();
    assert_eq!(dates[0].created_at, Some(at("2026-02-01T00:00:00Z")));
    assert_eq!(dates[1].created_at, None);
}

#[test]
fn a_bad_created_at_names_the_entry_and_the_setting() {
    let dir = TempDir::new("bad-created");
    for (value, reason) in [
        (
            "\"last spring\"",
            "created_at must be an RFC 3339 timestamp in UTC, such as \"2026-12-07T00:00:00Z\" \
             (`mcp-security keygen` writes it)",
        ),
        (
            "\"2026-03-01T00:00:00+02:00\"",
            "created_at must be an RFC 3339 timestamp in UTC, such as \"2026-12-07T00:00:00Z\" \
             (`mcp-security keygen` writes it)",
        ),
        (
            "20260301",
            "created_at must be an RFC 3339 timestamp in UTC, such as \"2026-12-07T00:00:00Z\" (`mcp-security keygen` writes it)",
        ),
        (
            "\"2027-06-01T00:00:00Z\"\nexpires_at = \"2027-01-01T00:00:00Z\"",
            "created_at is not before expires_at",
        ),
    ] {
        let path = dir.write(
            "keys.toml",
            &format!(
                "[[keys]]\nname = \"ok\"\nhash = \"{}\"\n\n[[keys]]\nname = \"ops\"\nhash = \"{}\"\n\
                 created_at = {value}\n",
                sha_line("a"),
                sha_line("b"),
            ),
        );
        for err in [
            ApiKeyStore::builder().file(&path).build().unwrap_err(),
            read_key_dates(&path).unwrap_err(),
        ] {
            assert_eq!(err.setting(), "api_keys_file", "{value}");
            assert_eq!(err.value(), Some(path.display().to_string().as_str()));
            assert_eq!(
                err.reason(),
                format!("keys[1] (\"ops\"): {reason}"),
                "{value}"
            );
        }
    }
}

#[test]
fn key_dates_need_no_pepper() {
    let dir = TempDir::new("dates-pepper");
    let hmac = KeyHasher::HmacSha256(Secret::new("server-pepper-0123456789abcdef"));
    let path = dir.write(
        "keys.toml",
        &format!(
            "[[keys]]\nname = \"ops\"\nhash = \"{}\"\ncreated_at = \"2026-01-15T00:00:00Z\"\n",
            hash_line(&hmac, "ops-key"),
        ),
    );
    // The server needs the pepper; a check dating the keys does not.
    assert!(ApiKeyStore::builder().file(&path).build().is_err());
    let dates = read_key_dates(&path).unwrap();
    assert_eq!(dates[0].name, "ops");
    assert_eq!(dates[0].created_at, Some(at("2026-01-15T00:00:00Z")));
    let missing = read_key_dates(&dir.0.join("missing.toml")).unwrap_err();
    assert_eq!(missing.setting(), "api_keys_file");
}

#[test]
fn key_times_are_written_as_they_are_read() {
    let t = at("2026-12-07T08:09:10Z");
    assert_eq!(format_key_time(t), "2026-12-07T08:09:10Z");
    assert_eq!(
        parse_expiry(&toml::Value::String(format_key_time(t))),
        Some(t)
    );
    assert_eq!(
        format_key_time(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
        "1970-01-01T00:00:00Z"
    );
    assert_eq!(
        format_key_time(SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000)),
        "9999-12-31T23:59:59Z"
    );
}
