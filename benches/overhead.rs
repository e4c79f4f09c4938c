//! Instrumentation overhead: the same `tools/call` driven by a real rmcp client over an
//! in-process duplex transport, against the bare server and against `Traced` with the full
//! pipeline (OpenTelemetry SDK batch processor with an exporter that drops, the
//! tracing-opentelemetry layer installed). Prints the median and p99 per call and the added time.
//!
//! ```text
//! cargo bench --bench overhead
//! ```

mod common;

use std::time::Instant;

use archon_mcp_instrument::budget::{BudgetGate, BudgetScope, Exceeded};
use archon_mcp_instrument::{TracedConfig, TracedExt};
use archon_mcp_otel::knowledge::KnowledgeServer;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Debug)]
struct Drop;

impl SpanExporter for Drop {
    async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>;

async fn connect<S: rmcp::ServerHandler>(server: S) -> Client {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let running = server.serve(server_io).await.expect("server");
        let _ = running.waiting().await;
    });
    ClientConfig::default().serve(client_io).await.expect("client")
}

async fn time_calls(client: &Client, n: usize, samples: &mut Vec<f64>) {
    let request = CallToolRequestParams::new("list_tasks");
    for _ in 0..n {
        let started = Instant::now();
        client.call_tool(request.clone()).await.expect("call");
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
}

fn main() {
    let quick = common::quick();
    let (rounds, per_round) = if quick { (2, 200) } else { (20, 2_500) };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(Drop)
                .with_batch_config(BatchConfigBuilder::default().with_max_queue_size(65_536).build())
                .build(),
        )
        .build();
    tracing_subscriber::registry().with(archon_mcp_instrument::layer(&provider)).init();
    let config = TracedConfig::builder().tracer(BoxedTracer::new(Box::new(provider.tracer("bench")))).build();
    // The same, enforcing budgets: a fresh reading with 20 budgets over (none of them this caller's).
    let gate = BudgetGate::new(std::time::Duration::from_secs(3600));
    gate.update((0..20).map(|i| Exceeded::new(BudgetScope::Department(format!("dept-{i}")), 10.0, 11.0)).collect());
    let enforcing = TracedConfig::builder()
        .tracer(BoxedTracer::new(Box::new(provider.tracer("bench"))))
        .enforce_budgets(gate)
        .build();

    let (bare, traced, budgeted) = runtime.block_on(async {
        let bare_client = connect(KnowledgeServer::new()).await;
        let traced_client = connect(KnowledgeServer::new().traced(config)).await;
        let budgeted_client = connect(KnowledgeServer::new().traced(enforcing)).await;
        let (mut bare, mut traced, mut budgeted) = (Vec::new(), Vec::new(), Vec::new());
        // Warm up, then alternate rounds so drift hits all alike.
        time_calls(&bare_client, 200, &mut Vec::new()).await;
        time_calls(&traced_client, 200, &mut Vec::new()).await;
        time_calls(&budgeted_client, 200, &mut Vec::new()).await;
        for _ in 0..rounds {
            time_calls(&bare_client, per_round, &mut bare).await;
            time_calls(&traced_client, per_round, &mut traced).await;
            time_calls(&budgeted_client, per_round, &mut budgeted).await;
        }
        (bare, traced, budgeted)
    });
    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let (bare, traced, budgeted) = (sorted(bare), sorted(traced), sorted(budgeted));
    println!(
        "instrumentation overhead ({} calls each, current-thread runtime{})",
        bare.len(),
        if quick { ", QUICK MODE" } else { "" }
    );
    let (b50, b99, t50, t99) = (
        common::quantile(&bare, 0.5),
        common::quantile(&bare, 0.99),
        common::quantile(&traced, 0.5),
        common::quantile(&traced, 0.99),
    );
    common::figure("bare tools/call, median", b50, "µs", None);
    common::figure("bare tools/call, p99", b99, "µs", None);
    common::figure("traced tools/call, median", t50, "µs", None);
    common::figure("traced tools/call, p99", t99, "µs", None);
    common::figure("added per call, median", t50 - b50, "µs", Some("≤ 2 µs"));
    common::figure("added per call, p99", t99 - b99, "µs", Some("≤ 10 µs"));
    common::figure("traced / bare, median", t50 / b50, "×", None);
    let e50 = common::quantile(&budgeted, 0.5);
    common::figure("traced + budget enforcement, median", e50, "µs", None);
    common::figure("budget check added, median", e50 - t50, "µs", None);
    std::mem::forget(provider);
}
