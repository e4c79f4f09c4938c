//! What reaches the database in privacy mode: emails hashed on the server, arguments and
//! results kept out of rows — even for a tool whose arguments are captured on its spans.

use std::time::Duration;

use archon_mcp_exporter::PgSpanExporter;
use archon_mcp_exporter::{PgStore, StoreConfig};
use archon_mcp_instrument::capture::CapturePolicy;
use archon_mcp_instrument::user::hash_email;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_emails_and_arguments_never_reach_the_database() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let store = PgStore::connect(&db.url, StoreConfig::default()).unwrap();
    let server = McpServer::start_with(PgSpanExporter::new(store), |config| {
        config.hash_emails(true).capture(CapturePolicy::tools(["create_task"]))
    })
    .await;

    let ivan = connect(server.addr, "claude-code", "ivan", "Legal").await;
    let secret_query = "merger with Initech 7f3a";
    let secret_title = "draft the Initech term sheet 9c1d";
    ivan.call_tool(call("search_knowledge", json!({"query": secret_query}))).await.unwrap();
    ivan.call_tool(call("create_task", json!({"title": secret_title}))).await.unwrap();
    ivan.cancel().await.unwrap();
    server.flush().await;

    let sql = "SELECT count(*) FROM archon_mcp_requests";
    assert_eq!(db.wait_for_count(sql, 2, Duration::from_secs(30)).await, 2);
    let session = db
        .rows("SELECT user_key, user_email::text, metadata->>'user_hash', user_department FROM archon_mcp_sessions")
        .await;
    let hash = hash_email("ivan@example.com");
    assert_eq!(session, [vec![Some("ivan".into()), None, Some(hash), Some("Legal".into())]]);

    // Every stored value, as text: no address, no argument, no result.
    let everything = db
        .rows(
            "SELECT string_agg(t::text, ' ') FROM (
                 SELECT s::text AS t FROM archon_mcp_sessions s
                 UNION ALL SELECT r::text FROM archon_mcp_requests r) everything",
        )
        .await;
    let everything = everything[0][0].clone().unwrap();
    for secret in ["ivan@example.com", "example.com", secret_query, secret_title, "Initech"] {
        assert!(!everything.contains(secret), "{secret:?} reached the database: {everything}");
    }
    assert!(everything.contains("create_task"), "the rows are there: {everything}");
    server.stop();
}

/// Minimisation through `serve`, and a 10 % trace sampler (issue #34): every call a billing
/// row, counted against the calls made, and no user's name, address or principal in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimised_through_serve_and_sampled_at_ten_percent_every_call_still_bills() {
    use archon_mcp_exporter::minimise::{FieldPolicy, Minimisation};
    use archon_mcp_instrument::sampling::BillingSampler;
    use opentelemetry_sdk::trace::Sampler;
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let exporter = Exporter::start_with(&db.url, |config| {
        config.store.minimisation = Minimisation::new(b"an e2e key, 16 bytes or more".to_vec())
            .unwrap()
            .with_principal(FieldPolicy::Hash)
            .with_email(FieldPolicy::Drop)
            .with_name(FieldPolicy::Drop);
    })
    .await;
    let ten_percent = BillingSampler::new(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.1))));
    let server = McpServer::start_sampled(McpServer::otlp(exporter.grpc), ten_percent, |config| config).await;

    let mut calls = 0;
    for (user, department) in [("kim", "Legal"), ("lee", "Sales")] {
        let client = connect(server.addr, "claude-code", user, department).await;
        for i in 0..40 {
            client.call_tool(call("search_knowledge", json!({"query": format!("q{i}")}))).await.unwrap();
            calls += 1;
        }
        client.cancel().await.unwrap();
    }
    server.flush().await;
    let rows = db.wait_for_count("SELECT count(*) FROM archon_mcp_requests", calls, Duration::from_secs(20)).await;
    assert_eq!(rows, calls, "every call a row, whatever the sampler kept");
    let billing_only = exporter.metrics.spans_received.get();
    assert!(billing_only >= calls as u64, "the spans came through serve: {billing_only}");

    let everything = db
        .rows(
            "SELECT (SELECT string_agg(s::text, ' ') FROM archon_mcp_sessions s)
                 || (SELECT string_agg(r::text, ' ') FROM archon_mcp_requests r)",
        )
        .await;
    let everything = everything[0][0].clone().unwrap_or_default();
    for trace in ["kim", "lee", "KIM", "LEE", "@example.com"] {
        assert!(!everything.contains(trace), "{trace} reached the database: {everything}");
    }
    let users = db.rows("SELECT user_key, total_requests::text, user_department FROM archon_mcp_user_stats ORDER BY user_department").await;
    assert_eq!(users.len(), 2, "two users, by their hashes: {users:?}");
    for row in &users {
        assert!(row[0].as_deref().unwrap().starts_with("hmac:") && row[1].as_deref() == Some("40"), "{row:?}");
    }
    server.stop();
    exporter.stop().await;
}
