//! Argument validation (feature `schema`): each tool's `inputSchema`, learned from the
//! `tools/list` answers the layer sees (per server, not per caller), compiled once (JSON Schema
//! draft 2020-12 unless the schema names another), and checked against the `arguments` of
//! every `tools/call` before the server sees it.
//!
//! - A call whose arguments fail is answered by the layer, the way the 2025-11-25
//!   specification (SEP-1303) and rmcp answer input errors: HTTP 200 and a result with
//!   `isError: true` whose text names the failing JSON pointer and keyword — not a JSON-RPC
//!   protocol error. The response carries a [`Rejection`](mcp_core::Rejection)
//!   (`invalid_tool_arguments`, the failure as its detail) for the audit record.
//! - A tool the layer has not seen listed passes to the server (it answers "unknown tool"), as
//!   does a batch (MCP 2025-03-26 only).
//! - Bounded: at most [`MAX_TOOLS`] schemas of at most [`MAX_SCHEMA_BYTES`] each; a schema
//!   over the size, one that does not compile, or one with a `$ref` to anything outside itself
//!   (never fetched: no network or file access is compiled in) is not checked.
//! - The server's list is what counts: a later `tools/list` replaces a tool's schema (compiled
//!   again only when its text changed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The most tool schemas kept.
pub const MAX_TOOLS: usize = 1024;

/// The largest `inputSchema` compiled (its JSON text).
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

struct Compiled {
    text: Box<str>,
    validator: Option<Arc<jsonschema::Validator>>,
}

/// The schemas learned so far, shared by every clone of the layer.
#[derive(Default)]
pub(crate) struct SchemaStore {
    tools: Mutex<HashMap<Box<str>, Compiled>>,
}

impl std::fmt::Debug for SchemaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaStore")
            .field("tools", &self.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct ListResult<'a> {
    #[serde(borrow, default)]
    tools: Vec<ListedTool<'a>>,
}

#[derive(Deserialize)]
struct ListedTool<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default, rename = "inputSchema")]
    input_schema: Option<&'a RawValue>,
}

fn compile(text: &str) -> Option<Arc<jsonschema::Validator>> {
    if text.len() > MAX_SCHEMA_BYTES {
        return None;
    }
    let schema: Value = serde_json::from_str(text).ok()?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .ok()
        .map(Arc::new)
}

impl SchemaStore {
    /// How many tools have a schema entry.
    pub(crate) fn len(&self) -> usize {
        self.tools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Learn the schemas of a `tools/list` result (raw JSON of `result`).
    pub(crate) fn learn(&self, result: &str) {
        let Ok(list) = serde_json::from_str::<ListResult<'_>>(result) else {
            return;
        };
        for tool in list.tools {
            let (Some(name), Some(schema)) = (tool.name, tool.input_schema) else {
                continue;
            };
            let text = schema.get();
            let known = {
                let tools = self.tools.lock().unwrap_or_else(PoisonError::into_inner);
                match tools.get(name.as_str()) {
                    Some(c) => &*c.text == text,
                    None => tools.len() >= MAX_TOOLS,
                }
            };
            if known {
                continue;
            }
            // Compiled outside the lock.
            let validator = compile(text);
            let mut tools = self.tools.lock().unwrap_or_else(PoisonError::into_inner);
            if tools.len() < MAX_TOOLS || tools.contains_key(name.as_str()) {
                tools.insert(
                    name.into_boxed_str(),
                    Compiled {
                        text: text.into(),
                        validator,
                    },
                );
            }
        }
    }

    fn validator(&self, tool: &str) -> Option<Arc<jsonschema::Validator>> {
        let tools = self.tools.lock().unwrap_or_else(PoisonError::into_inner);
        tools.get(tool).and_then(|c| c.validator.clone())
    }

    /// Check a `tools/call` body's `params.arguments` against `tool`'s schema: `Err(text)`
    /// naming the JSON pointer and keyword of the first failure; `Ok` when valid or unknown.
    pub(crate) fn check(&self, tool: &str, body: &[u8]) -> Result<(), String> {
        let Some(validator) = self.validator(tool) else {
            return Ok(());
        };
        #[derive(Deserialize)]
        struct Call {
            #[serde(default)]
            params: Option<Params>,
        }
        #[derive(Deserialize)]
        struct Params {
            #[serde(default)]
            arguments: Option<Value>,
        }
        // McpInspectLayer already refused a body that is not JSON.
        let Ok(call) = serde_json::from_slice::<Call>(body) else {
            return Ok(());
        };
        let arguments = call
            .params
            .and_then(|p| p.arguments)
            .unwrap_or_else(|| Value::Object(Default::default()));
        match validator.iter_errors(&arguments).next() {
            None => Ok(()),
            Some(e) => {
                let pointer = e.instance_path().to_string();
                let at = if pointer.is_empty() { "/" } else { &pointer };
                Err(format!(
                    "Invalid arguments for tool {tool}: {at}: {e} (keyword: {})",
                    e.kind().keyword()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;
