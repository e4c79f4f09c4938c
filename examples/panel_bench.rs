//! How fast every dashboard query is on a large data set: seeds N request rows (default
//! 1,000,000, over up to 10,000 sessions of 50 users spread over `--days`, 30 by default), rolls
//! them up as the reaper does, then runs each panel and variable query as Grafana would —
//! expanded, as the read-only `archon_grafana` role — with the alert rules and the Archon SQL
//! API, and prints PostgreSQL's execution time for the last 24 hours, 7 days, 30 days and year.
//!
//! ```text
//! cargo run --release --example panel_bench                                # 1M rows, 30 days
//! cargo run --release --example panel_bench -- --rows 10000000 --days 365 # a year of history
//! cargo run --release --example panel_bench -- --rows 3000                # the quick mode CI runs
//! # seed once into a database of your own, then time again after a change:
//! cargo run --release --example panel_bench -- --database-url postgres://…/bench --rows 10000000 --days 365
//! cargo run --release --example panel_bench -- --database-url postgres://…/bench --reuse --only budget
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use archon_mcp_exporter::testing::LocalCluster;
use archon_mcp_otel::grafana::{TimeRange, expand, load_dashboards, panel_queries, rfc3339};
use clap::Parser;
use tokio_postgres::NoTls;

/// Times every dashboard query on a large data set.
#[derive(Debug, Parser)]
#[command(name = "panel_bench")]
struct Args {
    /// Request rows to seed.
    #[arg(long, default_value_t = 1_000_000)]
    rows: i64,
    /// Use this (empty) database instead of a throw-away PostgreSQL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Days of history the rows are spread over.
    #[arg(long, default_value_t = 30)]
    days: i32,
    /// Fail (exit 1) when a panel takes longer than this many milliseconds.
    #[arg(long, default_value_t = 200.0)]
    budget_ms: f64,
    /// Time the queries on a `--database-url` seeded by an earlier run (kept, not seeded
    /// again; new migrations are applied and their marked hours rolled up).
    #[arg(long, requires = "database_url")]
    reuse: bool,
    /// Time only the queries whose dashboard or name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Print the plan of every statement each query runs, the functions' included
    /// (`auto_explain`; needs a superuser `--database-url`).
    #[arg(long)]
    explain: bool,
}

const SEED: &str = r#"
INSERT INTO archon_mcp_sessions (session_id, client_type, client_name, client_version, connected_at, last_activity,
                                 disconnected_at, status, disconnect_reason, user_id, user_key, user_email, user_name,
                                 user_department, service_name)
SELECT md5('s' || i)::uuid,
       (ARRAY['Claude', 'Cursor', 'Windsurf', 'Cline', 'VS Code', 'Zed', 'Goose', 'Unknown'])[1 + i % 8],
       (ARRAY['claude-code', 'Cursor', 'Windsurf', 'Cline', 'Visual Studio Code', 'Zed', 'goose', 'bot'])[1 + i % 8], '1.0',
       now() - make_interval(secs => (i::float8 / $1) * $2 * 86400) - interval '2 hours',
       now() - make_interval(secs => (i::float8 / $1) * $2 * 86400),
       CASE WHEN i >= 50 THEN now() - make_interval(secs => (i::float8 / $1) * $2 * 86400) END,
       CASE WHEN i >= 50 THEN 'disconnected' ELSE 'active' END,
       CASE WHEN i >= 50 THEN (ARRAY['client_disconnect', 'timeout', 'server_shutdown'])[1 + i % 3] END,
       md5('u' || i % 50)::uuid, 'user-' || i % 50, 'user' || i % 50 || '@example.com', 'User ' || i % 50,
       (ARRAY['Research', 'Platform', 'Support', 'Sales', 'Ops'])[1 + i % 5], 'kb'
  FROM generate_series(0, $1::int - 1) AS i;
"#;

const SEED_REQUESTS: &str = r#"
INSERT INTO archon_mcp_requests (request_id, session_id, method, tool_name, prompt_tokens, completion_tokens, token_source,
                                 model, estimated_cost, "timestamp", duration_ms, status, error_type, error_code, user_id)
