//! A Redis Cluster of our own: three `redis-server --cluster-enabled yes` on free loopback ports
//! (each with its own cluster bus port and config file in a temporary directory), joined with
//! `redis-cli --cluster create`, stopped and removed on drop.

use std::process::Command;
use std::time::Duration;

use super::{Options, RedisServer, TempDir, TlsOptions, free_port, run_bounded, wait_for};

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    // Dropped after the nodes (fields drop in order): the servers stop before their files go.
    _dir: TempDir,
}

impl RedisCluster {
    /// Three primaries, no replicas, every slot assigned, `cluster_state:ok` on every node.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// [`start`](Self::start), each node also on a TLS port with `tls` (`tls-cluster yes`: the
    /// cluster bus is TLS too, and TLS clients are told the nodes' TLS ports).
    pub fn start_with(tls: Option<TlsOptions>) -> Self {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let conf = dir.path(&format!("nodes-{i}.conf"));
            // The cluster bus always asks for a client certificate: the nodes present the
            // `client` certificate of the same [`super::Pki`] (a client-auth one) to each other.
            let tls_cluster = tls.as_ref().map(|t| {
                let file = |f: &str| t.cert.with_file_name(f).display().to_string();
                [
                    "--tls-cluster".into(),
                    "yes".into(),
                    "--tls-client-cert-file".into(),
                    file("client.crt"),
                    "--tls-client-key-file".into(),
                    file("client.key"),
                ]
            });
            nodes.push(RedisServer::start_with(Options {
                tls: tls.clone(),
                extra_args: vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    conf.display().to_string(),
                    "--cluster-port".into(),
                    free_port().to_string(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                    "--dir".into(),
                    dir.0.display().to_string(),
                ]
                .into_iter()
                .chain(tls_cluster.into_iter().flatten())
                .collect(),
                ..Options::default()
            }));
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        run_bounded(
            &mut create,
            "redis-cli --cluster create",
            Duration::from_secs(30),
        );
        for node in &nodes {
            wait_for(
                &format!("cluster_state:ok on port {}", node.port),
                Duration::from_secs(20),
                || {
                    let info = node.cli(&["cluster", "info"]);
                    if info.contains("cluster_state:ok") {
                        Ok(())
                    } else {
                        Err(info)
                    }
                },
            );
        }
        RedisCluster { nodes, _dir: dir }
    }

    /// The first node's URL (the seed).
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The first node's TLS URL (started with TLS).
    pub fn tls_url(&self) -> String {
        self.nodes[0].tls_url()
    }

    /// The keys each node holds, node by node.
    pub fn keys_per_node(&self) -> Vec<Vec<String>> {
        self.nodes
            .iter()
            .map(|n| {
                let mut keys: Vec<String> = n
                    .cli(&["--scan"])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                keys.sort();
                keys
            })
            .collect()
    }

    /// `evalsha` + `eval` calls summed over the nodes.
    pub fn script_calls(&self) -> u64 {
        self.nodes.iter().map(RedisServer::script_calls).sum()
    }
}
