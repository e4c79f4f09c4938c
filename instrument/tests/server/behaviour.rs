//! Failures, panics, odd input, trace context and a stuck exporter, over an in-process duplex
//! transport (a real rmcp client and server, no network).

use std::time::Duration;

use archon_mcp_instrument::attributes as attr;
use archon_mcp_instrument::capture::CapturePolicy;
use archon_mcp_instrument::usage::TokenEstimation;
use archon_mcp_instrument::{TracedConfig, TracedExt};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, RequestParamsMeta as _};
use rmcp::service::{RoleClient, RunningService};
use serde_json::json;

use crate::support::*;

async fn connect(config: TracedConfig) -> RunningService<RoleClient, ClientConfig> {
    connect_to(Notes, config).await
}

/// A real rmcp client of `server` traced with `config`, over an in-process duplex.
async fn connect_to(
    server: impl rmcp::ServerHandler,
    config: TracedConfig,
) -> RunningService<RoleClient, ClientConfig> {
    let (server_io, client_io) = tokio::io::duplex(1 << 22);
    tokio::spawn(async move {
        let running = server.traced(config).serve(server_io).await.expect("server starts");
        let _ = running.waiting().await;
    });
    ClientConfig::default().serve(client_io).await.expect("client connects")
}

fn call(name: &str, arguments: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments))
}

fn tool_spans(spans: &[SpanData]) -> Vec<Seen> {
    summary(spans).into_iter().filter(|s| s.attr(attr::MCP_METHOD_NAME) == Some("tools/call")).collect()
}

