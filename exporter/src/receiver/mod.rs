//! The OTLP receivers (gRPC and HTTP) and what they share: authentication, and one export
//! request → decode → map → group commit → an outcome each transport spells its own way.

pub(crate) mod budget;
pub(crate) mod grpc;
pub(crate) mod http;
pub(crate) mod incoming;
pub(crate) mod port;
pub(crate) mod slots;
pub(crate) mod tls;

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};

use crate::metrics::Metrics;
use crate::otlp::Undecodable;
use crate::pipeline::{Outcome, Pipeline};
use crate::span::Span;

/// What the receivers share: the pipeline, behind the bearer token.
#[derive(Debug, Clone)]
pub(crate) struct Ingest {
    pipeline: Pipeline,
    auth_token: Option<Arc<str>>,
}

impl Ingest {
    /// Receivers exporting through `pipeline`, requiring `Bearer <auth_token>` when one is given.
    pub(crate) fn new(pipeline: Pipeline, auth_token: Option<String>) -> Self {
        Self { pipeline, auth_token: auth_token.filter(|t| !t.is_empty()).map(Into::into) }
    }

    /// The service metrics.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        self.pipeline.metrics()
    }

    /// Whether an `Authorization` header value is acceptable (constant-time comparison).
    pub(crate) fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        let Some(expected) = &self.auth_token else { return true };
        let ok = authorization
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .is_some_and(|given| constant_time_eq(given, expected.as_bytes()));
        if !ok {
            self.metrics().exports.add("unauthenticated", 1);
            warn_unauthenticated(authorization.is_some());
        }
        ok
    }

    /// Decoded spans → rows → committed.
    pub(crate) async fn export(&self, spans: &[Span], undecodable: Vec<Undecodable>) -> Outcome {
        self.pipeline.export(spans, undecodable).await
    }
}

/// Says in the log, at most every 30 s, that exports are refused for their token: a collector
/// with a wrong token loses spans, and only a counter would say so otherwise.
fn warn_unauthenticated(had_header: bool) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_WARNING: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = LAST_WARNING.load(Ordering::Relaxed);
    if now >= last + 30 && LAST_WARNING.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        let what = if had_header { "a wrong bearer token" } else { "no bearer token" };
        tracing::warn!(
            "an export with {what} was refused (401 / UNAUTHENTICATED): set the collector's \
             `Authorization: Bearer …` header to the token given to --auth-token(-file) \
             (archon_exporter_exports_total{{outcome=\"unauthenticated\"}} counts them; one warning every 30 s at most)"
        );
    }
}

/// The success response: a partial success when spans were refused.
fn export_response(rejected: u64, message: String) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (rejected > 0)
            .then_some(ExportTracePartialSuccess { rejected_spans: rejected as i64, error_message: message }),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
