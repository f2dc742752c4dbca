//! `mcp-security manifest`: pin a server's tool definitions, and check them against the pin.
//!
//! ```text
//! mcp-security manifest snapshot URL [--token-file PATH] > tools.lock.json
//! mcp-security manifest verify URL --lock tools.lock.json [--token-file PATH]
//! ```
//!
//! Both open an MCP session with the server at `URL` (the MCP endpoint: `initialize` in the
//! 2025-11-25 protocol, `notifications/initialized`, then `tools/list` and `prompts/list`,
//! following `nextCursor`), as a client would, with the credential from `MCP_TOKEN` or
//! `--token-file` (never a command-line argument) as a bearer token. `snapshot` prints the
//! lock file (`mcp_security::guard::manifest::ToolManifest`): per tool and prompt its name,
//! description and the SHA-256 of its schemas. `verify` prints each difference — a new tool, a
//! changed description or schema, a pinned tool no longer listed — and exits 1 when there is
//! one, 0 when the server matches the lock (2 for usage and connection errors): for CI.

use std::process::ExitCode;
use std::time::Duration;

use mcp_security::guard::manifest::ToolManifest;
use serde_json::{Value, json};

use crate::args::Flags;

const USAGE: &str = "usage:
  mcp-security manifest snapshot URL [--token-file PATH]   (or MCP_TOKEN) > tools.lock.json
  mcp-security manifest verify URL --lock FILE [--token-file PATH]";

/// The most pages of one list followed.
const MAX_PAGES: usize = 100;
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Run `manifest` with the arguments after the command name.
pub(crate) fn run(args: &[String]) -> Result<ExitCode, String> {
    let (sub, rest) = match args.split_first() {
        Some((sub, rest)) => (sub.as_str(), rest),
        None => return Err(USAGE.to_owned()),
    };
    let flags = Flags::parse(rest, &[])?;
    let url = match flags.positional() {
        [url] => url.clone(),
        _ => {
            return Err(format!(
                "manifest {sub}: give the MCP endpoint's URL\n{USAGE}"
            ));
        }
    };
    let token = match flags.one("token-file")? {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("--token-file {path}: {e}"))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("MCP_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty()),
    };
    match sub {
        "snapshot" => {
            flags.only(&["token-file"])?;
            let observed = fetch(&url, token.as_deref())?;
            crate::emit(&observed.to_json())?;
            Ok(ExitCode::SUCCESS)
        }
        "verify" => {
            flags.only(&["token-file", "lock"])?;
            let path = flags
                .one("lock")?
                .ok_or_else(|| format!("manifest verify: --lock FILE is required\n{USAGE}"))?;
            let text = std::fs::read_to_string(path).map_err(|e| format!("--lock {path}: {e}"))?;
            let lock = ToolManifest::parse(&text).map_err(|e| format!("--lock {path}: {e}"))?;
            let observed = fetch(&url, token.as_deref())?;
            let drift = lock.diff(&observed);
            if drift.is_empty() {
                crate::emit(&format!(
                    "OK: {} tools and {} prompts match {path}\n",
                    observed.tools.len(),
                    observed.prompts.len()
                ))?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut out = format!("DRIFT: {} differences from {path}\n", drift.len());
            for d in &drift {
                out.push_str(&format!("  {d}\n"));
            }
            crate::emit(&out)?;
            Ok(ExitCode::from(1))
        }
        other => Err(format!("unknown manifest command {other:?}\n{USAGE}")),
    }
}

/// One MCP session: every tools/list and prompts/list page.
fn fetch(url: &str, token: Option<&str>) -> Result<ToolManifest, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let mut session = Session {
            client,
            url: url.to_owned(),
            token: token.map(str::to_owned),
            id: None,
            next_id: 1,
        };
        session
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "mcp-security manifest", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await?;
        session.notify("notifications/initialized").await?;
        let tools = session.pages("tools/list").await?;
        // A server without prompts answers -32601: no prompts.
        let prompts = session.pages("prompts/list").await.unwrap_or_default();
        Ok(ToolManifest::from_lists(&tools, &prompts))
    })
}

struct Session {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    id: Option<String>,
    next_id: u64,
}

impl Session {
    async fn post(&self, body: &Value) -> Result<reqwest::Response, String> {
        let mut req = self
            .client
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = &self.id {
            req = req
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", "2025-11-25");
        }
        let res = req.send().await.map_err(|e| format!("{}: {e}", self.url))?;
        if !res.status().is_success() {
            return Err(format!("{}: HTTP {}", self.url, res.status()));
        }
        Ok(res)
    }

    async fn notify(&mut self, method: &str) -> Result<(), String> {
        self.post(&json!({"jsonrpc": "2.0", "method": method}))
            .await
            .map(drop)
    }

    /// A request's `result`.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let res = self
            .post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        if let Some(session) = res
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.id = Some(session.to_owned());
        }
        let sse = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let bytes = res.bytes().await.map_err(|e| format!("{method}: {e}"))?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(format!(
                "{method}: the answer is over {MAX_ANSWER_BYTES} bytes"
            ));
        }
        let text = String::from_utf8_lossy(&bytes);
        let message = answer(&text, sse, id)
            .ok_or_else(|| format!("{method}: no JSON-RPC answer with id {id}"))?;
        if let Some(error) = message.get("error") {
            return Err(format!("{method}: {error}"));
        }
        message
            .get("result")
            .cloned()
            .ok_or_else(|| format!("{method}: the answer has no result"))
    }

    async fn pages(&mut self, method: &str) -> Result<Vec<Value>, String> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self.request(method, params).await?;
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            pages.push(page);
            if cursor.is_none() {
                return Ok(pages);
            }
        }
        Err(format!("{method}: more than {MAX_PAGES} pages"))
    }
}

/// The JSON-RPC message answering `id` in a JSON body or an SSE stream.
fn answer(text: &str, sse: bool, id: u64) -> Option<Value> {
    let matches = |v: &Value| v.get("id") == Some(&json!(id));
    if !sse {
        return serde_json::from_str::<Value>(text).ok().filter(matches);
    }
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if let Ok(v) = serde_json::from_str::<Value>(&data)
                && matches(&v)
            {
                return Some(v);
            }
            data.clear();
        } else if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    None
}