#[tokio::test]
async fn failures_are_recorded_and_the_server_keeps_serving() {
    let capture = Capture::new();
    let client = connect(capture.config(TracedConfig::builder())).await;

    let failed = client.call_tool(call("fail", json!({}))).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
    let panicked = client.call_tool(call("boom", json!({}))).await.unwrap_err();
    assert!(panicked.to_string().contains("panicked"), "{panicked}");
    let unknown = client.call_tool(call("no_such_tool", json!({}))).await.unwrap_err();
    assert!(unknown.to_string().contains("no tool named"), "{unknown}");
    // Still serving.
    client.call_tool(call("search", json!({"query": "rust"}))).await.unwrap();

    let spans = capture.wait_for("four tool spans", |s| tool_spans(s).len() == 4).await;
    let by_tool =
        |tool: &str| tool_spans(&spans).into_iter().find(|s| s.attr(attr::GEN_AI_TOOL_NAME) == Some(tool)).unwrap();

    let fail = by_tool("fail");
    assert_eq!(fail.attr(attr::ERROR_TYPE), Some("tool_error"));
    assert_eq!(fail.status, "error:tool_error", "the result text is not captured by default");
    assert_eq!(fail.name, "tools/call fail");
    assert_eq!(fail.kind, "server");

    let boom = by_tool("boom");
    assert_eq!(boom.attr(attr::ERROR_TYPE), Some("panic"));
    assert_eq!(boom.attr(attr::RPC_RESPONSE_STATUS_CODE), Some("-32603"));
    assert_eq!(boom.status, "error:the request handler panicked", "-32603 is the server's failure");

    let unknown = tool_spans(&spans).into_iter().find(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_none()).unwrap();
    assert_eq!(unknown.name, "tools/call", "the convention's name without a target: no client words in it");
    assert_eq!(unknown.attr(attr::ERROR_TYPE), Some("-32602"), "a caller mistake, by its code");
    assert_eq!(unknown.attr(attr::RPC_RESPONSE_STATUS_CODE), Some("-32602"));
    assert_eq!(unknown.status, "unset", "a caller's mistake is not a server span's error");
    assert_eq!(
        unknown.attr(attr::ARCHON_ERROR_MESSAGE),
        Some("invalid_params: the arguments do not match the tool's schema")
    );

    let search = by_tool("search");
    assert_eq!(search.status, "unset");
    assert_eq!(search.attr(attr::ERROR_TYPE), None);
    assert_eq!(search.attr(attr::NETWORK_TRANSPORT), Some("pipe"));

    for span in summary(&spans) {
        for value in span.attributes.values().chain([&span.status, &span.name]) {
            assert!(!value.contains("hunter2"), "a secret leaked into {span:?}");
        }
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn reported_usage_estimates_and_capture() {
    let capture = Capture::new();
    let config = capture.config(
        TracedConfig::builder()
            .token_estimation(TokenEstimation::CharsDiv4)
            .capture(CapturePolicy::tools(["echo"]).max_chars(64)),
    );
    let client = connect(config).await;
    client.call_tool(call("summarize", json!({"doc": "x"}))).await.unwrap();
    let megabyte = "a".repeat(1 << 20);
    client.call_tool(call("search", json!({"query": megabyte}))).await.unwrap();
    client
        .call_tool(call(
            "echo",
            json!({"text": "hello, mail ada@example.com or call +1 415 555 0100", "api_key": "sk-secret"}),
        ))
        .await
        .unwrap();

    let spans = capture.wait_for("three tool spans", |s| tool_spans(s).len() == 3).await;
    let by_tool =
        |tool: &str| tool_spans(&spans).into_iter().find(|s| s.attr(attr::GEN_AI_TOOL_NAME) == Some(tool)).unwrap();

    let summarize = by_tool("summarize");
    assert_eq!(summarize.attr(attr::GEN_AI_REQUEST_MODEL), Some("claude-sonnet-4-5"));
    assert_eq!(summarize.attr(attr::GEN_AI_USAGE_INPUT_TOKENS), Some("1200"));
    assert_eq!(summarize.attr(attr::GEN_AI_USAGE_OUTPUT_TOKENS), Some("300"));

    let search = by_tool("search");
    let estimated_output: u64 = search.attr(attr::ARCHON_USAGE_ESTIMATED_OUTPUT_TOKENS).unwrap().parse().unwrap();
    assert!(estimated_output > 262_000, "1 MB of arguments ≈ 262k tokens, got {estimated_output}");
    assert_eq!(search.attr(attr::GEN_AI_TOOL_CALL_ARGUMENTS), None, "search is not allowlisted");

    let echo = by_tool("echo");
    let captured = echo.attr(attr::GEN_AI_TOOL_CALL_ARGUMENTS).unwrap();
    assert!(
        captured.contains("hello") && captured.contains("[REDACTED]") && !captured.contains("sk-secret"),
        "{captured}"
    );
    assert!(echo.attr(attr::GEN_AI_TOOL_CALL_RESULT).unwrap().chars().count() <= 65);
    // Personal data by its shape, in arguments and in the result alike.
    let result = echo.attr(attr::GEN_AI_TOOL_CALL_RESULT).unwrap();
    for text in [captured, result] {
        assert!(!text.contains("ada@example.com") && !text.contains("555 0100"), "{text}");
    }
    assert!(captured.contains("[REDACTED:email]"), "{captured}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn meta_traceparent_is_the_parent_and_calls_are_separate_traces() {
    let capture = Capture::new();
    let client = connect(capture.config(TracedConfig::builder())).await;
    let mut with_parent = call("search", json!({"query": "a"}));
    with_parent.set_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    client.call_tool(with_parent).await.unwrap();
    client.call_tool(call("search", json!({"query": "b"}))).await.unwrap();
    client.call_tool(call("search", json!({"query": "c"}))).await.unwrap();

    let spans = tool_spans(&capture.wait_for("three tool spans", |s| tool_spans(s).len() == 3).await);
    let parented =
        spans.iter().find(|s| s.trace_id == "0af7651916cd43dd8448eb211c80319c").expect("a span in the caller's trace");
    assert_eq!(parented.parent_span_id, "b7ad6b7169203331");
    let roots: Vec<_> = spans.iter().filter(|s| s.parent_span_id == "0000000000000000").collect();
    assert_eq!(roots.len(), 2, "the other calls are roots");
    assert_ne!(roots[0].trace_id, roots[1].trace_id, "two requests, two traces");
    // One analytics session across all of them.
    let sessions: std::collections::BTreeSet<_> =
        spans.iter().map(|s| s.attr(attr::SESSION_ID).unwrap().to_owned()).collect();
    assert_eq!(sessions.len(), 1);
    client.cancel().await.unwrap();
}

/// An exporter that never finishes an export, like a collector that hangs.
#[derive(Debug)]
struct StuckExporter;

impl SpanExporter for StuckExporter {
    async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_stuck_exporter_never_slows_the_server() {
    let provider = SdkTracerProvider::builder().with_batch_exporter(StuckExporter).build();
    let config = TracedConfig::builder().tracer(provider.tracer("stuck")).build();
    let client = connect(config).await;
    let calls = async {
        for i in 0..200 {
            client.call_tool(call("search", json!({"query": i}))).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), calls).await.expect("tool calls complete while the exporter hangs");
    client.cancel().await.unwrap();
    // Shutting the provider down would wait for the stuck export.
    std::mem::forget(provider);
}

/// The attributes of every data point of a histogram, by metric name.
fn histogram_points(
    exporter: &opentelemetry_sdk::metrics::InMemoryMetricExporter,
    name: &str,
) -> Vec<std::collections::BTreeMap<String, String>> {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    let mut points = Vec::new();
    for rm in exporter.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for metric in sm.metrics().filter(|m| m.name() == name) {
                assert_eq!(sm.scope().schema_url(), Some(archon_mcp_instrument::SCHEMA_URL));
                if let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() {
                    points.extend(
                        histogram
                            .data_points()
                            .map(|p| p.attributes().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect()),
                    );
                }
            }
        }
    }
    points
}

/// A histogram's unit and bucket boundaries.
fn histogram_shape(exporter: &opentelemetry_sdk::metrics::InMemoryMetricExporter, name: &str) -> (String, Vec<f64>) {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    for rm in exporter.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for metric in sm.metrics().filter(|m| m.name() == name) {
                if let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data()
                    && let Some(point) = histogram.data_points().next()
                {
                    return (metric.unit().to_owned(), point.bounds().collect());
                }
            }
        }
    }
    panic!("no histogram {name}")
}

