//! The plain tool fixtures: `tools/list`, and the tools that answer in one response.

use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer,
    model::{
        AudioContent, CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities,
        ContentBlock, CreateMessageRequestParams, ElicitRequest, ElicitRequestParams,
        ElicitationSchema, InputRequest, InputRequests, InputRequiredResult, JsonObject,
        LoggingLevel, ProgressNotificationParam, PromptListChangedNotification, ResourceContents,
        SamplingMessage, ServerNotification, Tool, ToolListChangedNotification,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::mrtr::MRTR_TOOLS;
use crate::state::ConformanceServer;
use crate::tasks::{TASK_TOOLS, task_tool_schema};
/// A 1×1 red PNG, base64.
pub(crate) const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A WAV header with no samples (8 kHz, mono, 8-bit), base64.
const WAV_EMPTY: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=";

/// A successful tool result with one text block.
pub(crate) fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

/// A JSON object literal as rmcp's `JsonObject` (anything else is an empty object).
pub(crate) fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// An input schema with the given string properties, all required.
fn string_args(args: &[(&str, &str)]) -> JsonObject {
    let properties: serde_json::Map<String, Value> = args
        .iter()
        .map(|&(name, description)| {
            (
                name.to_owned(),
                json!({ "type": "string", "description": description }),
            )
        })
        .collect();
    let required: Vec<&str> = args.iter().map(|&(name, _)| name).collect();
    object(json!({ "type": "object", "properties": properties, "required": required }))
}

/// Every tool the server scenarios call, as `tools/list` shows them.
pub(crate) fn tools() -> Vec<Tool> {
    let no_args: &[(&str, &str)] = &[];
    let tool = |name: &'static str, description: &'static str, args: &[(&str, &str)]| {
        Tool::new(name, description, string_args(args))
    };
    vec![
        tool(
            "test_simple_text",
            "Returns a simple text response",
            no_args,
        ),
        tool("test_image_content", "Returns a 1x1 PNG image", no_args),
        tool("test_audio_content", "Returns a short WAV clip", no_args),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource",
            no_args,
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, an image and an embedded resource",
            no_args,
        ),
        tool(
            "test_tool_with_logging",
            "Sends three log notifications while it runs",
            no_args,
        ),
        tool(
            "test_error_handling",
            "Always fails with a tool error (isError: true)",
            no_args,
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100",
            no_args,
        ),
        tool(
            "test_sampling",
            "Asks the client's LLM to answer `prompt` (sampling/createMessage)",
            &[("prompt", "The prompt to send to the LLM")],
        ),
        tool(
            "test_elicitation",
            "Asks the user for a username and an email (elicitation/create)",
            &[("message", "The message to show the user")],
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicitation whose schema has a default for every primitive type (SEP-1034)",
            no_args,
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicitation with the five enum schema forms (SEP-1330)",
            no_args,
        ),
        // The 2026-07-28 (stateless) scenarios' fixtures.
        tool(
            "test_missing_capability",
            "Needs the client's sampling capability; without it the call fails with -32021",
            no_args,
        ),
        tool(
            "test_streaming_elicitation",
            "Answers with an input_required result holding one elicitation request",
            no_args,
        ),
        tool(
            "test_logging_tool",
            "Logs one message, and only when the request's _meta asks for a log level",
            no_args,
        ),
        Tool::new(
            "test_custom_header",
            "Echoes `value`, which clients also send as the Mcp-Param-Value header (SEP-2243)",
            object(json!({
                "type": "object",
                "properties": {
                    "value": { "type": "string", "description": "Any text", "x-mcp-header": "Value" }
                },
                "required": ["value"]
            })),
        ),
        tool(
            "test_trigger_tool_change",
            "Announces a tool-list change on every listen stream that asked for it",
            no_args,
        ),
        tool(
            "test_trigger_prompt_change",
            "Announces a prompt-list change on every listen stream that asked for it",
            no_args,
        ),
        Tool::new(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            object(json_schema_2020_12()),
        ),
    ]
    .into_iter()
    .chain(MRTR_TOOLS.iter().map(|&(name, description)| {
        Tool::new(name, description, string_args(&[]))
    }))
    .chain(TASK_TOOLS.iter().map(|&(name, description, _)| {
        Tool::new(name, description, task_tool_schema(name))
    }))
    .collect()
}

