//! The provisioned alert rules (`dashboards/provisioning/alerting/`): each rule's query runs as
//! the Grafana role against data that should fire it and data that should not, and its
//! threshold is applied as Grafana's reduce (last) and threshold expressions would.

use std::time::{SystemTime, UNIX_EPOCH};

use archon_mcp_exporter::StoreConfig;
use archon_mcp_exporter::map_spans;
use archon_mcp_exporter::span::Span;
use archon_mcp_exporter::testing::{Connection, TestDb, TestUser, tool_error};
use serde_json::Value;

const SEC: u64 = 1_000_000_000;
const MIN: u64 = 60 * SEC;
const RESEARCHER: TestUser =
    TestUser { principal: "rae", email: "rae@example.com", name: "Rae", department: "Research" };

fn rules() -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dashboards/provisioning/alerting/archon-mcp-alerts.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["groups"][0]["rules"].as_array().unwrap().clone()
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn cost(span: Span, usd: f64) -> Span {
    span.with_attribute("archon.cost.amount", usd)
}

/// Spans and budgets that fire every rule (`fire`) or none.
async fn seed(db: &TestDb, fire: bool) {
    let now = now_ns();
    let mut spans = Vec::new();
    let mut session = Connection::new("0195f3a0-0000-7000-8000-0000000000a1", "claude-code", Some(RESEARCHER));
    // Latency: `search` at 10 ms for 7 days (25 calls), then 10 calls in the last hour.
    for i in 0..25 {
        spans.push(session.call("search", now - 2 * 86_400 * SEC - i * MIN, 10));
    }
    let recent_ms = if fire { 100 } else { 11 };
    for i in 0..10 {
        spans.push(session.call("search", now - 30 * MIN - i * SEC, recent_ms));
    }
    // Errors: 20 calls in the last 15 minutes, 8 failing (40 %) or none.
    for i in 0..20 {
        let call = session.call("create_task", now - 5 * MIN - i * SEC, 5);
        spans.push(if fire && i < 8 { tool_error(call, "exists") } else { call });
    }
    // Cost: one session spends $6 today (or $1).
    spans.push(cost(session.call("summarize", now - 10 * MIN, 5), if fire { 6.0 } else { 1.0 }));
    let outcome = db.store(StoreConfig::default()).write(&map_spans(&spans)).await.unwrap();
    assert!(outcome.rejected.is_empty());

    // Budgets: Research over its amount; the client type on course to overrun (spend under the
    // amount, its one warning at 100 %, forecast past it) — or both comfortable.
    let client = db.client().await;
    let factor: f64 = client
        .query_one(
            "SELECT (extract(epoch FROM date_trunc('month', now()) + interval '1 month' - date_trunc('month', now()))
                    / greatest(extract(epoch FROM now() - date_trunc('month', now())), 86400))::float8",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let spent: f64 = client
        .query_one("SELECT sum(estimated_cost)::float8 FROM archon_mcp_requests WHERE \"timestamp\" >= date_trunc('month', now())", &[])
        .await
        .unwrap()
        .get(0);
    let (research, on_course) =
        if fire { (spent / 2.0, spent * (1.0 + factor) / 2.0) } else { (spent * 100.0, spent * factor * 10.0) };
    client
        .execute(
            "INSERT INTO archon_budgets (scope, scope_value, monthly_amount, warn_at, effective_from) VALUES
                ('department', 'Research', round($1::float8::numeric, 2), '{80}', date_trunc('month', now())),
                ('client_type', 'Claude', round($2::float8::numeric, 2), '{100}', date_trunc('month', now()))",
            &[&research, &on_course],
        )
        .await
        .unwrap();
}

/// Whether a rule fires: its query's rows reduced to their last numeric value, compared as its
/// threshold expression says.
async fn fires(client: &tokio_postgres::Client, rule: &Value) -> (bool, Vec<(String, f64)>) {
    let data = rule["data"].as_array().unwrap();
    let sql = data.iter().find(|d| d["refId"] == "A").unwrap()["model"]["rawSql"].as_str().unwrap();
    let evaluator = &data.iter().find(|d| d["refId"] == "C").unwrap()["model"]["conditions"][0]["evaluator"];
    let threshold = evaluator["params"][0].as_f64().unwrap();
    // The text protocol, as for the dashboards: every value as text, the last one numeric.
    let mut series: Vec<(String, f64)> = Vec::new();
    for message in client.simple_query(sql).await.unwrap_or_else(|e| panic!("{}: {e}", rule["title"])) {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            let label = (0..row.len() - 1).map(|i| row.get(i).unwrap_or_default()).collect::<Vec<_>>().join(",");
            series.push((label, row.get(row.len() - 1).unwrap().parse().unwrap()));
        }
    }
    let fired = series.iter().any(|(_, v)| match evaluator["type"].as_str().unwrap() {
        "gt" => *v > threshold,
        "lt" => *v < threshold,
        other => panic!("evaluator {other}"),
    });
    (fired, series)
}

#[tokio::test]
async fn every_alert_rule_fires_on_data_that_should_fire_it_and_stays_quiet_otherwise() {
    let rules = rules();
    assert_eq!(rules.len(), 5);
    for fire in [true, false] {
        let db = TestDb::migrated().await;
        seed(&db, fire).await;
        let client = db.client().await;
        client.batch_execute("SET ROLE archon_grafana").await.unwrap();
        for rule in &rules {
            let (fired, series) = fires(&client, rule).await;
            assert_eq!(fired, fire, "{}: {series:?}", rule["title"]);
        }
    }
}
