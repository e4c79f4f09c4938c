//! PostgreSQL exporter for MCP spans: turns the spans of `archon-mcp-instrument` into
//! Archon-compatible `archon_mcp_sessions` and `archon_mcp_requests` rows.
//!
//! Two ways in, one pipeline behind them (decode → [`map_spans`] → group commit → [`PgStore`]):
//! - [`PgSpanExporter`]: an OpenTelemetry SDK exporter, in the instrumented process;
//! - [`Server`]: the `serve` command's OTLP/gRPC and OTLP/HTTP receivers, behind a collector.
//!
//! The models are public modules: [`span`] (what every input is converted to) and [`rows`]
//! (what is written); [`ids`] derives the deterministic row ids; [`migrate`] applies the
//! embedded schema; [`budgets`] manages spend budgets. `docs/architecture.md` walks through the
//! private modules.
//!
//! ```no_run
//! use archon_mcp_exporter::{PgStore, StoreConfig, map_spans, migrate};
//! # async fn run(spans: Vec<archon_mcp_exporter::span::Span>) -> anyhow::Result<()> {
//! let url = "postgres://postgres@127.0.0.1/archon";
//! migrate::migrate_url(url).await?;
//! let store = PgStore::connect(url, StoreConfig::default())?;
//! let outcome = store.write(&map_spans(&spans)).await?;
//! println!("{} requests written", outcome.requests_inserted);
//! # Ok(()) }
//! ```
#![warn(unreachable_pub, missing_docs)]

/// `with_<field>(value)` setters for a `#[non_exhaustive]` configuration type: a new knob is
/// never a breaking change, and every knob is set the same way.
macro_rules! with_setters {
    ($ty:ty { $($setter:ident => $field:ident: $t:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                pub fn $setter(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

pub mod adopt;
pub mod budgets;
pub mod ids;
pub mod metrics;
pub mod migrate;
pub mod minimise;
pub mod partitions;
pub mod privacy;
pub mod rollups;
pub mod rows;
pub mod secret;
pub mod span;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "service")]
mod admin;
mod batcher;
mod client_type;
mod connect;
mod connection_string;
mod keyed_hash;
mod mapping;
mod otlp;
mod pg_error;
mod pipeline;
mod privileges;
mod reaper;
#[cfg(feature = "service")]
mod receiver;
mod retry;
mod sdk;
#[cfg(feature = "service")]
mod serve;
mod store;
mod tls;

pub use batcher::BatcherConfig;
pub use client_type::ClientType;
pub use connect::{ConnectError, connect};
pub use mapping::{MappedBatch, SkipReason, Skipped, map_spans, map_spans_with};
pub use otlp::{Undecodable, spans_from_protobuf, spans_from_request};
pub use reaper::{Reaped, ReaperConfig, reap_once};
#[cfg(feature = "service")]
pub use receiver::http::BodyLimits;
#[cfg(feature = "service")]
pub use receiver::incoming::ConnectionLimits;
#[cfg(feature = "service")]
pub use receiver::tls::{ReceiverTls, ReceiverTlsError};
pub use sdk::PgSpanExporter;
#[cfg(feature = "service")]
pub use serve::{Running, ServeConfig, ServeError, Server, shutdown_signal};
pub use store::{PgStore, RowRef, StoreConfig, StoreError, StoreRejection, WriteOutcome};
pub use tls::TlsError;
