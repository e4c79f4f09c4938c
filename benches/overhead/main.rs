//! Instrumentation overhead: the same `tools/call` driven by a real rmcp client over an
//! in-process duplex transport, against the bare server, against `Traced`, and against the
//! anchor a user would write by hand (a `tracing` span per call through tracing-opentelemetry,
//! [`naive`]). All run in one process through one pipeline: the OpenTelemetry SDK batch
//! processor with an exporter that drops, and the subscriber `Telemetry::install` sets up (its
//! default filter and `archon_mcp_instrument::layer`, which keep rmcp's own events out). The
//! user is set, so spans carry every attribute a real deployment's do. Prints medians, p99s,
//! allocations per call and the ratios.
//!
//! Two more `Traced` variants break the added time down: spans dropped on the thread that ends
//! them (the SDK span without an export thread), and a no-op tracer (`Traced`'s own
//! bookkeeping: origin, identity, session, in-flight entry, cancellation, attributes).
//!
//! The client side likewise: the bare server called through a `TracedClient` (a CLIENT span,
//! its context injected into `_meta`) and through the anchor a user would write by hand
//! ([`naive::call`]: a `tracing` span, its context injected by the same propagator).
//!
//! ```text
//! cargo bench --bench overhead
//! ```

mod allocations;
#[path = "../common/mod.rs"]
mod common;
mod naive;

use std::time::Instant;

use archon_mcp_instrument::budget::{BudgetGate, BudgetScope, BudgetStatus};
use archon_mcp_instrument::usage::TokenEstimation;
use archon_mcp_instrument::user::{EnvUser, UserInfo};
use archon_mcp_instrument::{TracedConfig, TracedExt};
use archon_mcp_otel::knowledge::KnowledgeServer;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::noop::NoopTracer;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;

#[derive(Debug)]
struct Drop;

