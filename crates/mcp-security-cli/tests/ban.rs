//! `mcp-security ban` against a real redis-server (started and stopped here), with the servers'
//! own `MCP_RATE_LIMIT_REDIS_*` settings.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-security");

struct Redis {
    port: u16,
    child: Child,
}

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests need a real redis-server (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { port, child }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("MCP_RATE_LIMIT_REDIS_URL")
        .env_remove("MCP_RATE_LIMIT_REDIS_URL_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn add_list_and_remove_a_shared_ban() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}/", redis.port);
    let env = [
        ("MCP_RATE_LIMIT_REDIS_URL", url.as_str()),
        ("MCP_RATE_LIMIT_REDIS_PREFIX", "cli:"),
    ];
    let (code, out, err) = run(&["ban", "list"], &env);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));

    let (code, out, err) = run(&["ban", "add", "203.0.113.9", "--duration", "10m"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("banned 203.0.113.9 until "), "{out}");

    let (code, out, _) = run(&["ban", "list"], &env);
    assert_eq!(code, 0);
    let fields: Vec<&str> = out.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 3, "{out}");
    assert_eq!(fields[0], "203.0.113.9");
    assert!(fields[1].ends_with('Z'), "{out}");
    let left: u64 = fields[2].parse().unwrap();
    assert!((590..=600).contains(&left), "{left}");

    let (code, out, _) = run(&["ban", "remove", "203.0.113.9"], &env);
    assert_eq!((code, out.as_str()), (0, "unbanned 203.0.113.9\n"));
    let (code, out, _) = run(&["ban", "remove", "203.0.113.9"], &env);
    assert_eq!((code, out.as_str()), (1, "203.0.113.9 was not banned\n"));
    let (code, out, _) = run(&["ban", "list"], &env);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn usage_and_configuration_errors() {
    let (code, _, err) = run(&["ban", "list"], &[]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "mcp-security: no shared ban list: MCP_RATE_LIMIT_REDIS_URL is not set\n"
    );
    let env = [("MCP_RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:1/")];
    let (code, _, err) = run(&["ban", "remove", "not-an-ip"], &env);
    assert_eq!(code, 2);
    assert_eq!(err, "mcp-security: \"not-an-ip\" is not an IP address\n");
    let (code, _, err) = run(&["ban", "remove", "192.0.2.1"], &env);
    assert_eq!(code, 2);
    assert!(err.contains("redis://127.0.0.1:1/"), "{err}");
    let (code, _, err) = run(&["ban", "add", "192.0.2.1", "--duration", "soon"], &env);
    assert_eq!(code, 2);
    assert!(err.contains("--duration"), "{err}");
    let (code, _, err) = run(&["ban", "drop"], &env);
    assert_eq!(code, 2);
    assert!(err.contains("usage: mcp-security ban"), "{err}");
}
