//! The knowledge/task MCP server, instrumented with `Traced`.
//!
//! ```text
//! # streamable HTTP at http://127.0.0.1:8000/mcp, spans over OTLP to a collector
//! cargo run --example tool_server -- --transport http --listen 127.0.0.1:8000 \
//!     --otlp-endpoint http://127.0.0.1:4317 --jwt-secret change-me
//! # stdio (for a desktop client's config), spans straight to PostgreSQL
//! ARCHON_USER_ID=ada ARCHON_USER_EMAIL=ada@example.com \
//!     cargo run --example tool_server -- --transport stdio --database-url postgres://…
//! ```

use std::net::SocketAddr;

use anyhow::Context as _;
use archon_mcp_exporter::PgSpanExporter;
use archon_mcp_exporter::store::{PgStore, StoreConfig};
use archon_mcp_instrument::user::{EnvUser, JwtUser, UserResolver, UserResolverExt};
use archon_mcp_instrument::{Telemetry, TracedConfig, TracedExt};
use archon_mcp_otel::knowledge::KnowledgeServer;
use clap::{Parser, ValueEnum};
use rmcp::ServiceExt as _;
use rmcp::transport::streamable_http_server::{StreamableHttpService, session::local::LocalSessionManager};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Transport {
    Stdio,
    Http,
}

/// A knowledge and task MCP server whose tool calls become OpenTelemetry spans.
#[derive(Debug, Parser)]
#[command(name = "tool_server")]
struct Args {
    /// stdio, or streamable HTTP at /mcp.
    #[arg(long, value_enum, env = "TOOL_SERVER_TRANSPORT", default_value = "http")]
    transport: Transport,
    /// HTTP listen address.
    #[arg(long, env = "TOOL_SERVER_LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Export spans over OTLP/gRPC to this collector (or archon-mcp-exporter serve).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", conflicts_with = "database_url")]
    otlp_endpoint: Option<String>,
    /// Write spans straight to this PostgreSQL (the direct path).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Verify HS256 bearer tokens with this secret (users from `sub`, `email`, `name`, `department`).
    #[arg(long, env = "ARCHON_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let builder = Telemetry::builder().service_name("knowledge").log_to_stderr(true);
    let builder = match (&args.otlp_endpoint, &args.database_url) {
        (Some(endpoint), _) => builder.otlp_endpoint(endpoint.clone()),
        (None, Some(url)) => {
            archon_mcp_exporter::migrate::migrate_url(url).await.context("migrating the database")?;
            builder.exporter(PgSpanExporter::new(PgStore::connect(url, StoreConfig::default())?))
        }
        (None, None) => anyhow::bail!("say where spans go: --otlp-endpoint URL or --database-url URL"),
    };
    let telemetry = builder.install()?;

    let users: Box<dyn UserResolver> = match &args.jwt_secret {
        Some(secret) => Box::new(JwtUser::hs256(secret.as_bytes()).or(EnvUser::from_env())),
        None => Box::new(EnvUser::from_env()),
    };
    let config = TracedConfig::builder().user_resolver(users).build();

    match args.transport {
        Transport::Stdio => {
            let server = KnowledgeServer::new().traced(config).serve(rmcp::transport::stdio()).await?;
            server.waiting().await?;
        }
        Transport::Http => {
            let server = KnowledgeServer::new();
            let service: StreamableHttpService<_, LocalSessionManager> = StreamableHttpService::new(
                move || Ok(server.clone().traced(config.clone())),
                Default::default(),
                Default::default(),
            );
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("listening on {}", args.listen))?;
            eprintln!("serving MCP at http://{}/mcp (Ctrl-C to stop)", args.listen);
            axum::serve(listener, axum::Router::new().nest_service("/mcp", service))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
    }
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    Ok(())
}