/// The duration metrics carry the attributes the MCP conventions list for them (issues #30, #33).
#[tokio::test]
async fn duration_metrics_carry_the_conventions_attributes() {
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    let exporter = InMemoryMetricExporter::default();
    let meters = SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
    opentelemetry::global::set_meter_provider(meters.clone());

    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    // The client traced too: both sides' metrics.
    let client = archon_mcp_instrument::TracedClientExt::traced(connect(config.clone()).await, config.clone());
    client.call_tool(call("search", json!({"query": "x"}))).await.unwrap();
    let _ = client.call_tool(call("boom", json!({}))).await.unwrap_err();
    config.end_sessions(archon_mcp_instrument::attributes::DisconnectReason::error("tls"));
    client.cancel().await.unwrap();
    meters.force_flush().unwrap();

    // Names, units and the conventions' buckets.
    let operation_buckets = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
    for name in ["mcp.server.operation.duration", "mcp.client.operation.duration"] {
        assert_eq!(histogram_shape(&exporter, name), ("s".to_owned(), operation_buckets.to_vec()), "{name}");
    }
    for name in ["mcp.server.session.duration", "mcp.client.session.duration"] {
        assert_eq!(histogram_shape(&exporter, name).0, "s", "{name}");
    }
    let client_calls = histogram_points(&exporter, "mcp.client.operation.duration");
    let client_point = |tool: &str| {
        client_calls.iter().find(|p| p.get(attr::GEN_AI_TOOL_NAME).map(String::as_str) == Some(tool)).cloned()
    };
    let search = client_point("search").expect("the client's search point");
    for (key, value) in [(attr::MCP_METHOD_NAME, "tools/call"), (attr::GEN_AI_OPERATION_NAME, "execute_tool")] {
        assert_eq!(search.get(key).map(String::as_str), Some(value), "{key} of {search:?}");
    }
    assert!(search.contains_key(attr::MCP_PROTOCOL_VERSION) && !search.contains_key(attr::ERROR_TYPE), "{search:?}");
    let boom = client_point("boom").expect("the client's boom point");
    assert_eq!(boom.get(attr::ERROR_TYPE).map(String::as_str), Some("-32603"), "the code the client saw");
    assert_eq!(boom.get(attr::RPC_RESPONSE_STATUS_CODE).map(String::as_str), Some("-32603"));
    assert_eq!(histogram_points(&exporter, "mcp.client.session.duration").len(), 1, "one client session");

    let operations = histogram_points(&exporter, "mcp.server.operation.duration");
    let point = |tool: &str| {
        operations.iter().find(|p| p.get(attr::GEN_AI_TOOL_NAME).map(String::as_str) == Some(tool)).cloned()
    };
    let search = point("search").expect("a search point");
    let expected = [
        (attr::MCP_METHOD_NAME, "tools/call"),
        (attr::GEN_AI_TOOL_NAME, "search"),
        (attr::GEN_AI_OPERATION_NAME, "execute_tool"),
        (attr::NETWORK_TRANSPORT, "pipe"),
    ];
    for (key, value) in expected {
        assert_eq!(search.get(key).map(String::as_str), Some(value), "{key} of {search:?}");
    }
    assert!(search.contains_key(attr::MCP_PROTOCOL_VERSION), "{search:?}");
    assert!(!search.contains_key(attr::ERROR_TYPE), "{search:?}");
    let boom = point("boom").expect("a boom point");
    assert_eq!(boom.get(attr::ERROR_TYPE).map(String::as_str), Some("panic"));
    assert_eq!(boom.get(attr::RPC_RESPONSE_STATUS_CODE).map(String::as_str), Some("-32603"));

    let sessions = histogram_points(&exporter, "mcp.server.session.duration");
    assert!(
        sessions.iter().any(|p| p.get(attr::ERROR_TYPE).map(String::as_str) == Some("tls")
            && p.contains_key(attr::MCP_PROTOCOL_VERSION)),
        "{sessions:?}"
    );
}

