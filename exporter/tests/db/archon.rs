//! Switching from Archon in place: an Archon database on Supabase's roles, as each state of
//! Archon's migrations leaves it and filled the way Archon's Python fills it, adopted by
//! `migrate` with every row and every working Archon SQL API figure kept.

use archon_mcp_exporter::adopt::{self, Found};
use archon_mcp_exporter::migrate;
use archon_mcp_exporter::testing::TestDb;
use tokio_postgres::Client;

use crate::fixtures::*;

const SUPABASE: &str = include_str!("archon/supabase.sql");
const ARCHON_001: &str = include_str!("archon/archon_001.sql");
const ARCHON_013: &str = include_str!("archon/archon_013.sql");
const ARCHON_014: &str = include_str!("archon/archon_014.sql");
/// 014 half applied, as Archon's hotfix scripts describe: its columns, without its views and
/// functions (which need 013's columns).
const ARCHON_014_COLUMNS: &str = "ALTER TABLE archon_mcp_sessions ADD COLUMN IF NOT EXISTS user_id UUID;
    ALTER TABLE archon_mcp_sessions ADD COLUMN IF NOT EXISTS user_email VARCHAR(255);
    ALTER TABLE archon_mcp_sessions ADD COLUMN IF NOT EXISTS user_name VARCHAR(255);";

/// Ada and Bob, Supabase users (their `auth.uid()`).
const ADA_UID: &str = "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
const BOB_UID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e8f7a6b5c4d";

/// An Archon database in the state of `migrations`, with rows as Archon's Python writes them:
/// random ids, no trace ids, sessions with and without users, active, idle and disconnected
/// (by the client, and by Archon's reaper: `timeout_no_activity`, no duration), priced and
/// unpriced requests over two months.
async fn archon_database(migrations: &[&str]) -> (TestDb, Client) {
    let db = TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(SUPABASE).await.unwrap_or_else(|e| panic!("supabase.sql: {:?}", e.as_db_error()));
    for sql in migrations {
        client.batch_execute(sql).await.unwrap_or_else(|e| panic!("Archon migration: {:?}", e.as_db_error()));
    }
    let Found::Archon(state) = adopt::inspect(&client).await.unwrap() else { panic!("not Archon's shape") };
    let (users, disconnects) = (state.users, state.disconnects);
    let sessions: [ArchonSession; 5] = [
        ("Claude Code", Some(ADA_UID), "disconnected", Some("client_disconnect"), 40, Some(39)),
        ("Cursor", Some(ADA_UID), "idle", None, 2, None),
        ("Windsurf", Some(BOB_UID), "disconnected", Some("timeout_no_activity"), 10, Some(9)),
        ("Cline", None, "active", None, 0, None),
        ("Claude Code", None, "disconnected", Some("client_disconnect"), 1, Some(1)),
    ];
    for (i, (client_type, user, status, reason, connected, disconnected)) in sessions.into_iter().enumerate() {
        let id = uuid::Uuid::new_v4();
        client
            .execute(
                "INSERT INTO archon_mcp_sessions (session_id, client_type, client_version, connected_at, last_activity, metadata)
                 VALUES ($1, $2, '1.2.3', now() - make_interval(days => $3), now() - make_interval(days => $3),
                         '{\"user_agent\": \"python\"}')",
                &[&id, &client_type, &connected],
            )
            .await
            .unwrap();
        // Requests: a priced tool call, an unpriced one, a failed one (the first session has
        // all three; the others one or two).
        let requests: &[(&str, i32, i32, f64, &str)] = match i {
            0 => &[
                ("search_knowledge", 1000, 500, 0.0105, "success"),
                ("list_tasks", 0, 0, 0.0, "success"),
                ("create_task", 0, 0, 0.0, "error"),
            ],
            1 => &[("search_knowledge", 400, 100, 0.0027, "success"), ("summarize", 0, 0, 0.0, "success")],
            2 => &[("list_tasks", 200, 50, 0.0, "timeout")],
            3 => &[("search_knowledge", 0, 0, 0.0, "success")],
            _ => &[("summarize", 10, 10, 0.0001, "success")],
        };
        for (n, (tool, prompt, completion, cost, outcome)) in requests.iter().enumerate() {
            client
                .execute(
                    "INSERT INTO archon_mcp_requests (session_id, method, tool_name, prompt_tokens, completion_tokens,
                                                      estimated_cost, timestamp, duration_ms, status, error_message)
                     VALUES ($1, 'tools/call', $2, $3, $4, $5::float8::numeric,
                             now() - make_interval(days => $6) + make_interval(mins => $7), 20 + $7, $8::varchar,
                             CASE WHEN $8::text = 'success' THEN NULL ELSE 'it failed' END)",
                    &[&id, tool, prompt, completion, cost, &connected, &(n as i32), outcome],
                )
                .await
                .unwrap();
        }
        // Archon's trigger revived the session on each request; its Python then set the state.
        client
            .execute(
                "UPDATE archon_mcp_sessions SET status = $2,
                        last_activity = now() - make_interval(days => $3) + interval '10 minutes',
                        disconnected_at = now() - make_interval(days => $4)
                  WHERE session_id = $1",
                &[&id, &status, &connected, &disconnected],
            )
            .await
            .unwrap();
        if disconnects {
            let duration =
                disconnected.filter(|_| reason != Some("timeout_no_activity")).map(|d| (connected - d) * 86_400);
            client
                .execute(
                    "UPDATE archon_mcp_sessions SET disconnect_reason = $2, total_duration = $3 WHERE session_id = $1",
                    &[&id, &reason, &duration],
                )
                .await
                .unwrap();
        }
        if let (true, Some(user)) = (users, user) {
            let user = uuid::Uuid::parse_str(user).unwrap();
            let name = if user.to_string() == ADA_UID { "Ada" } else { "Bob" };
            client
                .execute(
                    "UPDATE archon_mcp_sessions SET user_id = $2, user_email = lower($3) || '@example.com', user_name = $3
                      WHERE session_id = $1",
                    &[&id, &user, &name],
                )
                .await
                .unwrap();
        }
    }
    (db, client)
}

