//! Mapping throughput: OTLP protobuf decode + span → row mapping, on one core, for realistic
//! MCP spans (about 20 attributes each), against prost's decode alone on the same requests.
//!
//! ```text
//! cargo bench --bench mapping
//! ARCHON_BENCH_PROFILE=1 target/release/deps/mapping-* --bench   # decode + map alone, for a profiler
//! ```

mod common;

use std::time::{Duration, Instant};

use archon_mcp_exporter::map_spans;
use archon_mcp_exporter::testing::{Connection, otlp_request, with_estimate, with_usage};
use archon_mcp_exporter::{spans_from_protobuf, spans_from_request};
use common::USERS;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

/// 1,000 spans of 50 connections, as a collector batches them.
pub fn realistic_request() -> Vec<u8> {
    let t0 = 1_767_225_600_000_000_000u64;
    let mut spans = Vec::new();
    for c in 0..50u64 {
        let mut conn =
            Connection::new(&format!("0195f3a0-0000-7000-8000-{c:012x}"), "claude-code", Some(USERS[c as usize % 3]));
        for i in 0..20u64 {
            let span = conn
                .call(
                    ["search_knowledge", "get_document", "create_task", "summarize_document"][i as usize % 4],
                    t0 + (c * 100 + i) * 1_000_000_000,
                    35,
                )
                .with_attribute("mcp.protocol.version", "2025-06-18")
                .with_attribute("mcp.session.id", format!("mcp-{c}"))
                .with_attribute("client.address", "10.0.0.7")
                .with_resource("service.instance.id", "pod-1")
                .with_resource("service.version", "1.4.2");
            spans.push(match i % 4 {
                3 => with_usage(span, "claude-sonnet-4-5", 2400, 310),
                1 => with_estimate(span, 800, 40),
                _ => span,
            });
        }
    }
    otlp_request(&spans).encode_to_vec()
}

/// A stage of the pipeline, timed over requests of 1,000 spans.
struct Stage<'a> {
    name: &'static str,
    run: Box<dyn FnMut() -> usize + 'a>,
    elapsed: Duration,
    spans: usize,
}

impl<'a> Stage<'a> {
    fn new(name: &'static str, run: impl FnMut() -> usize + 'a) -> Self {
        Self { name, run: Box::new(run), elapsed: Duration::ZERO, spans: 0 }
    }

    fn spans_per_second(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64()
    }
}

/// How many turns each stage gets.
const ROUNDS: usize = 20;

/// Runs the stages in turn, `iterations / ROUNDS` requests at a time: on a shared machine
/// whose speed drifts, every stage sees the same drift, so their ratios hold.
fn interleaved(stages: &mut [Stage<'_>], iterations: usize) {
    for _ in 0..ROUNDS {
        for stage in stages.iter_mut() {
            let started = Instant::now();
            for _ in 0..iterations.div_ceil(ROUNDS) {
                stage.spans += (stage.run)();
            }
            stage.elapsed += started.elapsed();
        }
    }
    for stage in stages.iter() {
        assert_eq!(stage.spans, ROUNDS * iterations.div_ceil(ROUNDS) * 1_000, "{}", stage.name);
    }
}

fn main() {
    let quick = common::quick();
    let body = realistic_request();
    let iterations = if quick { 20 } else { 3_000 };
    let decode = || ExportTraceServiceRequest::decode(body.as_slice()).expect("decode");
    let count = |request: &ExportTraceServiceRequest| -> usize {
        request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
    };
    let shared = bytes::Bytes::from(body.clone());
    let read = || spans_from_protobuf(shared.clone()).expect("decode").0;
    let spans = read();
    assert_eq!(spans, spans_from_request(decode()).0, "both decoders give the same spans");
    // `ARCHON_BENCH_PROFILE=1` runs decode + map alone, for a profiler.
    if std::env::var_os("ARCHON_BENCH_PROFILE").is_some() {
        let mut stages = [Stage::new("decode + map", || map_spans(&read()).requests.len())];
        interleaved(&mut stages, iterations);
        common::figure("OTLP protobuf decode + mapping, one core", stages[0].spans_per_second(), "spans/s", None);
        return;
    }
    // The anchor is prost's decode alone, timed in the same rounds as the others.
    let mut stages = [
        Stage::new("prost decode only (the anchor), one core", || count(&decode())),
        Stage::new("prost decode + conversion into the span model, one core", || spans_from_request(decode()).0.len()),
        Stage::new("decode into the span model (spans_from_protobuf), one core", || read().len()),
        Stage::new("map_spans alone, one core", || map_spans(&spans).requests.len()),
        Stage::new("OTLP protobuf decode + mapping, one core", || map_spans(&read()).requests.len()),
    ];
    interleaved(&mut stages, iterations);
    println!(
        "mapping throughput ({} spans per stage in {ROUNDS} interleaved rounds, {} bytes per request{})",
        stages[0].spans,
        body.len(),
        if quick { ", QUICK MODE" } else { "" }
    );
    for stage in &stages[..4] {
        common::figure(stage.name, stage.spans_per_second(), "spans/s", None);
    }
    let (prost_only, mapped) = (stages[0].spans_per_second(), stages[4].spans_per_second());
    common::figure(stages[4].name, mapped, "spans/s", Some("≥ 500,000"));
    common::figure("decode + map / prost decode only", mapped / prost_only, "×", Some("≥ 1.5"));
}
