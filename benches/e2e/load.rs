//! End to end over loopback: the same rmcp streamable-HTTP server with one `echo` tool, served
//! three ways, driven with stateless 2026-07-28 `tools/call`s of ~200 bytes by `wrk`:
//!
//! - **bare**: the rmcp `StreamableHttpService` in an axum `Router`, nothing in front;
//! - **full**: the same behind `mcp_security::SecurityConfig`'s whole stack — API key, audit on
//!   with the chained file sink and its HMAC key, rate limits on (per client and per caller)
//!   with a quota far above the load, CORS/Origin guard, security headers, resource limits;
//! - **peer**: the same behind the stack a user assembles by hand from tower-http and
//!   tower_governor for those controls ([`peer`], committed beside this file).
//!
//! All three are axum servers in this process with `TCP_NODELAY` on (without it each SSE reply
//! stalls ~40 ms on Nagle + delayed ACK), on one tokio runtime; only the one under load is busy.
//! Rounds are interleaved (bare, full, peer; the order rotates each round) after a warm-up run of
//! each, and every ratio is taken within a round, then the median over rounds is printed, so
//! slow drifts of a shared machine hit all three alike.
//!
//! Why `wrk` and not a Rust client in this package: it is the load generator the team's
//! baselines (STACK.md, issue 17) were measured with, so the numbers compare; it is a small C
//! event loop that needs about one core for ~25 k req/s where a tokio + hyper client would need
//! more of the two cores the servers share; and its latency histogram is well known.
//!
//! Run: `bash benches/e2e/run.sh` (installs wrk with apt-get if missing), or
//! `cargo bench -p benches --bench e2e_load -- --secs 5 --rounds 5 --connections 16`.
//! Invoked by the plain criterion step (`cargo bench -p benches -- --measurement-time T`), it
//! runs one brief round of max(T, 2) seconds per server.
//! Environment: `E2E_SECS`, `E2E_ROUNDS`, `E2E_CONNECTIONS` (flags win). `--only full` (or
//! `bare`, `peer`) drives one server, to profile it: `perf record -g -- <bench binary> --only full`.
//!
//! The process exits non-zero when any response is not a 2xx (a misconfigured server would
//! otherwise "win" by answering 401s fast) or when wrk is missing.
mod echo;
mod peer;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use mcp_security::SecurityConfig;
use mcp_security::auth::api_key::{DEFAULT_KEY_PREFIX, generate_key};
use mcp_security::core::config::{Environment, Secret};

const ORIGIN: &str = "https://app.example.com";
/// Far above anything one loopback client can send: the limiters decide, never refuse.
const QUOTA_PER_SECOND: u64 = 10_000_000;
const BURST: u32 = 100_000_000;

/// A ~200-byte stateless `tools/call`.
const BODY: &str = concat!(
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","#,
    r#""arguments":{"text":"hello from the e2e load bench"},"_meta":{"#,
    r#""io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
    r#""io.modelcontextprotocol/clientCapabilities":{}}}}"#
);

struct Options {
    secs: u64,
    rounds: usize,
    connections: usize,
    /// Drive only this server (`--only full`), e.g. under `perf record`.
    only: Option<String>,
}

fn options() -> Options {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mut o = Options {
        secs: env("E2E_SECS", 5),
        rounds: env("E2E_ROUNDS", 3) as usize,
        connections: env("E2E_CONNECTIONS", 16) as usize,
        only: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<f64>().ok());
        if args[i] == "--only" {
            o.only = args.get(i + 1).cloned();
            i += 2;
            continue;
        }
        match (args[i].as_str(), value) {
            ("--secs", Some(v)) => o.secs = v.max(1.0) as u64,
            ("--rounds", Some(v)) => o.rounds = v.max(1.0) as usize,
            ("--connections", Some(v)) => o.connections = v.max(1.0) as usize,
            // The criterion step of CI: one brief round.
            ("--measurement-time", Some(v)) => {
                o.secs = v.ceil().max(2.0) as u64;
                o.rounds = 1;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

/// What one wrk run measured.
#[derive(Clone, Copy, Debug)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
}

fn parse_duration_ms(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> Option<Run> {
    let mut run = Run {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        non_2xx: 0,
    };
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => run.rps = v.parse().ok()?,
            ["50%", v] => run.p50_ms = parse_duration_ms(v)?,
            ["99%", v] => run.p99_ms = parse_duration_ms(v)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => run.non_2xx = n.parse().ok()?,
            [n, "requests", "in", ..] => run.requests = n.parse().ok()?,
            _ => {}
        }
    }
    (!run.rps.is_nan()).then_some(run)
}

fn wrk(addr: SocketAddr, script: &Path, secs: u64, connections: usize) -> Run {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://{addr}/mcp"))
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_wrk(&text) {
        Some(run) if out.status.success() => run,
        _ => panic!(
            "wrk failed: {}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn lua_script(token: &str) -> String {
    format!(
        "wrk.method = \"POST\"\n\
         wrk.body = '{BODY}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Accept\"] = \"application/json, text/event-stream\"\n\
         wrk.headers[\"MCP-Protocol-Version\"] = \"2026-07-28\"\n\
         wrk.headers[\"Mcp-Method\"] = \"tools/call\"\n\
         wrk.headers[\"Mcp-Name\"] = \"echo\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n"
    )
}

/// One request by hand before the load: the server answers the echo with a 200.
fn check(name: &str, addr: SocketAddr, token: &str) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: echo\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1.1 200") && response.contains("hello from the e2e load bench"),
        "{name} did not answer the echo:\n{response}"
    );
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            }),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve");
    });
    addr
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn range(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.2}–{max:.2}")
}

