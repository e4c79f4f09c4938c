//! Instrumented server → OTLP → rotel → `archon-mcp-exporter serve` → PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_through_a_real_collector_become_the_expected_rows() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let exporter = Exporter::start(&db.url).await;
    let Some(collector) = Collector::start(exporter.grpc).await else { return };
    let server = McpServer::start(collector.grpc).await;

    let alice = connect(server.addr, "claude-code", "alice", "Research").await;
    let bob = connect(server.addr, "Cursor", "bob", "Sales").await;
    alice.list_all_tools().await.unwrap();
    alice.call_tool(call("search_knowledge", json!({"query": "postgres"}))).await.unwrap();
    alice.call_tool(call("summarize_document", json!({"id": "mcp-sessions"}))).await.unwrap();
    alice.call_tool(call("create_task", json!({"title": "ship it"}))).await.unwrap();
    bob.call_tool(call("create_task", json!({"title": "ship it"}))).await.unwrap(); // isError: exists
    assert!(bob.call_tool(call("create_task", json!({}))).await.is_err()); // -32602
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
    // Both connections closed: both sessions ended; flush what the server has.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.config.open_sessions() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.flush().await;

    let ended = "SELECT count(*) FROM archon_mcp_sessions WHERE status = 'disconnected'";
    assert_eq!(db.wait_for_count(ended, 2, Duration::from_secs(30)).await, 2, "both sessions arrive and end");
    assert_eq!(db.wait_for_count("SELECT count(*) FROM archon_mcp_requests", 5, Duration::from_secs(30)).await, 5);

    let sessions = db
        .rows(
            "SELECT client_type::text, client_name, user_key, user_email::text, user_department, status::text,
                    disconnect_reason::text, service_name,
                    (SELECT count(*)::text FROM archon_mcp_requests r WHERE r.session_id = s.session_id)
               FROM archon_mcp_sessions s ORDER BY user_key",
        )
        .await;
    let row = |values: &[&str]| values.iter().map(|v| Some((*v).to_owned())).collect::<Vec<_>>();
    assert_eq!(
        sessions,
        [
            row(&[
                "Claude",
                "claude-code",
                "alice",
                "alice@example.com",
                "Research",
                "disconnected",
                "client_disconnect",
                "knowledge-e2e",
                "3"
            ]),
            row(&[
                "Cursor",
                "Cursor",
                "bob",
                "bob@example.com",
                "Sales",
                "disconnected",
                "client_disconnect",
                "knowledge-e2e",
                "2"
            ]),
        ]
    );
    let requests = db
        .rows(
            r#"SELECT s.user_key, r.tool_name::text, r.status::text, r.error_type, r.error_code::text, r.token_source::text,
                      r.model, r.prompt_tokens::text, r.completion_tokens::text, (r.estimated_cost > 0)::text
                 FROM archon_mcp_requests r JOIN archon_mcp_sessions s USING (session_id)
                ORDER BY r."timestamp""#,
        )
        .await;
    let summary_input = (400
        + "An analytics session starts with the first tool call of a connection and ends when it closes.".len() * 3)
        .to_string();
    // Tools that report no usage get estimated tokens (on by default), unpriced here: this
    // exporter has no estimate model. The refused call has none.
    let r = |v: [Option<&str>; 10]| v.iter().map(|x| x.map(str::to_owned)).collect::<Vec<_>>();
    assert_eq!(
        requests,
        [
            r([
                Some("alice"),
                Some("search_knowledge"),
                Some("success"),
                None,
                None,
                Some("estimated"),
                None,
                Some("17"),
                Some("5"),
                None
            ]),
            r([
                Some("alice"),
                Some("summarize_document"),
                Some("success"),
                None,
                None,
                Some("reported"),
                Some("claude-sonnet-4-5"),
                Some(&summary_input),
                Some("120"),
                Some("true")
            ]),
            r([
                Some("alice"),
                Some("create_task"),
                Some("success"),
                None,
                None,
                Some("estimated"),
                None,
                Some("5"),
                Some("5"),
                None
            ]),
            r([
                Some("bob"),
                Some("create_task"),
                Some("error"),
                Some("tool_error"),
                None,
                Some("estimated"),
                None,
                Some("8"),
                Some("5"),
                None
            ]),
            r([
                Some("bob"),
                Some("create_task"),
                Some("error"),
                Some("-32602"),
                Some("-32602"),
                Some("none"),
                None,
                Some("0"),
                Some("0"),
                None
            ]),
        ]
    );

    server.stop();
    collector.stop().await;
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_delivers_over_tls_with_a_bearer_token() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let certs = archon_mcp_exporter::testing::TestCertificates::generate().expect("test certificates");
    let exporter = Exporter::start_with(&db.url, |c| {
        c.tls = Some(archon_mcp_exporter::ReceiverTls::new(&certs.cert, &certs.key));
        c.auth_token = Some("collector-s3cret".into());
    })
    .await;
    let Some(collector) = Collector::start_tls(exporter.grpc, "collector-s3cret").await else { return };
    let server = McpServer::start(collector.grpc).await;

    let client = connect(server.addr, "claude-code", "heidi", "Security").await;
    for i in 0..5 {
        client.call_tool(call("search_knowledge", json!({"query": format!("tls {i}")}))).await.unwrap();
    }
    client.cancel().await.unwrap();
    server.flush().await;
    let requests = "SELECT count(*) FROM archon_mcp_requests r JOIN archon_mcp_sessions s USING (session_id)
                     WHERE s.user_key = 'heidi'";
    assert_eq!(db.wait_for_count(requests, 5, Duration::from_secs(30)).await, 5, "delivered over TLS");
    assert_eq!(exporter.metrics.exports.get("unauthenticated"), 0, "the token went along");

    server.stop();
    collector.stop().await;
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_20_seconds_loses_and_doubles_nothing() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let exporter = Exporter::start(&db.url).await;
    let Some(collector) = Collector::start(exporter.grpc).await else { return };
    let server = McpServer::start(collector.grpc).await;

    let users = [("claude-code", "carol"), ("Windsurf", "dave"), ("goose", "erin")];
    let callers =
        steady_callers(server.addr, &users, Duration::from_secs(36), Duration::from_millis(40), |i, calls| {
            call("search_knowledge", json!({"query": format!("q{i}-{calls}")}))
        });
    // PostgreSQL goes away in the middle of the stream, for 20 s.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let cluster = &db.cluster;
    tokio::task::block_in_place(|| cluster.stop()).expect("stop PostgreSQL");
    tokio::time::sleep(Duration::from_secs(20)).await;
    tokio::task::block_in_place(|| cluster.start_server()).expect("start PostgreSQL again");

    let total = total_calls(callers).await;
    server.flush().await;
    assert!(total > 300, "a steady stream: {total} calls");
    let stored =
        db.wait_for_count("SELECT count(*) FROM archon_mcp_requests", total as i64, Duration::from_secs(120)).await;
    assert_eq!(stored, total as i64, "every tool call is stored once the database is back");
    let distinct = db.query_i64("SELECT count(DISTINCT request_id) FROM archon_mcp_requests").await;
    assert_eq!(distinct, total as i64, "nothing doubled");
    let refused = exporter.metrics.exports.get("unavailable");
    assert!(refused > 0, "the outage was seen: exports were answered UNAVAILABLE ({refused})");
    eprintln!("{total} calls, {refused} exports refused during the outage and retried by the collector");

    server.stop();
    collector.stop().await;
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_killed_mid_stream_loses_and_doubles_nothing() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let port = free_port();
    let mut exporter = ExporterProcess::start(&db.url, port).await;
    let forward_to = format!("127.0.0.1:{port}").parse().unwrap();
    let Some(collector) = Collector::start(forward_to).await else { return };
    let server = McpServer::start(collector.grpc).await;

    let users = [("claude-code", "frank"), ("Cursor", "grace")];
    let callers = steady_callers(server.addr, &users, Duration::from_secs(16), Duration::from_millis(25), |_, _| {
        call("list_tasks", json!({}))
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    exporter.kill().await; // SIGKILL: no graceful shutdown, in-flight batches cut
    tokio::time::sleep(Duration::from_secs(3)).await;
    exporter = ExporterProcess::start(&db.url, port).await;

    let total = total_calls(callers).await;
    server.flush().await;
    let stored =
        db.wait_for_count("SELECT count(*) FROM archon_mcp_requests", total as i64, Duration::from_secs(90)).await;
    assert_eq!(
        stored,
        total as i64,
        "every tool call stored after the restart (rotel's log: {})",
        collector.log.display()
    );
    assert_eq!(
        db.query_i64("SELECT count(DISTINCT request_id) FROM archon_mcp_requests").await,
        total as i64,
        "nothing doubled"
    );
    server.stop();
    collector.stop().await;
    exporter.kill().await;
}
