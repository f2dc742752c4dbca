//! The multi-round (SEP-2322 `InputRequiredResult`) fixtures, and the input requests they
//! share with tasks and prompts.

use rmcp::{
    ErrorData, RoleServer,
    model::{
        CallToolRequestParams, CallToolResponse, CreateMessageRequest, CreateMessageRequestParams,
        ElicitRequest, ElicitRequestParams, ElicitationSchema, InputRequest, InputRequests,
        InputRequiredResult, InputResponses, ListRootsRequest, SamplingMessage,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::state::ConformanceServer;
use crate::tools::text_result;
/// The multi-round (SEP-2322 `InputRequiredResult`) scenarios' tools, all without arguments.
pub(crate) const MRTR_TOOLS: [(&str, &str); 8] = [
    (
        "test_input_required_result_elicitation",
        "Asks for the user's name (input_required), then greets them",
    ),
    (
        "test_input_required_result_sampling",
        "Asks the client's LLM a question (input_required), then reports the answer",
    ),
    (
        "test_input_required_result_list_roots",
        "Asks for the client's roots (input_required), then lists them",
    ),
    (
        "test_input_required_result_request_state",
        "Asks for a confirmation with a sealed requestState, then checks the state",
    ),
    (
        "test_input_required_result_tampered_state",
        "Like request_state: a forged requestState is refused with -32602",
    ),
    (
        "test_input_required_result_multiple_inputs",
        "Asks for a name, a greeting and the roots at once",
    ),
    (
        "test_input_required_result_multi_round",
        "Two input_required rounds (name, then color), the round sealed in requestState",
    ),
    (
        "test_input_required_result_capabilities",
        "Asks only for the inputs the client's declared capabilities allow",
    ),
];

/// A sampling request as an MRTR input request.
fn ask_llm(prompt: &str) -> InputRequest {
    InputRequest::CreateMessage(CreateMessageRequest::new(CreateMessageRequestParams::new(
        vec![SamplingMessage::user_text(prompt)],
        100,
    )))
}

/// A `roots/list` request as an MRTR input request.
fn ask_roots() -> InputRequest {
    InputRequest::ListRoots(ListRootsRequest::default())
}

/// The client's answer under `key`, when it is an object (anything else counts as missing, so
/// the server asks again).
fn response<'a>(responses: Option<&'a InputResponses>, key: &str) -> Option<&'a Value> {
    responses.and_then(|r| r.get(key)).filter(|v| v.is_object())
}

/// One round's input requests: `input_required`, optionally with a sealed state.
fn input_required(
    requests: impl IntoIterator<Item = (&'static str, InputRequest)>,
    state: Option<String>,
) -> CallToolResponse {
    let requests: InputRequests = requests
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    InputRequiredResult::new(Some(requests), state).into()
}

/// One form elicitation as an MRTR / in-task input request: `field` (a string) is required.
pub(crate) fn ask(message: &str, field: &str, kind: &str) -> Result<InputRequest, ErrorData> {
    let schema = json!({
        "type": "object",
        "properties": { field: { "type": kind } },
        "required": [field]
    });
    let requested_schema: ElicitationSchema = serde_json::from_value(schema)
        .map_err(|e| ErrorData::internal_error(format!("elicitation schema: {e}"), None))?;
    Ok(InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message: message.to_owned(),
            requested_schema,
        },
    )))
}

/// `content.<field>` of an elicitation answer, as text.
pub(crate) fn answered(response: &Value, field: &str) -> String {
    match response.get("content").and_then(|c| c.get(field)) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(none)".to_owned(),
    }
}

impl ConformanceServer {
    /// Seals `state` for the client to echo back.
    fn seal(&self, state: &Value) -> Result<String, ErrorData> {
        self.shared
            .request_state
            .seal_json(state)
            .map_err(|e| ErrorData::internal_error(format!("requestState: {e}"), None))
    }

    /// Opens an echoed `requestState`; a forged or altered one is the client's error (-32602).
    fn open(&self, sealed: &str) -> Result<Value, ErrorData> {
        self.shared.request_state.open_json(sealed).map_err(|_| {
            ErrorData::invalid_params("requestState failed integrity verification", None)
        })
    }

