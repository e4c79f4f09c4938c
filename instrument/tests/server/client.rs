//! A traced rmcp client calling a traced rmcp server (issue #33): the client's span is the
//! server's parent — ids compared, not assumed — over stdio (a child process) and streamable
//! HTTP, and the client's baggage reaches the tool.

use archon_mcp_instrument::attributes as attr;
use archon_mcp_instrument::{TracedClientExt, TracedConfig};
use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::trace::FutureExt as _;
use opentelemetry::{Context, KeyValue};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

use crate::stdio::ChildServer;
use crate::support::*;

fn call(tool: &str) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_owned()).with_arguments(args(json!({"query": "q"})))
}

/// The client span of each call and the server span it parents, by tool.
fn pairs<'a>(client: &'a [Seen], server: &'a [Seen], tool: &str) -> (&'a Seen, &'a Seen) {
    let of = |spans: &'a [Seen], kind: &str| {
        spans
            .iter()
            .find(|s| s.kind == kind && s.attr(attr::GEN_AI_TOOL_NAME) == Some(tool))
            .unwrap_or_else(|| panic!("no {kind} span of {tool}: {spans:?}"))
    };
    (of(client, "client"), of(server, "server"))
}

fn assert_parent(client: &Seen, server: &Seen) {
    assert_eq!(server.trace_id, client.trace_id, "one trace: {client:?} {server:?}");
    assert_eq!(server.parent_span_id, client.span_id, "the client span is the server span's parent");
    assert_eq!(client.name, format!("tools/call {}", client.attr(attr::GEN_AI_TOOL_NAME).unwrap()));
    assert_eq!(client.attr(attr::GEN_AI_OPERATION_NAME), Some("execute_tool"));
    assert!(client.attr(attr::MCP_PROTOCOL_VERSION).is_some(), "{client:?}");
}

#[tokio::test]
async fn a_traced_client_and_server_are_one_trace_over_stdio() {
    let capture = Capture::new();
    let dir = std::env::temp_dir().join(format!("archon-client-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (server, transport) = ChildServer::start(&dir, "traced-agent", "fay").await;
    let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new("traced-agent", "1.0"));
    let client =
        info.serve(transport).await.expect("stdio client connects").traced(capture.config(TracedConfig::builder()));
    client.list_all_tools().await.unwrap();
    client.call_tool(call("search")).await.unwrap();
    let failed = client.call_tool(call("fail")).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
    client.cancel().await.unwrap();
    let server_spans = server.spans().await;
    std::fs::remove_dir_all(&dir).ok();

    let client_spans = summary(&capture.spans());
    for tool in ["search", "fail"] {
        let (client, server) = pairs(&client_spans, &server_spans, tool);
        assert_parent(client, server);
    }
    let (fail, _) = pairs(&client_spans, &server_spans, "fail");
    assert_eq!(fail.attr(attr::ERROR_TYPE), Some("tool_error"));
    assert!(fail.status.starts_with("error:"), "a client span fails with error.type: {fail:?}");
    let list = client_spans.iter().find(|s| s.name == "tools/list").expect("the list's client span");
    let served = server_spans.iter().find(|s| s.attr(attr::MCP_METHOD_NAME) == Some("tools/list")).unwrap();
    assert_eq!(served.parent_span_id, list.span_id);
}

#[tokio::test]
async fn a_traced_client_and_server_are_one_trace_over_http_with_the_clients_baggage() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
    let client = ClientConfig::default().serve(transport).await.expect("client connects").traced(config.clone());

    // The agent's own span and baggage, as its code would have them.
    let agent = Context::current_with_baggage([KeyValue::new("tenant", "acme")]);
    let seen = client.call_tool(call("context")).with_context(agent.clone()).await.unwrap();
    let text = serde_json::to_string(&seen.content).unwrap();
    assert!(text.contains("tenant=acme"), "the baggage reached the tool: {text}");
    client.call_tool(call("search")).with_context(agent).await.unwrap();
    client.cancel().await.unwrap();

    let spans = summary(
        &capture
            .wait_for("two client and two server tool spans", |s| {
                summary(s).iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).count() == 4
            })
            .await,
    );
    for tool in ["context", "search"] {
        let (client, server) = pairs(&spans, &spans, tool);
        assert_parent(client, server);
        assert_eq!(server.attr(attr::NETWORK_TRANSPORT), Some("tcp"));
    }
    let (client, _) = pairs(&spans, &spans, "context");
    assert!(text.contains(&client.trace_id), "the tool ran in the client's trace: {text}");
    stop.cancel();
}

/// A call its caller gives up on (a timeout drops the future) ends its span as `cancelled`.
#[tokio::test]
async fn a_call_the_caller_gives_up_on_is_cancelled() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
    let client = ClientConfig::default().serve(transport).await.expect("client connects").traced(config.clone());
    let slow = CallToolRequestParams::new("slow")
        .with_arguments(args(json!({"ms": 3000, "honour": true, "tag": "client-gives-up"})));
    let gave_up = tokio::time::timeout(std::time::Duration::from_millis(300), client.call_tool(slow)).await;
    assert!(gave_up.is_err(), "the caller's timeout fired");
    let spans = capture
        .wait_for("the client span", |s| summary(s).iter().any(|s| s.kind == "client" && s.name == "tools/call slow"))
        .await;
    let span = summary(&spans).into_iter().find(|s| s.kind == "client" && s.name == "tools/call slow").unwrap();
    assert_eq!(span.attr(attr::ERROR_TYPE), Some("cancelled"), "{span:?}");
    assert!(span.status.starts_with("error:"), "{span:?}");
    client.cancel().await.unwrap();
    stop.cancel();
}
