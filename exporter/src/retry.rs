//! The retry policy: how an export that was not committed is answered over OTLP/gRPC, over
//! OTLP/HTTP and to the OpenTelemetry SDK, and how long the in-process exporter waits. Which
//! PostgreSQL failures are transient is [`crate::pg_error`]'s classification, below the store.
//!
//! The policy: a sender is told to retry whatever kept its export from being committed, even
//! a failure only an operator can fix (no schema, no permission). Telling a collector the data
//! is bad would make it drop spans that are fine while the operator works; its retry queue holds
//! them instead. Only spans that are bad in themselves are refused, as a partial success. The
//! in-process exporter retries only what may pass without an operator (the SDK never retries, and
//! its queue keeps filling meanwhile).

use std::time::Duration;

use crate::batcher::SubmitError;

/// How long senders are told to wait before retrying (gRPC `RetryInfo`, HTTP `Retry-After`).
#[cfg(feature = "service")]
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The OTLP/gRPC answer to an export that was not committed: `UNAVAILABLE` with a `RetryInfo`
/// delay, which collectors retry.
#[cfg(feature = "service")]
pub(crate) fn grpc_status(error: &SubmitError) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt as _};
    tonic::Status::with_error_details(
        tonic::Code::Unavailable,
        error.to_string(),
        ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
    )
}

/// The OTLP/HTTP status of an export that was not committed, sent with `Retry-After`:
/// 503, which collectors retry. (429, also retried, is the receiver's own body budget.)
#[cfg(feature = "service")]
pub(crate) fn http_status(_error: &SubmitError) -> axum::http::StatusCode {
    axum::http::StatusCode::SERVICE_UNAVAILABLE
}

/// Whether the in-process exporter tries the export again itself.
pub(crate) fn sdk_retries(error: &SubmitError) -> bool {
    match error {
        SubmitError::Busy(_) | SubmitError::Unavailable(_) => true,
        SubmitError::Failed(_) | SubmitError::Closed => false,
    }
}

/// The in-process exporter's waits between tries: doubling from 100 ms to at most 5 s, each
/// within ±25 % (so replicas that failed together do not retry together), within a total of
/// `max_total`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    left: Duration,
}

impl Backoff {
    pub(crate) fn new(max_total: Duration) -> Self {
        Self { next: Duration::from_millis(100), left: max_total }
    }

    /// The wait before the next try, or `None` when the time is used up.
    pub(crate) fn next_wait(&mut self) -> Option<Duration> {
        let base = self.next;
        // A random factor in [0.75, 1.25): the low bits of a random UUID are random enough.
        let factor = 0.75 + f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX) / 2.0;
        let wait = base.mul_f64(factor);
        self.left = self.left.checked_sub(wait)?;
        self.next = (base * 2).min(Duration::from_secs(5));
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_waits_double_with_jitter_within_the_total() {
        let mut backoff = Backoff::new(Duration::from_secs(30));
        let (mut waits, mut base) = (Vec::new(), 0.1);
        while let Some(wait) = backoff.next_wait() {
            let s = wait.as_secs_f64();
            assert!((0.75 * base..=1.25 * base).contains(&s), "{s} around {base}");
            waits.push(s);
            base = (base * 2.0_f64).min(5.0);
        }
        assert!(waits.iter().sum::<f64>() <= 30.0);
        let mut again = Backoff::new(Duration::from_secs(30));
        let first: Vec<_> = (0..5).filter_map(|_| again.next_wait()).collect();
        let mut other = Backoff::new(Duration::from_secs(30));
        let second: Vec<_> = (0..5).filter_map(|_| other.next_wait()).collect();
        assert_ne!(first, second, "two exporters do not wait in step");
    }

    #[test]
    #[cfg(feature = "service")]
    fn what_senders_are_told() {
        let cases = [
            (SubmitError::Busy(10), true),
            (SubmitError::Unavailable("down".into()), true),
            (SubmitError::Failed("no schema".into()), false),
            (SubmitError::Closed, false),
        ];
        for (error, sdk) in cases {
            // Collectors retry every failure to commit.
            assert_eq!(grpc_status(&error).code(), tonic::Code::Unavailable, "{error}");
            assert_eq!(http_status(&error), axum::http::StatusCode::SERVICE_UNAVAILABLE, "{error}");
            assert_eq!(sdk_retries(&error), sdk, "{error}");
        }
    }

    #[test]
    fn no_time_no_wait() {
        assert_eq!(Backoff::new(Duration::ZERO).next_wait(), None);
    }
}