    /// Runs a multi-round (SEP-2322) fixture: each call either asks for input or, given the
    /// answers (and the sealed state it handed out), finishes.
    pub(crate) fn call_mrtr_tool(
        &self,
        request: &CallToolRequestParams,
        cx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let answers = request.input_responses.as_ref();
        let state = request.request_state.as_deref();
        let done = |text: String| Ok(text_result(text).into());
        match request.name.as_ref() {
            "test_input_required_result_elicitation" => match response(answers, "user_name") {
                Some(answer) => done(format!("Hello, {}!", answered(answer, "name"))),
                None => Ok(input_required(
                    [("user_name", ask("What is your name?", "name", "string")?)],
                    None,
                )),
            },
            "test_input_required_result_sampling" => match response(answers, "capital") {
                Some(answer) => {
                    let text = answer
                        .get("content")
                        .and_then(|c| c.get("text"))
                        .and_then(Value::as_str)
                        .unwrap_or("(no text)");
                    done(format!("Sampling response: {text}"))
                }
                None => Ok(input_required(
                    [("capital", ask_llm("What is the capital of France?"))],
                    None,
                )),
            },
            "test_input_required_result_list_roots" => match response(answers, "roots") {
                Some(answer) => {
                    let uris: Vec<&str> = answer
                        .get("roots")
                        .and_then(Value::as_array)
                        .map(|roots| {
                            roots
                                .iter()
                                .filter_map(|r| r.get("uri").and_then(Value::as_str))
                                .collect()
                        })
                        .unwrap_or_default();
                    done(format!("Client roots: [{}]", uris.join(", ")))
                }
                None => Ok(input_required([("roots", ask_roots())], None)),
            },
            "test_input_required_result_request_state"
            | "test_input_required_result_tampered_state" => match state {
                Some(sealed) => {
                    self.open(sealed)?;
                    done("Confirmed: state-ok".to_owned())
                }
                None => Ok(input_required(
                    [("confirm", ask("Please confirm", "ok", "boolean")?)],
                    Some(self.seal(&json!({ "stage": "confirm" }))?),
                )),
            },
            "test_input_required_result_multiple_inputs" => {
                if let Some(sealed) = state {
                    self.open(sealed)?;
                }
                let keys = ["user_name", "greeting", "client_roots"];
                if state.is_some() && keys.iter().all(|k| response(answers, k).is_some()) {
                    return done("All inputs received".to_owned());
                }
                Ok(input_required(
                    [
                        ("user_name", ask("What is your name?", "name", "string")?),
                        ("greeting", ask_llm("Generate a greeting")),
                        ("client_roots", ask_roots()),
                    ],
                    Some(self.seal(&json!({ "stage": "gather" }))?),
                ))
            }
            "test_input_required_result_multi_round" => {
                let round = match state {
                    Some(sealed) => self
                        .open(sealed)?
                        .get("round")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                    None => 0,
                };
                match round {
                    0 => Ok(input_required(
                        [(
                            "step1",
                            ask("Step 1: What is your name?", "name", "string")?,
                        )],
                        Some(self.seal(&json!({ "round": 1 }))?),
                    )),
                    1 => Ok(input_required(
                        [(
                            "step2",
                            ask("Step 2: What is your favorite color?", "color", "string")?,
                        )],
                        Some(self.seal(&json!({ "round": 2 }))?),
                    )),
                    _ => done("Multi-round flow complete".to_owned()),
                }
            }
            "test_input_required_result_capabilities" => {
                if answers.is_some() {
                    return done("Capability-aware flow complete".to_owned());
                }
                // Ask only for what the client said it can do.
                let declared = cx.client_capabilities().unwrap_or_default();
                let mut requests = Vec::new();
                if declared.elicitation.is_some() {
                    requests.push(("user_name", ask("What is your name?", "name", "string")?));
                }
                if declared.sampling.is_some() {
                    requests.push(("greeting", ask_llm("Generate a greeting")));
                }
                if declared.roots.is_some() {
                    requests.push(("client_roots", ask_roots()));
                }
                if requests.is_empty() {
                    return done("The client declared no input capability".to_owned());
                }
                Ok(input_required(requests, None))
            }
            other => Err(ErrorData::invalid_params(
                format!("unknown tool {other:?}"),
                None,
            )),
        }
    }
}
