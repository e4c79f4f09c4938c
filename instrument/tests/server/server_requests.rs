//! A traced server's requests to its client (issue #33): sampling, roots and elicitation sent
//! through a `TracedPeer` are CLIENT spans under the tool call, and a traced client's handling
//! of each is a SERVER span under them — over stdio (a child process) and streamable HTTP, ids
//! compared.

#![allow(deprecated)] // sampling and roots: SEP-2577

use archon_mcp_instrument::attributes as attr;
use archon_mcp_instrument::{Traced, TracedClientExt, TracedConfig};
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleClient};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ErrorData as McpError, ServiceExt};

use crate::stdio::ChildServer;
use crate::support::*;

/// An agent that answers its server: a sampled message, one root, a confirmation.
#[derive(Debug, Clone)]
struct Agent;

impl ClientHandler for Agent {
    fn get_info(&self) -> ClientConfig {
        let capabilities = ClientCapabilities::builder().enable_sampling().enable_roots().enable_elicitation().build();
        ClientConfig::new(capabilities, Implementation::new("agent", "1.0"))
    }

    async fn create_message(
        &self,
        _: CreateMessageRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        Ok(CreateMessageResult::new(SamplingMessage::assistant_text("note 7"), "model-x".into()))
    }

    async fn list_roots(&self, _: RequestContext<RoleClient>) -> Result<ListRootsResult, McpError> {
        Ok(ListRootsResult::new(vec![Root::new("file:///notes")]))
    }

    async fn create_elicitation(
        &self,
        _: ElicitRequestParams,
        _: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(serde_json::json!({"ok": true})))
    }
}

const ASKED: [&str; 3] = ["sampling/createMessage", "roots/list", "elicitation/create"];

fn one<'a>(spans: &'a [Seen], kind: &str, name: &str) -> &'a Seen {
    let found: Vec<&Seen> = spans.iter().filter(|s| s.kind == kind && s.name == name).collect();
    assert_eq!(found.len(), 1, "one {kind} span {name}: {spans:?}");
    found[0]
}

/// The agent's call, the tool's span, its three requests and the agent's handling of each:
/// one trace, each the parent of the next.
fn assert_one_trace(agent_side: &[Seen], server_side: &[Seen]) {
    let call = one(agent_side, "client", "tools/call ask");
    let tool = one(server_side, "server", "tools/call ask");
    assert_eq!((tool.trace_id.as_str(), tool.parent_span_id.as_str()), (call.trace_id.as_str(), call.span_id.as_str()));
    for method in ASKED {
        let asked = one(server_side, "client", method);
        assert_eq!(asked.trace_id, tool.trace_id, "{asked:?}");
        assert_eq!(asked.parent_span_id, tool.span_id, "the tool call parents its request to the client");
        assert_eq!(asked.attr(attr::MCP_METHOD_NAME), Some(method));
        assert!(asked.attr(attr::JSONRPC_REQUEST_ID).is_some(), "{asked:?}");
        assert_eq!(asked.status, "unset", "{asked:?}");
        let handled = one(agent_side, "server", method);
        assert_eq!(handled.trace_id, tool.trace_id, "{handled:?}");
        assert_eq!(handled.parent_span_id, asked.span_id, "the server's request parents the agent's handling");
        assert_eq!(handled.attr(attr::JSONRPC_REQUEST_ID), asked.attr(attr::JSONRPC_REQUEST_ID));
        assert!(handled.attr(attr::SESSION_ID).is_none(), "not a row: {handled:?}");
    }
}

#[tokio::test]
async fn a_servers_requests_and_the_clients_handling_are_in_the_tools_trace_over_stdio() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let dir = std::env::temp_dir().join(format!("archon-server-requests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (server, transport) = ChildServer::start(&dir, "agent", "gus").await;
    let client = Traced::new(Agent, config.clone()).serve(transport).await.expect("client connects").traced(config);
    let answer = client.call_tool(CallToolRequestParams::new("ask")).await.unwrap();
    assert_eq!(serde_json::to_value(&answer.content).unwrap()[0]["text"], "model-x 1 Accept", "{answer:?}");
    client.cancel().await.unwrap();
    let server_side = server.spans().await;
    std::fs::remove_dir_all(&dir).ok();
    assert_one_trace(&summary(&capture.spans()), &server_side);
}

#[tokio::test]
async fn a_servers_requests_and_the_clients_handling_are_in_the_tools_trace_over_http() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
    let client = Traced::new(Agent, config.clone()).serve(transport).await.expect("client connects").traced(config);
    let answer = client.call_tool(CallToolRequestParams::new("ask")).await.unwrap();
    assert_eq!(serde_json::to_value(&answer.content).unwrap()[0]["text"], "model-x 1 Accept", "{answer:?}");
    client.cancel().await.unwrap();
    let spans = summary(
        &capture
            .wait_for("the tool, its three requests and their handling", |s| {
                summary(s).iter().filter(|s| ASKED.contains(&s.name.as_str())).count() == 6
            })
            .await,
    );
    assert_one_trace(&spans, &spans);
    stop.cancel();
}
