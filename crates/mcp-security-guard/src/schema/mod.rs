//! Argument validation (feature `schema`): each tool's `inputSchema`, learned from the
//! `tools/list` answers the layer sees (per server, not per caller), compiled once (JSON Schema
//! draft 2020-12 unless the schema names another), and checked against the `arguments` of
//! every `tools/call` before the server sees it.
//!
//! - A call whose arguments fail is answered by the layer, the way the 2025-11-25
//!   specification (SEP-1303) and rmcp answer input errors: HTTP 200 and a result with
//!   `isError: true` whose text names the failing JSON pointer and keyword — not a JSON-RPC
//!   protocol error. The response carries a [`Rejection`](mcp_security_core::Rejection)
//!   (`invalid_tool_arguments`, the failure as its detail) for the audit record.
//! - A tool the layer has not seen listed passes to the server (it answers "unknown tool"), as
//!   does a batch (MCP 2025-03-26 only).
//! - Bounded: at most [`MAX_TOOLS`] schemas of at most [`MAX_SCHEMA_BYTES`] each; a schema
//!   over the size, one that does not compile, or one with a `$ref` to anything outside itself
//!   (never fetched: no network or file access is compiled in) is not checked.
//! - The server's list is what counts: a later `tools/list` replaces a tool's schema (compiled
//!   again only when its text changed).
//! - `Mcp-Param-*` headers (SEP-2243): on a request that carries `Mcp-Method` (a client sending
//!   the standard headers), each property the schema annotates with `x-mcp-header` (reached
//!   through `properties` alone) must be mirrored by its `Mcp-Param-<name>` header, decoded from
//!   `=?base64?…?=` when so encoded, as rmcp checks it: a header for an absent or null
//!   argument, a missing header for a present one, a different value or a repeated header is a
//!   400 with JSON-RPC `-32020` naming the header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The most tool schemas kept.
pub const MAX_TOOLS: usize = 1024;

/// The largest `inputSchema` compiled (its JSON text).
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;

/// `x-mcp-header` annotations: each property's path and its header's name suffix.
type ParamHeaders = Arc<[(Vec<String>, String)]>;

struct Compiled {
    text: Box<str>,
    validator: Option<Arc<jsonschema::Validator>>,
    params: ParamHeaders,
}

/// Every `x-mcp-header` string on a `properties` chain from the root.
fn annotations(schema: &Value) -> Vec<(Vec<String>, String)> {
    fn walk(props: Option<&Value>, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
        let Some(Value::Object(props)) = props else {
            return;
        };
        for (name, schema) in props {
            path.push(name.clone());
            if let Some(Value::String(h)) = schema.get("x-mcp-header")
                && !h.is_empty()
            {
                out.push((path.clone(), h.clone()));
            }
            // Bounded by serde_json's nesting limit on the schema.
            walk(schema.get("properties"), path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema.get("properties"), &mut Vec::new(), &mut out);
    out
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

fn compile(text: &str) -> (Option<Arc<jsonschema::Validator>>, ParamHeaders) {
    if text.len() > MAX_SCHEMA_BYTES {
        return (None, Arc::from([]));
    }
    let Ok(schema) = serde_json::from_str::<Value>(text) else {
        return (None, Arc::from([]));
    };
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .ok()
        .map(Arc::new);
    (validator, annotations(&schema).into())
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
            let (validator, params) = compile(text);
            let mut tools = self.tools.lock().unwrap_or_else(PoisonError::into_inner);
            if tools.len() < MAX_TOOLS || tools.contains_key(name.as_str()) {
                tools.insert(
                    name.into_boxed_str(),
                    Compiled {
                        text: text.into(),
                        validator,
                        params,
                    },
                );
            }
        }
    }

    fn validator(&self, tool: &str) -> Option<Arc<jsonschema::Validator>> {
        let tools = self.tools.lock().unwrap_or_else(PoisonError::into_inner);
        tools.get(tool).and_then(|c| c.validator.clone())
    }

    /// Check the `Mcp-Param-*` headers of a `tools/call` of `tool` against its arguments:
    /// `Err(reason)` naming the header.
    pub(crate) fn check_params(
        &self,
        tool: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let params = {
            let tools = self.tools.lock().unwrap_or_else(PoisonError::into_inner);
            match tools.get(tool) {
                Some(c) if !c.params.is_empty() => Arc::clone(&c.params),
                _ => return Ok(()),
            }
        };
        let arguments = arguments(body).unwrap_or(Value::Null);
        for (path, header) in params.iter() {
            let full = format!("Mcp-Param-{header}");
            let mut values = headers.get_all(full.as_str()).iter();
            let value = values.next();
            if values.next().is_some() {
                return Err(format!("{full} header sent more than once"));
            }
            let arg = path
                .iter()
                .try_fold(&arguments, |v, k| v.get(k))
                .filter(|v| !v.is_null());
            let expected = arg.and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            let prop = path.join(".");
            match (value, expected) {
                (None, None) => {}
                (Some(_), None) => {
                    return Err(format!(
                        "unexpected {full} header for absent or null `{prop}`"
                    ));
                }
                (None, Some(_)) => return Err(format!("missing {full} header for `{prop}`")),
                (Some(raw), Some(expected)) => {
                    let raw = raw
                        .to_str()
                        .map_err(|_| format!("{full} header is not visible ASCII"))?;
                    match mcp_security_core::mcp_headers::value_matches(raw, &expected) {
                        Ok(true) => {}
                        Ok(false) => {
                            return Err(format!("{full} header does not match `{prop}`"));
                        }
                        Err(_) => return Err(format!("{full} header is not valid Base64")),
                    }
                }
            }
        }
        Ok(())
    }

    /// Check a `tools/call` body's `params.arguments` against `tool`'s schema: `Err(text)`
    /// naming the JSON pointer and keyword of the first failure; `Ok` when valid or unknown.
    pub(crate) fn check(&self, tool: &str, body: &[u8]) -> Result<(), String> {
        let Some(validator) = self.validator(tool) else {
            return Ok(());
        };
        // McpInspectLayer already refused a body that is not JSON.
        let Some(arguments) = arguments(body) else {
            return Ok(());
        };
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

/// `params.arguments` of a single message body (`{}` when absent); `None` when not JSON.
fn arguments(body: &[u8]) -> Option<Value> {
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
    let call = serde_json::from_slice::<Call>(body).ok()?;
    Some(
        call.params
            .and_then(|p| p.arguments)
            .unwrap_or_else(|| Value::Object(Default::default())),
    )
}

#[cfg(test)]
mod tests;
