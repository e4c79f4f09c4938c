//! [`Traced`]: any rmcp [`ServerHandler`], observed.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use rmcp::ErrorData as McpError;
use rmcp::ServerHandler;
use rmcp::model::*;
use rmcp::service::{
    MaybeSendFuture, NotificationContext, RequestContext, RoleServer, RunningService, ServerInitializeError,
    SubscriptionContext,
};
use rmcp::transport::IntoTransport;

use crate::attributes::DisconnectReason;
use crate::call::Call;
use crate::config::TracedConfig;
use crate::connection::{Connection, UnexplainedEnd};
use crate::runtime::Shared;
use crate::target::Target;
use crate::transport::ObservedTransport;
use crate::usage::TokenEstimation;

/// An rmcp server whose every request becomes an OpenTelemetry span (docs/span-contract.md), with the
/// analytics session, the client and the user.
///
/// One `Traced` value serves one connection (stdio, or a legacy HTTP session): its analytics
/// session starts with the first tool call and ends when the connection does. Serve it with
/// [`Traced::serve`] (what `.serve(transport)` calls) so the end of input is seen at once, and
/// over streamable HTTP give the service a [`TracedSessionManager`](crate::TracedSessionManager).
/// Stateless HTTP requests share sessions through the [`TracedConfig`].
///
/// ```no_run
/// use archon_mcp_instrument::{TracedConfig, TracedExt};
/// use rmcp::{ServerHandler, ServiceExt, model::{ServerCapabilities, ServerConfig}};
///
/// #[derive(Clone)]
/// struct Notes;
/// impl ServerHandler for Notes {
///     fn get_info(&self) -> ServerConfig {
///         ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
///     }
/// }
///
/// # async fn run() -> anyhow::Result<()> {
/// let server = Notes.traced(TracedConfig::default()).serve(rmcp::transport::stdio()).await?;
/// server.waiting().await?;
/// # Ok(()) }
/// ```
pub struct Traced<H> {
    pub(crate) inner: H,
    pub(crate) shared: Arc<Shared>,
    /// Set by [`Traced::serve`], or at the first request that tells which connection this is.
    connection: OnceLock<Arc<Connection>>,
}

impl<H> Traced<H> {
    /// Wraps a server.
    pub fn new(inner: H, config: TracedConfig) -> Self {
        Self { inner, shared: config.shared, connection: OnceLock::new() }
    }

    /// The wrapped server.
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// Ends this connection's analytics session now, for `reason` (e.g. a transport error the
    /// application saw). Later requests start a new one.
    pub fn end_session(&self, reason: DisconnectReason) {
        if let Some(connection) = self.connection.get() {
            connection.end_session(reason, None);
        }
    }

    /// The connection a request arrived on: the one [`Traced::serve`] watches, the streamable-HTTP
    /// session's (watched by a [`TracedSessionManager`](crate::TracedSessionManager), when there
    /// is one), or a new one — a request of its own for stateless HTTP.
    fn connection(&self, context: &RequestContext<RoleServer>) -> Arc<Connection> {
        if let Some(connection) = self.connection.get() {
            return connection.clone();
        }
        let Some(parts) = context.extensions.get::<http::request::Parts>() else {
            return self.connection.get_or_init(|| Connection::new(UnexplainedEnd::ClientDisconnect)).clone();
        };
        match parts.headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            Some(id) => self
                .connection
                .get_or_init(|| {
                    self.shared.connections.get(id).unwrap_or_else(|| Connection::new(UnexplainedEnd::Inactivity))
                })
                .clone(),
            // `initialize` of a legacy session (it has no id yet), or a stateless request.
            None => Connection::new(UnexplainedEnd::Inactivity),
        }
    }
}

