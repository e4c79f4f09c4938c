//! Installing telemetry: tracer provider, batch processor, tracing subscriber — and the guard
//! that ends open sessions and flushes at shutdown.

use std::time::Duration;

use opentelemetry::global;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanExporter, TracerProviderBuilder,
};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry};

use crate::attributes::DisconnectReason;
use crate::session;

/// Telemetry setup (see [`Telemetry::builder`]).
#[derive(Debug)]
pub struct Telemetry;

impl Telemetry {
    /// Starts a setup.
    ///
    /// ```no_run
    /// use archon_mcp_instrument::Telemetry;
    /// # fn f() -> Result<(), archon_mcp_instrument::TelemetryError> {
    /// // OTLP, protocol and endpoint from OTEL_EXPORTER_OTLP_* (gRPC to localhost:4317 by default);
    /// // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are honoured.
    /// let _guard = Telemetry::builder().service_name("kb-server").otlp().install()?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }
}

/// What went wrong installing telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint, protocol, …).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    /// A global tracing subscriber is already installed; build the provider alone with
    /// [`TelemetryBuilder::build_provider`] and add [`layer`](crate::layer) to that subscriber.
    #[error(
        "a tracing subscriber is already installed: call .build_provider() instead of .install(), and add \
         archon_mcp_instrument::layer(guard.provider()) to your subscriber (tracing_subscriber::fmt().finish().with(…), \
         or registry().with(…))"
    )]
    SubscriberInstalled,
}

type AddExporter =
    Box<dyn FnOnce(TracerProviderBuilder, BatchConfigBuilder) -> Result<TracerProviderBuilder, TelemetryError>>;

/// Builds and installs telemetry.
pub struct TelemetryBuilder {
    service_name: Option<String>,
    otlp_endpoint: Option<String>,
    otlp_ca_file: Option<std::path::PathBuf>,
    /// Export over OTLP (else through `exporter`, if any).
    otlp: bool,
    exporter: Option<AddExporter>,
    queue_size: usize,
    scheduled_delay: Duration,
    max_batch: usize,
    filter: Option<String>,
    log_to_stderr: bool,
    meter_provider: Option<SdkMeterProvider>,
}

impl Default for TelemetryBuilder {
    fn default() -> Self {
        Self {
            service_name: None,
            otlp_endpoint: None,
            otlp_ca_file: None,
            otlp: false,
            exporter: None,
            // The SDK's 2,048 drops spans under bursts.
            queue_size: 65_536,
            scheduled_delay: Duration::from_secs(1),
            max_batch: 2_048,
            filter: None,
            log_to_stderr: true,
            meter_provider: None,
        }
    }
}

impl std::fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBuilder").field("service_name", &self.service_name).finish_non_exhaustive()
    }
}

