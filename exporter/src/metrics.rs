//! The service's own metrics, rendered in the Prometheus text format at `/metrics`.
//!
//! ```
//! use archon_mcp_exporter::metrics::Metrics;
//!
//! let metrics = Metrics::default();
//! metrics.spans_received.add(3);
//! assert!(metrics.render().contains("archon_exporter_spans_received_total 3"));
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds `n`.
    pub fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Subtracts `n`.
    pub fn sub(&self, n: usize) {
        self.0.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts by a label value.
#[derive(Debug, Default)]
pub struct LabeledCounter(Mutex<BTreeMap<String, u64>>);

impl LabeledCounter {
    /// Adds `n` under `label`.
    pub fn add(&self, label: &str, n: u64) {
        if n > 0 {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(label.to_owned()).or_default() += n;
        }
    }

    /// The count of `label`.
    pub fn get(&self, label: &str) -> u64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(label).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Bucket bounds of the batch latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Everything `/metrics` shows.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Spans received in export requests.
    pub spans_received: Counter,
    /// Request rows committed.
    pub requests_written: Counter,
    /// Request rows already stored (replays), skipped.
    pub requests_duplicate: Counter,
    /// Spans refused, by reason.
    pub spans_rejected: LabeledCounter,
    /// Spans that are not ours to store (not MCP, no session), by reason.
    pub spans_ignored: LabeledCounter,
    /// Export requests answered, by outcome (`ok`; not committed: `busy`, `unavailable`,
    /// `failed`, `closed`; refused by a receiver: `invalid`, `unauthenticated`, `over_budget`).
    pub exports: LabeledCounter,
    /// Transactions written.
    pub batches: Counter,
    /// Time to write one transaction.
    pub batch_latency: Histogram,
    /// Failed transactions, by kind (`unavailable`, `error`).
    pub database_errors: LabeledCounter,
    /// Sessions the reaper changed, by new status (`idle`, `disconnected`).
    pub sessions_reaped: LabeledCounter,
    /// Rows queued or being written now, against `--max-pending-rows`.
    pub pending_rows: Gauge,
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter(
            "archon_exporter_spans_received_total",
            "Spans received in OTLP export requests.",
            self.spans_received.get(),
        );
        counter("archon_exporter_requests_written_total", "Request rows committed.", self.requests_written.get());
        counter(
            "archon_exporter_requests_duplicate_total",
            "Request rows already stored (replays).",
            self.requests_duplicate.get(),
        );
        counter("archon_exporter_batches_total", "Transactions written.", self.batches.get());
        for (name, help, label, values) in [
            ("archon_exporter_spans_rejected_total", "Spans refused, by reason.", "reason", &self.spans_rejected),
            (
                "archon_exporter_spans_ignored_total",
                "Spans not stored because they are not MCP request spans of a session.",
                "reason",
                &self.spans_ignored,
            ),
            ("archon_exporter_exports_total", "Export requests answered, by outcome.", "outcome", &self.exports),
            ("archon_exporter_database_errors_total", "Failed transactions, by kind.", "kind", &self.database_errors),
            (
                "archon_exporter_sessions_reaped_total",
                "Sessions the reaper marked idle or disconnected.",
                "status",
                &self.sessions_reaped,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, count) in values.snapshot() {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
            }
        }
        let name = "archon_exporter_pending_rows";
        let _ = writeln!(
            out,
            "# HELP {name} Rows queued or being written; exports are refused as busy at --max-pending-rows.\n# TYPE {name} gauge\n{name} {}",
            self.pending_rows.get()
        );
        let name = "archon_exporter_batch_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time to write one transaction.\n# TYPE {name} histogram");
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.batch_latency.buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Ordering::Relaxed));
        }
        let count = self.batch_latency.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.batch_latency.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_and_histograms() {
        let m = Metrics::default();
        m.spans_rejected.add("end_before_start", 2);
        m.batch_latency.observe(Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("archon_exporter_spans_rejected_total{reason=\"end_before_start\"} 2"), "{text}");
        assert!(text.contains("archon_exporter_batch_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("archon_exporter_batch_duration_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("archon_exporter_batch_duration_seconds_count 1"));
    }
}
