//! An rmcp server over streamable HTTP (axum), traced, users from HS256 JWTs.
//!
//! ```text
//! ARCHON_JWT_SECRET=… cargo run -p archon-mcp-instrument --example http   # serves http://127.0.0.1:8000/mcp
//! ```

use std::sync::Arc;

use archon_mcp_instrument::attributes::DisconnectReason;
use archon_mcp_instrument::user::{EnvUser, JwtUser, UserResolverExt};
use archon_mcp_instrument::{Telemetry, TracedConfig};
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::{ErrorData as McpError, ServerHandler};
use tokio_util::sync::CancellationToken;

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
        Ok(CallToolResult::success(vec![ContentBlock::text("hello")]).into())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = Telemetry::builder().service_name("hello-http").otlp().install()?;
    let secret = std::env::var("ARCHON_JWT_SECRET").unwrap_or_else(|_| "change-me".into());
    // One config for every server instance the factory makes: they share stateless sessions.
    let config =
        TracedConfig::builder().user_resolver(JwtUser::hs256(secret.as_bytes()).or(EnvUser::from_env())).build();
    // Every server instance traced with `config`, its sessions watched as they end (DELETE, the
    // client's stream closing, keep-alive expiry); the token closes every stream on shutdown.
    let stop = CancellationToken::new();
    let service = config.streamable_http_service(
        || Ok(Hello),
        StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    eprintln!("serving http://127.0.0.1:8000/mcp");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Sessions end at the signal, not whenever the last connection lets go.
            config.end_sessions(DisconnectReason::ServerShutdown);
            stop.cancel();
        })
        .await?;
    telemetry.shutdown();
    Ok(())
}