impl TelemetryBuilder {
    /// The default `service.name`: `OTEL_SERVICE_NAME`, when set, wins (as the specification says).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Exports over OTLP as the OpenTelemetry specification says: `OTEL_EXPORTER_OTLP_PROTOCOL`
    /// (`grpc`, the default, or `http/protobuf`), `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL: the
    /// signal path `/v1/traces` is appended for `http/protobuf`) or `…_TRACES_ENDPOINT` (used as
    /// is), `…_HEADERS`, `…_TIMEOUT`, and for `https://` over gRPC the system's roots plus
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM CA file, e.g. a private CA).
    pub fn otlp(mut self) -> Self {
        // Built in `build_provider`, with the endpoint and CA file as they are by then.
        self.exporter = None;
        self.otlp = true;
        self
    }

    /// Trusts this PEM CA file for an `https://` collector, besides the system's roots
    /// (overrides `OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub fn otlp_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.otlp_ca_file = Some(path.into());
        self
    }

    /// Exports over OTLP to this endpoint (overrides `OTEL_EXPORTER_OTLP_ENDPOINT`; for
    /// `http/protobuf`, a base URL gets `/v1/traces` appended, a URL with a path is used as is).
    ///
    /// ```no_run
    /// # fn f() -> Result<(), archon_mcp_instrument::TelemetryError> {
    /// let _guard = archon_mcp_instrument::Telemetry::builder().otlp_endpoint("http://collector:4317").install()?;
    /// # Ok(()) }
    /// ```
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(endpoint.into());
        self.otlp()
    }

    /// Exports through any span exporter — for example `archon_mcp_exporter::PgSpanExporter`,
    /// straight to PostgreSQL.
    pub fn exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.otlp = false;
        self.exporter = Some(Box::new(move |builder, batch| Ok(with_batch(builder, exporter, batch))));
        self
    }

    /// Size of the batch processor's queue (default 65,536 spans; beyond it spans are dropped
    /// rather than slowing the server).
    pub fn queue_size(mut self, spans: usize) -> Self {
        self.queue_size = spans;
        self
    }

    /// How often the batch processor exports (default 1 s).
    pub fn scheduled_delay(mut self, delay: Duration) -> Self {
        self.scheduled_delay = delay;
        self
    }

    /// The tracing filter for the subscriber (default `RUST_LOG`, else [`DEFAULT_FILTER`]).
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }

    /// Whether the subscriber also prints logs to stderr (default yes; stdout belongs to the
    /// stdio transport).
    pub fn log_to_stderr(mut self, on: bool) -> Self {
        self.log_to_stderr = on;
        self
    }

    /// Records the MCP duration metrics through this meter provider (installed globally).
    pub fn meter_provider(mut self, provider: SdkMeterProvider) -> Self {
        self.meter_provider = Some(provider);
        self
    }

    /// Builds the tracer provider and installs it globally, without touching `tracing`.
    pub fn build_provider(self) -> Result<TelemetryGuard, TelemetryError> {
        // What code sets is a default: the OTEL_* variables, where set, win (as the
        // specification has it for OTEL_SERVICE_NAME and the OTEL_BSP_* settings).
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        let mut resource = Resource::builder();
        if let (Some(name), false) = (&self.service_name, set("OTEL_SERVICE_NAME")) {
            resource = resource.with_service_name(name.clone());
        }
        let mut batch = BatchConfigBuilder::default();
        if !set("OTEL_BSP_MAX_QUEUE_SIZE") {
            batch = batch.with_max_queue_size(self.queue_size);
        }
        if !set("OTEL_BSP_SCHEDULE_DELAY") {
            batch = batch.with_scheduled_delay(self.scheduled_delay);
        }
        if !set("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            batch = batch.with_max_export_batch_size(self.max_batch);
        }
        // The sampler the environment names, never dropping a span that bills.
        let mut builder = SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_sampler(crate::sampling::BillingSampler::from_env());
        if self.otlp {
            let exporter = otlp_exporter(self.otlp_endpoint.clone(), self.otlp_ca_file.clone())?;
            builder = with_batch(builder, exporter, batch);
        } else if let Some(add) = self.exporter {
            builder = add(builder, batch)?;
        }
        let provider = builder.build();
        global::set_tracer_provider(provider.clone());
        crate::tracer::installed(&provider);
        // So tool code's outgoing calls carry the context too (an application's own choice stays).
        if !crate::propagation::configured() {
            global::set_text_map_propagator(crate::propagation::default_propagator());
        }
        if let Some(meters) = &self.meter_provider {
            global::set_meter_provider(meters.clone());
        }
        Ok(TelemetryGuard {
            provider: Some(provider),
            meters: self.meter_provider,
            filter: self.filter,
            log: self.log_to_stderr,
        })
    }

    /// Builds the provider and installs it and a tracing subscriber (filter, stderr logs, and
    /// the OpenTelemetry layer so tool code's `tracing` spans join the request spans).
    pub fn install(self) -> Result<TelemetryGuard, TelemetryError> {
        let guard = self.build_provider()?;
        let provider = guard.provider.as_ref().expect("just built");
        let filter = match &guard.filter {
            Some(directives) => EnvFilter::new(directives),
            None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER)),
        };
        let fmt = guard.log.then(|| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        });
        Registry::default()
            .with(filter)
            .with(fmt)
            .with(crate::layer(provider))
            .try_init()
            .map_err(|_| TelemetryError::SubscriberInstalled)?;
        Ok(guard)
    }
}

/// The subscriber's filter when neither [`TelemetryBuilder::filter`] nor `RUST_LOG` gives one:
/// `info`, but rmcp only from `warn` — its per-message events cost every request, traced or
/// not, and say nothing the request spans do not.
///
/// ```
/// // Your own subscriber, filtered as `Telemetry::install` filters by default.
/// let filter = tracing_subscriber::EnvFilter::new(archon_mcp_instrument::DEFAULT_FILTER);
/// # drop(filter);
/// ```
pub const DEFAULT_FILTER: &str = "info,rmcp=warn";

/// The OTLP span exporter for `endpoint` (else the environment's), with retries and, for an
/// `https://` gRPC collector, TLS with the system's roots and `ca_file`.
fn otlp_exporter(
    endpoint: Option<String>,
    ca_file: Option<std::path::PathBuf>,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "grpc".into());
    let otlp = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match protocol.as_str() {
        "grpc" => {
            let effective = endpoint
                .clone()
                .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
                .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
            let mut tonic = otlp.with_tonic().with_retry_policy(otlp_retry_policy());
            if effective.as_deref().is_some_and(|e| e.starts_with("https://")) {
                let ca_file = ca_file
                    .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE").map(Into::into))
                    .or_else(|| env("OTEL_EXPORTER_OTLP_CERTIFICATE").map(Into::into));
                let mut tls = opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new().with_native_roots();
                if let Some(path) = ca_file {
                    let pem = std::fs::read(&path).map_err(|e| {
                        TelemetryError::Exporter(format!("reading the collector's CA file {}: {e}", path.display()))
                    })?;
                    tls = tls.ca_certificate(opentelemetry_otlp::tonic_types::transport::Certificate::from_pem(pem));
                }
                tonic = tonic.with_tls_config(tls);
            }
            match endpoint {
                Some(endpoint) => tonic.with_endpoint(endpoint).build(),
                None => tonic.build(),
            }
        }
        "http/protobuf" => {
            let http = otlp.with_http().with_retry_policy(otlp_retry_policy());
            match endpoint {
                Some(endpoint) => http.with_endpoint(http_traces_url(&endpoint)).build(),
                None => http.build(),
            }
        }
        other => {
            return Err(TelemetryError::Exporter(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported: use grpc or http/protobuf"
            )));
        }
    };
    exporter.map_err(|e| TelemetryError::Exporter(e.to_string()))
}

