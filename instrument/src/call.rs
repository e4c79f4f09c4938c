//! One request's span: what is known before the handler runs ([`Call::begin`]) and what its
//! result says ([`Call::run`]). Nothing here awaits IO: spans go to the SDK's batch processor.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::FutureExt as _;
use opentelemetry::trace::{FutureExt as _, SpanBuilder, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, StringValue};
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, JsonObject, NumberOrString, RequestId};
use rmcp::service::{RequestContext, RoleServer};
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::attributes as attr;
use crate::connection::{Cancellation, Connection, InFlight};
use crate::network::Network;
use crate::origin::Origin;
use crate::peer;
use crate::propagation::Propagated;
use crate::routing::session_for;
use crate::runtime::Shared;
use crate::session::ActiveSession;
use crate::target::{Target, ToolCall};
use crate::transport::Arrival;
use crate::usage::{self, Usage};

/// How long a cancelled request waits for the cancellation's reason: rmcp cancels the request's
/// token before it hands the `notifications/cancelled` to the server. The response of a
/// cancelled request is discarded, so nobody waits for it.
const CANCEL_REASON_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// A request id as text, shared by the span attribute and the connection's calls in flight: a
/// string id as rmcp holds it, a number formatted without a temporary `String`.
fn request_id(id: &RequestId) -> Arc<str> {
    match id {
        NumberOrString::String(id) => id.clone(),
        NumberOrString::Number(n) => {
            use std::io::Write as _;
            let mut digits = [0u8; 20];
            let mut rest = &mut digits[..];
            let _ = write!(rest, "{n}");
            let len = 20 - rest.len();
            Arc::from(std::str::from_utf8(&digits[..len]).unwrap_or_default())
        }
    }
}

/// What an invalid-params error is recorded as when the tool's content is not captured.
const INVALID_PARAMS_DESCRIPTION: &str = "invalid_params: the arguments do not match the tool's schema";

/// What a request asks for, as far as its span, its row and its cost go.
struct Asked {
    method: Cow<'static, str>,
    /// The tool, on `tools/call`.
    tool: Option<ToolCall>,
    /// The prompt, on `prompts/get`: named in the span once served.
    prompt: Option<String>,
    /// The arguments as JSON text, kept for token estimation.
    arguments_json: Option<String>,
}

impl Asked {
    /// Reads what `target` names; pushes its attributes (and the arguments, when this tool's
    /// content may be captured) and returns the span's name with it.
    fn read(
        shared: &Shared,
        method: Cow<'static, str>,
        target: Target<'_>,
        arguments: Option<&JsonObject>,
        attributes: &mut Vec<KeyValue>,
    ) -> (Cow<'static, str>, Self) {
        let (name, tool, prompt) = target.names(&method, shared, attributes);
        if let (Some(arguments), true) = (arguments, tool.as_ref().is_some_and(|t| t.capture)) {
            let value = serde_json::Value::Object(arguments.clone());
            attributes.push(KeyValue::new(attr::GEN_AI_TOOL_CALL_ARGUMENTS, shared.settings.capture.capture(&value)));
        }
        let estimated = tool.is_some() && shared.settings.estimation != usage::TokenEstimation::Off;
        let arguments_json =
            estimated.then(|| arguments.and_then(|a| serde_json::to_string(a).ok()).unwrap_or_default());
        (name, Self { method, tool, prompt, arguments_json })
    }
}

/// A request in flight: its span (in `cx`) and what finishing it needs.
pub(crate) struct Call {
    cx: Context,
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    /// The JSON-RPC id, and what cancels the request while it runs.
    id: Arc<str>,
    in_flight: Arc<InFlight>,
    ct: CancellationToken,
    /// A stateless HTTP request: rmcp cancels it when its client disconnects.
    stateless: bool,
    session: Option<Arc<ActiveSession>>,
    asked: Asked,
    /// May it run, and whose budget it spends.
    admission: Admission,
    started: Instant,
    network: Network,
    /// `mcp.protocol.version`, for the duration metric.
    protocol: Option<KeyValue>,
}

