//! Ingest end to end: N realistic spans over 10,000 sessions sent over OTLP/gRPC by concurrent
//! clients to `archon-mcp-exporter serve` (a separate process, so its peak RSS is its own),
//! committed rows/s measured from the database; in the same run the same rows loaded with
//! binary COPY into the same schema (the baseline), and the in-process `PgSpanExporter` path;
//! the three in interleaved rounds; then the latency from span end to row visible at a steady
//! 5,000 spans/s (direct path, and through a collector when rotel is installed).
//!
//! ```text
//! cargo build --release -p archon-mcp-exporter && cargo bench --bench ingest
//! ARCHON_BENCH_SPANS=200000 cargo bench --bench ingest   # a smaller run
//! ```

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use archon_mcp_exporter::PgSpanExporter;
use archon_mcp_exporter::map_spans;
use archon_mcp_exporter::spans_from_request;
use archon_mcp_exporter::testing::{Connection, LocalCluster, otlp_request, with_estimate, with_usage};
use archon_mcp_exporter::{PgStore, StoreConfig};
use archon_mcp_otel::serve_process::{ServeProcess, status_kib};
use bytes::Bytes;
use common::USERS;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanProcessor};
use prost::Message as _;
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

const SESSIONS: u64 = 10_000;
/// How many interleaved rounds the three throughput paths run in.
const ROUNDS: u64 = 4;
const SPANS_PER_REQUEST: u64 = 1_000;

/// Keeps the spans a provider ends, to be handed to the measured processor later (moved, not
/// cloned as `InMemorySpanExporter::get_finished_spans` would).
#[derive(Clone, Debug, Default)]
struct Made(Arc<std::sync::Mutex<Vec<SpanData>>>);

