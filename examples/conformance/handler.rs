//! The `ServerHandler`: resources, prompts, completion, tasks and listen streams, with tool
//! calls dispatched to the fixtures.

use std::sync::{PoisonError, atomic::Ordering};

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CancelTaskParams, CompleteRequestParams,
        CompleteResult, CompletionInfo, ContentBlock, GetPromptRequestParams, GetPromptResponse,
        GetPromptResult, GetTaskParams, GetTaskResult, Implementation, InputRequests,
        InputRequiredResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        ListToolsResult, PaginatedRequestParams, Prompt, PromptArgument, PromptMessage,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Reference, Resource,
        ResourceContents, ResourceTemplate, Role, ServerCapabilities, ServerConfig,
        SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool,
        UnsubscribeRequestParams, UpdateTaskParams,
    },
    service::{RequestContext, SubscriptionContext},
};
use serde_json::{Value, json};

use crate::mrtr::{MRTR_TOOLS, answered, ask};
use crate::state::{ConformanceServer, MAX_LISTENERS};
use crate::tasks::TASK_TOOLS;
use crate::tools::PNG_1X1;
/// The static resources `resources/list` shows: (uri, name, description, MIME type).
const RESOURCES: [(&str, &str, &str, &str); 3] = [
    (
        "test://static-text",
        "static-text",
        "A static text resource",
        "text/plain",
    ),
    (
        "test://static-binary",
        "static-binary",
        "A static binary resource (a 1x1 PNG)",
        "image/png",
    ),
    (
        "test://watched-resource",
        "watched-resource",
        "A resource clients may subscribe to",
        "text/plain",
    ),
];
/// The one resource template.
const TEMPLATE: &str = "test://template/{id}/data";
/// Suggestions `completion/complete` filters by prefix.
const COMPLETIONS: [&str; 6] = ["paris", "park", "party", "hello", "help", "world"];

/// The `id` of a `test://template/{id}/data` URI.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix("test://template/")?
        .strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

impl ServerHandler for ConformanceServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_logging()
                .enable_completions()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-security-conformance-server",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions("Implements the MCP conformance suite's server scenarios.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.shared.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if MRTR_TOOLS.iter().any(|(name, _)| *name == request.name) {
            return self.call_mrtr_tool(&request, &cx);
        }
        if let Some(&(name, _, support)) =
            TASK_TOOLS.iter().find(|(name, _, _)| *name == request.name)
        {
            return self.call_task_tool(name, support, &request, &cx).await;
        }
        self.call_plain_tool(request, cx).await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = RESOURCES
            .iter()
            .map(|&(uri, name, description, mime)| {
                Resource::new(uri, name)
                    .with_description(description)
                    .with_mime_type(mime)
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let template = ResourceTemplate::new(TEMPLATE, "template-data")
            .with_description("JSON data for the given id")
            .with_mime_type("application/json");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => {
                ResourceContents::text("This is the content of the static text resource.", uri)
                    .with_mime_type("text/plain")
            }
            "test://static-binary" => {
                ResourceContents::blob(PNG_1X1, uri).with_mime_type("image/png")
            }
            "test://watched-resource" => ResourceContents::text("Watched resource content.", uri)
                .with_mime_type("text/plain"),
            _ => match template_id(uri) {
                Some(id) => {
                    let data = json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
                    ResourceContents::text(data.to_string(), uri).with_mime_type("application/json")
                }
                None => {
                    return Err(ErrorData::resource_not_found(
                        format!("no resource {uri:?}"),
                        Some(json!({ "uri": uri })),
                    ));
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let mut subscriptions = self
            .shared
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A test fixture, but still bounded: the URIs are the client's to choose.
        if subscriptions.len() >= 1024 && !subscriptions.contains(&request.uri) {
            return Err(ErrorData::invalid_request("too many subscriptions", None));
        }
        subscriptions.insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let arg = |name: &str, description: &str| {
            PromptArgument::new(name)
                .with_description(description)
                .with_required(true)
        };
        let prompts = vec![
            Prompt::new(
                "test_simple_prompt",
                Some("A prompt without arguments"),
                None,
            ),
            Prompt::new(
                "test_prompt_with_arguments",
                Some("A prompt with two required arguments"),
                Some(vec![
                    arg("arg1", "First test argument"),
                    arg("arg2", "Second test argument"),
                ]),
            ),
            Prompt::new(
                "test_prompt_with_embedded_resource",
                Some("A prompt that embeds a resource"),
                Some(vec![arg("resourceUri", "URI of the resource to embed")]),
            ),
            Prompt::new(
                "test_prompt_with_image",
                Some("A prompt with an image"),
                None,
            ),
            Prompt::new(
                "test_input_required_result_prompt",
                Some("Asks for context (input_required), then builds the prompt from it"),
                None,
            ),
        ];
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let arg = |name: &str| args.get(name).and_then(Value::as_str).unwrap_or("");
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            "test_prompt_with_arguments" => vec![PromptMessage::new_text(
                Role::User,
                format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    arg("arg1"),
                    arg("arg2")
                ),
            )],
            "test_prompt_with_embedded_resource" => vec![
                PromptMessage::new(
                    Role::User,
                    ContentBlock::resource(
                        ResourceContents::text(
                            "Embedded resource content for testing.",
                            arg("resourceUri"),
                        )
                        .with_mime_type("text/plain"),
                    ),
                ),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ],
            "test_input_required_result_prompt" => {
                let given = request
                    .input_responses
                    .as_ref()
                    .and_then(|r| r.get("user_context"))
                    .filter(|v| v.is_object());
                let Some(answer) = given else {
                    let mut requests = InputRequests::new();
                    requests.insert(
                        "user_context".to_owned(),
                        ask("What context should the prompt use?", "context", "string")?,
                    );
                    return Ok(InputRequiredResult::from_input_requests(requests).into());
                };
                vec![PromptMessage::new_text(
                    Role::User,
                    format!(
                        "Prompt with elicited context: {}",
                        answered(answer, "context")
                    ),
                )]
            }
            "test_prompt_with_image" => vec![
                PromptMessage::new(Role::User, ContentBlock::image(PNG_1X1, "image/png")),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown prompt {other:?}"),
                    None,
                ));
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let known = match &request.r#ref {
            Reference::Prompt(p) => p.name == "test_prompt_with_arguments",
            Reference::Resource(r) => r.uri == TEMPLATE,
            _ => false,
        };
        let prefix = request.argument.value.as_str();
        let values: Vec<String> = if known {
            COMPLETIONS
                .iter()
                .filter(|v| v.starts_with(prefix))
                .map(|v| (*v).to_owned())
                .collect()
        } else {
            Vec::new()
        };
        let info = CompletionInfo::with_all_values(values).map_err(|e| {
            ErrorData::internal_error(format!("completion values refused: {e}"), None)
        })?;
        Ok(CompleteResult::new(info))
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(
            self.shared.tasks.get_task(&request.task_id)?,
        ))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared
            .tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.shared.tasks.cancel_task(&request.task_id)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        // rmcp has sent the acknowledgement; keep the sink for the trigger tools until the
        // client goes away.
        let number = self.shared.next_listener.fetch_add(1, Ordering::Relaxed);
        {
            let mut listeners = self
                .shared
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if listeners.len() >= MAX_LISTENERS {
                return Err(ErrorData::internal_error("too many listen streams", None));
            }
            listeners.insert(number, context.sink().clone());
        }
        context.cancelled().await;
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&number);
        Ok(())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self
            .log_level
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(request.level);
        Ok(())
    }
}
