//! OpenTelemetry spans for every MCP request of an [rmcp] server.
//!
//! Every MCP request becomes a span that carries the analytics session id, the MCP client and
//! the authenticated user; `archon-mcp-exporter` turns those spans into PostgreSQL rows.
//!
//! The span contract — every attribute name both sides use — lives in [`attributes`], which
//! builds without any dependency (`default-features = false`):
//!
//! ```
//! use archon_mcp_instrument::attributes as attr;
//!
//! assert_eq!(attr::MCP_METHOD_NAME, "mcp.method.name");
//! assert_eq!(attr::SESSION_SPAN_NAME, "mcp.session");
//! ```
//!
//! [rmcp]: https://docs.rs/rmcp

pub mod attributes;
