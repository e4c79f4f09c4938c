//! The service's own metrics, rendered by `prometheus-client` in the Prometheus text format at
//! `/metrics`, with the standard `process_*` metrics and `archon_exporter_build_info`.
//!
//! ```
//! use archon_mcp_exporter::metrics::Metrics;
//!
//! let metrics = Metrics::default();
//! metrics.spans_received.add(3);
//! assert!(metrics.render().contains("archon_exporter_spans_received_total 3"));
//! ```

use std::time::Duration;

use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::histogram::Histogram as PromHistogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

mod process;

/// A monotonically increasing count.
#[derive(Debug, Default, Clone)]
pub struct Counter(PromCounter);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// Counts by the value of one label.
#[derive(Debug, Clone)]
pub struct LabeledCounter {
    label: &'static str,
    family: Family<[(&'static str, String); 1], PromCounter>,
}

impl LabeledCounter {
    fn new(label: &'static str) -> Self {
        Self { label, family: Family::default() }
    }

    /// Adds `n` under `value`.
    pub fn add(&self, value: &str, n: u64) {
        if n > 0 {
            self.family.get_or_create(&[(self.label, value.to_owned())]).inc_by(n);
        }
    }

    /// The count of `value`.
    pub fn get(&self, value: &str) -> u64 {
        self.family.get(&[(self.label, value.to_owned())]).map_or(0, |c| c.get())
    }
}

/// A value that goes up and down.
#[derive(Debug, Default, Clone)]
pub struct Gauge(PromGauge);

impl Gauge {
    /// Adds `n`.
    pub fn add(&self, n: usize) {
        self.0.inc_by(n as i64);
    }

    /// Subtracts `n`.
    pub fn sub(&self, n: usize) {
        self.0.dec_by(n as i64);
    }

    /// Sets the value.
    pub fn set(&self, n: i64) {
        self.0.set(n);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// Bucket bounds of the batch latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A latency histogram with fixed buckets.
#[derive(Debug, Clone)]
pub struct Histogram(PromHistogram);

impl Default for Histogram {
    fn default() -> Self {
        Self(PromHistogram::new(LATENCY_BUCKETS))
    }
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        self.0.observe(elapsed.as_secs_f64());
    }
}

/// Everything `/metrics` shows.
#[derive(Debug)]
pub struct Metrics {
    /// Spans received in export requests.
    pub spans_received: Counter,
    /// Request rows committed.
    pub requests_written: Counter,
    /// Request rows already stored (replays), skipped.
    pub requests_duplicate: Counter,
    /// Spans refused, by reason.
    pub spans_rejected: LabeledCounter,
    /// Spans not stored because they are not MCP request spans of a session, by reason.
    pub spans_ignored: LabeledCounter,
    /// Export requests answered, by outcome (`ok`, `unavailable`, `busy`, `invalid`,
    /// `unauthenticated`, `over_budget`, …).
    pub exports: LabeledCounter,
    /// Transactions committed.
    pub batches: Counter,
    /// Time to write one transaction.
    pub batch_latency: Histogram,
    /// Failed transactions, by kind (`unavailable`, `error`).
    pub database_errors: LabeledCounter,
    /// Sessions the reaper changed, by new status (`idle`, `disconnected`).
    pub sessions_reaped: LabeledCounter,
    /// Rows queued or being written now, against `--max-pending-rows`.
    pub pending_rows: Gauge,
    /// How far ahead of this service's clock the spans of the latest export ended at most, in
    /// seconds (0 when none was ahead): a sender's clock set wrong.
    pub clock_ahead_seconds: Gauge,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Self {
            spans_received: Counter::default(),
            requests_written: Counter::default(),
            requests_duplicate: Counter::default(),
            spans_rejected: LabeledCounter::new("reason"),
            spans_ignored: LabeledCounter::new("reason"),
            exports: LabeledCounter::new("outcome"),
            batches: Counter::default(),
            batch_latency: Histogram::default(),
            database_errors: LabeledCounter::new("kind"),
            sessions_reaped: LabeledCounter::new("status"),
            pending_rows: Gauge::default(),
            clock_ahead_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        metrics.registered()
    }
}

impl Metrics {
    /// Registers every metric (the types are shared handles: the registry reads the same
    /// values the fields update), the process collector and the build info.
    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "archon_exporter_spans_received",
            "Spans received in OTLP export requests",
            self.spans_received.0.clone(),
        );
        r.register("archon_exporter_requests_written", "Request rows committed", self.requests_written.0.clone());
        r.register(
            "archon_exporter_requests_duplicate",
            "Request rows already stored (replays)",
            self.requests_duplicate.0.clone(),
        );
        r.register("archon_exporter_batches", "Transactions written", self.batches.0.clone());
        r.register("archon_exporter_spans_rejected", "Spans refused, by reason", self.spans_rejected.family.clone());
        r.register(
            "archon_exporter_spans_ignored",
            "Spans not stored because they are not MCP request spans of a session",
            self.spans_ignored.family.clone(),
        );
        r.register("archon_exporter_exports", "Export requests answered, by outcome", self.exports.family.clone());
        r.register(
            "archon_exporter_database_errors",
            "Failed transactions, by kind",
            self.database_errors.family.clone(),
        );
        r.register(
            "archon_exporter_sessions_reaped",
            "Sessions the reaper marked idle or disconnected",
            self.sessions_reaped.family.clone(),
        );
        r.register(
            "archon_exporter_pending_rows",
            "Rows queued or being written; exports are refused as busy at --max-pending-rows",
            self.pending_rows.0.clone(),
        );
        r.register(
            "archon_exporter_clock_ahead_seconds",
            "How far ahead of this service's clock the latest export's spans ended at most (a sender's clock set \
             wrong; their sessions' times are clamped to the time of receipt)",
            self.clock_ahead_seconds.0.clone(),
        );
        r.register_with_unit(
            "archon_exporter_batch_duration",
            "Time to write one transaction",
            Unit::Seconds,
            self.batch_latency.0.clone(),
        );
        r.register(
            "archon_exporter_build",
            "The exporter's version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register_collector(Box::new(process::ProcessCollector));
        self
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_histograms_process_and_build_info() {
        let m = Metrics::default();
        m.spans_rejected.add("end_before_start", 2);
        m.batch_latency.observe(Duration::from_millis(3));
        m.pending_rows.add(7);
        let text = m.render();
        assert!(text.contains("archon_exporter_spans_rejected_total{reason=\"end_before_start\"} 2"), "{text}");
        assert!(text.contains("archon_exporter_batch_duration_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("archon_exporter_batch_duration_seconds_bucket{le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("archon_exporter_batch_duration_seconds_count 1"), "{text}");
        assert!(text.contains("archon_exporter_pending_rows 7"), "{text}");
        assert!(text.contains(&format!("archon_exporter_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));
        assert_eq!(m.spans_rejected.get("end_before_start"), 2);
        #[cfg(target_os = "linux")]
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.lines().any(|l| l.starts_with(&format!("{name} "))), "{name} in {text}");
        }
    }
}
