//! Streamable HTTP: legacy sessions (one server instance per `Mcp-Session-Id`) and stateless
//! requests (protocol 2026-07-28), with JWT users.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use archon_mcp_instrument::TracedConfig;
use archon_mcp_instrument::attributes::{self as attr, DisconnectReason};
use archon_mcp_instrument::user::{JwtUser, UserFailures};
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{ClientLifecycleMode, RoleClient, RunningService, serve_client_with_lifecycle};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::*;

async fn serve(config: TracedConfig) -> (SocketAddr, CancellationToken) {
    serve_http(&config, config.session_manager()).await
}

async fn client(
    addr: SocketAddr,
    name: &str,
    token: Option<&str>,
    lifecycle: ClientLifecycleMode,
) -> RunningService<RoleClient, ClientConfig> {
    let mut transport = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"));
    if let Some(token) = token {
        transport = transport.auth_header(token.to_owned());
    }
    let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new(name, "1.2.3"));
    serve_client_with_lifecycle(info, StreamableHttpClientTransport::from_config(transport), lifecycle)
        .await
        .expect("client connects")
}

fn search(query: &str) -> CallToolRequestParams {
    CallToolRequestParams::new("search").with_arguments(args(json!({"query": query})))
}

fn config(capture: &Capture) -> TracedConfig {
    capture.config(TracedConfig::builder().user_resolver(JwtUser::hs256(JWT_SECRET)))
}