/// The input schema the `json-schema-2020-12` scenario looks for: `$schema`, `$defs` with an
/// `$anchor`, `$ref`, composition, conditionals and `additionalProperties`.
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": {
            "properties": { "contactMethod": { "const": "phone" } },
            "required": ["contactMethod"]
        },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

/// `test_streaming_elicitation`: a 2026-07-28 server may not send requests of its own, so it
/// answers `input_required` with the elicitation the client should run and resend.
fn streaming_elicitation() -> Result<CallToolResponse, ErrorData> {
    let schema = json!({
        "type": "object",
        "properties": { "value": { "type": "string", "description": "Any value" } },
        "required": ["value"]
    });
    let requested_schema: ElicitationSchema = serde_json::from_value(schema)
        .map_err(|e| ErrorData::internal_error(format!("elicitation schema: {e}"), None))?;
    let request = ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: "Provide a value".to_owned(),
        requested_schema,
    });
    let mut requests = InputRequests::new();
    requests.insert("value".to_owned(), InputRequest::Elicitation(request));
    Ok(InputRequiredResult::from_input_requests(requests).into())
}

/// `test_sampling`: one `sampling/createMessage` round trip.
async fn sampling(cx: &RequestContext<RoleServer>, args: &JsonObject) -> CallToolResult {
    let prompt = args.get("prompt").and_then(Value::as_str).unwrap_or("");
    let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
    match cx.peer.create_message(params).await {
        Ok(answer) => {
            let text = serde_json::to_value(&answer.message.content)
                .ok()
                .and_then(|content| {
                    content
                        .get("text")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            text_result(format!("LLM response: {text}"))
        }
        Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("sampling failed: {e}"))]),
    }
}

/// One `elicitation/create` with `schema`, reported as the scenarios expect.
async fn elicit(cx: &RequestContext<RoleServer>, message: &str, schema: Value) -> CallToolResult {
    let requested_schema: ElicitationSchema = match serde_json::from_value(schema) {
        Ok(schema) => schema,
        Err(e) => {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "elicitation schema refused by rmcp: {e}"
            ))]);
        }
    };
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.to_owned(),
        requested_schema,
    };
    match cx.peer.create_elicitation(params).await {
        Ok(answer) => {
            let action = serde_json::to_value(&answer.action).unwrap_or(Value::Null);
            let content = answer.content.unwrap_or(Value::Null);
            text_result(format!(
                "Elicitation completed: action={}, content={content}",
                action.as_str().unwrap_or("unknown")
            ))
        }
        Err(e) => {
            CallToolResult::error(vec![ContentBlock::text(format!("elicitation failed: {e}"))])
        }
    }
}

/// The SEP-1034 schema: a default for every primitive type.
fn sep1034_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verified", "default": true }
        }
    })
}

/// The SEP-1330 schema: the five enum forms.
fn sep1330_schema() -> Value {
    let titled = |prefix: &str, titles: [&str; 3]| -> Vec<Value> {
        titles
            .iter()
            .enumerate()
            .map(|(i, title)| json!({ "const": format!("{prefix}{}", i + 1), "title": title }))
            .collect()
    };
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Untitled single-select",
                "enum": ["option1", "option2", "option3"]
            },
            "titledSingle": {
                "type": "string",
                "description": "Titled single-select",
                "oneOf": titled("value", ["First Option", "Second Option", "Third Option"])
            },
            "legacyEnum": {
                "type": "string",
                "description": "Legacy titled enum",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "description": "Untitled multi-select",
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array",
                "description": "Titled multi-select",
                "items": { "anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"]) }
            }
        }
    })
}

/// `test_tool_with_progress`: progress 0, 50, 100 of 100, ~50 ms apart, when the call asked.
async fn with_progress(cx: &RequestContext<RoleServer>) -> CallToolResult {
    let token = cx.meta.get_progress_token();
    for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(token) = &token {
            let note = ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
            if let Err(e) = cx.peer.notify_progress(note).await {
                tracing::debug!("progress notification not sent: {e}");
            }
        }
    }
    text_result("Tool with progress completed")
}

