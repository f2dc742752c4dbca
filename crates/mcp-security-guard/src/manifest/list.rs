//! The layer's side of manifest pinning: a `tools/list` answer checked against the lock.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use mcp_security_core::facts::{FactRecorder, ResponseFact};
use mcp_security_core::response::RawObject;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{ManifestMode, ToolManifest};

/// The lock, its mode, and the tools found drifted (refused on call in enforce mode).
#[derive(Debug)]
pub(crate) struct Pinning {
    pub(crate) lock: ToolManifest,
    pub(crate) mode: ManifestMode,
    drifted: Mutex<HashSet<Box<str>>>,
}

impl Pinning {
    pub(crate) fn new(lock: ToolManifest, mode: ManifestMode) -> Self {
        Pinning {
            lock,
            mode,
            drifted: Mutex::default(),
        }
    }

    /// Whether calls to `tool` are refused (enforce mode, seen drifted in the last list).
    pub(crate) fn refuses(&self, tool: &str) -> bool {
        self.mode == ManifestMode::Enforce
            && self
                .drifted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(tool)
    }

    /// Check a `tools/list` answer (`message`, a whole JSON-RPC response): records each
    /// drifted tool and returns how many; in enforce mode also the answer without them.
    ///
    /// # Errors
    /// A message or result that is not a JSON object, or `tools` not an array: fail closed.
    pub(crate) fn check_list(
        &self,
        message: &str,
        recorder: Option<&FactRecorder>,
    ) -> Result<(u64, Option<String>), ()> {
        let msg = RawObject::parse(message).map_err(|_| ())?;
        let Some(result) = msg.get("result") else {
            return Ok((0, None));
        };
        let result = RawObject::parse(result.get()).map_err(|_| ())?;
        let Some(tools) = result.get("tools") else {
            return Ok((0, None));
        };
        let tools: Vec<&RawValue> = serde_json::from_str(tools.get()).map_err(|_| ())?;
        let enforce = self.mode == ManifestMode::Enforce;
        let mut kept: Vec<&str> = Vec::with_capacity(tools.len());
        let mut drifted = 0u64;
        for raw in &tools {
            let tool: Value = serde_json::from_str(raw.get()).map_err(|_| ())?;
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            match self.lock.check_tool(&tool) {
                Some((name, change)) => {
                    drifted += 1;
                    if let Some(r) = recorder {
                        r.record(ResponseFact::ManifestDrift {
                            tool: name.as_str().into(),
                            change: change.as_str(),
                            enforced: enforce,
                        });
                    }
                    self.drifted
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(name.into_boxed_str());
                }
                None => {
                    self.drifted
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(name);
                    kept.push(raw.get());
                }
            }
        }
        if !enforce || drifted == 0 {
            return Ok((drifted, None));
        }
        let list = format!("[{}]", kept.join(","));
        let mut new_result = String::with_capacity(message.len());
        result.write(
            &mut new_result,
            |k| (k == "tools").then(|| list.clone()),
            &[],
        );
        let mut out = String::with_capacity(message.len());
        msg.write(
            &mut out,
            |k| (k == "result").then(|| new_result.clone()),
            &[],
        );
        Ok((drifted, Some(out)))
    }
}
