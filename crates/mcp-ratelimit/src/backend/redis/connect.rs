//! How a [`RedisStore`](super::RedisStore) reaches Redis: the URL, TLS (`rediss://`, rustls on
//! ring), ACL credentials, and the masked form of the URL that summaries, errors and logs show.

use std::path::Path;
use std::time::Duration;

use ::redis::{Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError};

use super::link::{Conn, Target};
use super::topology::{self, Mode};
use mcp_security_core::config::{ConfigError, Secret};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The largest certificate or key file read (a CA bundle of every public root is ~250 KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// What [`client`] needs from the builder.
pub(super) struct Settings<'a> {
    pub(super) url: &'a Secret,
    pub(super) username: Option<&'a str>,
    pub(super) password: Option<&'a Secret>,
    pub(super) ca_file: Option<&'a Path>,
    pub(super) client_cert_file: Option<&'a Path>,
    pub(super) client_key_file: Option<&'a Path>,
    pub(super) mode: &'a Mode,
}

/// Where `settings` point (one server, a cluster, a Sentinel-named primary) and the URL to show
/// for it (password masked).
///
/// Nothing connects here. With TLS, rustls's ring provider is installed as the process default
/// unless one is installed already, so the first connection never looks for one at run time.
pub(super) fn client(settings: &Settings<'_>) -> Result<(Target, String), ConfigError> {
    let url = settings.url.expose().trim();
    let info = url.into_connection_info().map_err(|e| {
        ConfigError::new(
            "redis.url",
            format!(
                "not a usable Redis URL ({}); expected redis://, rediss:// or unix://",
                kind_name(&e)
            ),
        )
    })?;
    let mut redis = info.redis_settings().clone();
    if let Some(user) = settings.username {
        if user.is_empty() || user.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConfigError::new(
                "redis.username",
                "must be a non-empty ACL user name without spaces or control characters",
            ));
        }
        redis = redis.set_username(user);
    }
    if let Some(password) = settings.password {
        if password.expose().is_empty() {
            return Err(ConfigError::new("redis.password", "must not be empty"));
        }
        redis = redis.set_password(password.expose());
    }
    let info = info.set_redis_settings(redis);
    let display = display_url(&info);
    let tls = match info.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => {
            if *insecure {
                return Err(ConfigError::new(
                    "redis.url",
                    "#insecure (no certificate check) is refused: give the CA of the server's \
                     certificate in the CA file setting instead",
                ));
            }
            true
        }
        _ => false,
    };
    let client_tls = match (settings.client_cert_file, settings.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(::redis::ClientTlsConfig {
            client_cert: read_certificates("redis.client_cert_file", cert)?,
            client_key: read_key("redis.client_key_file", key)?,
        }),
        (Some(_), None) => {
            return Err(ConfigError::new(
                "redis.client_key_file",
                "a client certificate needs its private key",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "redis.client_cert_file",
                "a client key needs its certificate",
            ));
        }
    };
    let root_cert = match settings.ca_file {
        Some(path) => Some(read_certificates("redis.ca_file", path)?),
        None => None,
    };
    if !tls {
        let setting = if root_cert.is_some() {
            Some("redis.ca_file")
        } else if client_tls.is_some() {
            Some("redis.client_cert_file")
        } else {
            None
        };
        if let Some(setting) = setting {
            return Err(ConfigError::new(
                setting,
                "TLS settings need a rediss:// URL (this one is plain text)",
            ));
        }
    }
    let certificates = tls.then(|| {
        install_crypto_provider();
        ::redis::TlsCertificates {
            client_tls,
            root_cert,
        }
    });
    match settings.mode {
        Mode::Single => {
            let client = match certificates {
                None => Client::open(info).map_err(|e| {
                    ConfigError::new(
                        "redis.url",
                        format!("not a usable Redis URL ({})", kind_name(&e)),
                    )
                })?,
                Some(certificates) => Client::build_with_tls(info, certificates).map_err(|e| {
                    ConfigError::new(
                        "redis.url",
                        format!("the TLS settings are not usable ({})", kind_name(&e)),
                    )
                })?,
            };
            Ok((Target::Single(client), display))
        }
        Mode::Cluster { nodes } => topology::cluster(&info, nodes, certificates, display),
        Mode::Sentinel { nodes, master } => topology::sentinel(&info, nodes, master, certificates),
    }
}

