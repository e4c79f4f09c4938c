//! Mapping throughput: OTLP protobuf decode + span → row mapping, on one core, for realistic
//! MCP spans (about 20 attributes each), against prost's decode alone on the same requests.
//!
//! ```text
//! cargo bench --bench mapping
//! ```

mod common;

use std::time::Instant;

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

/// Spans per second of `stage` run `iterations` times over requests of 1,000 spans.
fn throughput(iterations: usize, mut stage: impl FnMut() -> usize) -> f64 {
    let started = Instant::now();
    let mut spans = 0;
    for _ in 0..iterations {
        spans += stage();
    }
    assert_eq!(spans, iterations * 1_000);
    spans as f64 / started.elapsed().as_secs_f64()
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
    // The stages one after another, in one run: the anchor is prost's decode alone.
    let prost_only = throughput(iterations, || count(&decode()));
    let via_prost = throughput(iterations, || spans_from_request(decode()).0.len());
    let to_model = throughput(iterations, || read().len());
    let mapped = throughput(iterations, || map_spans(&read()).requests.len());
    let spans = read();
    assert_eq!(spans, spans_from_request(decode()).0, "both decoders give the same spans");
    let map_only = throughput(iterations, || map_spans(&spans).requests.len());
    println!(
        "mapping throughput ({} spans per stage, {} bytes per request{})",
        iterations * 1_000,
        body.len(),
        if quick { ", QUICK MODE" } else { "" }
    );
    common::figure("prost decode only (the anchor), one core", prost_only, "spans/s", None);
    common::figure("prost decode + conversion into the span model, one core", via_prost, "spans/s", None);
    common::figure("decode into the span model (spans_from_protobuf), one core", to_model, "spans/s", None);
    common::figure("map_spans alone, one core", map_only, "spans/s", None);
    common::figure("OTLP protobuf decode + mapping, one core", mapped, "spans/s", Some("≥ 500,000"));
    common::figure("decode + map / prost decode only", mapped / prost_only, "×", Some("≥ 1.5"));
}
