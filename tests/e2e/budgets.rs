//! Budget enforcement with real parts: spend stored by the direct path in PostgreSQL, the
//! budget state read back in the background, real rmcp clients refused over budget, served
//! under it, and served when the database cannot be read.

use std::time::Duration;

use archon_mcp_exporter::PgSpanExporter;
use archon_mcp_exporter::budgets::{self, BudgetSpec};
use archon_mcp_exporter::{PgStore, StoreConfig};
use archon_mcp_instrument::budget::BudgetGate;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_budget_is_refused_under_is_served_and_an_unreadable_database_lets_calls_through() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let gate = BudgetGate::new(Duration::from_secs(5));
    let refresh = archon_mcp_otel::budgets::refresh_from_postgres(&gate, db.url.clone(), Duration::from_millis(200));
    let store = PgStore::connect(&db.url, StoreConfig::default()).unwrap();
    let server = McpServer::start_with(PgSpanExporter::new(store), |config| config.enforce_budgets(gate.clone())).await;
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    // Research may spend a cent this month; Sales a thousand dollars.
    budgets::set(&client, &BudgetSpec::monthly("department:Research".parse().unwrap(), 0.01)).await.unwrap();
    budgets::set(&client, &BudgetSpec::monthly("department:Sales".parse().unwrap(), 1000.0)).await.unwrap();

    let ada = connect(server.addr, "claude-code", "ada", "Research").await;
    let bob = connect(server.addr, "Cursor", "bob", "Sales").await;
    let summarize = || call("summarize_document", json!({"id": "doc-1"}));
    // Four summaries at $0.003: over the cent.
    for _ in 0..4 {
        ada.call_tool(summarize()).await.expect("under budget before the spend is stored");
    }
    server.flush().await;
    let mut refused = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(e) = ada.call_tool(call("search_knowledge", json!({"query": "x"}))).await {
            refused = Some(e.to_string());
            break;
        }
    }
    let state = db
        .rows("SELECT scope || ':' || coalesce(scope_value, ''), spend_mtd::text, state FROM archon_budget_status()")
        .await;
    let refused =
        refused.unwrap_or_else(|| panic!("Research's calls are refused once its spend is read back: {state:?}"));
    assert!(refused.contains("department:Research") && refused.contains("budgets set"), "{refused}");
    bob.call_tool(summarize()).await.expect("Sales is under its budget");

    // The refusal is a row like any other.
    server.flush().await;
    let stored = db
        .query_i64("SELECT count(*) FROM archon_mcp_requests WHERE error_type = 'budget_exceeded' AND status = 'error'")
        .await;
    assert_eq!(stored, 1);

    // The database goes unreadable: the reading goes stale and calls go through again.
    refresh.abort();
    let blind = BudgetGate::new(Duration::from_secs(5));
    let _blind_refresh = archon_mcp_otel::budgets::refresh_from_postgres(
        &blind,
        format!("host=127.0.0.1 port={} user=x dbname=x", free_port()),
        Duration::from_millis(100),
    );
    let blind_server = McpServer::start_with(
        PgSpanExporter::new(PgStore::connect(&db.url, StoreConfig::default()).unwrap()),
        |config| config.enforce_budgets(blind.clone()),
    )
    .await;
    let ada_again = connect(blind_server.addr, "claude-code", "ada", "Research").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ada_again.call_tool(summarize()).await.expect("an unknown budget state lets the call through");
    drop((ada, bob, ada_again));
    server.stop();
    blind_server.stop();
}
