//! The demo's pipeline, smaller: its report agrees with the database.

use archon_mcp_otel::demo::{self, DemoOptions};

use crate::harness::Database;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_pipeline_reports_what_the_database_holds() {
    // It installs the global tracer provider and ends every open session at its end.
    let _turn = crate::harness::ONE_PIPELINE_AT_A_TIME.lock().await;
    let run = demo::run(DemoOptions {
        database_url: None,
        http_users: 3,
        calls_per_user: 12,
        stdio_server: None,
        progress: false,
    })
    .await
    .expect("the demo pipeline runs");
    assert_eq!((run.calls, run.connections), (36, 3));
    let report = run.report().await.unwrap();
    let db = Database::connect(&run.database_url);

    let t = &report.totals;
    assert_eq!(t.requests, 36);
    assert_eq!(t.sessions, 3);
    assert_eq!(t.users, 3);
    assert_eq!(t.tokens, db.query_i64("SELECT sum(total_tokens)::bigint FROM archon_mcp_requests").await);
    assert_eq!(t.failed, db.query_i64("SELECT count(*) FROM archon_mcp_requests WHERE status <> 'success'").await);
    assert!(t.failed > 0 && t.tokens > 0);
    let cost_micros = db.query_i64("SELECT (sum(estimated_cost) * 1000000)::bigint FROM archon_mcp_requests").await;
    assert!(cost_micros > 0);
    assert_eq!((t.cost * 1e6).round() as i64, cost_micros);

    let users = &report.tables[0];
    assert_eq!(users.rows.len() as i64, db.query_i64("SELECT count(*) FROM archon_mcp_user_stats").await);
    let requests_in_table: i64 = users.rows.iter().map(|r| r[3].parse::<i64>().unwrap()).sum();
    assert_eq!(requests_in_table, 36);
    let estimated: i64 = users.rows.iter().map(|r| r[5].parse::<i64>().unwrap()).sum();
    assert_eq!(
        estimated,
        db.query_i64("SELECT sum(total_tokens)::bigint FROM archon_mcp_requests WHERE token_source = 'estimated'")
            .await
    );
    assert!(estimated > 0, "estimates are on in the demo");

    let tools = &report.tables[2];
    let tool_requests: i64 = tools.rows.iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert_eq!(tool_requests, 36);
    let budgets = &report.tables[3];
    let states: Vec<&str> = budgets.rows.iter().map(|r| r[5].as_str()).collect();
    assert_eq!(states.iter().filter(|s| **s == "over").count(), 1, "one department crossed its budget: {budgets:?}");
    assert!(budgets.rows.iter().any(|r| r[0] == "all"));
    let clients = &report.tables[4];
    assert!(clients.rows.iter().all(|r| r[1] == "client_disconnect"), "{clients:?}");
    // The clients are traced: every row names its client span, whose duration covers the server's.
    let round_trips = &report.tables[5];
    assert_eq!(round_trips.rows[0][3], "36 calls", "{round_trips:?}");
    let ms = |row: usize, col: usize| round_trips.rows[row][col].parse::<f64>().unwrap();
    assert!(
        ms(0, 1) >= ms(1, 1) && ms(0, 2) >= ms(1, 2),
        "the client sees at least the server's time: {round_trips:?}"
    );
    assert!(ms(2, 1) > 0.0, "{round_trips:?}");
    run.finish().await;
}
