//! The MCP duration metrics of the semantic conventions, and our own counters.

use opentelemetry::global;
use opentelemetry::metrics::{Counter, Histogram};

use crate::scope;

/// The MCP duration metrics of the semantic conventions, recorded through the global meter
/// provider (a no-op unless one is installed).
pub(crate) struct Metrics {
    pub(crate) operation_duration: Histogram<f64>,
    pub(crate) session_duration: Histogram<f64>,
    /// Tool calls let through because the budget state was unknown or stale.
    pub(crate) budget_unknown: Counter<u64>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let meter = global::meter_with_scope(scope());
        Self {
            operation_duration: meter
                .f64_histogram("mcp.server.operation.duration")
                .with_unit("s")
                .with_description("Duration of MCP requests as seen by the server")
                .with_boundaries(vec![0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0])
                .build(),
            // Sessions last minutes to hours: the operation's buckets (300 s at the top), which
            // the conventions give no others for, would put most sessions in the overflow.
            session_duration: meter
                .f64_histogram("mcp.server.session.duration")
                .with_unit("s")
                .with_description("Duration of MCP analytics sessions")
                .with_boundaries(vec![1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0])
                .build(),
            budget_unknown: meter
                .u64_counter("archon.budget.unknown_state")
                .with_description("Tool calls let through because the budget state was not known or was stale")
                .build(),
        }
    }
}
