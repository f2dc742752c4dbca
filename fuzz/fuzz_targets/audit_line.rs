//! The audit verifier's input: one line through the line parser, and the whole input as an
//! audit file through the verifier; plus the maskers on the same bytes as text.
//!
//! Checks: nothing panics; a parsed line's body is the line up to its `,"mac":"` member and
//! starts with `{"seq":`; `split_line` and `parse_line` agree; a verified file's report is
//! consistent; text masked by `Masker::mask_text` holds no secret-shaped token any more.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use mcp_security_audit::chain::{AuditKey, parse_line, split_line};
use mcp_security_audit::mask::Masker;
use mcp_security_audit::verify::{VerifyOptions, verify_reader};

fn key() -> &'static AuditKey {
    static KEY: OnceLock<AuditKey> = OnceLock::new();
    KEY.get_or_init(|| AuditKey::from_bytes(b"fuzz-audit-key-0123456789abcdef0123").expect("key"))
}

fn masker() -> &'static Masker {
    static MASKER: OnceLock<Masker> = OnceLock::new();
    MASKER.get_or_init(Masker::default)
}

fuzz_target!(|data: &[u8]| {
    let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    let split = split_line(line);
    match parse_line(line) {
        Ok(parsed) => {
            let (body, mac) = split.expect("parse_line accepted what split_line refused");
            assert_eq!(parsed.body, body);
            assert_eq!(parsed.mac, mac);
            assert!(parsed.body.starts_with(b"{\"seq\":"));
            assert!(line.starts_with(parsed.body));
            assert_eq!(line.len() - parsed.body.len(), 8 + 64 + 2);
            if let Some(p) = parsed.prev_seq {
                let _ = p.checked_add(1);
            }
        }
        Err(_) => {}
    }

    let options = VerifyOptions::new().now(UNIX_EPOCH + Duration::from_secs(1_767_225_600));
    if let Ok(report) = verify_reader(Path::new("fuzz.jsonl"), data, key(), &options) {
        assert!(report.lines >= 1);
        assert!(report.requests + report.security_events + report.checkpoints <= report.lines);
        assert!(report.first_seq <= report.last_seq);
        assert_eq!(report.head.as_ref().map(String::len), Some(64));
    }

    if let Ok(text) = std::str::from_utf8(data) {
        let masked = masker().mask_text(text);
        assert!(
            !masker().contains_secret(&masked),
            "mask_text left a secret in {masked:?} (from {text:?})"
        );
        let _ = masker().mask_query(text);
    }
});