impl Call {
    /// Opens the span of a request about to be handled: who sent it, what it asks, which
    /// session it belongs to, whether it may run — then the span.
    pub(crate) fn begin(
        shared: &Arc<Shared>,
        connection: Arc<Connection>,
        method: Cow<'static, str>,
        target: Target<'_>,
        arguments: Option<&JsonObject>,
        ctx: &RequestContext<RoleServer>,
    ) -> Self {
        let initializing = match &target {
            Target::Client(client) => Some(*client),
            _ => None,
        };
        let origin = Origin::read(ctx, shared, initializing);
        let id = request_id(&ctx.id);
        let in_flight = connection.call_started(&id);
        let network = Network::of(origin.parts);
        let mut attributes = Vec::with_capacity(20);
        attributes.push(KeyValue::new(attr::MCP_METHOD_NAME, method.clone()));
        attributes.push(KeyValue::new(attr::JSONRPC_REQUEST_ID, StringValue::from(id.clone())));
        attributes.extend(network.attributes());
        attributes.extend(origin.client_address().map(|a| KeyValue::new(attr::CLIENT_ADDRESS, a.to_owned())));
        attributes.extend(origin.mcp_session_id().map(|id| KeyValue::new(attr::MCP_SESSION_ID, id.to_owned())));

        let is_tool_call = method == attr::METHOD_TOOLS_CALL;
        let (name, asked) = Asked::read(shared, method, target, arguments, &mut attributes);
        let identity =
            connection.identity(origin.client(), &origin.user, origin.protocol(), shared.settings.hash_emails);
        let session = session_for(shared, &connection, &origin, is_tool_call, &identity);
        let tool = asked.tool.as_ref().map(|t| t.name.as_ref());
        let admission = Admission::decide(shared, &connection, &origin, session.as_deref(), identity, tool);
        if let Some(session) = session.as_ref().filter(|_| is_tool_call || shared.settings.record_all_methods) {
            attributes.push(KeyValue::new(attr::SESSION_ID, session.id.clone()));
            session.request_started();
        }
        attributes.extend(admission.identity.iter().cloned());
        let protocol = admission.identity.iter().find(|kv| kv.key.as_str() == attr::MCP_PROTOCOL_VERSION).cloned();

        // The span starts when the transport delivered the request (docs/sessions.md: request
        // received → response handed to the transport), else now.
        let arrival = ctx.extensions.get::<Arrival>().copied().unwrap_or_else(Arrival::now);
        let cx = start_span(shared, ctx, name, arrival, attributes);
        Self {
            cx,
            shared: shared.clone(),
            connection,
            id,
            in_flight,
            ct: ctx.ct.clone(),
            stateless: origin.stateless(),
            session,
            asked,
            admission,
            started: arrival.instant,
            network,
            protocol,
        }
    }

    /// Runs the handler inside the span, then records its outcome and ends the span. A panic
    /// in the handler becomes an internal error response instead of a lost request.
    ///
    /// A request cancelled while it runs (by the client, its timeout, or its leaving) is recorded
    /// as such, ending when it was given up — even when the handler ignores the cancellation and
    /// returns a result later, which rmcp then discards.
    pub(crate) fn run<T>(
        self,
        handler: impl Future<Output = Result<T, McpError>>,
        tool_result: fn(&T) -> Option<&CallToolResult>,
    ) -> impl Future<Output = Result<T, McpError>> {
        // Wrapped here, outside the `async` part, so the handler's future is stored once in
        // the request's state rather than once per layer (see `usage::scope`).
        let serving = peer::Serving { shared: self.shared.clone(), cx: self.cx.clone() };
        let handled =
            usage::scope(AssertUnwindSafe(peer::scope(serving, handler.with_context(self.cx.clone()))).catch_unwind());
        // Boxed: rmcp spawns every request as a task, and a future of a couple of kilobytes is
        // copied whole on each move on the way there; one allocation costs less (BENCHMARKS.md).
        Box::pin(self.run_handled(handled, tool_result))
    }

