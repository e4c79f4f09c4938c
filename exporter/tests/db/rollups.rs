//! Hourly rollups (issue #35): every figure equal to the raw rows' to the cent, after writes, a
//! replay, late data for a closed hour and a rebuild; readers see their own user's only.

use archon_mcp_exporter::span::Span;
use archon_mcp_exporter::testing::TestDb;
use archon_mcp_exporter::{ReaperConfig, StoreConfig, reap_once};

use crate::fixtures::*;

/// Every rollup row next to the same aggregate of the raw rows, as text, by hour and dimensions.
const COMPARE: &str = "
WITH raw AS (
    SELECT date_trunc('hour', r.timestamp) AS hour, r.user_id, s.user_department, r.tool_name, s.client_type,
           r.model, r.status, r.token_source, count(*) AS requests, sum(r.prompt_tokens) AS prompt_tokens,
           sum(r.completion_tokens) AS completion_tokens, coalesce(sum(r.estimated_cost), 0) AS cost,
           round(sum(r.duration_ms)::numeric, 6) AS duration
      FROM archon_mcp_requests r JOIN archon_mcp_sessions s USING (session_id)
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8),
rolled AS (
    SELECT hour, user_id, user_department, tool_name, client_type, model, status, token_source, requests,
           prompt_tokens, completion_tokens, cost, round(duration_ms_sum::numeric, 6) AS duration
      FROM archon_mcp_rollup_hourly)
SELECT (SELECT count(*) FROM (SELECT * FROM raw EXCEPT SELECT * FROM rolled) missing)
     + (SELECT count(*) FROM (SELECT * FROM rolled EXCEPT SELECT * FROM raw) extra),
       (SELECT count(*) FROM rolled)";

/// Five hours of two users' calls, every ten minutes: Ada's with reported usage, Bob's slow, with
/// estimates, every third a `fail`. Returns the spans, both connections (for later calls) and the
/// first call's time.
fn five_hours() -> (Vec<Span>, Conn, Conn, u64) {
    let t0 = an_hour_ago() - 5 * 3600 * SEC;
    let (mut ada, mut bob) =
        (Conn::new(SESSION_1, "claude-code", Some(ADA)), Conn::new(SESSION_3, "Cursor", Some(BOB)));
    let mut spans = Vec::new();
    for i in 0..30 {
        let at = t0 + i * 600 * SEC;
        spans.push(with_usage(ada.call("search", at, 5 + i), "claude-sonnet-4-5", 100 + i as i64, 10));
        spans.push(with_estimate(bob.call(if i % 3 == 0 { "fail" } else { "search" }, at + SEC, 40_000 + i), 50, 5));
    }
    (spans, ada, bob, t0)
}

async fn differences(client: &tokio_postgres::Client) -> (i64, i64) {
    let row = client.query_one(COMPARE, &[]).await.unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn rollups_equal_the_raw_rows_after_writes_replays_late_data_and_rebuilds() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let client = db.client().await;
    let (spans, mut ada, _, t0) = five_hours();
    write(&store, &spans).await;
    let round = reap_once(&client, &ReaperConfig::default()).await.unwrap();
    assert!(round.rolled_up >= 5, "the hours the writes touched: {round:?}");
    let (wrong, rows) = differences(&client).await;
    assert_eq!(wrong, 0, "every rollup figure equals the raw rows' ({rows} rollup rows)");
    assert!(rows >= 10, "{rows}");
    let histogram: i64 = client
        .query_one("SELECT sum(b) FROM archon_mcp_rollup_hourly, unnest(latency_buckets) b", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(histogram, 60, "every request in one latency bucket");

    // A replay changes nothing; late data for a closed hour is rolled up at the next round.
    write(&store, &spans).await;
    let late = with_usage(ada.call("search", t0 + 60 * SEC, 7), "claude-sonnet-4-5", 1, 1);
    write(&store, &[late]).await;
    let round = reap_once(&client, &ReaperConfig::default()).await.unwrap();
    assert_eq!(round.rolled_up, 1, "only the late call's hour: {round:?}");
    assert_eq!(differences(&client).await.0, 0);

    // A rebuild of any range is the same figures. It starts at the oldest raw row: the rollups
    // of hours whose rows retention dropped (the long tier) stay.
    client.execute("DELETE FROM archon_mcp_rollup_hourly", &[]).await.unwrap();
    client
        .execute(
            "INSERT INTO archon_mcp_rollup_hourly (hour, status, token_source, requests, prompt_tokens, completion_tokens,
                                                   cost, priced_requests, duration_ms_sum, latency_buckets)
             VALUES (date_trunc('hour', now()) - interval '30 days', 'success', 'none', 9, 0, 0, 0, 0, 9, '{9}')",
            &[],
        )
        .await
        .unwrap();
    let rebuilt: i32 = client
        .query_one("SELECT archon_mcp_rollup_rebuild(now() - interval '40 days', now())", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rebuilt, 7, "the hours from the oldest raw row on");
    client
        .execute("DELETE FROM archon_mcp_rollup_hourly WHERE requests = 9 AND hour < now() - interval '29 days'", &[])
        .await
        .map(|n| assert_eq!(n, 1, "the dropped rows' rollup stays"))
        .unwrap();
    assert_eq!(differences(&client).await.0, 0);
}

