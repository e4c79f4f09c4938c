//! Spans as `archon-mcp-instrument` emits them, for seeding the database through the real
//! mapping and store.

use std::time::{SystemTime, UNIX_EPOCH};

use archon_mcp_exporter::map_spans;
use archon_mcp_exporter::span::Span;
use archon_mcp_exporter::testing::TestDb;
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

/// A login role of a test (roles are per cluster: the name carries the database's), connected.
pub struct Login {
    pub name: String,
    pub client: tokio_postgres::Client,
}

impl Login {
    /// A new login `{what}_{database}` granted `grant` (a role list; empty for none).
    pub async fn create(db: &TestDb, admin: &tokio_postgres::Client, what: &str, grant: &str) -> Self {
        let name =
            format!("{what}_{}", admin.query_one("SELECT current_database()", &[]).await.unwrap().get::<_, String>(0));
        let grant = if grant.is_empty() { String::new() } else { format!("GRANT {grant} TO {name};") };
        admin
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD 'pw-{name}'; {grant}"
            ))
            .await
            .unwrap();
        let client = Self::connect_as(db, &name).await;
        Self { name, client }
    }

    /// A new connection of this login: a new session, with no plan cached yet.
    pub async fn connect(&self, db: &TestDb) -> tokio_postgres::Client {
        Self::connect_as(db, &self.name).await
    }

    async fn connect_as(db: &TestDb, name: &str) -> tokio_postgres::Client {
        let mut config: tokio_postgres::Config = db.url().parse().unwrap();
        config.user(name).password(format!("pw-{name}"));
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("the login connects");
        tokio::spawn(connection);
        client
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.client
            .query_one(&format!("SELECT count(*) FROM ({sql}) t"), &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// Rows this login sees through the tables, both views and every SQL API function.
    pub async fn visible(&self, other: &User) -> [i64; 9] {
        let ada = archon_mcp_exporter::ids::user_id(ADA.principal);
        let other = archon_mcp_exporter::ids::user_id(other.principal);
        [
            self.count("SELECT * FROM archon_mcp_sessions").await,
            self.count("SELECT * FROM archon_mcp_requests").await,
            self.count("SELECT * FROM archon_mcp_user_stats").await,
            self.count("SELECT * FROM archon_mcp_session_stats WHERE total_sessions > 0").await,
            self.count("SELECT * FROM get_active_mcp_clients()").await,
            self.count("SELECT * FROM get_disconnected_sessions(now() - interval '1 day', now() + interval '1 day')").await,
            self.count(&format!("SELECT * FROM get_user_sessions('{other}', now() - interval '1 day', now() + interval '1 day')")).await
                + self.count(&format!("SELECT * FROM get_user_sessions('{ada}', now() - interval '1 day', now() + interval '1 day')")).await,
            self.count("SELECT * FROM get_mcp_usage_summary(now() - interval '1 day', now() + interval '1 day') WHERE total_requests > 0").await,
            self.count("SELECT * FROM get_mcp_usage_by_tool(now() - interval '1 day', now() + interval '1 day')").await,
        ]
    }

    /// Disconnects and drops the login with what it owns.
    pub async fn remove(self, admin: &tokio_postgres::Client) {
        drop(self.client);
        admin.batch_execute(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.name)).await.unwrap();
    }
}