impl SpanExporter for Drop {
    async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// Drops each span on the thread that ends it: what a span costs without an export thread.
#[derive(Debug)]
struct DropOnEnd;

impl SpanProcessor for DropOnEnd {
    fn on_start(&self, _: &mut Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        drop(std::hint::black_box(span));
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>;

/// How a variant's calls are made: rmcp's client, a traced one, or the hand-written anchor.
enum Caller {
    Plain(Client),
    Traced(archon_mcp_instrument::TracedClient<ClientConfig>),
    Naive(Client),
}

impl Caller {
    async fn call(&self, request: CallToolRequestParams) {
        match self {
            Caller::Plain(client) => drop(client.call_tool(request).await.expect("call")),
            Caller::Traced(client) => drop(client.call_tool(request).await.expect("call")),
            Caller::Naive(client) => naive::call(client, request).await,
        }
    }
}

async fn connect<S: rmcp::ServerHandler>(server: S) -> Client {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let running = server.serve(server_io).await.expect("server");
        let _ = running.waiting().await;
    });
    ClientConfig::default().serve(client_io).await.expect("client")
}

/// One variant's samples: latency per call (µs) and allocations per call, per round.
#[derive(Default)]
struct Samples {
    micros: Vec<f64>,
    allocations: Vec<f64>,
}

impl Samples {
    async fn take(&mut self, caller: &Caller, n: usize) {
        let request = CallToolRequestParams::new("list_tasks");
        let before = allocations::count();
        for _ in 0..n {
            let started = Instant::now();
            caller.call(request.clone()).await;
            self.micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
        self.allocations.push((allocations::count() - before) as f64 / n as f64);
    }

    fn sorted(mut self) -> Self {
        self.micros.sort_by(f64::total_cmp);
        self.allocations.sort_by(f64::total_cmp);
        self
    }

    fn median(&self) -> f64 {
        archon_mcp_otel::stats::quantile(&self.micros, 0.5)
    }

    fn p99(&self) -> f64 {
        archon_mcp_otel::stats::quantile(&self.micros, 0.99)
    }

    fn allocations(&self) -> f64 {
        archon_mcp_otel::stats::quantile(&self.allocations, 0.5)
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
    // As `Telemetry::install` sets it up: its default filter, then the OpenTelemetry layer.
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(archon_mcp_instrument::DEFAULT_FILTER))
        .with(archon_mcp_instrument::layer(&provider))
        .init();
    let user = common::USERS[0];
    let resolver = || {
        EnvUser::fixed(
            UserInfo::new(user.principal)
                .with_email(user.email)
                .with_full_name(user.name)
                .with_department(user.department),
        )
    };
    // Token estimation off, as in every earlier run of this bench (BENCHMARKS.md): the figures
    // stay comparable. It is on by default since 2026-12-05; its cost is the arguments' and
    // the result's serialisation, which the naive wrapper does not do either.
    let traced_with = |tracer: archon_mcp_instrument::SpanTracer| {
        KnowledgeServer::new().traced(
            TracedConfig::builder()
                .tracer(tracer)
                .user_resolver(resolver())
                .token_estimation(TokenEstimation::Off)
                .build(),
        )
    };
    // The same, enforcing budgets: a fresh reading with 20 budgets over (none of them this caller's).
    let gate = BudgetGate::new(std::time::Duration::from_secs(3600));
    gate.update((0..20).map(|i| BudgetStatus::new(BudgetScope::Department(format!("dept-{i}")), 10.0, 11.0)).collect());
    let enforcing = TracedConfig::builder()
        .tracer(provider.tracer("bench"))
        .user_resolver(resolver())
        .token_estimation(TokenEstimation::Off)
        .enforce_budgets(gate)
        .build();
    let inline = SdkTracerProvider::builder().with_span_processor(DropOnEnd).build();
    let naive = naive::Naive {
        inner: KnowledgeServer::new(),
        session: "0193b2c4-7e1a-7c3e-9f4d-2a5b6c7d8e9f".to_owned(),
        user,
    };

    // Both client variants inject through the propagator a deployment would configure.
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    let client_config = TracedConfig::builder().tracer(provider.tracer("bench")).build();

    let [bare, traced, hand, budgeted, dropped, bookkeeping, traced_client, naive_client] = runtime.block_on(async {
        let clients = [
            Caller::Plain(connect(KnowledgeServer::new()).await),
            Caller::Plain(connect(traced_with(provider.tracer("bench").into())).await),
            Caller::Plain(connect(naive).await),
            Caller::Plain(connect(KnowledgeServer::new().traced(enforcing)).await),
            Caller::Plain(connect(traced_with(inline.tracer("bench").into())).await),
            Caller::Plain(connect(traced_with(BoxedTracer::new(Box::new(NoopTracer::new())).into())).await),
            Caller::Traced(archon_mcp_instrument::TracedClientExt::traced(
                connect(KnowledgeServer::new()).await,
                client_config,
            )),
            Caller::Naive(connect(KnowledgeServer::new()).await),
        ];
        let mut samples: [Samples; 8] = Default::default();
        // Warm up, then alternate rounds so drift hits all alike.
        for client in &clients {
            Samples::default().take(client, 200).await;
        }
        for _ in 0..rounds {
            for (client, samples) in clients.iter().zip(&mut samples) {
                samples.take(client, per_round).await;
            }
        }
        samples.map(Samples::sorted)
    });
    println!(
        "instrumentation overhead ({} calls each, current-thread runtime{})",
        bare.micros.len(),
        if quick { ", QUICK MODE" } else { "" }
    );
    common::figure("bare tools/call, median", bare.median(), "µs", None);
    common::figure("bare tools/call, p99", bare.p99(), "µs", None);
    common::figure("traced tools/call, median", traced.median(), "µs", None);
    common::figure("traced tools/call, p99", traced.p99(), "µs", None);
    common::figure("naive tracing-opentelemetry tools/call, median", hand.median(), "µs", None);
    common::figure("added per call, median", traced.median() - bare.median(), "µs", Some("≤ 2 µs"));
    common::figure("added per call, p99", traced.p99() - bare.p99(), "µs", Some("≤ 10 µs"));
    common::figure("naive added per call, median", hand.median() - bare.median(), "µs", None);
    common::figure("naive added per call, p99", hand.p99() - bare.p99(), "µs", None);
    common::figure("traced / bare, median", traced.median() / bare.median(), "×", None);
    common::figure(
        "added per call vs naive tracing-opentelemetry, median",
        (traced.median() - bare.median()) / (hand.median() - bare.median()),
        "×",
        Some("≤ 0.25 ×"),
    );
    common::figure("allocations per call, bare", bare.allocations(), "", None);
    common::figure("allocations added per call", traced.allocations() - bare.allocations(), "", Some("≤ 10"));
    common::figure("allocations added per call, naive", hand.allocations() - bare.allocations(), "", None);
    common::figure("traced + budget enforcement, median", budgeted.median(), "µs", None);
    common::figure("budget check added, median", budgeted.median() - traced.median(), "µs", None);
    // Where the added time goes: the bookkeeping, then the SDK span, then its export thread.
    for (what, samples) in
        [("spans dropped where they end", &dropped), ("no-op tracer (bookkeeping alone)", &bookkeeping)]
    {
        common::figure(&format!("added, {what}, median"), samples.median() - bare.median(), "µs", None);
        common::figure(&format!("added, {what}, p99"), samples.p99() - bare.p99(), "µs", None);
    }
    common::figure(
        "bookkeeping alone vs naive tracing-opentelemetry, median",
        (bookkeeping.median() - bare.median()) / (hand.median() - bare.median()),
        "×",
        None,
    );
    // The client side, against the bare server.
    common::figure("client added per call, median", traced_client.median() - bare.median(), "µs", None);
    common::figure("client added per call, p99", traced_client.p99() - bare.p99(), "µs", None);
    common::figure("naive client added per call, median", naive_client.median() - bare.median(), "µs", None);
    common::figure(
        "client added per call vs naive tracing-opentelemetry, median",
        (traced_client.median() - bare.median()) / (naive_client.median() - bare.median()),
        "×",
        None,
    );
    common::figure("client allocations added per call", traced_client.allocations() - bare.allocations(), "", None);
    common::figure(
        "client allocations added per call, naive",
        naive_client.allocations() - bare.allocations(),
        "",
        None,
    );
    std::mem::forget(provider);
}
