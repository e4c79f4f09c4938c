//! Mapping throughput: OTLP protobuf decode + span → row mapping, on one core, for realistic
//! MCP spans (about 20 attributes each).
//!
//! ```text
//! cargo bench --bench mapping
//! ```

mod common;

use std::time::Instant;

use archon_mcp_exporter::map_spans;
use archon_mcp_exporter::spans_from_request;
use archon_mcp_exporter::testing::{Connection, otlp_request, with_estimate, with_usage};
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

fn main() {
    let quick = common::quick();
    let body = realistic_request();
    let spans_per_request = 1_000u64;
    let iterations = if quick { 20 } else { 3_000 };
    let mut rows = 0;
    let started = Instant::now();
    for _ in 0..iterations {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("decode");
        let (spans, _) = spans_from_request(request);
        rows += map_spans(&spans).requests.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(rows as u64, iterations as u64 * spans_per_request);
    println!(
        "mapping throughput ({} spans, {} bytes per request{})",
        iterations as u64 * spans_per_request,
        body.len(),
        if quick { ", QUICK MODE" } else { "" }
    );
    common::figure(
        "OTLP protobuf decode + mapping, one core",
        iterations as f64 * spans_per_request as f64 / elapsed,
        "spans/s",
        Some("≥ 500,000"),
    );
}