fn main() {
    let o = options();
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!(
            "e2e_load: wrk is not installed (apt-get install -y wrk, or bash benches/e2e/run.sh)"
        );
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("mcp-e2e-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let token = generate_key(DEFAULT_KEY_PREFIX).expect("key");
    // A random HMAC key for the audit chain (the production checks refuse a weak one).
    let audit_key = generate_key(DEFAULT_KEY_PREFIX).expect("audit key");
    let script = dir.join("tools_call.lua");
    std::fs::write(&script, lua_script(&token)).expect("lua script");

    let (servers, security) = rt.block_on(async {
        let bare = serve(Router::new().nest_service("/mcp", echo::service())).await;

        // The full stack, as SecurityConfig builds it for a production deployment on loopback.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let full_addr = listener.local_addr().expect("addr");
        drop(listener);
        let config = SecurityConfig::builder()
            .environment(Environment::Production)
            .bind_addr(full_addr)
            .mcp_path("/mcp")
            .resource_url(format!("http://{full_addr}/mcp"))
            .api_key(Secret::new(&token))
            .cors_origins([ORIGIN])
            .rate_limit_quota(QUOTA_PER_SECOND * 60, Duration::from_secs(60), None)
            .audit_log_file(dir.join("audit.jsonl"), Secret::new(&audit_key))
            .build()
            .expect("config");
        let security = config.layer().expect("the whole stack");
        let app = Router::new()
            .nest_service("/mcp", echo::service())
            .layer(security.clone());
        let listener = tokio::net::TcpListener::bind(full_addr)
            .await
            .expect("rebind");
        tokio::spawn(async move {
            axum::serve(
                listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });

        let peer = serve(peer::stack(
            Router::new().nest_service("/mcp", echo::service()),
            &token,
            ORIGIN,
            QUOTA_PER_SECOND,
            BURST,
        ))
        .await;
        (
            [("bare", bare), ("full", full_addr), ("peer", peer)],
            security,
        )
    });

    for (name, addr) in servers {
        check(name, addr, &token);
    }
    println!(
        "e2e_load: wrk -t1 -c{} over loopback, {} s per run, {} interleaved round(s) after a 1 s \
         warm-up each; load average before: {}",
        o.connections,
        o.secs,
        o.rounds,
        loadavg()
    );
    let driven = |name: &str| o.only.as_deref().is_none_or(|only| only == name);
    for (name, addr) in servers {
        if driven(name) {
            wrk(addr, &script, 1, o.connections);
        }
    }

    let mut runs: Vec<[Option<Run>; 3]> = Vec::new();
    for round in 0..o.rounds {
        let mut this = [None; 3];
        for k in 0..3 {
            let i = (round + k) % 3;
            let (name, addr) = servers[i];
            if !driven(name) {
                continue;
            }
            let run = wrk(addr, &script, o.secs, o.connections);
            println!(
                "  round {}: {name:<4} {:>9.0} req/s  p50 {:>6.3} ms  p99 {:>6.3} ms  ({} requests, {} non-2xx)",
                round + 1,
                run.rps,
                run.p50_ms,
                run.p99_ms,
                run.requests,
                run.non_2xx
            );
            this[i] = Some(run);
        }
        runs.push(this);
    }
    let load_after = loadavg();

    let col = |i: usize, f: fn(&Run) -> f64| -> Vec<f64> {
        runs.iter().filter_map(|r| r[i].as_ref().map(f)).collect()
    };
    println!("\n  server   req/s (median)   p50 ms   p99 ms");
    for (i, (name, _)) in servers.iter().enumerate() {
        println!(
            "  {name:<6} {:>12.0}   {:>9.3} {:>8.3}",
            median(col(i, |r| r.rps)),
            median(col(i, |r| r.p50_ms)),
            median(col(i, |r| r.p99_ms)),
        );
    }
    let ratio = |a: usize, b: usize| -> Vec<f64> {
        runs.iter()
            .filter_map(|r| Some(r[a]?.rps / r[b]?.rps))
            .collect()
    };
    for (label, a, b) in [
        ("full/bare", 1, 0),
        ("full/peer", 1, 2),
        ("peer/bare", 2, 0),
    ] {
        let v = ratio(a, b);
        println!(
            "  {label}: {:.3} (median of {} rounds; range {})",
            median(v.clone()),
            v.len(),
            range(&v)
        );
    }
    println!("  load average after: {load_after}");

    rt.block_on(security.audit().close()).expect("audit close");
    // The live file and the rotated ones.
    let audited: usize = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("audit"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .map(|s| s.lines().count())
                .sum()
        })
        .unwrap_or(0);
    let full_requests: u64 = runs.iter().filter_map(|r| r[1].map(|r| r.requests)).sum();
    println!(
        "  audit trail: {audited} lines written by the full stack ({full_requests} requests in its timed runs, plus warm-up and checks)"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let failed: u64 = runs
        .iter()
        .flat_map(|r| r.iter().flatten())
        .map(|r| r.non_2xx)
        .sum();
    if failed > 0 {
        eprintln!("e2e_load: {failed} responses were not 2xx");
        std::process::exit(1);
    }
}