impl<H: ServerHandler> Traced<H> {
    /// Serves the connection of `transport`, watching it: when its input ends or a message
    /// cannot be delivered, the analytics session ends then (`client_disconnect`,
    /// `transport_error`) and requests still running are recorded as cancelled.
    ///
    /// Being an inherent method, it is what `server.traced(config).serve(transport)` calls, in
    /// place of [`rmcp::ServiceExt::serve`]; the result is the same [`RunningService`].
    ///
    /// ```no_run
    /// # use archon_mcp_instrument::{TracedConfig, TracedExt};
    /// # #[derive(Clone)] struct MyServer;
    /// # impl rmcp::ServerHandler for MyServer {}
    /// # async fn run() -> anyhow::Result<()> {
    /// let server = MyServer.traced(TracedConfig::default()).serve(rmcp::transport::stdio()).await?;
    /// server.waiting().await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve<T, E, A>(self, transport: T) -> Result<RunningService<RoleServer, Self>, ServerInitializeError>
    where
        T: IntoTransport<RoleServer, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let connection = self.connection.get_or_init(|| Connection::new(UnexplainedEnd::ClientDisconnect)).clone();
        let transport = ObservedTransport::new(transport.into_transport(), connection);
        rmcp::ServiceExt::serve(self, transport).await
    }
}

impl<H> Drop for Traced<H> {
    fn drop(&mut self) {
        // rmcp drops the server when its connection has closed. Unless a watched transport has
        // already said how, read the end as this kind of connection's: end of input for stdio,
        // inactivity for an HTTP session (rmcp's keep-alive).
        if let Some(connection) = self.connection.get() {
            connection.transport_closed();
        }
    }
}

impl<H: std::fmt::Debug> std::fmt::Debug for Traced<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traced").field("inner", &self.inner).finish_non_exhaustive()
    }
}

/// `server.traced(config)` for any [`ServerHandler`].
pub trait TracedExt: ServerHandler {
    /// Wraps the server in [`Traced`].
    fn traced(self, config: TracedConfig) -> Traced<Self> {
        Traced::new(self, config)
    }
}

impl<H: ServerHandler> TracedExt for H {}

fn no_tool_result<T>(_: &T) -> Option<&CallToolResult> {
    None
}

fn complete_tool_result(response: &CallToolResponse) -> Option<&CallToolResult> {
    match response {
        CallToolResponse::Complete(result) => Some(result),
        _ => None,
    }
}

impl<H: ServerHandler> Traced<H> {
    fn call(
        &self,
        method: &'static str,
        target: Target<'_>,
        arguments: Option<&JsonObject>,
        context: &RequestContext<RoleServer>,
    ) -> Call {
        Call::begin(&self.shared, self.connection(context), Cow::Borrowed(method), target, arguments, context)
    }
}

// Every method of rmcp's `ServerHandler` is forwarded (tests/server/forwarding.rs checks the
// list against rmcp's source). Requests run inside a span; notifications and the synchronous
// accessors are forwarded as they are. Deprecated methods are forwarded too: servers still
// implement them.
#[allow(deprecated)]
impl<H: ServerHandler> ServerHandler for Traced<H> {
    fn ping(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let call = self.call(PingRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.ping(context), no_tool_result)
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(InitializeResultMethod::VALUE, Target::Client(&request.client_info), None, &context);
        call.run(self.inner.initialize(request, context), no_tool_result)
    }