#[tokio::test]
async fn a_reader_sees_the_rollups_of_its_own_user_only() {
    let db = TestDb::migrated().await;
    let t0 = an_hour_ago();
    let (mut ada, mut bob) =
        (Conn::new(SESSION_1, "claude-code", Some(ADA)), Conn::new(SESSION_3, "Cursor", Some(BOB)));
    write(&db.store(StoreConfig::default()), &[ada.call("search", t0, 5), bob.call("search", t0, 5)]).await;
    let admin = db.client().await;
    admin.query_one("SELECT archon_mcp_rollup_refresh(48)", &[]).await.unwrap();
    let reader = Login::create(&db, &admin, "rollup_reader", "archon_reader").await;
    admin
        .execute("INSERT INTO archon_reader_logins (login, user_key) VALUES ($1, $2)", &[&reader.name, &ADA.principal])
        .await
        .unwrap();
    assert_eq!(reader.count("SELECT * FROM archon_mcp_rollup_hourly").await, 1, "Ada's only");
    let refused = reader.client.query_one("SELECT archon_mcp_rollup_refresh(48)", &[]).await;
    assert!(refused.is_err(), "a reader cannot rebuild");

    // Every reader of the rollups a reader may call gives Ada's request, and only hers — rolled
    // up, and with a later call of Bob's in a marked hour read from the rows.
    let readers = [
        "SELECT sum(requests)::bigint FROM archon_mcp_usage_hours('-infinity', 'infinity')",
        "SELECT sum(requests)::bigint FROM archon_mcp_usage_by_user('-infinity', 'infinity')",
        "SELECT count(DISTINCT session_id) FROM archon_mcp_usage_sessions('-infinity', 'infinity')",
        "SELECT total_requests FROM get_mcp_usage_summary(now() - interval '1 day', now() + interval '1 day')",
        "SELECT sum(request_count)::bigint FROM get_mcp_usage_by_tool(now() - interval '1 day', now() + interval '1 day')",
        "SELECT sum(total_requests)::bigint FROM archon_mcp_user_stats",
        // The dashboards' lists (V22) name only the reader's own user and client.
        "SELECT count(*) FROM archon_mcp_user_choices()",
        "SELECT count(*) FROM archon_mcp_client_types()",
    ];
    for round in ["rolled up", "with a marked hour"] {
        for sql in readers {
            let n: Option<i64> = reader.client.query_one(sql, &[]).await.unwrap().get(0);
            assert_eq!(n, Some(1), "{sql} ({round}): Ada's request only");
        }
        write(&db.store(StoreConfig::default()), &[bob.call("search", t0 + SEC, 5)]).await;
    }
    // The per-tool days hold everyone's requests: a reader is not given them.
    let refused =
        reader.client.query_one("SELECT count(*) FROM archon_mcp_usage_by_tool('-infinity', 'infinity')", &[]).await;
    assert!(refused.is_err(), "a reader cannot read the per-tool days");
}