#[tokio::test]
async fn legacy_sessions_one_per_connection_with_client_and_user() {
    let capture = Capture::new();
    let config = config(&capture);
    let (addr, stop) = serve(config.clone()).await;
    let alice_token = token("alice", "alice@example.com", "Research", false);
    let bob_token = token("bob", "bob@example.com", "Sales", false);

    let alice = client(addr, "claude-code", Some(&alice_token), ClientLifecycleMode::Initialize).await;
    alice.list_all_tools().await.unwrap();
    assert_eq!(config.open_sessions(), 0, "nothing is created before the first tool call");
    alice.call_tool(search("a")).await.unwrap();
    alice.call_tool(search("b")).await.unwrap();
    let bob = client(addr, "Cursor", Some(&bob_token), ClientLifecycleMode::Initialize).await;
    bob.call_tool(search("c")).await.unwrap();
    assert_eq!(config.open_sessions(), 2);

    // Alice disconnects; Bob is still connected when the server shuts down.
    alice.cancel().await.unwrap();
    let spans = capture
        .wait_for("alice's session to end", |s| summary(s).iter().any(|s| s.name == attr::SESSION_SPAN_NAME))
        .await;
    config.end_sessions(DisconnectReason::ServerShutdown);
    let spans = capture
        .wait_for("both sessions to end", |s| {
            summary(s).iter().filter(|s| s.name == attr::SESSION_SPAN_NAME).count() == 2
        })
        .await
        .into_iter()
        .chain(spans.into_iter().take(0))
        .collect::<Vec<_>>();
    stop.cancel();

    let seen = summary(&spans);
    let calls: Vec<&Seen> = seen.iter().filter(|s| s.attr(attr::MCP_METHOD_NAME) == Some("tools/call")).collect();
    assert_eq!(calls.len(), 3);
    for call in &calls {
        assert_eq!(call.name, "tools/call search");
        assert_eq!(call.kind, "server");
        assert_eq!(call.attr(attr::NETWORK_TRANSPORT), Some("tcp"));
        assert!(call.attr(attr::MCP_SESSION_ID).is_some(), "legacy HTTP has a protocol session");
        assert_eq!(call.attr(attr::GEN_AI_OPERATION_NAME), Some("execute_tool"));
    }
    let of = |user: &str| calls.iter().filter(|c| c.attr(attr::USER_ID) == Some(user)).collect::<Vec<_>>();
    let (alice_calls, bob_calls) = (of("alice"), of("bob"));
    assert_eq!((alice_calls.len(), bob_calls.len()), (2, 1));
    for call in &alice_calls {
        assert_eq!(call.attr(attr::ARCHON_CLIENT_NAME), Some("claude-code"));
        assert_eq!(call.attr(attr::ARCHON_CLIENT_VERSION), Some("1.2.3"));
        assert_eq!(call.attr(attr::USER_EMAIL), Some("alice@example.com"));
        assert_eq!(call.attr(attr::USER_FULL_NAME), Some("User alice"));
        assert_eq!(call.attr(attr::ARCHON_USER_DEPARTMENT), Some("Research"));
    }
    assert_eq!(bob_calls[0].attr(attr::ARCHON_CLIENT_NAME), Some("Cursor"));
    let alice_session = alice_calls[0].attr(attr::SESSION_ID).unwrap();
    assert_eq!(alice_calls[1].attr(attr::SESSION_ID), Some(alice_session), "one session per connection");
    let bob_session = bob_calls[0].attr(attr::SESSION_ID).unwrap();
    assert_ne!(alice_session, bob_session);
    assert_eq!(uuid::Uuid::parse_str(alice_session).unwrap().get_version_num(), 7);

    let list = seen.iter().find(|s| s.attr(attr::MCP_METHOD_NAME) == Some("tools/list")).unwrap();
    assert_eq!(list.attr(attr::SESSION_ID), None, "only tool calls carry the session by default");
    assert_eq!(list.attr(attr::USER_ID), Some("alice"));

    let session_span = |id: &str| {
        seen.iter().find(|s| s.name == attr::SESSION_SPAN_NAME && s.attr(attr::SESSION_ID) == Some(id)).unwrap()
    };
    let a = session_span(alice_session);
    assert_eq!(a.kind, "internal");
    assert_eq!(a.attr(attr::ARCHON_SESSION_DISCONNECT_REASON), Some("client_disconnect"));
    assert_eq!(a.attr(attr::ARCHON_SESSION_REQUEST_COUNT), Some("2"));
    assert_eq!(a.attr(attr::ARCHON_CLIENT_NAME), Some("claude-code"));
    assert_eq!(a.attr(attr::USER_ID), Some("alice"));
    assert!(a.attr(attr::ARCHON_CLIENT_CAPABILITIES).is_some());
    let b = session_span(bob_session);
    assert_eq!(b.attr(attr::ARCHON_SESSION_DISCONNECT_REASON), Some("server_shutdown"));
    assert_eq!(b.attr(attr::ARCHON_SESSION_REQUEST_COUNT), Some("1"));

    for span in &seen {
        for value in span.attributes.values() {
            assert!(!value.contains(&alice_token) && !value.contains(&bob_token), "a token leaked into {span:?}");
        }
    }
    drop(bob);
}

#[tokio::test]
async fn stateless_requests_share_a_session_per_user_and_client() {
    let capture = Capture::new();
    let config = config(&capture);
    let (addr, stop) = serve(config.clone()).await;
    let carol_token = token("carol", "carol@example.com", "Ops", false);
    let discover = || ClientLifecycleMode::Discover { preferred_versions: vec![rmcp::model::ProtocolVersion::LATEST] };

    // Two connections of the same user and client: one analytics session; another client: another.
    let first = client(addr, "goose", Some(&carol_token), discover()).await;
    first.call_tool(search("a")).await.unwrap();
    first.call_tool(search("b")).await.unwrap();
    let second = client(addr, "goose", Some(&carol_token), discover()).await;
    second.call_tool(search("c")).await.unwrap();
    let other = client(addr, "Windsurf", Some(&carol_token), discover()).await;
    other.call_tool(search("d")).await.unwrap();

    let spans = summary(
        &capture
            .wait_for("four calls", |s| {
                summary(s).iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).count() == 4
            })
            .await,
    );
    let calls: Vec<&Seen> = spans.iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).collect();
    assert!(calls.iter().all(|c| c.attr(attr::MCP_SESSION_ID).is_none()), "stateless: no protocol session");
    let sessions = |client: &str| {
        calls
            .iter()
            .filter(|c| c.attr(attr::ARCHON_CLIENT_NAME) == Some(client))
            .map(|c| c.attr(attr::SESSION_ID).unwrap())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(sessions("goose").len(), 1);
    assert_eq!(sessions("Windsurf").len(), 1);
    assert_ne!(sessions("goose"), sessions("Windsurf"));
    assert_eq!(config.open_sessions(), 2);
    config.end_sessions(DisconnectReason::ServerShutdown);
    assert_eq!(config.open_sessions(), 0);
    stop.cancel();
    drop((first, second, other));
}

