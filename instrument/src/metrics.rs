//! The MCP duration metrics of the semantic conventions, and our own counters.

use opentelemetry::global;
use opentelemetry::metrics::{Counter, Histogram};

use crate::scope;

/// The MCP duration metrics of the semantic conventions, recorded through the global meter
/// provider (a no-op unless one is installed).
pub(crate) struct Metrics {
    pub(crate) operation_duration: Histogram<f64>,
    pub(crate) session_duration: Histogram<f64>,
    /// The client side's: a traced client's requests and its life.
    pub(crate) client_operation_duration: Histogram<f64>,
    pub(crate) client_session_duration: Histogram<f64>,
    /// Tool calls let through because the budget state was unknown or stale.
    pub(crate) budget_unknown: Counter<u64>,
}

/// The explicit bucket boundaries the MCP conventions give the operation durations, in seconds.
const OPERATION_BUCKETS: [f64; 14] = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Session durations, in seconds, up to a day: the operation's buckets (300 s at the top), which
/// the conventions give no others for, would put most sessions in the overflow.
const SESSION_BUCKETS: [f64; 11] = [1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0];

impl Metrics {
    pub(crate) fn new() -> Self {
        let meter = global::meter_with_scope(scope());
        let histogram = |name: &'static str, description: &'static str, buckets: &[f64]| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(buckets.to_vec())
                .build()
        };
        Self {
            operation_duration: histogram(
                "mcp.server.operation.duration",
                "Duration of MCP requests as seen by the server",
                &OPERATION_BUCKETS,
            ),
            session_duration: histogram(
                "mcp.server.session.duration",
                "Duration of MCP analytics sessions",
                &SESSION_BUCKETS,
            ),
            client_operation_duration: histogram(
                "mcp.client.operation.duration",
                "Duration of MCP requests as seen by the client, from sent to answered",
                &OPERATION_BUCKETS,
            ),
            client_session_duration: histogram(
                "mcp.client.session.duration",
                "Duration of MCP client sessions",
                &SESSION_BUCKETS,
            ),
            budget_unknown: meter
                .u64_counter("archon.budget.unknown_state")
                .with_description("Tool calls let through because the budget state was not known or was stale")
                .build(),
        }
    }
}