/// The class: every rollup table a reader may select from narrows it to its own user by a
/// row-level policy, or holds no user and no figures (the dirty hours).
#[tokio::test]
async fn no_rollup_table_shows_a_reader_other_users() {
    let db = TestDb::migrated().await;
    let admin = db.client().await;
    let open: Vec<String> = admin
        .query(
            "SELECT c.relname::text FROM pg_class c
              WHERE c.relname LIKE 'archon_mcp_rollup%' AND c.relkind = 'r'
                AND has_table_privilege('archon_reader', c.oid, 'SELECT')
                AND c.relname <> 'archon_mcp_rollup_dirty'
                AND NOT (c.relrowsecurity AND EXISTS (
                      SELECT 1 FROM pg_policy p
                       WHERE p.polrelid = c.oid AND 'archon_reader'::regrole = ANY (p.polroles)
                         AND pg_get_expr(p.polqual, p.polrelid) LIKE '%archon_current_user_id()%'))",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(open.is_empty(), "rollup tables a reader reads unnarrowed: {open:?}");
    let tables: i64 = admin
        .query_one("SELECT count(*) FROM pg_class WHERE relname LIKE 'archon_mcp_rollup%' AND relkind = 'r'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        tables, 11,
        "hourly, hourly per tool, per-session, dirty, daily per tool, per user and per session, session totals, monthly per user \
         (requests, sessions) and their marks: a new one is checked above"
    );
}

/// What a reader of any range gets, the raw rows' aggregate and `archon_mcp_usage_hours`' side by
/// side: counts, tokens, cost to the cent, failures by kind, slowest duration, sessions and their
/// requests.
const RANGE: &str = "
WITH raw AS (
    SELECT count(*) AS requests, sum(prompt_tokens + completion_tokens) AS tokens, coalesce(sum(estimated_cost), 0) AS cost,
           count(*) FILTER (WHERE archon_mcp_error_kind(status, error_type, error_code) = 'tool error') AS tool_errors,
           max(duration_ms) AS slowest, count(DISTINCT session_id) AS sessions, count(DISTINCT user_id) AS users
      FROM archon_mcp_requests WHERE \"timestamp\" >= $1 AND \"timestamp\" < $2),
hours AS (
    SELECT coalesce(sum(requests), 0) AS requests, sum(prompt_tokens + completion_tokens) AS tokens,
           coalesce(sum(cost), 0) AS cost, coalesce(sum(requests) FILTER (WHERE error_kind = 'tool error'), 0) AS tool_errors,
           max(duration_ms_max) AS slowest,
           (SELECT count(DISTINCT session_id) FROM archon_mcp_usage_sessions($1, $2)) AS sessions,
           (SELECT coalesce(sum(requests), 0) FROM archon_mcp_usage_sessions($1, $2)) AS session_requests,
           count(DISTINCT user_id) AS users
      FROM archon_mcp_usage_hours($1, $2)),
by_tool AS (
    SELECT coalesce(sum(requests), 0) AS requests, sum(prompt_tokens + completion_tokens) AS tokens,
           coalesce(sum(cost), 0) AS cost, coalesce(sum(requests) FILTER (WHERE error_kind = 'tool error'), 0) AS tool_errors,
           max(duration_ms_max) AS slowest
      FROM archon_mcp_usage_by_tool($1, $2)),
by_tool_hours AS (
    SELECT coalesce(sum(requests), 0) AS requests, sum(prompt_tokens + completion_tokens) AS tokens,
           coalesce(sum(cost), 0) AS cost, coalesce(sum(requests) FILTER (WHERE error_kind = 'tool error'), 0) AS tool_errors,
           max(duration_ms_max) AS slowest
      FROM archon_mcp_usage_by_tool_hours($1, $2)),
by_user AS (
    SELECT coalesce(sum(requests), 0) AS requests, sum(prompt_tokens + completion_tokens) AS tokens,
           coalesce(sum(cost), 0) AS cost, count(DISTINCT user_id) AS users
      FROM archon_mcp_usage_by_user($1, $2))
SELECT raw.requests,
       (raw.requests, raw.tokens, raw.cost, raw.tool_errors, raw.slowest, raw.sessions, raw.requests, raw.users)::text,
       (hours.requests, hours.tokens, hours.cost, hours.tool_errors, hours.slowest, hours.sessions, hours.session_requests,
        hours.users)::text,
       (raw.requests, raw.tokens, raw.cost, raw.tool_errors, raw.slowest)::text,
       (by_tool.requests, by_tool.tokens, by_tool.cost, by_tool.tool_errors, by_tool.slowest)::text,
       (raw.requests, raw.tokens, raw.cost, raw.users)::text,
       (by_user.requests, by_user.tokens, by_user.cost, by_user.users)::text,
       (by_tool_hours.requests, by_tool_hours.tokens, by_tool_hours.cost, by_tool_hours.tool_errors,
        by_tool_hours.slowest)::text
  FROM raw, hours, by_tool, by_tool_hours, by_user";

#[tokio::test]
async fn any_range_reads_the_same_from_the_rollups_as_from_the_rows() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let client = db.client().await;
    let (spans, mut ada, _, t0) = five_hours();
    write(&store, &spans).await;
    let ranges = [
        ("whole hours", "date_trunc('hour', now()) - interval '6 hours'", "date_trunc('hour', now())"),
        ("ragged ends", "now() - interval '5 hours 17 minutes'", "now() - interval '42 minutes'"),
        ("within an hour", "now() - interval '3 hours 50 minutes'", "now() - interval '3 hours 20 minutes'"),
        ("everything", "'-infinity'", "'infinity'"),
        (
            "whole days",
            "date_trunc('day', now(), 'UTC') - interval '48 hours'",
            "date_trunc('day', now(), 'UTC') + interval '24 hours'",
        ),
    ];
    let compare = async |when: &str| {
        for (name, from, to) in ranges {
            let sql =
                RANGE.replace("$1", &format!("({from})::timestamptz")).replace("$2", &format!("({to})::timestamptz"));
            let row = client.query_one(&sql, &[]).await.unwrap();
            let (n, raw, hours): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
            assert_eq!(hours, raw, "{name} {when}: rollups against rows");
            assert_eq!(row.get::<_, String>(4), row.get::<_, String>(3), "{name} {when}: per tool against rows");
            assert_eq!(row.get::<_, String>(7), row.get::<_, String>(3), "{name} {when}: per tool and hour against rows");
            assert_eq!(row.get::<_, String>(6), row.get::<_, String>(5), "{name} {when}: per user against rows");
            assert!(n > 0 || name == "within an hour", "{name} holds requests");
        }
    };
    compare("before any rollup").await;
    reap_once(&client, &ReaperConfig::default()).await.unwrap();
    compare("rolled up").await;
    let late = with_usage(ada.call("search", t0 + 60 * SEC, 7), "claude-sonnet-4-5", 1, 1);
    write(&store, &[late]).await;
    compare("with a late write marking its hour").await;
    // Hours are UTC hours whatever the session's time zone, also one off UTC by half an hour.
    reap_once(&client, &ReaperConfig::default()).await.unwrap();
    client.batch_execute("SET TimeZone = 'Asia/Kolkata'").await.unwrap();
    compare("in a session half an hour off UTC").await;

    // Percentiles from the histogram: the bucket's upper bound, capped by the slowest request.
    let row = client
        .query_one(
            "SELECT archon_mcp_latency_quantile(m.buckets, 0.5, m.slowest), archon_mcp_latency_quantile(m.buckets, 0.99, m.slowest),
                    (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) FROM archon_mcp_requests),
                    (SELECT max(duration_ms) FROM archon_mcp_requests)
               FROM (SELECT ARRAY[sum(latency_buckets[1]), sum(latency_buckets[2]), sum(latency_buckets[3]), sum(latency_buckets[4]), sum(latency_buckets[5]), sum(latency_buckets[6]), sum(latency_buckets[7]), sum(latency_buckets[8]), sum(latency_buckets[9]), sum(latency_buckets[10]), sum(latency_buckets[11]), sum(latency_buckets[12]), sum(latency_buckets[13]), sum(latency_buckets[14]), sum(latency_buckets[15]), sum(latency_buckets[16])] AS buckets, max(duration_ms_max) AS slowest
                       FROM archon_mcp_usage_hours('-infinity', 'infinity')) m",
            &[],
        )
        .await
        .unwrap();
    let (p50, p99, true_p50, slowest): (f64, f64, f64, f64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!(p50 >= true_p50 && p50 <= 2.5 * true_p50, "p50 {p50} against {true_p50}");
    assert_eq!(p99, slowest, "the top bucket is capped by the slowest request");
}

/// The class: a write never waits on the reaper. A round takes the marks it sees and recomputes
/// for as long as its hours take; a write into a marked hour, of a marked user's session, goes
/// through while that round's transaction is open (V26: marks have no unique key a writer would
/// wait on), and its marks outlive the round, so the next one counts it.
#[tokio::test]
async fn a_write_never_waits_on_an_open_rollup_round() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let (spans, mut ada, _, t0) = five_hours();
    write(&store, &spans).await;
    let mut reaper = db.client().await;
    let round = reaper.transaction().await.unwrap();
    let hours: i32 = round.query_one("SELECT archon_mcp_rollup_refresh(1000)", &[]).await.unwrap().get(0);
    assert!(hours >= 5, "the round took the written hours: {hours}");

    let late = with_usage(ada.call("search", t0 + 60 * SEC, 7), "claude-sonnet-4-5", 1, 1);
    tokio::time::timeout(std::time::Duration::from_secs(5), write(&store, &[late]))
        .await
        .expect("the write waited for the reaper's open round");
    round.commit().await.unwrap();

    let client = db.client().await;
    reap_once(&client, &ReaperConfig::default()).await.unwrap();
    let (rows, rolled, stats): (i64, i64, i64) = {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM archon_mcp_requests),
                        (SELECT sum(requests)::bigint FROM archon_mcp_rollup_hourly),
                        (SELECT sum(total_requests)::bigint FROM archon_mcp_user_stats)",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!((rolled, stats), (rows, rows), "the late write is in the next round's rollups");
}