#[tokio::test]
async fn bad_tokens_leave_the_user_unknown_and_the_call_served() {
    let capture = Capture::new();
    let config = config(&capture);
    let (addr, stop) = serve(config).await;
    let expired_before = UserFailures::count("expired");
    let forged_before = UserFailures::count("bad_signature");

    let expired = token("mallory", "m@example.com", "x", true);
    let forged = format!("{}x", token("mallory", "m@example.com", "x", false));
    for (name, token) in
        [("expired-client", expired.as_str()), ("forged-client", forged.as_str()), ("garbage-client", "not.a.jwt")]
    {
        let c = client(addr, name, Some(token), ClientLifecycleMode::Initialize).await;
        c.call_tool(search("x")).await.expect("the call is served");
        c.cancel().await.unwrap();
    }
    let spans = summary(
        &capture
            .wait_for("three calls", |s| {
                summary(s).iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).count() == 3
            })
            .await,
    );
    for call in spans.iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()) {
        assert_eq!(call.attr(attr::USER_ID), None, "{call:?}");
        assert!(call.attr(attr::SESSION_ID).is_some(), "an anonymous session still counts");
    }
    assert!(UserFailures::count("expired") > expired_before);
    assert!(UserFailures::count("bad_signature") > forged_before);
    stop.cancel();
}

/// A `tools/call` sent by hand with a stolen `Mcp-Session-Id` and `authorization` (or none): the
/// SSE body of the response.
async fn hijack(addr: SocketAddr, session: &str, authorization: Option<&str>) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "search", "arguments": {"query": "x"}}});
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .body(body.to_string());
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn a_stolen_session_id_bills_nobody_and_can_be_refused() {
    for refuse in [false, true] {
        let capture = Capture::new();
        let config = capture.config(
            TracedConfig::builder().user_resolver(JwtUser::hs256(JWT_SECRET)).refuse_foreign_principals(refuse),
        );
        let (addr, stop) = serve(config.clone()).await;
        let alice_token = token("alice", "alice@example.com", "Research", false);
        let alice = client(addr, "claude-code", Some(&alice_token), ClientLifecycleMode::Initialize).await;
        alice.call_tool(search("mine")).await.unwrap();
        let spans = summary(
            &capture.wait_for("alice's call", |s| !summary(s).iter().all(|s| s.attr(attr::USER_ID).is_none())).await,
        );
        let alice_call = spans.iter().find(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).unwrap();
        let (session_id, analytics) = (
            alice_call.attr(attr::MCP_SESSION_ID).unwrap().to_owned(),
            alice_call.attr(attr::SESSION_ID).unwrap().to_owned(),
        );

        // The session id (visible to anyone who reads the sessions table) with no token, a
        // forged one, an expired one, and alg "none".
        let forged = format!("Bearer {}x", token("alice", "alice@example.com", "Research", false));
        let expired = format!("Bearer {}", token("alice", "alice@example.com", "Research", true));
        let none = "Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSJ9.";
        for authorization in [None, Some(forged.as_str()), Some(expired.as_str()), Some(none)] {
            let answer = hijack(addr, &session_id, authorization).await;
            assert_eq!(answer.contains("credentials are not those"), refuse, "{answer}");
        }
        let spans = summary(
            &capture
                .wait_for("the four stolen calls", |s| {
                    summary(s).iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).count() == 5
                })
                .await,
        );
        let stolen: Vec<&Seen> = spans
            .iter()
            .filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some() && s.attr(attr::JSONRPC_REQUEST_ID) == Some("99"))
            .collect();
        assert_eq!(stolen.len(), 4);
        for call in stolen {
            assert_eq!(call.attr(attr::SESSION_ID), Some(analytics.as_str()), "in Alice's session…");
            assert_eq!(call.attr(attr::USER_ID), None, "…but never as Alice: {call:?}");
            assert_eq!(call.attr(attr::USER_EMAIL), None);
            assert_eq!(call.attr(attr::ERROR_TYPE).is_some(), refuse);
        }
        drop(alice);
        stop.cancel();
    }
}

