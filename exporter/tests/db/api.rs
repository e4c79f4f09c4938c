//! Archon's views and functions on the known data set (fixtures::dataset): every figure checked.

use archon_mcp_exporter::StoreConfig;
use archon_mcp_exporter::ids;
use archon_mcp_exporter::testing::TestDb;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::fixtures::*;

async fn seeded() -> (TestDb, Client) {
    let db = TestDb::migrated().await;
    write(&db.store(StoreConfig::default()), &dataset(an_hour_ago())).await;
    let client = db.client().await;
    (db, client)
}

fn ada() -> Uuid {
    ADA.principal.parse().unwrap()
}

/// One row of a query, every column as text (numeric has no Rust type here).
async fn row_text(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<Option<String>> {
    let select = format!("SELECT to_jsonb(q) FROM ({sql}) q");
    let row = client.query_one(&select, params).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let value: serde_json::Value = row.get(0);
    let columns = client.prepare(sql).await.unwrap();
    columns
        .columns()
        .iter()
        .map(|c| match &value[c.name()] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
        .collect()
}

fn texts(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| if *v == "NULL" { None } else { Some((*v).to_owned()) }).collect()
}

#[tokio::test]
async fn user_stats_view_has_one_correct_row_per_user() {
    let (_db, client) = seeded().await;
    let sql = "SELECT user_email, user_name, total_sessions, active_sessions, disconnected_sessions,
                      avg_session_duration_seconds::int, max_session_duration_seconds, total_requests,
                      total_tokens, total_cost, user_department, failed_requests, reported_tokens,
                      estimated_tokens, user_key
                 FROM archon_mcp_user_stats WHERE user_id = $1";
    assert_eq!(
        row_text(&client, sql, &[&ada()]).await,
        texts(&[
            "ada@example.com",
            "Ada Lovelace",
            "2",
            "1",
            "1",
            "120",
            "120",
            "4",
            "1700",
            "0.2605",
            "Research",
            "1",
            "1700",
            "0",
            ADA.principal
        ])
    );
    assert_eq!(
        row_text(&client, sql, &[&ids::user_id("bob@corp")]).await,
        texts(&[
            "bob@example.com",
            "Bob",
            "1",
            "0",
            "1",
            "60",
            "60",
            "2",
            "1000",
            "0",
            "Sales",
            "0",
            "0",
            "1000",
            "bob@corp"
        ])
    );
    let users: i64 = client.query_one("SELECT count(*) FROM archon_mcp_user_stats", &[]).await.unwrap().get(0);
    assert_eq!(users, 2);
}

#[tokio::test]
async fn get_user_activity_summary_works_and_adds_up() {
    let (_db, client) = seeded().await;
    let row = row_text(
        &client,
        "SELECT user_email, user_name, total_sessions, active_sessions, total_requests, total_tokens,
                total_cost, avg_session_duration, most_used_client
           FROM get_user_activity_summary($1, 30)",
        &[&ada()],
    )
    .await;
    // Claude and Cursor have one session each; the more recent (Cursor) wins the tie.
    assert_eq!(row, texts(&["ada@example.com", "Ada Lovelace", "2", "1", "4", "1700", "0.2605", "120", "Cursor"]));

    let nobody = client.query("SELECT * FROM get_user_activity_summary($1, 30)", &[&Uuid::nil()]).await.unwrap();
    assert!(nobody.is_empty(), "no activity, no row");
}

#[tokio::test]
async fn usage_summaries_count_every_request() {
    let (_db, client) = seeded().await;
    assert_eq!(
        row_text(
            &client,
            "SELECT * FROM get_mcp_usage_summary(now() - interval '1 day', now() + interval '1 day')",
            &[]
        )
        .await,
        texts(&["6", "1900", "800", "2700", "0.2605", "3", "5", "1", "2"])
    );
    // Archon's defaults (the last 30 days) work too.
    let defaults = row_text(&client, "SELECT total_requests FROM get_mcp_usage_summary()", &[]).await;
    assert_eq!(defaults, texts(&["6"]));

    let by_tool = client
        .query(
            "SELECT tool_name::text, request_count, total_tokens, total_cost::text, error_count
               FROM get_mcp_usage_by_tool(now() - interval '1 day', now() + interval '1 day')",
            &[],
        )
        .await
        .unwrap();
    let by_tool: Vec<(String, i64, i64, String, i64)> =
        by_tool.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    assert_eq!(
        by_tool,
        [
            ("list_tasks".into(), 2, 1000, "0".into(), 0),
            ("search".into(), 2, 1500, "0.010500".into(), 0),
            ("create_task".into(), 1, 0, "0".into(), 1),
            ("summarize".into(), 1, 200, "0.250000".into(), 0),
        ]
    );
}

#[tokio::test]
async fn session_functions_and_views() {
    let (_db, client) = seeded().await;

    let active: Vec<String> = client
        .query("SELECT session_id::text FROM get_active_mcp_clients()", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(active, [SESSION_2]);

    let ended: Vec<(String, i32, String, i64)> = client
        .query(
            "SELECT session_id::text, total_duration, disconnect_reason::text, total_requests
               FROM get_disconnected_sessions(now() - interval '1 day', now() + interval '1 day')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        ended,
        [(SESSION_3.into(), 60, "timeout".into(), 2), (SESSION_1.into(), 120, "client_disconnect".into(), 3)]
    );

    let ada_sessions: Vec<(String, String, i64)> = client
        .query(
            "SELECT session_id::text, client_type::text, total_requests FROM get_user_sessions($1) ORDER BY session_id",
            &[&ada()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(ada_sessions, [(SESSION_1.into(), "Claude".into(), 3), (SESSION_2.into(), "Cursor".into(), 1)]);

    let stats: Vec<(String, i64, i64, i64, i64, i64)> = client
        .query(
            "SELECT client_type::text, total_sessions, active_sessions, disconnected_sessions,
                    client_disconnects, timeout_disconnects
               FROM archon_mcp_session_stats ORDER BY client_type",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(
        stats,
        [("Claude".into(), 1, 0, 1, 1, 0), ("Cursor".into(), 1, 1, 0, 0, 0), ("Windsurf".into(), 1, 0, 1, 0, 1)]
    );
}

#[tokio::test]
async fn calculate_request_cost_keeps_archons_signature() {
    let (_db, client) = seeded().await;
    let cost = |model: &'static str, provider: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT calculate_request_cost($1::varchar, $2::varchar, 1000, 500)::text",
                    &[&model, &provider],
                )
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
                .unwrap_or_else(|| "NULL".into())
        }
    };
    assert_eq!(cost("claude-sonnet-4-5", "Anthropic").await, "0.010500");
    assert_eq!(cost("claude-sonnet-4-5-20250929", "Anthropic").await, "0.010500", "snapshot suffix");
    assert_eq!(cost("gpt-4o-mini", "OpenAI").await, "0.000450", "not priced as gpt-4o");
    assert_eq!(cost("claude-sonnet-4-5", "OpenAI").await, "NULL", "wrong provider: unpriced, not free");
    assert_eq!(cost("no-such-model", "Anthropic").await, "NULL");
}
