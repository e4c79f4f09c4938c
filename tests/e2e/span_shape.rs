//! The spans `archon_mcp_exporter::testing` builds by hand (for the exporter's tests, the demo
//! and the benchmarks) against the spans `Traced` really emits for a real client: every
//! attribute the fixtures set must be one the instrument sets, with the same type, so the
//! exporter is never tested against a span shape that no longer exists.

use std::sync::{Arc, Mutex};

use archon_mcp_exporter::span::{Span, Value};
use archon_mcp_exporter::testing::{Connection, TestUser, with_usage};
use archon_mcp_instrument::attributes as attr;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::json;

use crate::harness::*;

/// Keeps every span it is given, and the resource.
#[derive(Debug, Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<SpanData>>>,
    resource: Arc<Mutex<Option<opentelemetry_sdk::Resource>>>,
}

impl SpanExporter for Capture {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.lock().unwrap().extend(batch);
        Ok(())
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        *self.resource.lock().unwrap() = Some(resource.clone());
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Str(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        Value::I64(_) => "int",
        Value::F64(_) => "double",
    }
}

/// Every attribute and resource attribute of `fixture` is on `real`, with the same type; the
/// name and kind agree.
fn assert_same_shape(what: &str, fixture: &Span, real: &Span) {
    assert_eq!(fixture.name, real.name, "{what}: span name");
    assert_eq!(fixture.kind, real.kind, "{what}: span kind");
    for (attributes, real_attributes, place) in [
        (&fixture.attributes, &real.attributes, "attribute"),
        (&fixture.resource, &real.resource, "resource attribute"),
    ] {
        for (key, value) in &attributes.0 {
            let real_value = real_attributes
                .get(key)
                .unwrap_or_else(|| panic!("{what}: the fixture sets {place} {key}, the instrument does not"));
            assert_eq!(kind(value), kind(real_value), "{what}: {place} {key} has another type");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testing_spans_have_the_shape_the_instrument_emits() {
    let capture = Capture::default();
    let server = McpServer::start_with(capture.clone(), |config| config).await;
    let client = connect(server.addr, "claude-code", "ada", "Research").await;
    client.call_tool(call("summarize_document", json!({"id": "onboarding"}))).await.expect("the call succeeds");
    client.cancel().await.unwrap();
    // The session ends when the client's DELETE arrives.
    for _ in 0..100 {
        if server.config.open_sessions() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.flush().await;
    server.stop();

    let resource = capture.resource.lock().unwrap().clone().expect("the SDK gave its resource");
    let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(
            capture.spans.lock().unwrap().clone(),
            &ResourceAttributesWithSchema::from(&resource),
        ),
    };
    let (spans, undecodable) = archon_mcp_exporter::spans_from_request(request);
    assert!(undecodable.is_empty());
    let real_call = spans.iter().find(|s| s.name == "tools/call summarize_document").expect("a tools/call span");
    let real_session = spans.iter().find(|s| s.name == attr::SESSION_SPAN_NAME).expect("an mcp.session span");

    let ada = TestUser { principal: "ada", email: "ada@example.com", name: "ADA", department: "Research" };
    let mut connection = Connection::new("s-1", "claude-code", Some(ada)).with_service("knowledge-e2e");
    let call = with_usage(connection.call("summarize_document", 0, 5), "claude-sonnet-4-5", 1, 1);
    assert_same_shape("tools/call", &call, real_call);
    assert_same_shape("mcp.session", &connection.end(0, 10, "client_disconnect"), real_session);
}
