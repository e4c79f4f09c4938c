//! [`PgSpanExporter`]: the in-process path, an OpenTelemetry SDK span exporter that writes
//! straight to PostgreSQL.
//!
//! ```no_run
//! use archon_mcp_exporter::{PgSpanExporter, store::{PgStore, StoreConfig}};
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! # async fn run() -> anyhow::Result<()> {
//! let store = PgStore::connect("postgres://postgres@127.0.0.1/archon", StoreConfig::default())?;
//! // Built inside a Tokio runtime: the SDK's export thread hands the IO back to it.
//! let exporter = PgSpanExporter::new(store);
//! let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).build();
//! # let _ = provider; Ok(()) }
//! ```

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio::runtime::Handle;

use crate::mapping::map_spans;
use crate::otlp::spans_from_request;
use crate::store::PgStore;

/// Writes SDK spans to PostgreSQL through the same mapping and store as the OTLP service.
///
/// When the database is unavailable it retries with backoff for up to
/// [`max_retry_time`](Self::with_max_retry_time) (the SDK never retries), then reports the
/// failure to the SDK; the batch processor's queue keeps the spans that arrive meanwhile.
pub struct PgSpanExporter {
    store: PgStore,
    runtime: Handle,
    resource: ResourceAttributesWithSchema,
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
        Self {
            store,
            runtime,
            resource: ResourceAttributesWithSchema::from(&Resource::builder_empty().build()),
            max_retry_time: Duration::from_secs(30),
        }
    }

    /// How long one export keeps retrying an unavailable database (default 30 s).
    pub fn with_max_retry_time(mut self, max: Duration) -> Self {
        self.max_retry_time = max;
        self
    }
}

impl SpanExporter for PgSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        // One conversion path for both entry points: SDK spans → OTLP → the neutral model.
        let request =
            ExportTraceServiceRequest { resource_spans: group_spans_by_resource_and_scope(batch, &self.resource) };
        let (spans, _invalid) = spans_from_request(request);
        let mapped = map_spans(&spans);
        let store = self.store.clone();
        let max_retry_time = self.max_retry_time;
        // The SDK calls us from its own thread; the database IO belongs on the Tokio runtime.
        let write = self.runtime.spawn(async move {
            let started = Instant::now();
            let mut backoff = Duration::from_millis(100);
            loop {
                match store.write(&mapped).await {
                    Ok(outcome) if outcome.rejected.is_empty() => return Ok(()),
                    Ok(outcome) => {
                        return Err(OTelSdkError::InternalFailure(format!(
                            "{} rows refused by the database, the rest written: {}",
                            outcome.rejected.len(),
                            outcome.rejected[0].reason
                        )));
                    }
                    Err(e) if e.is_retryable() && started.elapsed() + backoff < max_retry_time => {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => return Err(OTelSdkError::InternalFailure(e.to_string())),
                }
            }
        });
        write.await.map_err(|e| OTelSdkError::InternalFailure(format!("export task failed: {e}")))?
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = ResourceAttributesWithSchema::from(resource);
    }

    // Every export is awaited by the SDK before the next: nothing is buffered here, so
    // `force_flush` and `shutdown` have nothing left to do.
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}