    fn negotiate_initialize(&self, request: &InitializeRequestParams) -> Result<InitializeResult, McpError> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<DiscoverResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(DiscoverRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.discover(context), no_tool_result)
    }

    fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CompleteResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(CompleteRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.complete(request, context), no_tool_result)
    }

    fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let call = self.call(SetLevelRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.set_level(request, context), no_tool_result)
    }

    fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetPromptResponse, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(GetPromptRequestMethod::VALUE, Target::Prompt(&request.name), None, &context);
        call.run(self.inner.get_prompt(request, context), no_tool_result)
    }

    fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListPromptsResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(ListPromptsRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.list_prompts(request, context), no_tool_result)
    }

    fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(ListResourcesRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.list_resources(request, context), no_tool_result)
    }

    fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourceTemplatesResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(ListResourceTemplatesRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.list_resource_templates(request, context), no_tool_result)
    }

    fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(ReadResourceRequestMethod::VALUE, Target::Resource(&request.uri), None, &context);
        call.run(self.inner.read_resource(request, context), no_tool_result)
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    // A subscription lasts as long as the client listens: not a request span.
    fn listen(
        &self,
        context: SubscriptionContext,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.listen(context)
    }

    fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let call = self.call(SubscribeRequestMethod::VALUE, Target::Resource(&request.uri), None, &context);
        call.run(self.inner.subscribe(request, context), no_tool_result)
    }

    fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let call = self.call(UnsubscribeRequestMethod::VALUE, Target::Resource(&request.uri), None, &context);
        call.run(self.inner.unsubscribe(request, context), no_tool_result)
    }

    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, McpError>> + MaybeSendFuture + '_ {
        let (known, interned) = self.shared.tool(&request.name, || self.inner.get_tool(&request.name).is_some());
        let target = Target::Tool { name: &request.name, known, interned };
        let call = self.call(CallToolRequestMethod::VALUE, target, request.arguments.as_ref(), &context);
        call.run(self.inner.call_tool(request, context), complete_tool_result)
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, McpError>> + MaybeSendFuture + '_ {
        let connection = self.connection(&context);
        let call = Call::begin(
            &self.shared,
            connection.clone(),
            Cow::Borrowed(ListToolsRequestMethod::VALUE),
            Target::None,
            None,
            &context,
        );
        async move {
            let result = call.run(self.inner.list_tools(request, context), no_tool_result).await;
            // The catalog enters the client's model context: its size, estimated as elsewhere.
            // Its tools are known from now on, without asking the server per call.
            if let Ok(list) = &result {
                for tool in &list.tools {
                    self.shared.intern_tool(&tool.name);
                }
                if let Some(tokens) =
                    serde_json::to_string(&list.tools).ok().and_then(|t| TokenEstimation::CharsDiv4.estimate(&t))
                {
                    connection.catalog_sent(tokens);
                }
            }
            result
        }
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CustomResult, McpError>> + MaybeSendFuture + '_ {
        // The method is the client's word: an attribute, never the span name.
        let call = Call::begin(
            &self.shared,
            self.connection(&context),
            Cow::Owned(request.method.clone()),
            Target::None,
            None,
            &context,
        );
        call.run(self.inner.on_custom_request(request, context), no_tool_result)
    }

    fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        // rmcp has cancelled the request's token already; its span needs the reason.
        if let (Some(connection), Some(id)) = (self.connection.get(), &notification.request_id) {
            connection.cancelled(&id.to_string(), notification.reason.as_deref());
        }
        let span = crate::notification::span(&self.shared, CancelledNotificationMethod::VALUE, &context);
        crate::notification::handled(span, self.inner.on_cancelled(notification, context))
    }

    fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let span = crate::notification::span(&self.shared, ProgressNotificationMethod::VALUE, &context);
        crate::notification::handled(span, self.inner.on_progress(notification, context))
    }

    fn on_initialized(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let span = crate::notification::span(&self.shared, InitializedNotificationMethod::VALUE, &context);
        crate::notification::handled(span, self.inner.on_initialized(context))
    }

    fn on_roots_list_changed(
        &self,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        let span = crate::notification::span(&self.shared, RootsListChangedNotificationMethod::VALUE, &context);
        crate::notification::handled(span, self.inner.on_roots_list_changed(context))
    }

    fn on_custom_notification(
        &self,
        notification: CustomNotification,
        context: NotificationContext<RoleServer>,
    ) -> impl Future<Output = ()> + MaybeSendFuture + '_ {
        self.inner.on_custom_notification(notification, context)
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetTaskResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(GetTaskMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.get_task(request, context), no_tool_result)
    }

    fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let call = self.call(UpdateTaskMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.update_task(request, context), no_tool_result)
    }

    fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        let call = self.call(CancelTaskMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.cancel_task(request, context), no_tool_result)
    }

    fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListSkillsResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(ListSkillsRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.list_skills(request, context), no_tool_result)
    }

    fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<GetSkillResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(GetSkillRequestMethod::VALUE, Target::None, None, &context);
        call.run(self.inner.get_skill(request, context), no_tool_result)
    }

    fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceDirectoryResult, McpError>> + MaybeSendFuture + '_ {
        let call = self.call(ReadResourceDirectoryRequestMethod::VALUE, Target::Resource(&request.uri), None, &context);
        call.run(self.inner.read_resource_directory(request, context), no_tool_result)
    }
}
