//! OpenTelemetry spans for every MCP request of an [rmcp] server — with the analytics session,
//! the client and the authenticated user — in one line.
//!
//! ```no_run
//! use archon_mcp_instrument::{Telemetry, TracedConfig, TracedExt};
//! # use rmcp::{ServerHandler, ServiceExt, model::{ServerCapabilities, ServerConfig}};
//! # #[derive(Clone)] struct MyServer;
//! # impl ServerHandler for MyServer {
//! #     fn get_info(&self) -> ServerConfig { ServerConfig::new(ServerCapabilities::builder().enable_tools().build()) }
//! # }
//!
//! # async fn run() -> anyhow::Result<()> {
//! // OTLP to the collector named by OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4317).
//! let telemetry = Telemetry::builder().service_name("kb-server").otlp().install()?;
//! let server = MyServer.traced(TracedConfig::default()).serve(rmcp::transport::stdio()).await?;
//! server.waiting().await?;
//! telemetry.shutdown(); // ends open sessions (server_shutdown) and flushes
//! # Ok(()) }
//! ```
//!
//! Over streamable HTTP, give every instance the factory makes the same config (see
//! `examples/http.rs`; `examples/stdio.rs` is the stdio case):
//!
//! ```no_run
//! # use archon_mcp_instrument::{TracedConfig, TracedExt, user::JwtUser};
//! # use rmcp::transport::streamable_http_server::{StreamableHttpService, session::local::LocalSessionManager};
//! # #[derive(Clone)] struct MyServer;
//! # impl rmcp::ServerHandler for MyServer {}
//! let config = TracedConfig::builder().user_resolver(JwtUser::hs256(b"secret")).build();
//! let service: StreamableHttpService<_, LocalSessionManager> =
//!     StreamableHttpService::new(move || Ok(MyServer.traced(config.clone())), Default::default(), Default::default());
//! let app: axum::Router = axum::Router::new().nest_service("/mcp", service);
//! # let _ = app;
//! ```
//!
//! What each request span carries is the contract in [`attributes`] (and `docs/span-contract.md`). Spans are built
//! with the OpenTelemetry API, off any `tracing` span of rmcp's, so each request is its own trace
//! (or a child of `_meta.traceparent`); `tracing` spans of tool code nest under it when the
//! [`layer`] is installed. Nothing on the request path waits for IO: spans are exported by the
//! SDK's batch processor.
//!
//! - [`Traced`] / [`TracedExt`]: the wrapper; [`TracedConfig`]: users, capture, estimation.
//! - [`user`]: who is calling (JWT, trusted headers, request extensions, environment).
//! - [`usage`]: model, tokens and cost reported by tool code.
//! - [`Telemetry`]: installs the tracer provider and tracing subscriber; [`layer`] for your own.
//! - [`attributes`]: the span contract shared with `archon-mcp-exporter`; it builds without
//!   any dependency (`default-features = false`).
//!
//! [rmcp]: https://docs.rs/rmcp

pub mod attributes;

/// The instrumentation scope name of our spans and metrics.
pub const SCOPE: &str = "archon-mcp-instrument";

/// The schema URL of our spans and metrics: the semantic conventions release that the MCP
/// conventions we follow (semantic-conventions-genai v0.1.0; docs/span-contract.md) build on.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.45.0";

/// The instrumentation scope of our spans and metrics: [`SCOPE`], this crate's version and
/// [`SCHEMA_URL`].
#[cfg(feature = "full")]
pub(crate) fn scope() -> opentelemetry::InstrumentationScope {
    opentelemetry::InstrumentationScope::builder(SCOPE)
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(SCHEMA_URL)
        .build()
}
#[cfg(feature = "full")]
mod admission;
#[cfg(feature = "full")]
pub mod budget;
#[cfg(feature = "full")]
mod call;
#[cfg(feature = "full")]
pub mod capture;
#[cfg(feature = "full")]
mod client;
#[cfg(feature = "full")]
mod client_handler;
#[cfg(feature = "full")]
mod config;
#[cfg(feature = "full")]
mod connection;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(feature = "full")]
mod metrics;
#[cfg(feature = "full")]
mod network;
#[cfg(feature = "full")]
mod notification;
#[cfg(feature = "full")]
mod origin;
#[cfg(feature = "full")]
mod otel_layer;
#[cfg(feature = "full")]
mod outbound;
#[cfg(feature = "full")]
mod peer;
#[cfg(feature = "full")]
mod propagation;
#[cfg(feature = "full")]
mod routing;
#[cfg(feature = "full")]
mod runtime;
#[cfg(feature = "full")]
pub mod sampling;
#[cfg(feature = "full")]
pub mod session;
#[cfg(feature = "full")]
mod session_manager;
#[cfg(feature = "full")]
mod stateless_clients;
#[cfg(feature = "full")]
mod target;
#[cfg(feature = "full")]
mod telemetry;
#[cfg(feature = "full")]
mod traced;
#[cfg(feature = "full")]
mod tracer;
#[cfg(feature = "full")]
mod transport;
#[cfg(feature = "full")]
pub mod usage;
#[cfg(feature = "full")]
pub mod user;

#[cfg(feature = "full")]
pub use client::{TracedClient, TracedClientExt};
#[cfg(feature = "full")]
pub use config::{TracedConfig, TracedConfigBuilder};
#[cfg(feature = "full")]
pub use connection::CLIENT_GONE_REASON;
#[cfg(feature = "full")]
pub use otel_layer::layer;
#[cfg(feature = "full")]
pub use peer::TracedPeer;
#[cfg(feature = "full")]
pub use session_manager::TracedSessionManager;
#[cfg(feature = "full")]
pub use telemetry::{DEFAULT_FILTER, Telemetry, TelemetryBuilder, TelemetryError, TelemetryGuard, otlp_retry_policy};
#[cfg(feature = "full")]
pub use traced::{Traced, TracedExt};
#[cfg(feature = "full")]
pub use tracer::SpanTracer;
#[cfg(feature = "full")]
pub use transport::ObservedTransport;
