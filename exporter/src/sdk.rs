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
use crate::span::{Attributes, Span};
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
    parts: usize,
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
        let parts = BatcherConfig::default().writers;
        Self { pipeline, runtime, resource: Arc::default(), max_retry_time: Duration::from_secs(30), parts }
    }

    /// In how many parts one export is written at once (default 2, the pipeline's writers):
    /// the SDK hands over one batch at a time and waits for it, so its parts are what keeps
    /// more than one transaction in flight. A session's spans stay in one part.
    ///
    /// ```no_run
    /// # use archon_mcp_exporter::{PgSpanExporter, PgStore, StoreConfig};
    /// # fn run(store: PgStore) {
    /// let exporter = PgSpanExporter::new(store).with_parts(1);
    /// # }
    /// ```
    pub fn with_parts(mut self, parts: usize) -> Self {
        self.parts = parts.max(1);
        self
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

/// Writes one part of an export, retrying an unavailable database while `backoff` allows.
async fn write(pipeline: Pipeline, spans: Vec<Span>, mut backoff: Backoff) -> OTelSdkResult {
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
}

/// Spans in `n` parts (fewer when there are fewer spans), the spans of one session in one:
/// parts written at once never wait on each other's lock of a session row.
fn parts(spans: impl Iterator<Item = Span>, n: usize) -> Vec<Vec<Span>> {
    use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
    let mut parts: Vec<Vec<Span>> = (0..n).map(|_| Vec::new()).collect();
    for span in spans {
        let part = match span.attributes.get(archon_mcp_instrument::attributes::SESSION_ID) {
            Some(session) => BuildHasherDefault::<DefaultHasher>::default().hash_one(session.as_str()) as usize % n,
            None => 0,
        };
        parts[part].push(span);
    }
    parts.retain(|part| !part.is_empty());
    parts
}

impl SpanExporter for PgSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        // Straight into the neutral model (the SDK's ids are always well formed: nothing is
        // undecodable), as the OTLP path would convert them (a test holds them equal).
        let spans = batch.into_iter().map(|data| span_data::span(data, &self.resource));
        // The SDK calls us from its own thread; the database IO belongs on the Tokio runtime.
        let writes: Vec<_> = parts(spans, self.parts)
            .into_iter()
            .map(|part| self.runtime.spawn(write(self.pipeline.clone(), part, Backoff::new(self.max_retry_time))))
            .collect();
        let mut outcome = Ok(());
        for write in writes {
            let written = write.await.map_err(|e| OTelSdkError::InternalFailure(format!("export task failed: {e}")));
            outcome = outcome.and(written.and_then(|r| r));
        }
        outcome
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_is_split_by_session_and_keeps_every_span() {
        let spans = (0..100u8).map(|i| {
            let span = Span::new(format!("s{i}"), 1, 2).with_ids([i; 16], [i; 8]);
            if i % 10 == 0 { span } else { span.with_attribute("session.id", format!("session-{}", i % 7)) }
        });
        let parts = parts(spans, 2);
        assert_eq!(parts.len(), 2, "seven sessions fall into both parts");
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 100);
        let session_of = |span: &Span| span.attributes.str("session.id").map(|s| s.into_owned());
        for (i, part) in parts.iter().enumerate() {
            for other in &parts[i + 1..] {
                assert!(
                    part.iter().filter_map(session_of).all(|s| !other.iter().filter_map(session_of).any(|o| o == s))
                );
            }
        }
        assert_eq!(super::parts(std::iter::empty(), 2).len(), 0);
    }
}