/// The Archon SQL API on the rollups (V15) against its V3 definitions on the raw rows.
const API_AGAINST_ROWS: [(&str, &str, &str); 5] = [
    (
        "get_disconnected_sessions",
        "SELECT session_id, total_requests FROM get_disconnected_sessions(now() - interval '1 day', now() + interval '1 day')",
        "SELECT s.session_id, (SELECT count(*) FROM archon_mcp_requests r WHERE r.session_id = s.session_id)
           FROM archon_mcp_sessions s WHERE s.status = 'disconnected' ORDER BY s.disconnected_at DESC",
    ),
    (
        "get_user_sessions",
        "SELECT session_id, total_requests FROM get_user_sessions((SELECT user_id FROM archon_mcp_sessions LIMIT 1))",
        "SELECT s.session_id, (SELECT count(*) FROM archon_mcp_requests r WHERE r.session_id = s.session_id)
           FROM archon_mcp_sessions s WHERE s.user_id = (SELECT user_id FROM archon_mcp_sessions LIMIT 1)
            AND s.connected_at BETWEEN now() - interval '30 days' AND now() ORDER BY s.connected_at DESC",
    ),
    (
        "get_mcp_usage_summary",
        "SELECT * FROM get_mcp_usage_summary(now() - interval '5 hours 13 minutes', now())",
        "SELECT count(*), coalesce(sum(r.prompt_tokens), 0)::bigint, coalesce(sum(r.completion_tokens), 0)::bigint,
                coalesce(sum(r.total_tokens), 0)::bigint, coalesce(sum(r.estimated_cost), 0), count(DISTINCT r.session_id),
                count(*) FILTER (WHERE r.status = 'success'), count(*) FILTER (WHERE r.status <> 'success'),
                count(DISTINCT r.user_id)
           FROM archon_mcp_requests r WHERE r.\"timestamp\" BETWEEN now() - interval '5 hours 13 minutes' AND now()",
    ),
    (
        "get_mcp_usage_by_tool",
        "SELECT tool_name, request_count, total_tokens, total_cost, avg_duration_ms, error_count
           FROM get_mcp_usage_by_tool(now() - interval '5 hours 13 minutes', now())",
        "SELECT r.tool_name, count(*), coalesce(sum(r.total_tokens), 0)::bigint, coalesce(sum(r.estimated_cost), 0),
                round(avg(r.duration_ms)::numeric, 3), count(*) FILTER (WHERE r.status <> 'success')
           FROM archon_mcp_requests r
          WHERE r.\"timestamp\" BETWEEN now() - interval '5 hours 13 minutes' AND now() AND r.tool_name IS NOT NULL
          GROUP BY r.tool_name ORDER BY count(*) DESC, r.tool_name",
    ),
    (
        "archon_mcp_user_stats",
        "SELECT user_id, total_sessions, active_sessions, disconnected_sessions, avg_session_duration_seconds,
                max_session_duration_seconds, first_session_at, last_activity_at,
                total_requests, total_tokens, total_cost, failed_requests, reported_tokens, estimated_tokens
           FROM archon_mcp_user_stats ORDER BY user_id",
        "SELECT s.user_id, s.n, s.active, s.disconnected, s.avg, s.max, s.first, s.last, coalesce(r.n, 0),
                coalesce(r.tokens, 0), coalesce(r.cost, 0), coalesce(r.failed, 0), coalesce(r.reported, 0), coalesce(r.estimated, 0)
           FROM (SELECT user_id, count(*) AS n, count(*) FILTER (WHERE status = 'active') AS active,
                        count(*) FILTER (WHERE status = 'disconnected') AS disconnected, avg(total_duration) AS avg,
                        max(total_duration) AS max, min(connected_at) AS first, max(last_activity) AS last
                   FROM archon_mcp_sessions WHERE user_id IS NOT NULL GROUP BY user_id) s
           LEFT JOIN (SELECT user_id, count(*) AS n, sum(total_tokens)::bigint AS tokens, coalesce(sum(estimated_cost), 0) AS cost,
                             count(*) FILTER (WHERE status <> 'success') AS failed,
                             coalesce(sum(total_tokens) FILTER (WHERE token_source = 'reported'), 0)::bigint AS reported,
                             coalesce(sum(total_tokens) FILTER (WHERE token_source = 'estimated'), 0)::bigint AS estimated
                        FROM archon_mcp_requests WHERE user_id IS NOT NULL GROUP BY user_id) r USING (user_id)
          ORDER BY s.user_id",
    ),
];