#[tokio::test]
async fn calls_over_budget_are_refused_and_unknown_state_lets_them_through() {
    use archon_mcp_instrument::budget::{BudgetGate, BudgetScope, BudgetStatus};
    let capture = Capture::new();
    let gate = BudgetGate::new(std::time::Duration::from_secs(60));
    let config =
        capture.config(TracedConfig::builder().user_resolver(JwtUser::hs256(JWT_SECRET)).enforce_budgets(gate.clone()));
    let (addr, stop) = serve(config).await;
    let ada = client(
        addr,
        "claude-code",
        Some(&token("ada", "ada@example.com", "Research", false)),
        ClientLifecycleMode::Initialize,
    )
    .await;
    let bob =
        client(addr, "Cursor", Some(&token("bob", "bob@example.com", "Sales", false)), ClientLifecycleMode::Initialize)
            .await;

    // Nothing read yet (the database unreachable, say): everyone is served.
    ada.call_tool(search("before")).await.expect("unknown state lets the call through");

    gate.update(vec![BudgetStatus::new(BudgetScope::Department("Research".into()), 500.0, 512.4)]);
    let refused = ada.call_tool(search("over")).await.unwrap_err().to_string();
    assert!(refused.contains("department:Research") && refused.contains("budgets set"), "{refused}");
    bob.call_tool(search("under")).await.expect("another department is under its budget");

    // Ada drops her token: a call of no user is not a way around her department's budget.
    let anonymous = client(addr, "claude-code", None, ClientLifecycleMode::Initialize).await;
    let refused = anonymous.call_tool(search("anonymous")).await.unwrap_err().to_string();
    assert!(refused.contains("--scope anonymous"), "{refused}");

    gate.update(vec![]);
    ada.call_tool(search("raised")).await.expect("allowed again once the budget is raised");

    let spans = summary(
        &capture
            .wait_for("five calls", |s| {
                summary(s).iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).count() == 5
            })
            .await,
    );
    let refused: Vec<&Seen> =
        spans.iter().filter(|s| s.attr(attr::ERROR_TYPE) == Some(attr::ERROR_TYPE_BUDGET_EXCEEDED)).collect();
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0].attr(attr::USER_ID), Some("ada"));
    assert!(refused[0].status.contains("department:Research (500.00 USD)"), "{:?}", refused[0]);
    assert!(!refused[0].status.contains("512"), "the department's spend is not shown: {:?}", refused[0]);
    assert_eq!(refused[1].attr(attr::USER_ID), None, "the anonymous call");
    drop((ada, bob, anonymous));
    stop.cancel();
}