impl ConformanceServer {
    /// `test_tool_with_logging`: three info logs ~50 ms apart.
    async fn tool_with_logging(&self, cx: &RequestContext<RoleServer>) -> CallToolResult {
        let steps = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for (i, step) in steps.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.log(cx, LoggingLevel::Info, step).await;
        }
        text_result("Tool with logging completed")
    }
}

impl ConformanceServer {
    /// Runs one of the tools that answer in one response (not a multi-round or task fixture).
    pub(crate) async fn call_plain_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "test_simple_text" => text_result("This is a simple text response for testing."),
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(PNG_1X1, "image/png")])
            }
            "test_audio_content" => CallToolResult::success(vec![ContentBlock::Audio(
                AudioContent::new(WAV_EMPTY, "audio/wav"),
            )]),
            "test_embedded_resource" => CallToolResult::success(vec![ContentBlock::resource(
                ResourceContents::text(
                    "This is an embedded resource content.",
                    "test://embedded-resource",
                )
                .with_mime_type("text/plain"),
            )]),
            "test_multiple_content_types" => CallToolResult::success(vec![
                ContentBlock::text("Multiple content types test:"),
                ContentBlock::image(PNG_1X1, "image/png"),
                ContentBlock::resource(
                    ResourceContents::text(
                        r#"{"test":"data","value":123}"#,
                        "test://mixed-content-resource",
                    )
                    .with_mime_type("application/json"),
                ),
            ]),
            "test_tool_with_logging" => self.tool_with_logging(&cx).await,
            "test_error_handling" => CallToolResult::error(vec![ContentBlock::text(
                "This tool intentionally returns an error for testing",
            )]),
            "test_tool_with_progress" => with_progress(&cx).await,
            "test_sampling" => sampling(&cx, &args).await,
            "test_elicitation" => {
                let message = args.get("message").and_then(Value::as_str).unwrap_or("");
                let schema = json!({
                    "type": "object",
                    "properties": {
                        "username": { "type": "string", "description": "User's response" },
                        "email": { "type": "string", "description": "User's email address" }
                    },
                    "required": ["username", "email"]
                });
                elicit(&cx, message, schema).await
            }
            "test_elicitation_sep1034_defaults" => {
                elicit(&cx, "Please review the defaults", sep1034_schema()).await
            }
            "test_elicitation_sep1330_enums" => {
                elicit(&cx, "Please choose from each list", sep1330_schema()).await
            }
            "test_missing_capability" => {
                let declared = cx.client_capabilities().unwrap_or_default();
                if declared.sampling.is_none() {
                    return Err(ErrorData::missing_required_client_capability(
                        ClientCapabilities::builder().enable_sampling().build(),
                    ));
                }
                text_result("The client declared sampling")
            }
            "test_streaming_elicitation" => return streaming_elicitation(),
            "test_logging_tool" => {
                if let Some(level) = cx.meta.log_level() {
                    self.log(&cx, level, "logLevel was requested").await;
                }
                text_result("Logging tool completed")
            }
            "test_custom_header" => {
                let value = args.get("value").and_then(Value::as_str).unwrap_or("");
                text_result(format!("value: {value}"))
            }
            "json_schema_2020_12_tool" => text_result("JSON Schema 2020-12 tool called"),
            "test_trigger_tool_change" => {
                let notification = ServerNotification::ToolListChangedNotification(
                    ToolListChangedNotification::default(),
                );
                let n = self.shared.broadcast(notification).await;
                text_result(format!("tool list change sent to {n} listen streams"))
            }
            "test_trigger_prompt_change" => {
                let notification = ServerNotification::PromptListChangedNotification(
                    PromptListChangedNotification::default(),
                );
                let n = self.shared.broadcast(notification).await;
                text_result(format!("prompt list change sent to {n} listen streams"))
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool {other:?}"),
                    None,
                ));
            }
        };
        Ok(result.into())
    }
}
