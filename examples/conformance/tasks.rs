//! The Tasks-extension (SEP-2663) fixtures.

use std::time::Duration;

use rmcp::{
    ErrorData, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ContentBlock,
        CreateTaskResult, InputRequests, InputRequiredResult, JsonObject,
    },
    service::RequestContext,
    task_manager::{TaskExit, TaskOptions},
};
use serde_json::{Value, json};

use crate::mrtr::{answered, ask};
use crate::state::ConformanceServer;
use crate::tools::{object, text_result};
/// How a Tasks-extension (SEP-2663) fixture runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskSupport {
    /// Always answers inline.
    Never,
    /// Becomes a task when the client declared the tasks extension, else answers inline.
    Optional,
    /// Only as a task: without the extension the call fails with -32021.
    Required,
}

/// The Tasks-extension scenarios' fixtures: (name, description, how it runs).
pub(crate) const TASK_TOOLS: [(&str, &str, TaskSupport); 7] = [
    (
        "greet",
        "Says hello to `name`, inline (SEP-2663 sync-only fixture)",
        TaskSupport::Never,
    ),
    (
        "slow_compute",
        "Sleeps `seconds`, then reports `label` (task-supporting)",
        TaskSupport::Optional,
    ),
    (
        "failing_job",
        "Ends with a tool error (isError: true); task required",
        TaskSupport::Required,
    ),
    (
        "protocol_error_job",
        "Ends with a JSON-RPC error (task status failed when run as a task)",
        TaskSupport::Optional,
    ),
    (
        "confirm_delete",
        "Asks for a yes/no confirmation inside the task before `deleting` `filename`",
        TaskSupport::Required,
    ),
    (
        "multi_input",
        "Asks for two values at once inside the task",
        TaskSupport::Required,
    ),
    (
        "test_tool_with_task",
        "Asks for a name (input_required), then finishes as a task",
        TaskSupport::Required,
    ),
];

/// The input schema of a task fixture.
pub(crate) fn task_tool_schema(name: &str) -> JsonObject {
    let properties = match name {
        "greet" => json!({ "name": { "type": "string" } }),
        "slow_compute" => json!({ "seconds": { "type": "number" }, "label": { "type": "string" } }),
        "confirm_delete" => json!({ "filename": { "type": "string" } }),
        _ => json!({}),
    };
    let required = if name == "greet" {
        json!(["name"])
    } else {
        json!([])
    };
    object(json!({ "type": "object", "properties": properties, "required": required }))
}

impl ConformanceServer {
    /// Runs a Tasks-extension fixture: as a task when the client declared the extension and the
    /// tool supports tasks, inline otherwise (or -32021 when the tool needs a task).
    pub(crate) async fn call_task_tool(
        &self,
        name: &str,
        support: TaskSupport,
        request: &CallToolRequestParams,
        cx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let as_task = support != TaskSupport::Never
            && cx.client_capabilities().is_some_and(|c| c.supports_tasks());
        if support == TaskSupport::Required && !as_task {
            return Err(ErrorData::missing_required_client_capability(
                ClientCapabilities::builder().enable_tasks().build(),
            ));
        }
        let tasks = &self.shared.tasks;
        let spawn = |work: rmcp::task_manager::TaskFuture| {
            let task = tasks.spawn(TaskOptions::default(), move |_| work);
            Ok(CreateTaskResult::new(task).into())
        };
        match name {
            "greet" => {
                let who = args.get("name").and_then(Value::as_str).unwrap_or("friend");
                Ok(text_result(format!("Hello, {who}!")).into())
            }
            "slow_compute" => {
                // JSON numbers are finite; bound them so a call cannot park a task for long.
                let seconds = args
                    .get("seconds")
                    .and_then(Value::as_f64)
                    .filter(|s| s.is_finite())
                    .unwrap_or(1.0)
                    .clamp(0.0, 60.0);
                let label = args
                    .get("label")
                    .and_then(Value::as_str)
                    .unwrap_or("compute")
                    .to_owned();
                let done =
                    move || text_result(format!("slow_compute({label}) done after {seconds}s"));
                let sleep = Duration::from_secs_f64(seconds);
                if !as_task {
                    tokio::time::sleep(sleep).await;
                    return Ok(done().into());
                }
                // Cancellation is cooperative: a cancelled task settles as `cancelled`.
                let task = tasks.spawn(TaskOptions::default(), move |ctx| {
                    Box::pin(async move {
                        tokio::select! {
                            () = ctx.cancelled() => Err(TaskExit::Cancelled),
                            () = tokio::time::sleep(sleep) => Ok(done()),
                        }
                    })
                });
                Ok(CreateTaskResult::new(task).into())
            }
            "failing_job" => spawn(Box::pin(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(CallToolResult::error(vec![ContentBlock::text(
                    "failing_job: intentional tool execution error",
                )]))
            })),
            "protocol_error_job" => {
                let failure =
                    ErrorData::internal_error("protocol_error_job: intentional failure", None);
                if !as_task {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return Err(failure);
                }
                spawn(Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Err(TaskExit::Error(failure))
                }))
            }
            "confirm_delete" => {
                let filename = args
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or("file.txt")
                    .to_owned();
                let question = ask(&format!("Delete {filename}?"), "confirm", "boolean")?;
                let task = tasks.spawn(TaskOptions::default(), move |ctx| {
                    Box::pin(async move {
                        let answer = ctx.request_input("confirm", question).await?;
                        let confirmed = answer
                            .get("content")
                            .and_then(|c| c.get("confirm"))
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        Ok(text_result(format!(
                            "confirm_delete({filename}): confirmed = {confirmed}"
                        )))
                    })
                });
                Ok(CreateTaskResult::new(task).into())
            }
            "multi_input" => {
                let a = ask("Provide value A", "value", "string")?;
                let b = ask("Provide value B", "value", "string")?;
                let task = tasks.spawn(TaskOptions::default(), move |ctx| {
                    Box::pin(async move {
                        // Both pending at once, so a client can answer one and then the other.
                        let (a, b) = tokio::join!(
                            ctx.request_input("input-a", a),
                            ctx.request_input("input-b", b)
                        );
                        let (a, b) = (a?, b?);
                        Ok(text_result(format!(
                            "multi_input: a = {}, b = {}",
                            answered(&a, "value"),
                            answered(&b, "value")
                        )))
                    })
                });
                Ok(CreateTaskResult::new(task).into())
            }
            "test_tool_with_task" => {
                let given = request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get("user_name"))
                    .filter(|v| v.is_object());
                let Some(response) = given else {
                    let mut requests = InputRequests::new();
                    requests.insert(
                        "user_name".to_owned(),
                        ask("What is your name?", "name", "string")?,
                    );
                    return Ok(InputRequiredResult::from_input_requests(requests).into());
                };
                let who = answered(response, "name");
                spawn(Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(text_result(format!("Hello, {who}! (async)")))
                }))
            }
            other => Err(ErrorData::invalid_params(
                format!("unknown tool {other:?}"),
                None,
            )),
        }
    }
}
