//! [`TracedClient`]: an rmcp client whose requests are CLIENT spans by the MCP conventions,
//! each carrying the caller's context to the server in `params._meta` — so the agent's span,
//! the client's request, the server's span and what the tool does are one trace.
//!
//! rmcp sends a request from its own task, where the caller's context is gone: the context is
//! taken, and injected, where the caller calls — in [`TracedClient`]'s methods, which then call
//! rmcp's own. Methods it does not trace are rmcp's, through `Deref`.
//!
//! ```no_run
//! use archon_mcp_instrument::{TracedClientExt, TracedConfig};
//! use rmcp::ServiceExt;
//! use rmcp::model::CallToolRequestParams;
//! # async fn run(transport: rmcp::transport::TokioChildProcess) -> anyhow::Result<()> {
//! let client = rmcp::model::ClientConfig::default().serve(transport).await?.traced(TracedConfig::default());
//! let result = client.call_tool(CallToolRequestParams::new("search")).await?; // a CLIENT span, `_meta` injected
//! let tools = client.list_all_tools().await?;
//! client.cancel().await?; // records mcp.client.session.duration
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::{FutureExt as _, SpanBuilder, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, GetPromptRequestParams, GetPromptResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResult, RequestParamsMeta, Tool,
};
use rmcp::service::{QuitReason, RunningService, Service, ServiceError};

use crate::attributes as attr;
use crate::config::TracedConfig;
use crate::outbound::{Abandoned, Failure, inject};
use crate::runtime::Shared;

/// `.traced(config)` for a running rmcp client.
pub trait TracedClientExt<S: Service<RoleClient>> {
    /// Traces this client's requests with `config`'s tracer and meter.
    fn traced(self, config: TracedConfig) -> TracedClient<S>;
}

impl<S: Service<RoleClient>> TracedClientExt<S> for RunningService<RoleClient, S> {
    fn traced(self, config: TracedConfig) -> TracedClient<S> {
        TracedClient { service: Some(self), shared: config.shared, started: Instant::now() }
    }
}

/// A running rmcp client whose `tools/call`, `tools/list`, `prompts/get` and `resources/read`
/// are CLIENT spans, children of the caller's context, recorded in
/// `mcp.client.operation.duration`; its life is `mcp.client.session.duration`. Everything
/// else is rmcp's client, through `Deref`.
pub struct TracedClient<S: Service<RoleClient>> {
    /// Always there until [`cancel`](Self::cancel) takes it.
    service: Option<RunningService<RoleClient, S>>,
    shared: Arc<Shared>,
    started: Instant,
}

impl<S: Service<RoleClient>> Deref for TracedClient<S> {
    type Target = RunningService<RoleClient, S>;

    fn deref(&self) -> &Self::Target {
        self.service.as_ref().expect("a TracedClient holds its service until cancel")
    }
}

impl<S: Service<RoleClient>> TracedClient<S> {
    /// `tools/call`, traced.
    pub async fn call_tool(&self, params: CallToolRequestParams) -> Result<CallToolResult, ServiceError> {
        let tool = Cow::Owned(params.name.to_string());
        let request = Request { method: attr::METHOD_TOOLS_CALL, target: Target::Tool(tool) };
        self.traced(request, params, |params| self.deref().call_tool(params)).await
    }

    /// `tools/list`, traced (one page).
    pub async fn list_tools(&self, params: Option<PaginatedRequestParams>) -> Result<ListToolsResult, ServiceError> {
        let request = Request { method: "tools/list", target: Target::None };
        self.traced(request, params.unwrap_or_default(), |params| self.deref().list_tools(Some(params))).await
    }