impl SpanProcessor for Made {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Export request `k` of `total`: 1,000 spans of 10 sessions (sessions rotate over 10,000).
fn request(k: u64, t0: u64) -> Vec<u8> {
    let mut spans = Vec::with_capacity(SPANS_PER_REQUEST as usize);
    for s in 0..10 {
        let session = (k * 10 + s) % SESSIONS;
        let mut conn = Connection::new(
            &format!("0195f3a0-0000-7000-8000-{session:012x}"),
            "claude-code",
            Some(USERS[session as usize % 3]),
        );
        for i in 0..SPANS_PER_REQUEST / 10 {
            let start = t0 + (k * SPANS_PER_REQUEST + s * 100 + i) * 1_000_000;
            // Distinct span ids per request: Connection numbers its spans from 2.
            let mut span = conn.call(
                ["search_knowledge", "get_document", "create_task", "summarize_document"][i as usize % 4],
                start,
                12,
            );
            span.span_id = (k * SPANS_PER_REQUEST + s * 100 + i).to_be_bytes();
            let span =
                span.with_attribute("mcp.protocol.version", "2025-06-18").with_resource("service.instance.id", "pod-1");
            spans.push(match i % 4 {
                3 => with_usage(span, "claude-sonnet-4-5", 2400, 310),
                1 => with_estimate(span, 800, 40),
                _ => span,
            });
        }
    }
    otlp_request(&spans).encode_to_vec()
}

async fn count(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await.unwrap().get(0)
}

async fn database(cluster: &LocalCluster, name: &str) -> String {
    let (client, connection) = tokio_postgres::connect(&cluster.url("postgres"), NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let url = cluster.url(name);
    archon_mcp_exporter::migrate::migrate_url(&url).await.unwrap();
    url
}

fn main() {
    let quick = common::quick();
    let spans: u64 = std::env::var("ARCHON_BENCH_SPANS").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick {
        20_000
    } else {
        1_000_000
    });
    let requests = spans.div_ceil(SPANS_PER_REQUEST);
    let spans = requests * SPANS_PER_REQUEST;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(run(spans, requests, quick));
}

async fn run(spans: u64, requests: u64, quick: bool) {
    println!(
        "ingest ({spans} spans over {SESSIONS} sessions, {SPANS_PER_REQUEST} per export{})",
        if quick { ", QUICK MODE" } else { "" }
    );
    let cluster = tokio::task::spawn_blocking(LocalCluster::start).await.unwrap().expect("PostgreSQL");
    let t0 = now_nanos() - 3_600_000_000_000;
    eprintln!("encoding {requests} export requests …");
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..requests).map(|k| Bytes::from(request(k, t0))).collect());

    // The three paths run in interleaved rounds, each on its own share of the requests, so a
    // drift of the shared machine hits them alike; each path's rate is its spans over the sum
    // of its rounds' times.
    let rounds = ROUNDS.min(requests);
    let [serve_url, copy_url, sdk_url] = [
        database(&cluster, "ingest_serve").await,
        database(&cluster, "ingest_copy").await,
        database(&cluster, "ingest_sdk").await,
    ];
    let mut serve = ServeProcess::spawn(&serve_url, &["--no-reaper"]).expect("start serve");
    let pid = serve.pid();
    let endpoint = format!("http://{}", serve.grpc);
    let mut tries = 0;
    while TraceServiceClient::connect(endpoint.clone()).await.is_err() {
        tries += 1;
        assert!(tries < 100, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(status_kib(pid, "VmRSS:") as usize, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (copy_client, connection) = tokio_postgres::connect(&copy_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let copy_store = PgStore::connect(&copy_url, StoreConfig::default()).unwrap();
    let mut took = [Duration::ZERO; 3];
    for round in 0..rounds {
        let share = (requests * round / rounds) as usize..(requests * (round + 1) / rounds) as usize;
        eprintln!("round {} of {rounds} …", round + 1);
        took[0] += serve_round(&endpoint, bodies.clone(), share.clone()).await;
        took[1] += copy_round(&copy_client, &copy_store, &bodies[share.clone()]).await;
        let first = share.start as u64 * SPANS_PER_REQUEST;
        took[2] += sdk_round(&sdk_url, first..first + share.len() as u64 * SPANS_PER_REQUEST).await;
    }
    sampler.abort();
    let [serve_rate, copy_rate, sdk_rate] = took.map(|t| spans as f64 / t.as_secs_f64());
    for (path, url) in [("serve", &serve_url), ("COPY", &copy_url), ("the SDK path", &sdk_url)] {
        assert_eq!(count(url).await as u64, spans, "{path} committed every span");
    }
    let hwm = status_kib(pid, "VmHWM:");
    let _ = serve.child.kill().await;
    common::figure("serve: committed over OTLP/gRPC, 4 clients", serve_rate, "spans/s", Some("≥ 50,000"));
    common::figure(
        "serve peak RSS (sampled VmRSS)",
        peak.load(Ordering::Relaxed) as f64 / 1024.0,
        "MiB",
        Some("≤ 100 MB"),
    );
    common::figure("serve peak RSS (VmHWM)", hwm as f64 / 1024.0, "MiB", Some("≤ 100 MB"));
    common::figure("baseline: binary COPY of the same rows", copy_rate, "rows/s", None);
    common::figure("serve / COPY", 100.0 * serve_rate / copy_rate, "%", Some("≥ 75 %"));
    common::figure("in-process PgSpanExporter (SDK batch processor)", sdk_rate, "spans/s", None);
    common::figure("PgSpanExporter / serve", 100.0 * sdk_rate / serve_rate, "%", Some("≥ 90 %"));

    // Then the latency to visibility at a steady 5,000 spans/s: direct path, then collector path.
    let seconds = if quick { 2 } else { 20 };
    let direct_url = database(&cluster, "ingest_latency").await;
    let store = PgStore::connect(&direct_url, StoreConfig::default().with_max_connections(2)).unwrap();
    measure_visibility("direct path", PgSpanExporter::new(store), &direct_url, seconds, "≤ 1,000 ms").await;

    match archon_mcp_otel::collector::rotel_agent() {
        None => println!("collector path: rotel-agent not found (`pip install rotel`), not measured"),
        Some(agent) => {
            let collector_url = database(&cluster, "ingest_collector").await;
            let mut serve = ServeProcess::spawn(&collector_url, &["--no-reaper"]).expect("start serve");
            let rotel = archon_mcp_otel::collector::Rotel::start(agent, serve.grpc).await.expect("rotel");
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("http://{}", rotel.grpc))
                .build()
                .unwrap();
            measure_visibility("collector path", exporter, &collector_url, seconds, "≤ 2,000 ms").await;
            rotel.stop().await;
            let _ = serve.child.kill().await;
        }
    }
    tokio::task::spawn_blocking(move || drop(cluster)).await.unwrap();
}

/// Latency to visibility through `exporter` (behind the SDK's batch processor), printed as p50
/// and p99 figures.
async fn measure_visibility(
    path: &str,
    exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
    url: &str,
    seconds: usize,
    target: &str,
) {
    let batch = BatchConfigBuilder::default()
        .with_scheduled_delay(Duration::from_millis(100))
        .with_max_queue_size(100_000)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batch).build())
        .build();
    let latencies = visibility(&provider, url, seconds).await;
    let name = |q: &str| format!("{path} at 5,000 spans/s: span end → row visible, {q}");
    common::figure(&name("p50"), archon_mcp_otel::stats::quantile(&latencies, 0.5), "ms", None);
    common::figure(&name("p99"), archon_mcp_otel::stats::quantile(&latencies, 0.99), "ms", Some(target));
}