#[tokio::test]
async fn argument_parse_errors_keep_the_class_not_the_value() {
    let capture = Capture::new();
    let client = connect(capture.config(TracedConfig::builder())).await;
    let refused = client.call_tool(call("unlock", json!({"pin": "hunter2-PIN-SECRET"}))).await.unwrap_err();
    assert!(refused.to_string().contains("hunter2-PIN-SECRET"), "the client still gets rmcp's message: {refused}");

    let spans = capture.wait_for("the unlock span", |s| tool_spans(s).len() == 1).await;
    let unlock = &tool_spans(&spans)[0];
    assert_eq!(unlock.attr(attr::ERROR_TYPE), Some("-32602"));
    assert_eq!(unlock.status, "unset");
    assert_eq!(
        unlock.attr(attr::ARCHON_ERROR_MESSAGE),
        Some("invalid_params: the arguments do not match the tool's schema")
    );
    for span in summary(&spans) {
        assert!(!format!("{span:?}").contains("hunter2"), "the value leaked into {span:?}");
    }

    // With capture allowed for the tool, the message is kept.
    let capture = Capture::new();
    let client = connect(capture.config(TracedConfig::builder().capture(CapturePolicy::tools(["unlock"])))).await;
    let _ = client.call_tool(call("unlock", json!({"pin": "1234x"}))).await.unwrap_err();
    let spans = capture.wait_for("the captured unlock span", |s| tool_spans(s).len() == 1).await;
    assert!(tool_spans(&spans)[0].attr(attr::ARCHON_ERROR_MESSAGE).unwrap().contains("1234x"));
}

#[tokio::test]
async fn the_tool_catalog_a_session_received_is_on_its_span() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let client = connect(config.clone()).await;
    let tools = client.list_all_tools().await.unwrap();
    client.call_tool(call("search", json!({"query": "x"}))).await.unwrap();
    config.end_sessions(archon_mcp_instrument::attributes::DisconnectReason::ServerShutdown);

    // What the client's model carries: the serialized catalog, at 4 characters a token.
    let expected = serde_json::to_string(&tools).unwrap().chars().count().div_ceil(4);
    let spans =
        capture.wait_for("the session span", |s| summary(s).iter().any(|s| s.name == attr::SESSION_SPAN_NAME)).await;
    let session = summary(&spans).into_iter().find(|s| s.name == attr::SESSION_SPAN_NAME).unwrap();
    assert_eq!(session.attr(attr::ARCHON_SESSION_CATALOG_TOKENS), Some(expected.to_string().as_str()));
    assert!(expected > 50, "seven tools with schemas: {expected}");
}

/// A server that counts how often it is asked for a tool.
#[derive(Debug, Clone, Default)]
struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl rmcp::ServerHandler for Counting {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(rmcp::model::ServerCapabilities::builder().enable_tools().build())
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Notes.get_tool(name)
    }

    async fn list_tools(
        &self,
        request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
        Notes.list_tools(request, context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        Notes.call_tool(request, context).await
    }
}

