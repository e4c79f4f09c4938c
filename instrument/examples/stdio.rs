//! An rmcp server on stdio, traced, exporting over OTLP.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 ARCHON_USER_ID=ada \
//!     cargo run -p archon-mcp-instrument --example stdio
//! ```

use std::sync::Arc;

use archon_mcp_instrument::{Telemetry, TracedConfig, TracedExt, TracedPeer, usage};
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use tracing::Instrument as _;

#[derive(Clone)]
struct Hello;

impl ServerHandler for Hello {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let schema = serde_json::json!({"type": "object"}).as_object().cloned().unwrap_or_default();
        Ok(ListToolsResult::with_all_items(vec![Tool::new("hello", "Says hello", Arc::new(schema))]))
    }

    async fn call_tool(
        &self,
        _: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // The tool's own work continues the request's trace: this `tracing` span (and an HTTP
        // client that injects the current context) is a child of the `tools/call hello` span.
        let name = async { std::env::var("USER").unwrap_or_else(|_| "world".into()) }
            .instrument(tracing::info_span!("hello.lookup"))
            .await;
        // Asking the client back is a CLIENT span under it too, its context sent in `_meta`.
        let peer = TracedPeer::from(&context);
        let sampling = peer.peer_info().is_some_and(|info| info.capabilities.sampling.is_some());
        #[allow(deprecated)] // sampling: SEP-2577, still sent before protocol 2026-07-28
        let greeting = match sampling {
            true => {
                let ask =
                    CreateMessageRequestParams::new(vec![SamplingMessage::user_text(format!("greet {name}"))], 20);
                peer.create_message(ask)
                    .await
                    .ok()
                    .and_then(|m| m.message.content.first()?.as_text().map(|t| t.text.clone()))
            }
            false => None,
        };
        // Tool code reports the model calls it made; the span carries them.
        usage::record(usage::Usage::new("claude-haiku-4-5").with_tokens(12, 3));
        Ok(CallToolResult::success(vec![ContentBlock::text(greeting.unwrap_or(format!("hello {name}")))]).into())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries the protocol.
    let telemetry = Telemetry::builder().service_name("hello-stdio").otlp().install()?;
    let server = Hello.traced(TracedConfig::default()).serve(rmcp::transport::stdio()).await?;
    server.waiting().await?;
    telemetry.shutdown();
    Ok(())
}
