//! [`PgSpanExporter`]: the in-process path, an OpenTelemetry SDK span exporter that writes
//! straight to PostgreSQL.

mod span_data;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::runtime::Handle;

use crate::batcher::BatcherConfig;
use crate::metrics::Metrics;
use crate::pipeline::{Outcome, Pipeline};
use crate::retry::{self, Backoff};
use crate::span::Attributes;
use crate::store::PgStore;

/// Writes SDK spans to PostgreSQL through the same pipeline as the OTLP service: mapping, group
/// commit and metrics.
///
/// When the database is unavailable it retries with backoff for up to
/// [`max_retry_time`](Self::with_max_retry_time) (the SDK never retries), then reports the
/// failure to the SDK; the batch processor's queue keeps the spans that arrive meanwhile.
/// Spans refused one by one (a bad timestamp, a row the database refuses) are counted in
/// [`metrics`](Self::metrics) and reported to the SDK as an export error; the rest are written.
///
/// ```no_run
/// use archon_mcp_exporter::{PgSpanExporter, PgStore, StoreConfig};
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// # async fn run() -> anyhow::Result<()> {
/// let store = PgStore::connect("postgres://postgres@127.0.0.1/archon", StoreConfig::default())?;
/// // Built inside a Tokio runtime: the SDK's export thread hands the IO back to it.
/// let exporter = PgSpanExporter::new(store);
/// let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).build();
/// # let _ = provider; Ok(()) }
/// ```
pub struct PgSpanExporter {
    pipeline: Pipeline,
    runtime: Handle,
    resource: Arc<Attributes>,
    max_retry_time: Duration,
}

impl std::fmt::Debug for PgSpanExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSpanExporter").field("max_retry_time", &self.max_retry_time).finish_non_exhaustive()
    }
}

impl PgSpanExporter {
    /// An exporter writing through `store`. Must be called inside a Tokio runtime, which runs
    /// the database IO.
    pub fn new(store: PgStore) -> Self {
        Self::with_runtime(store, Handle::current())
    }

    /// An exporter whose database IO runs on `runtime`.
    pub fn with_runtime(store: PgStore, runtime: Handle) -> Self {
        let pipeline = {
            let _inside = runtime.enter();
            Pipeline::start(store, BatcherConfig::default(), Arc::new(Metrics::default()))
        };
        Self { pipeline, runtime, resource: Arc::default(), max_retry_time: Duration::from_secs(30) }
    }

    /// How long one export keeps retrying an unavailable database (default 30 s).
    pub fn with_max_retry_time(mut self, max: Duration) -> Self {
        self.max_retry_time = max;
        self
    }

    /// What this exporter has received, written and refused, as `serve` counts it.
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.pipeline.metrics()
    }
}

impl SpanExporter for PgSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        // Straight into the neutral model (the SDK's ids are always well formed: nothing is
        // undecodable), as the OTLP path would convert them (a test holds them equal).
        let spans: Vec<_> = batch.into_iter().map(|data| span_data::span(data, &self.resource)).collect();
        let pipeline = self.pipeline.clone();
        let mut backoff = Backoff::new(self.max_retry_time);
        // The SDK calls us from its own thread; the database IO belongs on the Tokio runtime.
        let write = self.runtime.spawn(async move {
            loop {
                match pipeline.export(&spans, Vec::new()).await {
                    Outcome::Accepted { rejected: 0, .. } => return Ok(()),
                    Outcome::Accepted { rejected, message } => {
                        return Err(OTelSdkError::InternalFailure(format!(
                            "{rejected} spans refused, the rest written: {message}"
                        )));
                    }
                    Outcome::NotCommitted(e) => match backoff.next_wait() {
                        Some(wait) if retry::sdk_retries(&e) => tokio::time::sleep(wait).await,
                        _ => return Err(OTelSdkError::InternalFailure(e.to_string())),
                    },
                }
            }
        });
        write.await.map_err(|e| OTelSdkError::InternalFailure(format!("export task failed: {e}")))?
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = span_data::resource_attributes(resource);
    }

    // Every export is awaited by the SDK before the next: nothing is buffered here, so
    // `force_flush` and `shutdown` have nothing left to do.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