#[tokio::test]
async fn known_tools_are_learned_once_not_asked_of_the_server_per_call() {
    use std::sync::atomic::Ordering::Relaxed;
    let capture = Capture::new();
    let asked = Counting::default();
    let client = connect_to(asked.clone(), capture.config(TracedConfig::builder())).await;
    for _ in 0..5 {
        client.call_tool(call("search", json!({"query": "x"}))).await.unwrap();
    }
    assert_eq!(asked.0.load(Relaxed), 1, "asked once, on the first call");
    client.list_all_tools().await.unwrap();
    for _ in 0..3 {
        client.call_tool(call("echo", json!({}))).await.unwrap();
    }
    assert_eq!(asked.0.load(Relaxed), 1, "listed tools are known without asking");
    let spans = capture.wait_for("8 tool calls", |s| tool_spans(s).len() == 8).await;
    assert!(tool_spans(&spans).iter().all(|s| s.name == "tools/call search" || s.name == "tools/call echo"));
    // An unknown name stays out of span names.
    let _ = client.call_tool(call("no-such-tool", json!({}))).await;
    let spans = capture.wait_for("the unknown call", |s| tool_spans(s).len() == 9).await;
    assert!(tool_spans(&spans).iter().any(|s| s.name == "tools/call" && s.attr(attr::GEN_AI_TOOL_NAME).is_none()));
}

/// A server that lists no tools and answers `get_tool` for none, yet serves the notes tools.
#[derive(Clone)]
struct Unlisted;

impl rmcp::ServerHandler for Unlisted {
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        Notes.call_tool(request, context).await
    }
}

#[tokio::test]
async fn a_tool_the_server_answered_for_is_named_though_never_listed() {
    let capture = Capture::new();
    let client = connect_to(Unlisted, capture.config(TracedConfig::builder())).await;
    client.call_tool(call("search", json!({"query": "x"}))).await.unwrap();
    let failed = client.call_tool(call("fail", json!({}))).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
    let _ = client.call_tool(call("made-up", json!({}))).await.unwrap_err();
    client.call_tool(call("search", json!({"query": "y"}))).await.unwrap();

    let spans = tool_spans(&capture.wait_for("four calls", |s| tool_spans(s).len() == 4).await);
    let named: Vec<_> = spans.iter().map(|s| (s.name.as_str(), s.attr(attr::GEN_AI_TOOL_NAME))).collect();
    for expected in [("tools/call search", Some("search")), ("tools/call fail", Some("fail")), ("tools/call", None)] {
        assert!(named.contains(&expected), "{expected:?} in {named:?}");
    }
    assert_eq!(named.iter().filter(|n| **n == ("tools/call search", Some("search"))).count(), 2);
    client.cancel().await.unwrap();
}

/// The server span's attributes of the MCP conventions (semantic-conventions-genai v0.1.0,
/// docs/span-contract.md), and the general ones they reference.
const CONVENTION_SERVER_ATTRIBUTES: [&str; 18] = [
    "mcp.method.name",
    "error.type",
    "gen_ai.prompt.name",
    "gen_ai.tool.name",
    "jsonrpc.request.id",
    "mcp.resource.uri",
    "rpc.response.status_code",
    "client.address",
    "client.port",
    "gen_ai.operation.name",
    "jsonrpc.protocol.version",
    "mcp.protocol.version",
    "mcp.session.id",
    "network.protocol.name",
    "network.protocol.version",
    "network.transport",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
];

/// GenAI registry attributes a tool's own model usage is reported with (docs/span-contract.md).
const GENAI_USAGE_ATTRIBUTES: [&str; 3] =
    ["gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"];

