use super::*;

fn kinds(text: &str) -> Vec<SecretKind> {
    SecretScanner::default()
        .find(text)
        .into_iter()
        .map(|m| m.kind)
        .collect()
}

fn redact(text: &str) -> String {
    SecretScanner::default().redact(text, REDACTED).into_owned()
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";

#[test]
fn each_well_known_format_is_found_and_redacted_alone() {
    let cases = [
        ("AKIAIOSFODNN7EXAMPLE", SecretKind::AwsAccessKeyId),
        ("ASIAY34FZKBOKMUTVV7A", SecretKind::AwsAccessKeyId),
        (
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            SecretKind::GitHubToken,
        ),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            SecretKind::GitHubToken,
        ),
        ("glpat-abcdefghij0123456789", SecretKind::GitLabToken),
        ("xoxb-123456789012-abcdefABCDEF", SecretKind::SlackToken),
        (
            "hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXX",
            SecretKind::SlackToken,
        ),
        (JWT, SecretKind::Jwt),
        ("mcp-sk-AbCdEf012345", SecretKind::ApiKey),
        ("MCP-SK-AbCdEf012345", SecretKind::ApiKey),
    ];
    for (secret, kind) in cases {
        let text = format!("before {secret} after");
        assert_eq!(kinds(&text), [kind], "{secret}");
        assert_eq!(redact(&text), "before [redacted] after", "{secret}");
    }
}

#[test]
fn pem_private_keys_span_lines_and_missing_ends() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234\nabcd==\n-----END RSA PRIVATE KEY-----";
    let text = format!("key:\n{pem}\ndone");
    assert_eq!(kinds(&text), [SecretKind::PrivateKey]);
    assert_eq!(redact(&text), "key:\n[redacted]\ndone");
    let open = "x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA";
    assert_eq!(redact(open), "x [redacted]");
    // Public material is not a secret.
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    assert!(kinds(cert).is_empty());
    let public = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----";
    assert!(kinds(public).is_empty());
}

#[test]
fn assignments_need_a_secret_name_and_a_random_value() {
    assert_eq!(redact("password=Tr0ub4dor3xQ"), "password=[redacted]");
    assert_eq!(
        redact(r#"{"db_password": "s3cr3tV4lue!"}"#),
        r#"{"db_password": "[redacted]"}"#
    );
    assert_eq!(
        redact("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY rest"),
        "AWS_SECRET_ACCESS_KEY=[redacted] rest"
    );
    assert_eq!(redact("secret := 9f8e7d6c5b4a"), "secret := [redacted]");
    for plain in [
        "password=hunter22",
        "password: required",
        "the password is long and secret",
        "password=${DB_PASSWORD}",
        "password=[redacted]",
        "nextPageToken=CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA5",
        "username=alice1234567",
    ] {
        assert!(kinds(plain).is_empty(), "{plain}");
    }
}

#[test]
fn ordinary_text_and_identifiers_are_not_secrets() {
    for plain in [
        "550e8400-e29b-41d4-a716-446655440000",
        "request 123e4567-e89b-12d3-a456-426614174000 took 12 ms",
        "The weather in Paris is 18°C and sunny. Ticket #4521 closed.",
        "AKIA is a prefix; AKIAIOSFODNN7EXAMPLEX is too long",
        "ghp_short glpat-short xoxb-1 eyJhbGc.x",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "/files/report.v2.pdf example.com.au mcp-sk-",
        "",
    ] {
        assert!(kinds(plain).is_empty(), "{plain}");
        assert!(matches!(
            SecretScanner::default().redact(plain, REDACTED),
            Cow::Borrowed(_)
        ));
    }
}

#[test]
fn several_secrets_and_configured_prefixes() {
    let s = SecretScanner::with_key_prefixes(["iqmcp-sk-", " "]);
    assert_eq!(s.key_prefixes().collect::<Vec<_>>(), ["iqmcp-sk-"]);
    let text = format!("a IQMCP-SK-abcdefgh b {JWT} c AKIAIOSFODNN7EXAMPLE");
    assert_eq!(s.redact(&text, "#"), "a # b # c #");
    assert!(s.contains(&text));
    assert!(!s.contains("mcp-sk-only-default-prefix-x"));
    // The key extends back to its token run, as audit masking does.
    assert_eq!(
        SecretScanner::default().redact("k=x.mcp-sk-abcdefgh!", "#"),
        "k=#!"
    );
}

#[test]
fn shapes_shared_with_masking() {
    assert!(has_jwt_shape(&format!("Bearer {JWT}")));
    assert!(!has_jwt_shape("eyJhbGc.eyJzdWI"));
    assert!(has_prefixed_key("x-mcp-sk-abcd", "mcp-sk-"));
    assert!(!has_prefixed_key("x-mcp-sk-abc", "mcp-sk-"));
    assert!(!has_prefixed_key("anything", ""));
    assert!(is_secret_name("client_secret"));
    assert!(is_secret_name("X-Api-Key"));
    assert!(!is_secret_name("page_token"));
    assert!(!is_secret_name("username"));
    assert_eq!(SecretKind::AwsAccessKeyId.to_string(), "aws_access_key_id");
}

#[test]
fn no_panic_and_linear_on_hostile_repetitions() {
    let s = SecretScanner::default();
    for unit in [
        "eyJ-",
        "eyJ.",
        "eyJa.b.",
        "mcp-sk-",
        "password=",
        "-----BEGIN PRIVATE KEY-----",
        "ghp_",
        "é",
        "A",
    ] {
        let text = unit.repeat(20_000);
        let _ = s.find(&text);
        let _ = s.redact(&text, REDACTED);
    }
}
