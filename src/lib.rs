//! Workspace root of archon-mcp-otel: it owns the end-to-end `examples/` and `tests/`.
//!
//! The libraries are [`archon_mcp_instrument`] (spans for rmcp servers) and
//! [`archon_mcp_exporter`] (spans → PostgreSQL).

pub use archon_mcp_exporter as exporter;
pub use archon_mcp_instrument as instrument;

pub mod collector;
pub mod demo;
pub mod grafana;
pub mod knowledge;
pub mod report;
pub mod round_trips;
pub mod serve_process;
pub mod stats;

/// The README's Rust blocks, compiled as doc-tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