/// Every attribute of a request span is the conventions' or clearly ours (`archon.`, the
/// analytics `session.id`, the `user.*` registry attributes) — checked over every outcome.
#[tokio::test]
async fn request_span_attributes_are_the_conventions_or_namespaced_as_ours() {
    let capture = Capture::new();
    let config = capture.config(
        TracedConfig::builder()
            .token_estimation(TokenEstimation::CharsDiv4)
            .capture(CapturePolicy::tools(["echo"]))
            .record_all_methods(true),
    );
    let client = connect(config).await;
    client.list_all_tools().await.unwrap();
    for (tool, arguments) in [
        ("search", json!({"query": "q"})),
        ("summarize", json!({})),
        ("echo", json!({"text": "hi"})),
        ("fail", json!({})),
        ("boom", json!({})),
        ("unlock", json!({"pin": "x"})),
        ("made-up", json!({})),
    ] {
        let _ = client.call_tool(call(tool, arguments)).await;
    }
    let spans = capture.wait_for("seven tool spans", |s| tool_spans(s).len() == 7).await;
    for span in summary(&spans).iter().filter(|s| s.kind == "server") {
        for key in span.attributes.keys() {
            let ours = key.starts_with("archon.") || key == attr::SESSION_ID || key.starts_with("user.");
            let conventional =
                CONVENTION_SERVER_ATTRIBUTES.contains(&key.as_str()) || GENAI_USAGE_ATTRIBUTES.contains(&key.as_str());
            assert!(ours || conventional, "{key} on {span:?}");
        }
        for required in [attr::MCP_METHOD_NAME, attr::JSONRPC_REQUEST_ID, attr::NETWORK_TRANSPORT] {
            assert!(span.attr(required).is_some(), "{required} missing on {span:?}");
        }
        let is_call = span.attr(attr::MCP_METHOD_NAME) == Some("tools/call");
        assert_eq!(span.attr(attr::GEN_AI_OPERATION_NAME) == Some("execute_tool"), is_call, "{span:?}");
        // ERROR exactly when the server failed; `error.type` on every failure.
        let server_failed = matches!(span.attr(attr::ERROR_TYPE), Some("tool_error" | "panic"));
        assert_eq!(span.status.starts_with("error:"), server_failed, "{span:?}");
        assert_eq!(span.attr(attr::ARCHON_ERROR_MESSAGE).is_some(), span.attr(attr::ERROR_TYPE) == Some("-32602"));
    }
    client.cancel().await.unwrap();
}

/// Notifications are spans only when asked for (issue #33): `notifications/initialized`, which
/// every client sends, and `notifications/cancelled`.
#[tokio::test]
async fn notifications_are_spans_only_when_asked_for() {
    let recorded = Capture::new();
    let client = connect(recorded.config(TracedConfig::builder().record_notifications(true))).await;
    // From JSON: the parameter type's constructor differs across the rmcp versions supported.
    let cancel: rmcp::model::CancelledNotificationParam =
        serde_json::from_value(json!({"requestId": 999, "reason": "changed my mind"})).unwrap();
    client.notify_cancelled(cancel).await.unwrap();
    let spans = recorded
        .wait_for("two notification spans", |s| {
            summary(s).iter().filter(|s| s.name.starts_with("notifications/")).count() == 2
        })
        .await;
    for method in ["notifications/initialized", "notifications/cancelled"] {
        let span = summary(&spans).into_iter().find(|s| s.name == method).expect(method);
        assert_eq!((span.kind.as_str(), span.attr(attr::MCP_METHOD_NAME)), ("server", Some(method)));
        assert_eq!(span.attr(attr::SESSION_ID), None, "never a row");
    }
    client.cancel().await.unwrap();

    let quiet = Capture::new();
    let client = connect(quiet.config(TracedConfig::builder())).await;
    client.call_tool(call("search", json!({"query": "x"}))).await.unwrap();
    let spans = quiet.wait_for("the call", |s| tool_spans(s).len() == 1).await;
    assert!(summary(&spans).iter().all(|s| !s.name.starts_with("notifications/")), "off by default");
    client.cancel().await.unwrap();
}

/// Sampling never loses a bill (issue #34): with a sampler that keeps no trace, every tool call
/// and its session are still exported — marked billing-only — and nothing else is.
#[tokio::test]
async fn a_sampler_that_keeps_nothing_still_keeps_every_bill() {
    use archon_mcp_instrument::sampling::BillingSampler;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler};
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(BillingSampler::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOff))))
        .build();
    let config = TracedConfig::builder().tracer(provider.tracer("sampled")).build();
    let client = connect(config.clone()).await;
    client.list_all_tools().await.unwrap();
    for query in ["a", "b", "c"] {
        client.call_tool(call("search", json!({"query": query}))).await.unwrap();
    }
    config.end_sessions(archon_mcp_instrument::attributes::DisconnectReason::ServerShutdown);
    client.cancel().await.unwrap();
    let spans = summary(&exporter.get_finished_spans().unwrap());
    assert_eq!(tool_spans(&exporter.get_finished_spans().unwrap()).len(), 3, "every call: {spans:?}");
    assert!(spans.iter().any(|s| s.name == attr::SESSION_SPAN_NAME), "the session");
    assert!(spans.iter().all(|s| s.attr(attr::ARCHON_SAMPLING_BILLING_ONLY) == Some("true")), "{spans:?}");
    assert!(spans.iter().all(|s| s.attr(attr::MCP_METHOD_NAME) != Some("tools/list")), "not a bill: dropped");
}