/// Make rustls's ring provider the process default unless a provider is installed already (an
/// application's own choice wins). Without this, a build whose dependency graph enables two
/// rustls providers (or none by default) would panic at the first TLS connection.
pub(super) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may install one in between: either is a provider, so ignore it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// `redis[s]://[user[:***]@]host:port/db` or `unix://path`: the password is never shown.
pub(super) fn display_url(info: &ConnectionInfo) -> String {
    let r = info.redis_settings();
    let auth = auth_part(r);
    let host = |h: &str| {
        if h.contains(':') {
            format!("[{h}]")
        } else {
            h.escape_debug().to_string()
        }
    };
    match info.addr() {
        ConnectionAddr::Tcp(h, port) => format!("redis://{auth}{}:{port}/{}", host(h), r.db()),
        ConnectionAddr::TcpTls { host: h, port, .. } => {
            format!("rediss://{auth}{}:{port}/{}", host(h), r.db())
        }
        ConnectionAddr::Unix(path) => format!("unix://{auth}{}", path.display()),
        _ => "redis (an address of another kind)".to_owned(),
    }
}

/// `user:***@`, `user@`, `:***@` or nothing: the password is never shown.
pub(super) fn auth_part(r: &::redis::RedisConnectionInfo) -> String {
    let user = r.username().map(|u| u.escape_debug().to_string());
    match (user, r.password().is_some()) {
        (Some(u), true) => format!("{u}:***@"),
        (Some(u), false) => format!("{u}@"),
        (None, true) => ":***@".to_owned(),
        (None, false) => String::new(),
    }
}

/// A Redis error as one clear line for logs and [`StoreUnavailable`](super::StoreUnavailable):
/// what kind of failure, in words, then the client's own message (which never contains the
/// password).
pub(super) fn explain(e: &RedisError) -> String {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if refused_credentials(e) {
        format!(
            "Redis refused the credentials (check the ACL user and password, \
             RATE_LIMIT_REDIS_USERNAME / RATE_LIMIT_REDIS_PASSWORD or the URL's): {text}"
        )
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        format!(
            "the TLS connection failed (the server's certificate must verify against the CA \
             file or the bundled roots, for the URL's host name): {text}"
        )
    } else {
        text
    }
}

/// Whether Redis refused the credentials.
pub(super) fn refused_credentials(e: &RedisError) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    e.kind() == ErrorKind::AuthenticationFailed
        || text.contains("wrongpass")
        || text.contains("noauth")
        || text.contains("invalid password")
}

/// Load the decision script (connecting first), within `budget`; `None` when the budget ran
/// out.
pub(super) async fn load_script(
    mut conn: Conn,
    script: &::redis::Script,
    budget: Duration,
) -> Result<(), Option<RedisError>> {
    match tokio::time::timeout(budget, script.load_async(&mut conn)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

/// A [`load_script`] failure in words.
pub(super) fn reason(e: Option<&RedisError>, budget: Duration) -> String {
    match e {
        Some(e) => explain(e),
        None => format!("no answer within {budget:?}"),
    }
}

pub(super) fn kind_name(e: &RedisError) -> String {
    format!("{:?}", e.kind())
}

fn read_file(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| {
        ConfigError::new(setting, format!("cannot read the file ({e})")).with_value(shown.clone())
    })?;
    if !meta.is_file() || meta.len() > MAX_PEM_BYTES {
        return Err(
            ConfigError::new(setting, "must name a PEM file of at most 1 MiB").with_value(shown),
        );
    }
    std::fs::read(path).map_err(|e| {
        ConfigError::new(setting, format!("cannot read the file ({e})")).with_value(shown)
    })
}

/// A PEM file holding at least one certificate, every one of them well-formed.
fn read_certificates(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let pem = read_file(setting, path)?;
    let mut n = 0usize;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        if cert.is_err() {
            return Err(
                ConfigError::new(setting, "holds a malformed PEM certificate")
                    .with_value(path.display().to_string()),
            );
        }
        n += 1;
    }
    if n == 0 {
        return Err(ConfigError::new(
            setting,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        )
        .with_value(path.display().to_string()));
    }
    Ok(pem)
}

/// A PEM file holding a private key (PKCS#8, PKCS#1 or SEC1). The error never shows the key.
fn read_key(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let pem = read_file(setting, path)?;
    if PrivateKeyDer::from_pem_slice(&pem).is_err() {
        return Err(
            ConfigError::new(setting, "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")
                .with_value(path.display().to_string()),
        );
    }
    Ok(pem)
}