/// (client, user, status, disconnect reason, connected days ago, disconnected days ago)
type ArchonSession = (&'static str, Option<&'static str>, &'static str, Option<&'static str>, i32, Option<i32>);

/// Rows as text, ordered, for comparing before and after.
async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = client.query(&format!("SELECT to_jsonb(t) FROM ({sql}) t"), &[]).await.unwrap_or_else(|e| {
        panic!("{sql}: {:?}", e.as_db_error());
    });
    let mut out: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|r| {
            let value: serde_json::Value = r.get(0);
            value.as_object().unwrap().values().map(|v| (!v.is_null()).then(|| v.to_string())).collect()
        })
        .collect();
    out.sort();
    out
}

/// Every row, and every figure of Archon's SQL API that works in Archon, in a form both schemas
/// give alike.
async fn snapshot(client: &Client, disconnects: bool, users: bool) -> Vec<Vec<Vec<Option<String>>>> {
    let mut views = vec![
        rows(client, "SELECT session_id, client_type, client_version, connected_at, last_activity,
                             metadata ->> 'user_agent' AS agent FROM archon_mcp_sessions").await,
        rows(client, "SELECT request_id, session_id, method, tool_name, prompt_tokens, completion_tokens, total_tokens,
                             round(estimated_cost, 6) AS cost, timestamp, duration_ms::float8 AS duration, status, error_message
                        FROM archon_mcp_requests").await,
        rows(client, "SELECT model_name, provider, input_price_per_1k, output_price_per_1k, effective_date, notes
                        FROM archon_llm_pricing
                       WHERE (model_name, effective_date) IN (('gpt-4o', '2024-05-13'), ('gpt-4o-mini', '2024-07-18'),
                             ('claude-3-5-sonnet-20241022', '2024-10-22'), ('claude-3-haiku-20240307', '2024-03-07'))").await,
        rows(client, "SELECT session_id FROM get_active_mcp_clients()").await,
    ];
    if disconnects {
        views.push(
            rows(
                client,
                "SELECT session_id, total_requests FROM get_disconnected_sessions(now() - interval '60 days', now())",
            )
            .await,
        );
        views.push(
            rows(client, "SELECT client_type, total_sessions, disconnected_sessions FROM archon_mcp_session_stats")
                .await,
        );
        views.push(
            rows(client, "SELECT session_id, status, disconnect_reason, total_duration FROM archon_mcp_sessions
                           WHERE disconnect_reason IS DISTINCT FROM 'timeout_no_activity' AND disconnect_reason IS DISTINCT FROM 'timeout'")
                .await,
        );
    }
    if users {
        views.push(
            rows(
                client,
                "SELECT user_id, user_email, user_name, total_sessions, total_requests, total_tokens,
                                 round(total_cost, 6) AS cost FROM archon_mcp_user_stats",
            )
            .await,
        );
        views.push(
            rows(client, &format!("SELECT session_id, total_requests FROM get_user_sessions('{ADA_UID}', now() - interval '60 days', now())"))
                .await,
        );
    }
    views
}

async fn adopt_and_compare(migrations: &[&str]) -> (TestDb, Client) {
    let (db, client) = archon_database(migrations).await;
    // Archon's SQL API as far as this state has it (014's views need 013's columns).
    let disconnects = migrations.contains(&ARCHON_013);
    let users = migrations.contains(&ARCHON_014);
    let before = snapshot(&client, disconnects, users).await;
    let found = adopt::inspect(&client).await.unwrap();
    assert!(matches!(found, Found::Archon(s) if s.disconnects == disconnects), "{found:?}");

    let mut migrating = db.client().await;
    let migrated = migrate::migrate_reporting(&mut migrating).await.expect("the Archon database is adopted");
    let (_, summary) = migrated.adopted.expect("an adoption");
    assert_eq!(summary.before, summary.after);
    assert_eq!((summary.before.sessions, summary.before.requests), (5, 8));
    assert_eq!(migrated.applied.len(), migrate::known().len());

    let after = snapshot(&client, disconnects, users).await;
    assert_eq!(after, before, "every row and API figure kept");
    // What changed, on purpose: Archon's reaper's spelling, and the duration it left out.
    if disconnects {
        let timeout = rows(
            &client,
            "SELECT disconnect_reason, total_duration FROM archon_mcp_sessions WHERE client_type = 'Windsurf'",
        )
        .await;
        assert_eq!(timeout, [[Some("\"timeout\"".into()), Some("86400".into())]]);
    }
    let partitions: i64 = client
        .query_one(
            "SELECT count(*) FROM archon_mcp_requests WHERE tableoid = 'archon_mcp_requests_default'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(partitions, 0, "old requests are in their months' partitions");
    // A second run changes nothing.
    let again = migrate::migrate_reporting(&mut migrating).await.unwrap();
    assert!(again.applied.is_empty() && again.adopted.is_none());
    assert_eq!(snapshot(&client, disconnects, users).await, before);
    (db, client)
}

#[tokio::test]
async fn an_archon_001_database_is_adopted_with_every_row() {
    adopt_and_compare(&[ARCHON_001]).await;
}

#[tokio::test]
async fn an_archon_001_013_database_is_adopted_with_every_row() {
    adopt_and_compare(&[ARCHON_001, ARCHON_013]).await;
}

#[tokio::test]
async fn an_archon_database_with_014_half_applied_is_adopted_with_every_row() {
    let (_db, client) = adopt_and_compare(&[ARCHON_001, ARCHON_014_COLUMNS]).await;
    let users =
        rows(&client, "SELECT user_id, user_key, user_name FROM archon_mcp_sessions WHERE user_id IS NOT NULL").await;
    assert_eq!(users.len(), 3, "the users of the sessions, kept: {users:?}");
}

#[tokio::test]
async fn an_archon_database_on_supabase_is_adopted_and_goes_on_with_new_spans_and_readers() {
    let (db, client) = adopt_and_compare(&[ARCHON_001, ARCHON_013, ARCHON_014]).await;

    // `serve` stores new calls of Ada (her JWT `sub` is her Supabase uid): her stats sum old
    // and new.
    let ada = User { principal: ADA_UID, email: "ada@example.com", name: "Ada", department: "Research" };
    let mut conn = Conn::new("0195f3a0-0000-7000-8000-0000000000a1", "claude-code", Some(ada));
    let spans = [with_usage(conn.call("search", an_hour_ago(), 10), "gpt-4o", 100, 100)];
    let service = crate::service::start(db.url(), |_| {}).await;
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", service.http_addr()))
        .header("content-type", "application/x-protobuf")
        .body(prost::Message::encode_to_vec(&archon_mcp_exporter::testing::otlp_request(&spans)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    service.stop().await.unwrap();
    let stats = rows(
        &client,
        &format!("SELECT total_sessions, total_requests FROM archon_mcp_user_stats WHERE user_id = '{ADA_UID}'"),
    )
    .await;
    // (total_requests, total_sessions), in to_jsonb's key order.
    assert_eq!(stats, [[Some("6".into()), Some("3".into())]], "5 old requests + 1 new, 2 old sessions + 1 new");

    // Supabase's API: the authenticator switches into `authenticated` with Ada's verified
    // claims, and sees her old and new sessions only.
    let mut config: tokio_postgres::Config = db.url().parse().unwrap();
    config.user("authenticator").password("authenticator-pw");
    let (reader, connection) = config.connect(tokio_postgres::NoTls).await.expect("the authenticator logs in");
    tokio::spawn(connection);
    reader
        .batch_execute(&format!(
            r#"SET ROLE authenticated; SET request.jwt.claims = '{{"sub": "{ADA_UID}", "role": "authenticated"}}'"#
        ))
        .await
        .unwrap();
    let seen: i64 = reader.query_one("SELECT count(*) FROM archon_mcp_sessions", &[]).await.unwrap().get(0);
    assert_eq!(seen, 3, "Ada's three sessions, not Bob's or the anonymous ones");
    let requests: i64 = reader.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await.unwrap().get(0);
    assert_eq!(requests, 6);

    // Supabase's default privileges gave the API roles nothing of ours to use directly.
    for (role, sql) in [
        ("anon", "SELECT * FROM archon_trusted_authenticators"),
        ("authenticated", "INSERT INTO archon_reader_logins VALUES ('authenticator', 'bob')"),
        ("authenticated", "SELECT archon_mcp_drop_request_partitions('0 days')"),
        ("anon", "SELECT archon_mcp_create_request_partitions(1)"),
    ] {
        reader.batch_execute(&format!("RESET ROLE; SET ROLE {role}")).await.unwrap();
        let refused = reader.batch_execute(sql).await;
        assert!(refused.is_err(), "{role} may not: {sql}");
    }

    // A grant a DBA made by hand to another role survives the next `migrate`.
    let analyst =
        format!("analyst_{}", client.query_one("SELECT current_database()", &[]).await.unwrap().get::<_, String>(0));
    client
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {analyst}; CREATE ROLE {analyst}; GRANT SELECT ON archon_llm_pricing TO {analyst}"
        ))
        .await
        .unwrap();
    migrate::migrate_url(db.url()).await.unwrap();
    let kept: bool = client
        .query_one(&format!("SELECT has_table_privilege('{analyst}', 'archon_llm_pricing', 'SELECT')"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(kept, "the hand-made grant stays");
    client
        .batch_execute(&format!("REVOKE ALL ON archon_llm_pricing FROM {analyst}; DROP ROLE {analyst}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_other_tables_are_refused() {
    let (db, client) = archon_database(&[ARCHON_001, ARCHON_013, ARCHON_014]).await;
    let mut migrating = db.client().await;
    let (pending, plan) = migrate::plan(&mut migrating).await.unwrap();
    let plan = plan.expect("an adoption plan");
    assert_eq!(pending.len(), migrate::known().len());
    let text = plan.to_string();
    assert!(text.contains("5 sessions, 8 requests"), "{text}");
    assert!(text.contains("trigger trigger_update_session_status on archon_mcp_requests"), "{text}");
    assert!(text.contains("GRANT archon_reader TO authenticated"), "{text}");
    assert!(matches!(adopt::inspect(&client).await.unwrap(), Found::Archon(_)), "nothing changed");

    // Something else under the product's names: refused, nothing changed.
    let other = TestDb::new().await;
    let other_client = other.client().await;
    other_client.batch_execute("CREATE TABLE archon_mcp_sessions (id int)").await.unwrap();
    let error = migrate::migrate_url(other.url()).await.unwrap_err().to_string();
    assert!(error.contains("archon_mcp_sessions (id)") && error.contains("nothing was changed"), "{error}");
    assert!(migrate::pending(&mut other.client().await).await.unwrap().len() == migrate::known().len());
}

#[tokio::test]
async fn an_adoption_stopped_after_setting_archons_tables_aside_resumes() {
    let (db, client) = archon_database(&[ARCHON_001, ARCHON_013, ARCHON_014]).await;
    let before = snapshot(&client, true, true).await;
    let mut migrating = db.client().await;
    adopt::set_aside(&mut migrating).await.unwrap(); // ...and the process died here
    assert_eq!(adopt::inspect(&client).await.unwrap(), Found::Adopting);
    let migrated = migrate::migrate_reporting(&mut migrating).await.expect("the adoption resumes");
    let (state, summary) = migrated.adopted.expect("the resumed adoption");
    assert_eq!((state, summary.after.requests), (None, 8));
    assert_eq!(snapshot(&client, true, true).await, before);
}
