//! The OTLP receivers (gRPC and HTTP) and what they share: authentication, and one export
//! request → decode → map → group commit → an outcome each transport spells its own way.

pub mod grpc;
pub mod http;
pub mod incoming;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use crate::batcher::{Batcher, SubmitError};
use crate::mapping::map_spans;
use crate::metrics::Metrics;
use crate::otlp::spans_from_request;

/// How long senders are told to wait before retrying when the database is unavailable.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// What the receivers share.
#[derive(Debug, Clone)]
pub struct Ingest {
    batcher: Batcher,
    auth_token: Option<Arc<str>>,
    metrics: Arc<Metrics>,
}

/// The result of one export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed; `rejected` spans were refused individually (partial success).
    Accepted { rejected: u64, message: String },
    /// Nothing committed; the sender should retry after a while.
    Unavailable(String),
}

impl Ingest {
    /// Receivers writing through `batcher`, requiring `Bearer <auth_token>` when one is given.
    pub fn new(batcher: Batcher, auth_token: Option<String>, metrics: Arc<Metrics>) -> Self {
        Self { batcher, auth_token: auth_token.filter(|t| !t.is_empty()).map(Into::into), metrics }
    }

    /// The service metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether an `Authorization` header value is acceptable (constant-time comparison).
    pub fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        let Some(expected) = &self.auth_token else { return true };
        let ok = authorization
            .and_then(|v| v.strip_prefix(b"Bearer "))
            .is_some_and(|given| constant_time_eq(given, expected.as_bytes()));
        if !ok {
            warn_unauthenticated(authorization.is_some());
        }
        ok
    }

    /// Decoded request → rows → committed.
    pub async fn export(&self, request: ExportTraceServiceRequest) -> Outcome {
        let (spans, invalid) = spans_from_request(request);
        self.metrics.spans_received.add((spans.len() + invalid.len()) as u64);
        let mut batch = map_spans(&spans);
        batch.skipped.extend(invalid);
        for (reason, count) in batch.skipped_by_reason() {
            let counter =
                if reason.is_rejection() { &self.metrics.spans_rejected } else { &self.metrics.spans_ignored };
            counter.add(reason.as_str(), count as u64);
        }
        let mut rejected = batch.rejected() as u64;
        let mut reasons: Vec<String> = batch
            .skipped
            .iter()
            .filter(|s| s.reason.is_rejection())
            .take(3)
            .map(|s| format!("{}: {}", s.reason, s.detail))
            .collect();
        if !batch.requests.is_empty() || !batch.sessions.is_empty() {
            match self.batcher.submit(batch).await {
                Ok(refused) => {
                    rejected += refused.len() as u64;
                    reasons.extend(refused.iter().take(3).map(|r| format!("database: {}", r.reason)));
                }
                Err(e) => {
                    if matches!(e, SubmitError::Busy(_)) {
                        self.metrics.database_errors.add("busy", 1);
                    }
                    // Every failure to commit is worth a retry: telling the collector to drop
                    // the data (a permanent error) would lose it while an operator fixes things.
                    self.metrics.exports.add("unavailable", 1);
                    return Outcome::Unavailable(e.to_string());
                }
            }
        }
        self.metrics.exports.add("ok", 1);
        Outcome::Accepted { rejected, message: reasons.join("; ") }
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
             (archon_exporter_exports_total{{result=\"unauthenticated\"}} counts them; one warning every 30 s at most)"
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
