//! An rmcp server on stdio, traced, exporting over OTLP.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 ARCHON_USER_ID=ada \
//!     cargo run -p archon-mcp-instrument --example stdio
//! ```

use std::sync::Arc;

use archon_mcp_instrument::{Telemetry, TracedConfig, TracedExt, usage};
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};

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
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // Tool code reports the model calls it made; the span carries them.
        usage::record(usage::Usage::new("claude-haiku-4-5").with_tokens(12, 3));
        Ok(CallToolResult::success(vec![ContentBlock::text("hello")]).into())
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
