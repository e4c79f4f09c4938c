//! Spans as `archon-mcp-instrument` emits them, for seeding the database through the real
//! mapping and store.

use std::time::{SystemTime, UNIX_EPOCH};

use archon_mcp_exporter::map_spans;
use archon_mcp_exporter::span::Span;
use archon_mcp_exporter::{PgStore, WriteOutcome};
use archon_mcp_instrument::attributes as attr;
use tokio_postgres::Client;

pub const SEC: u64 = 1_000_000_000;
pub const MS: u64 = 1_000_000;

/// Nanoseconds since the epoch, an hour ago (inside every "last N days" window).
pub fn an_hour_ago() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 - 3600 * SEC
}

pub use archon_mcp_exporter::testing::{Connection as Conn, TestUser as User, tool_error, with_estimate, with_usage};

pub const ADA: User = User {
    principal: "3f2b8c1e-1d2a-4c5b-9e8f-7a6b5c4d3e2f",
    email: "ada@example.com",
    name: "Ada Lovelace",
    department: "Research",
};
pub const BOB: User = User { principal: "bob@corp", email: "bob@example.com", name: "Bob", department: "Sales" };

pub const SESSION_1: &str = "0195f3a0-0000-7000-8000-000000000001";
pub const SESSION_2: &str = "0195f3a0-0000-7000-8000-000000000002";
pub const SESSION_3: &str = "0195f3a0-0000-7000-8000-000000000003";

/// The known data set the SQL API is checked against:
/// - Ada, session 1 (Claude Code), ended by the client after 120 s: `search` with reported
///   usage of claude-sonnet-4-5 (1,000 in / 500 out → $0.0105), `search` without usage, a failed
///   `create_task`;
/// - Ada, session 2 (Cursor), still open: `summarize` reporting $0.25 for 100/100 gpt-4o tokens;
/// - Bob (principal `bob@corp`, not a UUID), session 3 (Windsurf), timed out after 60 s: two
///   `list_tasks` with estimated tokens 400/100 each (unpriced without an estimate model).
pub fn dataset(t0: u64) -> Vec<Span> {
    let mut s1 = Conn::new(SESSION_1, "claude-code", Some(ADA));
    let mut s2 = Conn::new(SESSION_2, "Cursor", Some(ADA));
    let mut s3 = Conn::new(SESSION_3, "Windsurf", Some(BOB));
    vec![
        with_usage(s1.call("search", t0, 40), "claude-sonnet-4-5-20250929", 1000, 500),
        s1.call("search", t0 + 10 * SEC, 20),
        tool_error(s1.call("create_task", t0 + 20 * SEC, 5), "title is required"),
        s1.end(t0, t0 + 120 * SEC, "client_disconnect"),
        with_usage(s2.call("summarize", t0 + 200 * SEC, 900), "gpt-4o", 100, 100)
            .with_attribute(attr::ARCHON_COST_AMOUNT, 0.25),
        with_estimate(s3.call("list_tasks", t0 + 300 * SEC, 10), 400, 100),
        with_estimate(s3.call("list_tasks", t0 + 310 * SEC, 30), 400, 100),
        s3.end(t0 + 300 * SEC, t0 + 360 * SEC, "timeout"),
    ]
}

/// Maps and writes spans, asserting nothing was refused.
pub async fn write(store: &PgStore, spans: &[Span]) -> WriteOutcome {
    let batch = map_spans(spans);
    let outcome = store.write(&batch).await.expect("write");
    assert!(outcome.rejected.is_empty(), "{:?}", outcome.rejected);
    outcome
}

/// Both tables as text, in a fixed order: equal dumps mean equal tables.
pub async fn dump(client: &Client) -> (Vec<String>, Vec<String>) {
    let rows = |sql: &'static str| async move {
        client.query(sql, &[]).await.unwrap().iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
    };
    (
        rows("SELECT row_to_json(s)::text FROM (SELECT * FROM archon_mcp_sessions ORDER BY session_id) s").await,
        rows("SELECT row_to_json(r)::text FROM (SELECT * FROM archon_mcp_requests ORDER BY request_id) r").await,
    )
}