#[tokio::test]
async fn the_sql_api_gives_the_rows_figures_from_the_rollups() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let client = db.client().await;
    let (mut spans, _, mut bob, t0) = five_hours();
    spans.push(bob.end(t0, t0 + 300 * 60 * SEC, "client_disconnect"));
    write(&store, &spans).await;
    reap_once(&client, &ReaperConfig::default()).await.unwrap();
    let rolled: i64 = client.query_one("SELECT count(*) FROM archon_mcp_rollup_hourly", &[]).await.unwrap().get(0);
    assert!(rolled > 0);
    let compare = async |when: &str| {
        for (name, api, rows) in API_AGAINST_ROWS {
            let as_text = |sql: &str| format!("SELECT coalesce(string_agg(t::text, ' | '), '') FROM ({sql}) t");
            let api: String = client.query_one(&as_text(api), &[]).await.unwrap().get(0);
            let rows: String = client.query_one(&as_text(rows), &[]).await.unwrap().get(0);
            assert_eq!(api, rows, "{name} {when}");
            assert!(!api.is_empty(), "{name} has figures");
        }
    };
    compare("rolled up").await;
    // A late call in a rolled-up hour: its hour is read from the rows until the next round.
    write(&store, &[with_estimate(bob.call("search", t0 + 30 * SEC, 40_000), 50, 5)]).await;
    compare("with a late write").await;
    let (p95, exact): (f64, f64) = {
        let row = client
            .query_one(
                "SELECT (SELECT p95_duration_ms FROM get_mcp_usage_by_tool(now() - interval '1 day', now()) WHERE tool_name = 'fail'),
                        (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) FROM archon_mcp_requests WHERE tool_name = 'fail')",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(p95 >= exact && p95 <= 2.5 * exact, "the histogram's p95 {p95} bounds the exact {exact}");
    reap_once(&client, &ReaperConfig::default()).await.unwrap();
    compare("rolled up after the late write").await;
    // A rolled-up session's rows gone from one of its hours: its total is recomputed, though
    // the hour no longer holds it.
    let deleted = client
        .execute(
            "WITH ended AS (SELECT session_id FROM archon_mcp_sessions WHERE status = 'disconnected')
             DELETE FROM archon_mcp_requests r
              WHERE r.session_id IN (SELECT session_id FROM ended)
                AND date_trunc('hour', r.\"timestamp\", 'UTC') = (SELECT min(date_trunc('hour', q.\"timestamp\", 'UTC'))
                                                                 FROM archon_mcp_requests q WHERE q.session_id IN (SELECT session_id FROM ended))",
            &[],
        )
        .await
        .unwrap();
    assert!(deleted > 0);
    compare("with a session's rows deleted").await;
    reap_once(&client, &ReaperConfig::default()).await.unwrap();
    compare("rolled up after the delete").await;
    // Sessions that change, and one that opens, change their users' all-time figures (V25's
    // monthly sessions).
    let changed = client
        .execute("UPDATE archon_mcp_sessions SET disconnected_at = disconnected_at + interval '7 seconds' WHERE status = 'disconnected'", &[])
        .await
        .unwrap();
    assert!(changed > 0);
    client
        .execute(
            "INSERT INTO archon_mcp_sessions (session_id, user_id, user_key)
             SELECT gen_random_uuid(), user_id, user_key FROM archon_mcp_sessions WHERE user_id IS NOT NULL LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    compare("with sessions changed since the last round").await;
    reap_once(&client, &ReaperConfig::default()).await.unwrap();
    compare("rolled up after the sessions changed").await;
}

/// Every function that reads the request rows is planned with its arguments (issue #35): a SQL
/// function's body is planned once with them unknown — a guessed 0.5 % of the table for a time
/// range, ten elements for an array — and at 10 M rows those plans hashed every session for a
/// gap of a few hundred rows, or probed an index 100,000 times where one hash join would do.
/// PL/pgSQL with `plan_cache_mode = force_custom_plan` plans each call on its values.
#[tokio::test]
async fn every_function_reading_the_requests_is_planned_on_its_arguments() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT p.oid::regprocedure::text, l.lanname::text, coalesce(p.proconfig, '{}')
               FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
              WHERE p.pronamespace = current_schema()::regnamespace
                AND p.prosrc ~ '\\marchon_mcp_requests\\M'
                AND p.pronargs > 0",
            &[],
        )
        .await
        .unwrap();
    let functions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert!(functions.len() >= 4, "the raw readers of the rollups, budgets and sessions: {functions:?}");
    for row in &rows {
        let (function, language, config): (String, String, Vec<String>) = (row.get(0), row.get(1), row.get(2));
        assert!(
            language == "plpgsql" && config.iter().any(|c| c == "plan_cache_mode=force_custom_plan"),
            "{function} ({language}, {config:?}) reads the request rows with a plan made without its \
             arguments: write it in PL/pgSQL with `SET plan_cache_mode = force_custom_plan`"
        );
    }
}

/// The spans fold to constants at plan time for a constant range (V21): inlined into a reader,
/// a span computed by a STABLE function stayed in a sequential scan's filter and ran for every
/// row — 130 ms over a year's per-session days at 10 M rows.
#[tokio::test]
async fn the_spans_of_a_constant_range_are_constants_in_the_plan() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    for span in ["archon_mcp_rollup_span", "archon_mcp_rollup_day_span"] {
        let sql = format!(
            "EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM {span}('2026-01-01 10:30+00', '2026-03-01 10:30+05:30')"
        );
        let plan: Vec<String> = client.query(&sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        let plan = plan.join("\n");
        assert!(
            !plan.contains("date_trunc") && !plan.contains("timezone"),
            "{span} is computed when the plan runs, not when it is made:\n{plan}"
        );
    }
}