    async fn run_handled<T>(
        self,
        handled: impl Future<Output = (std::thread::Result<Result<T, McpError>>, Option<Usage>)>,
        tool_result: fn(&T) -> Option<&CallToolResult>,
    ) -> Result<T, McpError> {
        if let Some((error, _)) = self.admission.refusal.clone() {
            let refusal = Err(error);
            self.finish(&refusal, None, false, tool_result);
            return refusal;
        }
        let mut handled = std::pin::pin!(handled);
        let (outcome, reported) = tokio::select! {
            biased;
            done = &mut handled => done,
            () = self.ct.cancelled() => {
                self.in_flight.cancel(Cancellation::Unexplained, SystemTime::now());
                handled.await
            }
        };
        // A handler that stops on cancellation returns at once, often before the cancellation
        // is recorded (the biased select saw its result first): its request was cancelled all
        // the same, whatever it returned.
        if self.ct.is_cancelled() && self.in_flight.cancellation().is_none() {
            self.in_flight.cancel(Cancellation::Unexplained, SystemTime::now());
        }
        if matches!(self.in_flight.cancellation(), Some((Cancellation::Unexplained, _))) {
            // Boxed: its timer would otherwise enlarge every request's state, for the rare
            // request that is cancelled.
            Box::pin(self.in_flight.reason_known(CANCEL_REASON_WAIT)).await;
        }
        let (result, panicked) = match outcome {
            Ok(result) => (result, false),
            Err(_) => (Err(McpError::internal_error("the request handler panicked", None)), true),
        };
        self.finish(&result, reported, panicked, tool_result);
        result
    }

