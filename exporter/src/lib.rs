//! PostgreSQL exporter for MCP spans: turns the spans of `archon-mcp-instrument` into
//! Archon-compatible `archon_mcp_sessions` and `archon_mcp_requests` rows.
//!
//! The pieces, from input to database:
//! - [`span`]: the neutral span model every input is converted to;
//! - [`mapping`]: spans → [`rows`], pure and unit-tested ([`client_type`], [`ids`]);
//! - [`store`]: writes a mapped batch in one idempotent transaction;
//! - [`migrate`]: the embedded schema (`migrations/`), applied under an advisory lock;
//! - [`otlp`]: OTLP requests → spans; [`sdk`]: [`PgSpanExporter`], the in-process entry point;
//! - [`batcher`]: group commit; [`receiver`]: OTLP/gRPC and OTLP/HTTP; [`reaper`]; [`serve`]:
//!   the `serve` command that runs them; [`metrics`]: what `/metrics` shows.
//!
//! ```no_run
//! use archon_mcp_exporter::{mapping, migrate, store::{PgStore, StoreConfig}};
//! # async fn run(spans: Vec<archon_mcp_exporter::span::Span>) -> anyhow::Result<()> {
//! let url = "postgres://postgres@127.0.0.1/archon";
//! migrate::migrate_url(url).await?;
//! let store = PgStore::connect(url, StoreConfig::default())?;
//! let outcome = store.write(&mapping::map_spans(&spans)).await?;
//! println!("{} requests written", outcome.requests_inserted);
//! # Ok(()) }
//! ```

pub mod batcher;
pub mod budgets;
pub mod client_type;
pub mod connection_string;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod ids;
pub mod mapping;
pub mod metrics;
pub mod migrate;
pub mod otlp;
pub mod pipeline;
pub mod reaper;
pub mod receiver;
pub mod retry;
pub mod rows;
pub mod sdk;
pub mod serve;
pub mod span;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;

pub use sdk::PgSpanExporter;