SELECT md5('r' || g)::uuid, md5('s' || s)::uuid, 'tools/call',
       (ARRAY['search_knowledge', 'get_document', 'list_tasks', 'create_task', 'summarize_document', 'read_file', 'write_file', 'run_query'])[1 + g % 8],
       CASE WHEN g % 8 = 4 THEN 2000 + g % 5000 WHEN g % 8 = 5 THEN 300 ELSE 0 END,
       CASE WHEN g % 8 = 4 THEN 200 + g % 300 ELSE 0 END,
       CASE WHEN g % 8 = 4 THEN 'reported' WHEN g % 8 = 5 THEN 'estimated' ELSE 'none' END,
       CASE WHEN g % 8 = 4 THEN 'claude-sonnet-4-5' END,
       CASE WHEN g % 8 = 4 THEN round(((2000 + g % 5000) * 0.003 + (200 + g % 300) * 0.015) / 1000, 6) END,
       now() - make_interval(secs => (s::float8 / $2) * $3 * 86400) - make_interval(secs => (g % 7200)),
       (g % 997)::float8 / 3, CASE WHEN g % 23 = 0 THEN 'error' ELSE 'success' END,
       CASE WHEN g % 23 = 0 THEN (ARRAY['tool_error', '-32602', '-32603'])[1 + g % 3] END,
       CASE WHEN g % 23 = 0 AND g % 3 = 1 THEN -32602 WHEN g % 23 = 0 AND g % 3 = 2 THEN -32603 END,
       md5('u' || s % 50)::uuid
  FROM generate_series($1::bigint, $4::bigint - 1) AS s, generate_series(0, greatest($5::bigint - 1 - s, 0) / $2) AS k,
       LATERAL (SELECT s + k * $2 AS g) AS pick
 WHERE g < $5;
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = match args.database_url {
        Some(_) => None,
        None => Some(tokio::task::spawn_blocking(LocalCluster::start).await?.map_err(anyhow::Error::msg)?),
    };
    let url =
        args.database_url.clone().unwrap_or_else(|| cluster.as_ref().map(|c| c.url("postgres")).unwrap_or_default());
    let migrated = archon_mcp_exporter::migrate::migrate_url(&url).await?;
    let (client, mut connection) = tokio_postgres::connect(&url, NoTls).await?;
    // The server's notices are the nested plans `--explain` asks for.
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                eprintln!("{}", notice.message());
            }
        }
    });

    if !args.reuse {
        seed(&client, &args).await?;
    }
    // What the reaper does round after round: every seeded (or newly marked) hour rolled up.
    let started = Instant::now();
    let hours: i32 = client.query_one("SELECT archon_mcp_rollup_refresh(1000000)", &[]).await?.get(0);
    eprintln!("rolled up {hours} hours in {:.1} s", started.elapsed().as_secs_f64());
    // Statistics of the finished data set (and of tables a migration filled), as autovacuum
    // would have them.
    if hours > 0 || !args.reuse || !migrated.is_empty() {
        client.batch_execute("ANALYZE").await?;
    }
    // The state a live deployment is always in, the reaper's next round up to 30 s away: the
    // current hour written since its rollup, the last hour's sessions touched since theirs.
    client
        .batch_execute(
            "UPDATE archon_mcp_requests SET duration_ms = duration_ms WHERE \"timestamp\" >= now() - interval '1 hour';
             INSERT INTO archon_mcp_rollup_dirty (hour) VALUES (date_trunc('hour', now(), 'UTC'));
             UPDATE archon_mcp_sessions SET last_activity = last_activity WHERE last_activity >= now() - interval '1 hour'",
        )
        .await?;

    if args.explain {
        client
            .batch_execute(
                "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
                 SET auto_explain.log_nested_statements = on; SET client_min_messages = log",
            )
            .await?;
    }
    // The rows there are (a reused database may hold another number than `--rows`).
    let rows: i64 = client.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await?.get(0);
    // As the recommended Grafana login (dashboards/grafana-role.sql) runs: read-only, no JIT.
    client.batch_execute("SET ROLE archon_grafana; SET jit = off").await?;
    // The drill-down opens the latest session (a busy one: a hundred requests).
    let session: String = client
        .query_opt("SELECT session_id::text FROM archon_mcp_sessions ORDER BY last_activity DESC LIMIT 1", &[])
        .await?
        .map_or_else(String::new, |row| row.get(0));
    let vars: BTreeMap<&str, Vec<String>> = [
        ("user", "__all"),
        ("department", "__all"),
        ("client_type", "__all"),
        ("tool", "__all"),
        ("session", &session),
    ]
    .into_iter()
    .map(|(k, v)| (k, vec![v.to_owned()]))
    .collect();
    let range = |days: u64, interval: &str| TimeRange {
        from: rfc3339(SystemTime::now() - Duration::from_secs(days * 86_400)),
        to: rfc3339(SystemTime::now()),
        interval: interval.into(),
    };
    // The windows, with the bin Grafana picks: the range over the panel's points, rounded —
    // the rollups' time series ask for at most 365 points (a day's bin over a year, not 6 hours'
    // on a wide panel) and bins of an hour at least.
    let windows = [range(1, "5m"), range(7, "30m"), range(30, "2h"), range(365, "1d")];
    let dashboards = load_dashboards(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/json"))?;
    let mut queries: Vec<(String, String, String)> = Vec::new();
    for (file, dashboard) in &dashboards {
        let group = file.trim_end_matches(".json").to_owned();
        // Query variables only: a `datasource` variable's "query" is a plugin id, not SQL.
        let variables = dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["type"] == "query")
            .filter_map(|v| {
                v["query"]
                    .as_str()
                    .filter(|q| !q.is_empty())
                    .map(|q| (format!("variable {}", v["name"].as_str().unwrap_or("")), q.to_owned()))
            });
        let panels = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| panel_queries(p).into_iter().map(|q| (p["title"].as_str().unwrap_or("").to_owned(), q)));
        queries.extend(variables.chain(panels).map(|(name, sql)| (group.clone(), name, sql)));
    }
    queries.extend(alert_queries().into_iter().map(|(name, sql)| ("alert rules".to_owned(), name, sql)));
    queries.extend(SQL_API.iter().map(|(name, sql)| ("sql api".to_owned(), (*name).to_owned(), (*sql).to_owned())));
    if let Some(only) = &args.only {
        queries.retain(|(group, name, _)| group.contains(only.as_str()) || name.contains(only.as_str()));
    }

    println!("{:<18} {:<40} {:>9} {:>9} {:>9} {:>9}", "dashboard", "query", "24 h ms", "7 d ms", "30 d ms", "1 y ms");
    let mut worst: f64 = 0.0;
    for (group, name, sql) in &queries {
        let mut times = Vec::new();
        for range in &windows {
            if args.explain {
                eprintln!("\n===== {group} / {name}, {} to {}", range.from, range.to);
            }
            let explain = format!("EXPLAIN (ANALYZE, FORMAT TEXT) {}", expand(sql, &vars, range));
            let plan = client.simple_query(&explain).await.map_err(|e| {
                let why = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
                anyhow::anyhow!("{group} {name:?}: {why}\n{explain}")
            })?;
            let ms = plan
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
                .find_map(|line| {
                    line.strip_prefix("Execution Time: ").and_then(|t| t.trim_end_matches(" ms").parse::<f64>().ok())
                })
                .unwrap_or(f64::NAN);
            worst = worst.max(ms);
            times.push(ms);
        }
        let flag = if times.iter().any(|t| *t > args.budget_ms) { "  > budget" } else { "" };
        println!(
            "{:<18} {:<40} {:>9.1} {:>9.1} {:>9.1} {:>9.1}{flag}",
            group,
            truncate(name, 40),
            times[0],
            times[1],
            times[2],
            times[3]
        );
    }
    println!("\n{rows} request rows; slowest query {worst:.1} ms (budget {} ms)", args.budget_ms);
    if let Some(cluster) = cluster {
        tokio::task::spawn_blocking(move || drop(cluster)).await?;
    }
    anyhow::ensure!(
        worst <= args.budget_ms,
        "a dashboard query took {worst:.1} ms, over the {} ms budget",
        args.budget_ms
    );
    Ok(())
}