#[tokio::test]
async fn stateless_clients_that_send_initialize_are_named_by_it() {
    let capture = Capture::new();
    let config = config(&capture);
    // rmcp's stateless mode: no protocol session, each request served on its own.
    let ct = CancellationToken::new();
    let service = config.streamable_http_service(
        || Ok(Notes),
        rmcp::transport::streamable_http_server::StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_cancellation_token(ct.child_token()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = ct.clone();
    tokio::spawn(async move {
        let router = axum::Router::new().nest_service("/mcp", service);
        let _ = axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled_owned().await }).await;
    });
    let url = format!("http://{addr}/mcp");
    let carol = format!("Bearer {}", token("carol", "carol@example.com", "Ops", false));
    let post = |body: serde_json::Value| {
        reqwest::Client::new()
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-06-18")
            .header("authorization", &carol)
            .json(&body)
            .send()
    };
    // A client of the session protocol, as the Python and TypeScript SDKs still are.
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cursor-vscode", "version": "0.9"}}});
    post(initialize).await.unwrap().text().await.unwrap();
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search", "arguments": {"query": "q"}}});
    let answer = post(call).await.unwrap().text().await.unwrap();
    assert!(answer.contains("3 notes match"), "{answer}");

    let spans = summary(
        &capture.wait_for("the call", |s| summary(s).iter().any(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some())).await,
    );
    let call = spans.iter().find(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).unwrap();
    assert_eq!(call.attr(attr::ARCHON_CLIENT_NAME), Some("cursor-vscode"), "not rmcp's stand-in: {call:?}");
    assert_eq!(call.attr(attr::ARCHON_CLIENT_VERSION), Some("0.9"));
    ct.cancel();
}

/// Context propagation as the MCP conventions give it (issue #30): `_meta` is the parent and its
/// baggage reaches the tool; the HTTP request's `traceparent` is the transport's context, a link.
#[tokio::test]
async fn meta_context_is_the_parent_and_the_http_context_a_link() {
    let capture = Capture::new();
    let config = config(&capture);
    let (addr, stop) = serve(config).await;
    let url = format!("http://{addr}/mcp");
    let post = |session: Option<&str>, body: serde_json::Value| {
        let mut request = reqwest::Client::new()
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("traceparent", "00-11111111111111111111111111111111-2222222222222222-01");
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.json(&body).send()
    };
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let response = post(None, initialize).await.unwrap();
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    response.text().await.unwrap();
    post(Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await.unwrap();
    let meta = json!({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "baggage": "tenant=acme,plan=pro"});
    let with_meta = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "context", "arguments": {}, "_meta": meta}});
    let seen = post(Some(&session), with_meta).await.unwrap().text().await.unwrap();
    assert!(seen.contains("0af7651916cd43dd8448eb211c80319c plan=pro,tenant=acme"), "the tool's context: {seen}");
    let headers_only = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "search", "arguments": {"query": "q"}}});
    post(Some(&session), headers_only).await.unwrap().text().await.unwrap();

    let spans = capture
        .wait_for("two tool spans", |s| {
            s.iter().filter(|s| s.attributes.iter().any(|kv| kv.key.as_str() == attr::GEN_AI_TOOL_NAME)).count() == 2
        })
        .await;
    let tool = |name: &str| {
        spans
            .iter()
            .find(|s| {
                s.attributes.iter().any(|kv| kv.key.as_str() == attr::GEN_AI_TOOL_NAME && kv.value.as_str() == name)
            })
            .unwrap()
    };
    let transport = |span: &opentelemetry_sdk::trace::SpanData| {
        span.links
            .iter()
            .map(|l| (l.span_context.trace_id().to_string(), l.span_context.span_id().to_string()))
            .collect::<Vec<_>>()
    };
    let header_context = ("11111111111111111111111111111111".to_owned(), "2222222222222222".to_owned());

    let context = tool("context");
    assert_eq!(context.span_context.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(context.parent_span_id.to_string(), "b7ad6b7169203331");
    assert_eq!(transport(context), vec![header_context.clone()]);

    let search = tool("search");
    assert_eq!(search.parent_span_id.to_string(), "0000000000000000", "a new trace, not the HTTP request's");
    assert_ne!(search.span_context.trace_id().to_string(), header_context.0);
    assert_eq!(transport(search), vec![header_context]);
    let seen = Seen::from(search);
    assert_eq!(seen.attr(attr::NETWORK_TRANSPORT), Some("tcp"));
    assert_eq!(seen.attr(attr::NETWORK_PROTOCOL_NAME), Some("http"));
    assert_eq!(seen.attr(attr::NETWORK_PROTOCOL_VERSION), Some("1.1"));
    stop.cancel();
}
