//! A Redis Sentinel of our own (`redis-server <conf> --sentinel`) on a free loopback port,
//! watching one primary with short timeouts so a failover takes a second or two; stopped and
//! its config directory removed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{TempDir, free_port, wait_for};

pub const MASTER: &str = "mcp-primary";

pub struct Sentinel {
    pub port: u16,
    child: Option<Child>,
    _dir: TempDir,
}

impl Sentinel {
    /// A sentinel monitoring the primary on `primary_port` as [`MASTER`] (quorum 1, down after
    /// 500 ms, failover timeout 2 s).
    pub fn start(primary_port: u16) -> Self {
        let dir = TempDir::new("sentinel");
        let port = free_port();
        let conf = dir.path("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 500\n\
                 sentinel failover-timeout {MASTER} 2000\n\
                 sentinel parallel-syncs {MASTER} 1\n",
                dir = dir.0.display()
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server --sentinel ({e})"));
        let sentinel = Sentinel {
            port,
            child: Some(child),
            _dir: dir,
        };
        wait_for(
            &format!("the sentinel on port {port} to answer PING"),
            Duration::from_secs(10),
            || {
                let pong = sentinel.cli(&["ping"]);
                if pong.trim() == "PONG" {
                    Ok(())
                } else {
                    Err(pong)
                }
            },
        );
        sentinel
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e})"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The port of the primary the sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        self.cli(&["sentinel", "get-master-addr-by-name", MASTER])
            .lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
    }

    /// The address to give the store: `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