/// Seeds the sessions, request rows and budgets.
async fn seed(client: &tokio_postgres::Client, args: &Args) -> anyhow::Result<()> {
    let sessions: i64 = (args.rows / 100).clamp(100, 10_000 * i64::from(args.days.max(30)) / 30);
    eprintln!("seeding {sessions} sessions and {} request rows …", args.rows);
    let started = Instant::now();
    // A partition per month from the oldest seeded day to this one.
    client
        .execute(
            "SELECT archon_mcp_create_request_partitions($1::int, current_date - $2::int)",
            &[&(args.days / 28 + 1), &(args.days + 1)],
        )
        .await?;
    client.execute(SEED, &[&(sessions as i32), &f64::from(args.days)]).await?;
    // Row g belongs to session g % sessions, whose time is its place among them: a statement per
    // run of sessions writes a stretch of time, about a million rows, into one or two monthly
    // partitions — their indexes stay in memory, where rows spread over every month would not —
    // and keeps its trigger's transition table small; a long seed shows its progress.
    const CHUNK: i64 = 1_000_000;
    let per_chunk = (sessions * CHUNK / args.rows.max(1)).max(1);
    for first in (0..sessions).step_by(per_chunk as usize) {
        let end = (first + per_chunk).min(sessions);
        client.execute(SEED_REQUESTS, &[&first, &sessions, &f64::from(args.days), &end, &args.rows]).await?;
        if args.rows > CHUNK {
            let done = (end * args.rows / sessions).min(args.rows);
            eprintln!("  about {done} of {} rows ({:.0} s)", args.rows, started.elapsed().as_secs_f64());
        }
    }
    // Budgets of every scope, for the budgets dashboard and the alert rules.
    client
        .batch_execute(
            "UPDATE archon_mcp_sessions SET catalog_tokens = 1500 + (hashtext(session_id::text) & 4095);
             INSERT INTO archon_budgets (scope, scope_value, monthly_amount, effective_from) VALUES
                ('all', NULL, 5000, date_trunc('month', now())),
                ('department', 'Research', 100, date_trunc('month', now())),
                ('department', 'Sales', 2000, date_trunc('month', now())),
                ('user', 'user-7', 50, date_trunc('month', now())),
                ('tool', 'summarize_document', 1000, date_trunc('month', now())),
                ('client_type', 'Cursor', 500, date_trunc('month', now()));",
        )
        .await?;
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The Archon SQL API, over each window (`$__timeFrom()`, `$__timeTo()`), for one user where
/// it asks for one.
const SQL_API: [(&str, &str); 8] = [
    ("get_mcp_usage_summary", "SELECT * FROM get_mcp_usage_summary($__timeFrom(), $__timeTo())"),
    ("get_mcp_usage_by_tool", "SELECT * FROM get_mcp_usage_by_tool($__timeFrom(), $__timeTo())"),
    (
        "get_user_activity_summary",
        "SELECT * FROM get_user_activity_summary(md5('u7')::uuid,
                  extract(day FROM $__timeTo()::timestamptz - $__timeFrom()::timestamptz)::integer)",
    ),
    ("get_user_sessions", "SELECT * FROM get_user_sessions(md5('u7')::uuid, $__timeFrom(), $__timeTo())"),
    ("get_disconnected_sessions", "SELECT * FROM get_disconnected_sessions($__timeFrom(), $__timeTo())"),
    ("get_active_mcp_clients", "SELECT * FROM get_active_mcp_clients()"),
    ("archon_mcp_user_stats", "SELECT * FROM archon_mcp_user_stats"),
    ("archon_budget_status", "SELECT * FROM archon_budget_status()"),
];

/// The provisioned alert rules' queries.
fn alert_queries() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/provisioning/alerting/archon-mcp-alerts.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or_default();
    doc["groups"][0]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|rule| {
            let sql = rule["data"][0]["model"]["rawSql"].as_str()?;
            Some((format!("alert: {}", rule["title"].as_str().unwrap_or("")), sql.to_owned()))
        })
        .collect()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}
