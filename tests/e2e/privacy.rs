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