/// An OTLP/HTTP traces URL: a base URL (no path) gets the signal path, as the specification
/// says for `OTEL_EXPORTER_OTLP_ENDPOINT`; a URL with a path is taken as the traces URL.
fn http_traces_url(endpoint: &str) -> String {
    let after_scheme = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(slash) if !after_scheme[slash..].trim_end_matches('/').is_empty() => endpoint.to_owned(),
        _ => format!("{}/v1/traces", endpoint.trim_end_matches('/')),
    }
}

/// How the OTLP exporter retries a collector that is away or overloaded (UNAVAILABLE, 503,
/// 429, a timeout): for about 20 s with exponential backoff, rather than the SDK's default of
/// 3 retries within 2 s, after which a batch is dropped. The batch processor's queue holds what
/// arrives meanwhile; what overflows it is counted and logged by the SDK.
///
/// ```
/// // For an OTLP exporter you build yourself:
/// let policy = archon_mcp_instrument::otlp_retry_policy();
/// # let _ = policy;
/// ```
pub fn otlp_retry_policy() -> opentelemetry_otlp::RetryPolicy {
    opentelemetry_otlp::RetryPolicy::default()
        .with_max_retries(8)
        .with_initial_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
}

fn with_batch<E: SpanExporter + 'static>(
    builder: TracerProviderBuilder,
    exporter: E,
    batch: BatchConfigBuilder,
) -> TracerProviderBuilder {
    builder.with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batch.build()).build())
}

/// Keeps telemetry running; on [`shutdown`](Self::shutdown) or drop it ends every open
/// analytics session (`server_shutdown`) and flushes the spans.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
    filter: Option<String>,
    log: bool,
}

impl TelemetryGuard {
    /// The tracer provider.
    pub fn provider(&self) -> &SdkTracerProvider {
        self.provider.as_ref().expect("present until shutdown")
    }

    /// Exports every finished span now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }

    /// Ends open sessions as `server_shutdown`, flushes and shuts the providers down.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        session::end_all(DisconnectReason::ServerShutdown);
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
        if let Some(meters) = self.meters.take() {
            let _ = meters.force_flush();
            let _ = meters.shutdown();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the spans it exports and the resource the provider gives it.
    #[derive(Debug, Clone, Default)]
    struct Probe(std::sync::Arc<std::sync::Mutex<(usize, Option<Resource>)>>);

    impl SpanExporter for Probe {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().unwrap().0 += batch.len();
            Ok(())
        }
        fn set_resource(&mut self, resource: &Resource) {
            self.0.lock().unwrap().1 = Some(resource.clone());
        }
    }

    /// The variables are set for a child process running [`otel_variables_in_a_child`]: a
    /// test that set them in this process would race every other test reading the environment.
    #[test]
    fn otel_variables_win_over_what_code_sets() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "telemetry::tests::otel_variables_in_a_child", "--ignored", "--quiet"])
            .env("OTEL_SERVICE_NAME", "named-by-env")
            .env("OTEL_BSP_SCHEDULE_DELAY", "10")
            .status()
            .unwrap();
        assert!(status.success(), "the child's checks failed (its output is above)");
    }

    #[test]
    #[ignore = "run by otel_variables_win_over_what_code_sets, with the variables set"]
    fn otel_variables_in_a_child() {
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};
        assert_eq!(std::env::var("OTEL_BSP_SCHEDULE_DELAY").as_deref(), Ok("10"), "run as a child");
        let probe = Probe::default();
        let guard = Telemetry::builder()
            .service_name("named-by-code")
            .scheduled_delay(Duration::from_secs(3600))
            .exporter(probe.clone())
            .log_to_stderr(false)
            .build_provider()
            .unwrap();
        drop(guard.provider().tracer("t").start("a span"));
        // Exported within the environment's 10 ms, not the code's hour.
        for _ in 0..300 {
            if probe.0.lock().unwrap().0 > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (exported, resource) = probe.0.lock().unwrap().clone();
        assert_eq!(exported, 1, "OTEL_BSP_SCHEDULE_DELAY wins over the code's delay");
        let service = resource.unwrap().get(&opentelemetry::Key::new("service.name")).map(|v| v.to_string());
        assert_eq!(service.as_deref(), Some("named-by-env"));
        guard.shutdown();
    }

    #[test]
    fn a_base_http_endpoint_gets_the_traces_path() {
        assert_eq!(http_traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(http_traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
        assert_eq!(http_traces_url("https://c.example.com/otlp/v1/traces"), "https://c.example.com/otlp/v1/traces");
    }
}