    fn finish<T>(
        self,
        result: &Result<T, McpError>,
        reported: Option<Usage>,
        panicked: bool,
        tool_result: fn(&T) -> Option<&CallToolResult>,
    ) {
        let span = self.cx.span();
        let mut failure = Failure::default();
        self.connection.call_finished(&self.id);
        let cancellation = self.in_flight.cancellation().map(|(why, at)| match why {
            Cancellation::Unexplained if self.stateless => (Cancellation::ClientDisconnect, at),
            why => (why, at),
        });
        // The tool, once the server has it or answered for it.
        let mut tool = self.asked.tool.as_ref().filter(|t| t.known).map(|t| t.name.clone());
        match result {
            // A cancelled request's result never reaches the client.
            _ if cancellation.is_some() && !panicked => {}
            Err(e) => {
                let code = e.code.0.to_string();
                failure.status_code = Some(KeyValue::new(attr::RPC_RESPONSE_STATUS_CODE, code.clone()));
                failure.error_type = Some(match (panicked, self.admission.refusal.as_ref().and_then(|(_, t)| *t)) {
                    (true, _) => Cow::Borrowed("panic"),
                    (false, Some(refused_as)) => Cow::Borrowed(refused_as),
                    (false, None) => Cow::Owned(code),
                });
                failure.describe(&span, server_fault(e.code.0), self.error_description(e));
            }
            Ok(value) => {
                if let Some(prompt) = &self.asked.prompt {
                    span.update_name(format!("{} {prompt}", self.asked.method));
                }
                if let Some(result) = tool_result(value) {
                    if tool.is_none() {
                        tool = self.answered_for(&span);
                    }
                    self.record_tool_result(&span, result, &mut failure);
                }
            }
        }
        if let (Some((why, _)), false) = (&cancellation, panicked) {
            failure.error_type = Some(Cow::Borrowed(why.error_type()));
            failure.describe(&span, false, why.description().to_owned());
        }
        if let Some(error_type) = &failure.error_type {
            span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type.clone()));
        }
        if let Some(code) = &failure.status_code {
            span.set_attribute(code.clone());
        }
        if let Some(usage) = reported {
            // What this server spends counts at once, not only when the database is read again.
            if let (Some(user), Some(gate), Some(tool)) =
                (&self.admission.budgeted, &self.shared.settings.budgets, &self.asked.tool)
            {
                gate.spent(user.as_deref(), &tool.name, &usage);
            }
            record_usage(&span, usage);
        }
        if let Some(session) = &self.session {
            session.touch();
        }
        // A cancelled request ends when it was given up.
        let (ended, elapsed) = match cancellation {
            Some((_, at)) => {
                let late = SystemTime::now().duration_since(at).unwrap_or_default();
                (at, self.started.elapsed().saturating_sub(late))
            }
            None => (SystemTime::now(), self.started.elapsed()),
        };
        self.record_duration(elapsed.as_secs_f64(), tool, failure);
        span.end_with_timestamp(ended);
    }

    /// `mcp.server.operation.duration`, with the attributes the conventions give it.
    fn record_duration(&self, seconds: f64, tool: Option<Cow<'static, str>>, failure: Failure) {
        // On the stack: the labels are read, not kept, by the histogram.
        let mut labels: [KeyValue; 10] = std::array::from_fn(|_| KeyValue::new("", ""));
        let mut len = 0;
        let tool = tool.map(|tool| {
            [
                KeyValue::new(attr::GEN_AI_TOOL_NAME, tool),
                KeyValue::new(attr::GEN_AI_OPERATION_NAME, attr::OPERATION_EXECUTE_TOOL),
            ]
        });
        let prompt = self.asked.prompt.as_ref().map(|p| KeyValue::new(attr::GEN_AI_PROMPT_NAME, p.clone()));
        let labelled = std::iter::once(KeyValue::new(attr::MCP_METHOD_NAME, self.asked.method.clone()))
            .chain(tool.into_iter().flatten())
            .chain(prompt)
            .chain(failure.error_type.map(|e| KeyValue::new(attr::ERROR_TYPE, e)))
            .chain(failure.status_code)
            .chain(self.protocol.clone())
            .chain(self.network.attributes());
        for label in labelled.take(labels.len()) {
            labels[len] = label;
            len += 1;
        }
        self.shared.metrics().operation_duration.record(seconds, &labels[..len]);
    }

    /// The server answered a call of a tool it did not list: it has the tool after all. Its
    /// name is recorded, and known from now on.
    fn answered_for(&self, span: &opentelemetry::trace::SpanRef<'_>) -> Option<Cow<'static, str>> {
        let name = &self.asked.tool.as_ref()?.name;
        let (tool, span_name) = match self.shared.intern_tool(name) {
            Some((tool, span_name)) => (Cow::Borrowed(tool), Cow::Borrowed(span_name)),
            None => (name.clone(), Cow::Owned(format!("{} {name}", self.asked.method))),
        };
        span.set_attribute(KeyValue::new(attr::GEN_AI_TOOL_NAME, tool.clone()));
        span.update_name(span_name);
        Some(tool)
    }

    /// The span status of a JSON-RPC error. An invalid-params message quotes the arguments
    /// (serde's "invalid type: string \"hunter2\", expected u32"): unless this tool's content
    /// may be captured, only the error class is kept.
    fn error_description(&self, error: &McpError) -> String {
        let captured = self.asked.tool.as_ref().is_some_and(|t| t.capture);
        if error.code == rmcp::model::ErrorCode::INVALID_PARAMS && !captured {
            INVALID_PARAMS_DESCRIPTION.to_owned()
        } else {
            error.message.to_string()
        }
    }

    fn record_tool_result(
        &self,
        span: &opentelemetry::trace::SpanRef<'_>,
        result: &CallToolResult,
        failure: &mut Failure,
    ) {
        let captured = self.asked.tool.as_ref().is_some_and(|t| t.capture);
        let text = (captured || self.asked.arguments_json.is_some()).then(|| usage::result_text(result));
        if result.is_error == Some(true) {
            failure.error_type = Some(Cow::Borrowed(attr::ERROR_TYPE_TOOL_ERROR));
            // The result text may hold anything: it becomes the description only when capture
            // of this tool is allowed.
            let description = match (&text, captured) {
                (Some(text), true) => self.shared.settings.capture.capture_text(text),
                _ => attr::ERROR_TYPE_TOOL_ERROR.to_owned(),
            };
            // The tool failed: the server's failure, whoever's input it failed on.
            failure.describe(span, true, description);
        }
        if captured {
            let value = serde_json::to_value(result).unwrap_or_default();
            span.set_attribute(KeyValue::new(
                attr::GEN_AI_TOOL_CALL_RESULT,
                self.shared.settings.capture.capture(&value),
            ));
        }
        if let (Some(arguments), Some(text)) = (&self.asked.arguments_json, &text) {
            let estimation = self.shared.settings.estimation;
            if let (Some(input), Some(output)) = (estimation.estimate(text), estimation.estimate(arguments)) {
                span.set_attribute(KeyValue::new(attr::ARCHON_USAGE_ESTIMATED_INPUT_TOKENS, input as i64));
                span.set_attribute(KeyValue::new(attr::ARCHON_USAGE_ESTIMATED_OUTPUT_TOKENS, output as i64));
            }
        }
    }
}

