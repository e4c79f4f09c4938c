//! The knowledge/task MCP server, instrumented with `Traced`.
//!
//! ```text
//! # streamable HTTP at http://127.0.0.1:8000/mcp, spans over OTLP to a collector
//! cargo run --bin tool_server -- --transport http --listen 127.0.0.1:8000 \
//!     --otlp-endpoint http://127.0.0.1:4317 --jwt-secret change-me
//! # stdio (for a desktop client's config), spans straight to PostgreSQL
//! ARCHON_USER_ID=ada ARCHON_USER_EMAIL=ada@example.com \
//!     cargo run --bin tool_server -- --transport stdio --database-url postgres://…
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use archon_mcp_exporter::{PgSpanExporter, secret};
use archon_mcp_exporter::{PgStore, StoreConfig};
use archon_mcp_instrument::attributes::DisconnectReason;
use archon_mcp_instrument::budget::{AnonymousCalls, BudgetGate};
use archon_mcp_instrument::usage::TokenEstimation;
use archon_mcp_instrument::user::{EnvUser, JwtUser, UserResolver, UserResolverExt};
use archon_mcp_instrument::{Telemetry, TracedConfig, TracedExt};
use archon_mcp_otel::knowledge::KnowledgeServer;
use clap::{Parser, ValueEnum};
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use tokio_util::sync::CancellationToken;

/// How long connections get to close after SIGINT/SIGTERM before the server exits anyway.
const DRAIN: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Transport {
    Stdio,
    Http,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Anonymous {
    Budgeted,
    Refused,
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
    /// Prefer --jwt-secret-file or the environment: a flag's value is visible in `ps`.
    #[arg(long, env = "ARCHON_JWT_SECRET", hide_env_values = true, conflicts_with = "jwt_secret_file")]
    jwt_secret: Option<String>,
    /// Refuse tool calls of users and departments over their budget, as read from this
    /// database every 30 s (`archon-mcp-exporter budgets set …`); off when not given.
    #[arg(long, env = "ARCHON_BUDGETS_DATABASE_URL", hide_env_values = true)]
    budgets_database_url: Option<String>,
    /// With budgets enforced, calls without credentials: `budgeted` (against the `anonymous`
    /// budget; refused when there is none while per-user budgets exist) or `refused`.
    #[arg(long, value_enum, env = "TOOL_SERVER_ANONYMOUS_CALLS", default_value = "budgeted")]
    anonymous_calls: Anonymous,
    /// Do not estimate tokens (characters ÷ 4 of arguments and results) for tools that report
    /// no usage; estimates are flagged `estimated` and priced by `serve --estimate-model`.
    #[arg(long, env = "TOOL_SERVER_NO_TOKEN_ESTIMATION")]
    no_token_estimation: bool,
    /// Read the HS256 secret from this file (surrounding whitespace ignored).
    #[arg(long, env = "ARCHON_JWT_SECRET_FILE")]
    jwt_secret_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Secrets first: an unusable one stops the server before it touches anything.
    for warning in secret::on_command_line(std::env::args(), &["--jwt-secret"]) {
        eprintln!("warning: {warning}");
    }
    let jwt_secret = match &args.jwt_secret_file {
        Some(path) => Some(secret::read_file("--jwt-secret-file", path, secret::JWT_SECRET_MIN_BYTES)?),
        None => args
            .jwt_secret
            .clone()
            .map(|s| secret::check("--jwt-secret", s, secret::JWT_SECRET_MIN_BYTES))
            .transpose()?,
    };
    if let Some(short) = jwt_secret.as_ref().filter(|s| s.len() < secret::JWT_SECRET_RECOMMENDED_BYTES) {
        eprintln!(
            "warning: the JWT secret is {} bytes; RFC 7518 asks for {} or more for HS256 (`openssl rand -base64 32`)",
            short.len(),
            secret::JWT_SECRET_RECOMMENDED_BYTES
        );
    }
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

    let users: Box<dyn UserResolver> = match &jwt_secret {
        Some(secret) => Box::new(JwtUser::hs256(secret.as_bytes()).or(EnvUser::from_env())),
        None => Box::new(EnvUser::from_env()),
    };
    let estimation = if args.no_token_estimation { TokenEstimation::Off } else { TokenEstimation::CharsDiv4 };
    let mut config = TracedConfig::builder().user_resolver(users).token_estimation(estimation);
    if let Some(url) = args.budgets_database_url.clone() {
        let policy = match args.anonymous_calls {
            Anonymous::Budgeted => AnonymousCalls::Budgeted,
            Anonymous::Refused => AnonymousCalls::Refused,
        };
        let gate = BudgetGate::new(Duration::from_secs(120)).with_anonymous_calls(policy);
        archon_mcp_exporter::budgets::gate::refresh_from_postgres(&gate, url, Duration::from_secs(30));
        config = config.enforce_budgets(gate);
    }
    let config = config.build();

    // On SIGINT/SIGTERM: sessions end as `server_shutdown` at the signal, open streams close,
    // and the server exits within DRAIN even if a client holds a connection.
    let stop = CancellationToken::new();
    match args.transport {
        Transport::Stdio => {
            let server = KnowledgeServer::new().traced(config.clone()).serve(rmcp::transport::stdio()).await?;
            tokio::select! {
                _ = server.waiting() => {}
                () = archon_mcp_exporter::shutdown_signal() => config.end_sessions(DisconnectReason::ServerShutdown),
            }
        }
        Transport::Http => {
            let server = KnowledgeServer::new();
            let service = config.streamable_http_service(
                move || Ok(server.clone()),
                StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
            );
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("listening on {}", args.listen))?;
            eprintln!("serving MCP at http://{}/mcp (Ctrl-C to stop)", args.listen);
            let stopped = stop.clone();
            let serving = tokio::spawn(async move {
                axum::serve(listener, axum::Router::new().nest_service("/mcp", service))
                    .with_graceful_shutdown(async move { stopped.cancelled_owned().await })
                    .await
            });
            archon_mcp_exporter::shutdown_signal().await;
            config.end_sessions(DisconnectReason::ServerShutdown);
            stop.cancel();
            match tokio::time::timeout(DRAIN, serving).await {
                Ok(joined) => joined??,
                Err(_) => eprintln!("connections still open after {DRAIN:?}; exiting anyway"),
            }
        }
    }
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    Ok(())
}
