//! A redis-server of our own on a free loopback port, stopped on drop; optionally with a TLS
//! port (certificates made by `openssl` at test time, see [`Pki`]) and an ACL user.
#![allow(dead_code)]

mod cluster;
mod pki;
mod sentinel;
#[allow(unused_imports)]
pub use cluster::RedisCluster;
#[allow(unused_imports)]
pub use pki::Pki;
#[allow(unused_imports)]
pub use sentinel::{MASTER, Sentinel};

use std::convert::Infallible;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mcp_ratelimit::RateLimitLayer;
use mcp_ratelimit::redis::RedisBackend;
use mcp_security_core::client_addr::PeerAddr;
use mcp_security_core::{GuardBody, Principal, PrincipalKind};
use tower::{Service, ServiceBuilder, ServiceExt};

pub struct RedisServer {
    pub port: u16,
    /// The TLS port, when started with [`Options::tls`].
    pub tls_port: Option<u16>,
    options: Options,
    child: Option<Child>,
    /// The server's working directory: a replica's full sync writes an RDB file there, which
    /// must not land in the crate's directory.
    dir: TempDir,
}

/// How a [`RedisServer`] runs beyond the plain loopback port.
#[derive(Clone, Default)]
pub struct Options {
    pub tls: Option<TlsOptions>,
    /// An ACL user (name, password) with every permission; the `default` user is turned off,
    /// as on managed services.
    pub acl_user: Option<(String, String)>,
    /// More `redis-server` arguments (cluster mode, `--replicaof`, …).
    pub extra_args: Vec<String>,
}

/// The server's certificate, key and the CA it checks client certificates against.
#[derive(Clone)]
pub struct TlsOptions {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// `tls-auth-clients yes`: a client certificate from `ca` is required (mutual TLS).
    pub auth_clients: bool,
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let mut server = RedisServer {
            port: free_port(),
            tls_port: options.tls.as_ref().map(|_| free_port()),
            options,
            child: None,
            dir: TempDir::new("server"),
        };
        server.restart();
        server
    }

    /// (Re)start on the same port.
    pub fn restart(&mut self) {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend(["--dir".to_owned(), self.dir.0.display().to_string()]);
        if let (Some(tls), Some(port)) = (&self.options.tls, self.tls_port) {
            let path = |p: &PathBuf| p.to_str().expect("UTF-8 path").to_owned();
            args.extend([
                "--tls-port".to_owned(),
                port.to_string(),
                "--tls-cert-file".to_owned(),
                path(&tls.cert),
                "--tls-key-file".to_owned(),
                path(&tls.key),
                "--tls-ca-cert-file".to_owned(),
                path(&tls.ca),
                "--tls-auth-clients".to_owned(),
                if tls.auth_clients { "yes" } else { "no" }.to_owned(),
            ]);
        }
        if let Some((user, password)) = &self.options.acl_user {
            args.extend(
                [
                    "--user",
                    "default",
                    "off",
                    "--user",
                    user,
                    "on",
                    &format!(">{password}"),
                    "~*",
                    "&*",
                    "+@all",
                ]
                .map(str::to_owned),
            );
        }
        args.extend(self.options.extra_args.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need a real Redis — \
                     apt-get install redis-server"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["ping"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer PING on port {}", self.port);
    }

    /// Whether the server process runs (not stopped).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `rediss://127.0.0.1:<tls port>/` (no credentials).
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}/",
            self.tls_port.expect("started with TLS")
        )
    }

    /// `redis-cli -p <port> <args>`'s stdout (on the plain port, as the ACL user if any).
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-p").arg(self.port.to_string());
        if let Some((user, password)) = &self.options.acl_user {
            cmd.args(["--no-auth-warning", "--user", user, "--pass", password]);
        }
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): apt-get install redis-server"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Redis's own time per script call (`usec_per_call` of `evalsha`).
    pub fn usec_per_call(&self) -> String {
        self.cli(&["info", "commandstats"])
            .lines()
            .find(|l| l.starts_with("cmdstat_evalsha:"))
            .and_then(|l| {
                l.split([':', ',', '='])
                    .skip_while(|p| *p != "usec_per_call")
                    .nth(1)
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }

    /// `calls` of `evalsha` + `eval` in `INFO commandstats`.
    pub fn script_calls(&self) -> u64 {
        let info = self.cli(&["info", "commandstats"]);
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split([':', ',', '='])
                    .skip_while(|p| *p != "calls")
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .sum()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub type Svc = tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    Response<GuardBody<Full<Bytes>>>,
    Infallible,
>;

pub fn service(layer: RateLimitLayer<RedisBackend>) -> Svc {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        });
    tower::util::BoxCloneService::new(svc)
}

pub fn request_from(ip: &str) -> Request<Full<Bytes>> {
    let mut req = Request::get("/api").body(Full::default()).expect("request");
    req.extensions_mut().insert(PeerAddr(
        format!("{ip}:40000").parse().expect("socket addr"),
    ));
    req
}

pub fn request_as(principal: &str) -> Request<Full<Bytes>> {
    let mut req = request_from("192.0.2.1");
    req.extensions_mut()
        .insert(Principal::builder(principal, PrincipalKind::ApiKey).build());
    req
}

pub async fn send(svc: &mut Svc, req: Request<Full<Bytes>>) -> Response<GuardBody<Full<Bytes>>> {
    svc.ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("infallible")
}

pub async fn body_json(res: Response<GuardBody<Full<Bytes>>>) -> serde_json::Value {
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes).expect("JSON body")
}

/// A unique, empty temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mcp-ratelimit-{what}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`; panics with `what`
/// and the last observation otherwise.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok(v) => return v,
            Err(seen) => last = seen,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gave up after {limit:?} waiting for {what}; last seen: {last}");
}

/// Runs `cmd` to its end within `limit` (killed and a panic otherwise); its stdout.
pub fn run_bounded(cmd: &mut Command, what: &str, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what} ({e})"));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {limit:?}");
            }
        }
    }
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
