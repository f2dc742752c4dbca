//! A redis-server of our own on a free loopback port, stopped on drop.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mcp_core::client_addr::PeerAddr;
use mcp_core::{GuardBody, Principal, PrincipalKind};
use mcp_ratelimit::RateLimitLayer;
use mcp_ratelimit::redis::RedisBackend;
use tower::{Service, ServiceBuilder, ServiceExt};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl RedisServer {
    pub fn start() -> Self {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.restart();
        server
    }

    /// (Re)start on the same port.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
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

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `redis-cli -p <port> <args>`'s stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
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