/// How a request failed, as far as its span and duration metric say.
#[derive(Default)]
struct Failure {
    error_type: Option<Cow<'static, str>>,
    /// `rpc.response.status_code`, of a JSON-RPC error.
    status_code: Option<KeyValue>,
}

impl Failure {
    /// Describes the failure: as the span's error status when the server failed, else — the
    /// caller's mistake or choice, which the conventions leave out of a server span's status —
    /// as [`ARCHON_ERROR_MESSAGE`](attr::ARCHON_ERROR_MESSAGE).
    fn describe(&self, span: &opentelemetry::trace::SpanRef<'_>, server_fault: bool, description: String) {
        if server_fault {
            span.set_status(Status::error(description));
        } else if !description.is_empty() {
            span.set_attribute(KeyValue::new(attr::ARCHON_ERROR_MESSAGE, description));
        }
    }
}

/// Whether a JSON-RPC error is the server's failure: an internal error (-32603) or an
/// implementation-defined server error (-32000…-32099). Parse errors, invalid requests, unknown
/// methods and invalid params are the caller's.
fn server_fault(code: i32) -> bool {
    code == rmcp::model::ErrorCode::INTERNAL_ERROR.0 || (-32099..=-32000).contains(&code)
}

/// Starts the request's span: its parent the context the request carries, the transport's
/// linked ([`Propagated`]).
fn start_span(
    shared: &Shared,
    ctx: &RequestContext<RoleServer>,
    name: Cow<'static, str>,
    arrival: Arrival,
    attributes: Vec<KeyValue>,
) -> Context {
    let propagated = Propagated::extract(&ctx.extensions, &ctx.meta.0);
    let mut span = SpanBuilder::from_name(name)
        .with_kind(SpanKind::Server)
        .with_start_time(arrival.at)
        .with_attributes(attributes);
    if !propagated.links.is_empty() {
        span = span.with_links(propagated.links);
    }
    shared.tracer().start(span, &propagated.parent)
}

fn record_usage(span: &opentelemetry::trace::SpanRef<'_>, usage: Usage) {
    if let Some(model) = usage.model {
        span.set_attribute(KeyValue::new(attr::GEN_AI_REQUEST_MODEL, model));
    }
    if let Some(n) = usage.input_tokens {
        span.set_attribute(KeyValue::new(attr::GEN_AI_USAGE_INPUT_TOKENS, n as i64));
    }
    if let Some(n) = usage.output_tokens {
        span.set_attribute(KeyValue::new(attr::GEN_AI_USAGE_OUTPUT_TOKENS, n as i64));
    }
    if let Some(cost) = usage.cost {
        span.set_attribute(KeyValue::new(attr::ARCHON_COST_AMOUNT, cost));
        span.set_attribute(KeyValue::new(attr::ARCHON_COST_CURRENCY, usage.currency.unwrap_or_else(|| "USD".into())));
    }
}