/// Path 1: `archon-mcp-exporter serve` fed requests `share` by 4 concurrent OTLP/gRPC clients,
/// until every one is acknowledged.
async fn serve_round(endpoint: &str, bodies: Arc<Vec<Bytes>>, share: std::ops::Range<usize>) -> Duration {
    let next = Arc::new(AtomicUsize::new(share.start));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (bodies, next, endpoint, end) = (bodies.clone(), next.clone(), endpoint.to_owned(), share.end);
        clients.push(tokio::spawn(async move {
            let channel = tonic::transport::Endpoint::new(endpoint).unwrap().connect().await.unwrap();
            let mut client = tonic::client::Grpc::new(channel);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= end {
                    return;
                }
                loop {
                    client.ready().await.unwrap();
                    let request = tonic::Request::new(bodies[k].clone());
                    match client.unary(request, EXPORT.clone(), EncodedRequest).await {
                        Ok(_) => break,
                        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status}"),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    started.elapsed()
}

/// The OTLP trace export method, called with requests encoded before the clock.
static EXPORT: tonic::codegen::http::uri::PathAndQuery =
    tonic::codegen::http::uri::PathAndQuery::from_static("/opentelemetry.proto.collector.trace.v1.TraceService/Export");

/// A gRPC codec sending an already encoded export request as it is: the clients' work inside
/// the clock is the sending, as a collector's would be, not decoding and encoding again the
/// 1,000 spans of every request on the two cores `serve` and PostgreSQL share.
#[derive(Debug, Clone, Copy, Default)]
struct EncodedRequest;

impl tonic::codec::Codec for EncodedRequest {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl tonic::codec::Encoder for EncodedRequest {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for EncodedRequest {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        ExportTraceServiceResponse::decode(src).map(Some).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

/// Path 2, the baseline: the same rows, mapped before the clock, then their sessions written
/// and the requests loaded with binary COPY into the same schema.
async fn copy_round(client: &tokio_postgres::Client, store: &PgStore, bodies: &[Bytes]) -> Duration {
    let mut sessions = Vec::new();
    let mut rows = Vec::new();
    for body in bodies {
        let (s, _) = spans_from_request(ExportTraceServiceRequest::decode(body.as_ref()).unwrap());
        let batch = map_spans(&s);
        sessions.extend(batch.sessions);
        rows.extend(batch.requests);
    }
    let started = Instant::now();
    let mut merged = archon_mcp_exporter::rows::SessionSet::default();
    for s in sessions {
        merged.add(s);
    }
    store.write(&archon_mcp_exporter::MappedBatch { sessions: merged.into_vec(), ..Default::default() }).await.unwrap();
    let sink = client
        .copy_in(
            "COPY archon_mcp_requests (request_id, session_id, method, tool_name, prompt_tokens, completion_tokens, token_source, model, \
             \"timestamp\", duration_ms, status, error_type, error_code, error_message, user_id, trace_id, span_id, jsonrpc_request_id) \
             FROM STDIN BINARY",
        )
        .await
        .unwrap();
    let types = [
        Type::UUID,
        Type::UUID,
        Type::VARCHAR,
        Type::VARCHAR,
        Type::INT4,
        Type::INT4,
        Type::VARCHAR,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::FLOAT8,
        Type::VARCHAR,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::UUID,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures::pin_mut!(writer);
    for r in &rows {
        writer
            .as_mut()
            .write(&[
                &r.request_id,
                &r.session_id,
                &r.method,
                &r.tool_name,
                &r.prompt_tokens,
                &r.completion_tokens,
                &r.token_source.as_str(),
                &r.model,
                &r.timestamp,
                &r.duration_ms,
                &r.status.as_str(),
                &r.error_type,
                &r.error_code,
                &r.error_message,
                &r.user_id,
                &r.trace_id,
                &r.span_id,
                &r.jsonrpc_request_id,
            ])
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
    started.elapsed()
}

/// Path 3, in process: SDK spans `numbers` → batch processor → `PgSpanExporter`. The spans are
/// made by the SDK before the clock starts, as `serve`'s requests are encoded before its clock:
/// making them is the instrumented application's work, not the exporter's. The clock runs from
/// the batch processor's `on_end` (what a span's end calls) to every row committed.
async fn sdk_round(url: &str, numbers: std::ops::Range<u64>) -> Duration {
    let made = Made::default();
    let maker = SdkTracerProvider::builder().with_span_processor(made.clone()).build();
    let tracer = maker.tracer("bench");
    // Sessions as in the OTLP requests: 100 consecutive spans per session.
    for i in numbers {
        let session = format!("0195f3a0-0000-7000-8000-{:012x}", (i / 100) % SESSIONS);
        let mut span = tracer
            .span_builder("tools/call search_knowledge")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("mcp.method.name", "tools/call"),
                KeyValue::new("gen_ai.tool.name", "search_knowledge"),
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
                KeyValue::new("session.id", session),
                KeyValue::new("archon.client.name", "claude-code"),
                KeyValue::new("archon.client.version", "1.0.0"),
                KeyValue::new("user.id", USERS[(i % 3) as usize].principal),
                KeyValue::new("user.email", USERS[(i % 3) as usize].email),
                KeyValue::new("archon.user.department", USERS[(i % 3) as usize].department),
                KeyValue::new("jsonrpc.request.id", i.to_string()),
            ])
            .start(&tracer);
        span.end();
    }
    let made = std::mem::take(&mut *made.0.lock().unwrap());
    let store = PgStore::connect(url, StoreConfig::default().with_max_connections(2)).unwrap();
    let mut processor = BatchSpanProcessor::builder(PgSpanExporter::new(store))
        .with_batch_config(
            BatchConfigBuilder::default().with_max_queue_size(made.len() + 1).with_max_export_batch_size(2048).build(),
        )
        .build();
    // What a provider does with its processors when it is built.
    processor.set_resource(&Resource::builder().build());
    let started = Instant::now();
    for span in made {
        processor.on_end(span);
    }
    // Shutting down drains the whole queue (force_flush gives up after 5 s).
    tokio::task::spawn_blocking(move || processor.shutdown_with_timeout(Duration::from_secs(900)))
        .await
        .unwrap()
        .unwrap();
    started.elapsed()
}

/// Produces 5,000 spans/s for `seconds` through `provider` and returns, per span, the
/// milliseconds from its end until its row is visible in `url` (rows become visible in commit
/// order, which is end order batch by batch).
async fn visibility(provider: &SdkTracerProvider, url: &str, seconds: usize) -> Vec<f64> {
    let tracer = provider.tracer("latency");
    let total = 5_000 * seconds;
    let ends = Arc::new(std::sync::Mutex::new(Vec::<Instant>::with_capacity(total)));
    let producer = {
        let ends = ends.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for chunk in 0..total / 50 {
                tick.tick().await;
                for j in 0..50 {
                    let i = chunk * 50 + j;
                    let mut span = tracer
                        .span_builder("tools/call list_tasks")
                        .with_kind(SpanKind::Server)
                        .with_attributes([
                            KeyValue::new("mcp.method.name", "tools/call"),
                            KeyValue::new("gen_ai.tool.name", "list_tasks"),
                            KeyValue::new("session.id", format!("lat-{}", i % 100)),
                        ])
                        .start(&tracer);
                    span.end();
                    ends.lock().unwrap().push(Instant::now());
                }
            }
        })
    };
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut latencies = Vec::with_capacity(total);
    let mut seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(seconds as u64 + 30);
    while seen < total && Instant::now() < deadline {
        let n: i64 = client.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await.unwrap().get(0);
        let now = Instant::now();
        {
            let ends = ends.lock().unwrap();
            // Rows become visible in commit order, which is end order batch by batch.
            for end in &ends[seen..(n as usize).min(ends.len())] {
                latencies.push(now.duration_since(*end).as_secs_f64() * 1e3);
            }
            seen = (n as usize).min(ends.len()).max(seen);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    producer.await.unwrap();
    latencies.sort_by(f64::total_cmp);

    latencies
}
