//! The anchor: what a user would write by hand without this project — a wrapper whose
//! `call_tool` opens a `tracing` span with the attributes `Traced` gives a tool call, exported
//! by tracing-opentelemetry. No analytics session, cancellation, usage or budget tracking.

use rmcp::ErrorData as McpError;
use rmcp::ServerHandler;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams, ServerConfig};
use rmcp::service::{MaybeSendFuture, RequestContext, RoleServer};
use tracing::Instrument as _;
use tracing::field::Empty;

/// A server wrapped by hand.
pub struct Naive<H> {
    pub inner: H,
    pub session: String,
    pub user: archon_mcp_exporter::testing::TestUser,
}

impl<H: ServerHandler> ServerHandler for Naive<H> {
    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListToolsResult, McpError>> + MaybeSendFuture + '_ {
        self.inner.list_tools(request, context)
    }

    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, McpError>> + MaybeSendFuture + '_ {
        let peer = context.peer.peer_info();
        let (client, version, protocol) = peer.as_ref().map_or(("", "", ""), |p| {
            (p.client_info.name.as_str(), p.client_info.version.as_str(), p.protocol_version.as_str())
        });
        let span = tracing::info_span!(
            "tools/call",
            otel.name = %format_args!("tools/call {}", request.name),
            otel.kind = "server",
            mcp.method.name = "tools/call",
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %request.name,
            jsonrpc.request.id = %context.id,
            network.transport = "pipe",
            session.id = %self.session,
            archon.client.name = client,
            archon.client.version = version,
            mcp.protocol.version = protocol,
            user.id = self.user.principal,
            user.email = self.user.email,
            user.full_name = self.user.name,
            archon.user.department = self.user.department,
            error.type = Empty,
        );
        let handled = self.inner.call_tool(request, context);
        let recorder = span.clone();
        async move {
            let result = handled.await;
            if let Err(e) = &result {
                recorder.record("error.type", e.code.0);
            }
            result
        }
        .instrument(span)
    }
}

/// The client side's anchor: a `tracing` span of kind client around rmcp's call, its context
/// injected into `params._meta` by the global propagator, as a user would write it.
pub async fn call(client: &super::Client, mut request: CallToolRequestParams) {
    use opentelemetry::propagation::Injector;
    use rmcp::model::RequestParamsMeta as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    struct Meta<'a>(&'a mut rmcp::model::JsonObject);
    impl Injector for Meta<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), value.into());
        }
    }
    let span = tracing::info_span!(
        "tools/call",
        otel.name = %format_args!("tools/call {}", request.name),
        otel.kind = "client",
        mcp.method.name = "tools/call",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %request.name,
        error.type = Empty,
    );
    let cx = span.context();
    let meta: &mut rmcp::model::JsonObject = request.meta_mut().get_or_insert_with(Default::default);
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&cx, &mut Meta(meta)));
    let recorder = span.clone();
    if let Err(e) = client.call_tool(request).instrument(span).await {
        recorder.record("error.type", e.to_string());
    }
}