    /// Every page of `tools/list`, one span each.
    pub async fn list_all_tools(&self) -> Result<Vec<Tool>, ServiceError> {
        let mut tools = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor))).await?;
            tools.extend(page.tools);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(tools),
            }
        }
    }

    /// `prompts/get`, traced.
    pub async fn get_prompt(&self, params: GetPromptRequestParams) -> Result<GetPromptResult, ServiceError> {
        let request = Request { method: "prompts/get", target: Target::Prompt(params.name.clone()) };
        self.traced(request, params, |params| self.deref().get_prompt(params)).await
    }

    /// `resources/read`, traced.
    pub async fn read_resource(&self, params: ReadResourceRequestParams) -> Result<ReadResourceResult, ServiceError> {
        let request = Request { method: "resources/read", target: Target::Resource(params.uri.clone()) };
        self.traced(request, params, |params| self.deref().read_resource(params)).await
    }

    /// Closes the connection, recording the session's duration.
    pub async fn cancel(mut self) -> Result<QuitReason, tokio::task::JoinError> {
        self.record_session(None);
        let service = self.service.take().expect("a TracedClient holds its service until cancel");
        service.cancel().await
    }

    /// Runs `call` with `params` inside a CLIENT span of the caller's context, the span's context
    /// injected into `params._meta`.
    async fn traced<P: RequestParamsMeta, T: Outcome, F: Future<Output = Result<T, ServiceError>>>(
        &self,
        request: Request,
        mut params: P,
        call: impl FnOnce(P) -> F,
    ) -> Result<T, ServiceError> {
        let started = Instant::now();
        // The metric's labels, and the span's attributes: the same, and the resource URI.
        let mut labels = request.labels();
        labels.extend(self.protocol());
        let mut attributes = labels.clone();
        if let Target::Resource(uri) = &request.target {
            attributes.push(KeyValue::new(attr::MCP_RESOURCE_URI, uri.clone()));
        }
        let name = request.span_name();
        let cx = self.shared.tracer().start(
            SpanBuilder::from_name(name).with_kind(SpanKind::Client).with_attributes(attributes),
            &Context::current(),
        );
        inject(&cx, params.meta_mut().get_or_insert_with(Default::default));
        let mut abandoned = Abandoned(Some(&cx));
        let result = call(params).with_context(cx.clone()).await;
        abandoned.0 = None;
        let failure = match &result {
            Ok(value) => value.error_type().map(Failure::of_result),
            Err(e) => Some(Failure::of(e)),
        };
        if let Some(failure) = failure {
            failure.record(&cx, &mut labels);
        }
        cx.span().end();
        self.shared.metrics().client_operation_duration.record(started.elapsed().as_secs_f64(), &labels);
        result
    }

    /// `mcp.protocol.version`, as the server answered `initialize`.
    fn protocol(&self) -> Option<KeyValue> {
        let info = self.service.as_ref()?.peer_info()?;
        Some(KeyValue::new(attr::MCP_PROTOCOL_VERSION, info.protocol_version.to_string()))
    }

    fn record_session(&self, error_type: Option<&'static str>) {
        let mut labels: Vec<KeyValue> = self.protocol().into_iter().collect();
        labels.extend(error_type.map(|e| KeyValue::new(attr::ERROR_TYPE, e)));
        self.shared.metrics().client_session_duration.record(self.started.elapsed().as_secs_f64(), &labels);
    }
}

impl<S: Service<RoleClient>> Drop for TracedClient<S> {
    fn drop(&mut self) {
        // Dropped without `cancel`: the session ends now all the same.
        if self.service.is_some() {
            self.record_session(None);
        }
    }
}

/// What a traced request names.
enum Target {
    None,
    Tool(Cow<'static, str>),
    Prompt(String),
    Resource(String),
}

/// A request about to be sent.
struct Request {
    method: &'static str,
    target: Target,
}

impl Request {
    /// `{mcp.method.name} {target}`: the tool or prompt; never a resource URI (unbounded).
    fn span_name(&self) -> String {
        match &self.target {
            Target::Tool(name) => format!("{} {name}", self.method),
            Target::Prompt(name) => format!("{} {name}", self.method),
            Target::None | Target::Resource(_) => self.method.to_owned(),
        }
    }

    /// The attributes the duration metric carries too.
    fn labels(&self) -> Vec<KeyValue> {
        let mut labels = vec![KeyValue::new(attr::MCP_METHOD_NAME, self.method)];
        match &self.target {
            Target::Tool(name) => {
                labels.push(KeyValue::new(attr::GEN_AI_TOOL_NAME, name.clone()));
                labels.push(KeyValue::new(attr::GEN_AI_OPERATION_NAME, attr::OPERATION_EXECUTE_TOOL));
            }
            Target::Prompt(name) => labels.push(KeyValue::new(attr::GEN_AI_PROMPT_NAME, name.clone())),
            Target::None | Target::Resource(_) => {}
        }
        labels
    }
}

/// A result that may still be a failure: a tool result with `isError`.
trait Outcome {
    fn error_type(&self) -> Option<&'static str> {
        None
    }
}

impl Outcome for CallToolResult {
    fn error_type(&self) -> Option<&'static str> {
        (self.is_error == Some(true)).then_some(attr::ERROR_TYPE_TOOL_ERROR)
    }
}
impl Outcome for ListToolsResult {}
impl Outcome for GetPromptResult {}
impl Outcome for ReadResourceResult {}
