//! Every dashboard panel and variable query, expanded the way Grafana's PostgreSQL data source
//! expands them, run as the read-only Grafana role against data seeded through the real
//! mapping and store — with the figures checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use archon_mcp_exporter::StoreConfig;
use archon_mcp_exporter::map_spans;
use archon_mcp_exporter::testing::{Connection, TestDb, TestUser, rpc_error, tool_error, with_estimate, with_usage};
use archon_mcp_otel::grafana::{TimeRange, expand, load_dashboards, panel_queries, referenced_variables, rfc3339};
use serde_json::Value;
use tokio_postgres::{Client, SimpleQueryMessage};

const PANEL_TYPES: &[&str] = &[
    "stat",
    "timeseries",
    "table",
    "barchart",
    "piechart",
    "bargauge",
    "gauge",
    "text",
    "histogram",
    "heatmap",
    "state-timeline",
];
const SEC: u64 = 1_000_000_000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dashboards() -> Vec<(String, Value)> {
    let out = load_dashboards(&root().join("dashboards/json")).expect("dashboards/json");
    assert_eq!(out.len(), 4, "usage, users and cost, sessions, budgets");
    out
}

fn provisioned_uid() -> String {
    let yaml = std::fs::read_to_string(root().join("dashboards/provisioning/datasources/archon-mcp.yaml")).unwrap();
    assert!(yaml.contains("type: grafana-postgresql-datasource"));
    yaml.lines().find_map(|l| l.trim().strip_prefix("uid: ")).expect("a fixed uid").trim().to_owned()
}

#[test]
fn dashboards_are_well_formed() {
    let uid = provisioned_uid();
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        assert!(uids.insert(d["uid"].as_str().unwrap().to_owned()), "{file}: duplicate dashboard uid");
        assert!(d["links"].as_array().is_some_and(|l| !l.is_empty()), "{file}: links to the other dashboards");
        let variables = d["templating"]["list"].as_array().unwrap();
        // The data source is a variable (so a dashboard imported through the UI can use any
        // PostgreSQL data source) whose default is the provisioned one.
        let source = &variables[0];
        assert_eq!((&source["name"], &source["type"]), (&"datasource".into(), &"datasource".into()), "{file}");
        assert_eq!(source["query"], "grafana-postgresql-datasource", "{file}");
        assert_eq!(source["current"]["value"], uid.as_str(), "{file}: defaults to the provisioned data source");
        let uid = "${datasource}";
        let mut defined = BTreeSet::new();
        for v in variables {
            let name = v["name"].as_str().unwrap().to_owned();
            if v["type"] == "query" {
                assert_eq!(v["datasource"]["uid"], uid, "{file}: variable {name}");
                assert_eq!(v["allValue"], "__all", "{file}: {name} has a working All");
                for used in referenced_variables(v["query"].as_str().unwrap()) {
                    assert!(defined.contains(&used), "{file}: variable {name} uses ${used} before it is defined");
                }
            }
            defined.insert(name);
        }
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
            assert!(ids.insert(p["id"].as_i64().unwrap()), "{file}: duplicate panel id at {title}");
            assert!(
                PANEL_TYPES.contains(&p["type"].as_str().unwrap()),
                "{file}: {title} has a type Grafana does not ship"
            );
            assert_eq!(p["datasource"]["uid"], uid, "{file}: {title}");
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(w > 0 && h > 0 && x + w <= 24, "{file}: {title} is outside the 24-column grid");
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "{file}: {title} overlaps another panel");
                }
            }
            for target in p["targets"].as_array().unwrap() {
                assert_eq!(target["datasource"]["uid"], uid, "{file}: {title}");
            }
            for sql in panel_queries(p) {
                for used in referenced_variables(&sql) {
                    assert!(defined.contains(&used), "{file}: {title} uses undefined ${used}");
                }
            }
            // A time series over the rollups bins by the hour at least and by the day over a year:
            // Grafana's default of a point per pixel would bin a year by 6 hours on a wide panel
            // and read every hourly rollup of it.
            if panel_queries(p).iter().any(|sql| sql.contains("$__interval") && sql.contains("archon_mcp_usage")) {
                assert_eq!(p["interval"], "1h", "{file}: {title} bins by the hour at least");
                assert!(
                    p["maxDataPoints"].as_u64().is_some_and(|n| n <= 365),
                    "{file}: {title} asks for at most 365 points"
                );
            }
        }
    }
}

/// Rows of a query as text (the simple protocol returns every value as text).
async fn text_rows(
    client: &Client,
    sql: &str,
) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), tokio_postgres::Error> {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for message in client.simple_query(sql).await? {
        match message {
            SimpleQueryMessage::RowDescription(desc) => columns = desc.iter().map(|c| c.name().to_owned()).collect(),
            SimpleQueryMessage::Row(row) => {
                if columns.is_empty() {
                    columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                rows.push((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect());
            }
            _ => {}
        }
    }
    Ok((columns, rows))
}

const ADA: TestUser =
    TestUser { principal: "ada", email: "ada@example.com", name: "Ada Lovelace", department: "Research" };
const OBRIEN: TestUser =
    TestUser { principal: "o'brien", email: "ob@example.com", name: "Pat O'Brien", department: "R&D 'West'" };

/// Ada: search with gpt-4o usage (1,000 in / 100 out → $0.0035), a summary reporting $0.25, a
/// failed create_task; ended by the client. O'Brien: an estimated search (unpriced) and a caller
/// mistake; open. Someone anonymous: one search; open. Total $0.2535, 6 requests.
async fn seed(db: &TestDb) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let t0 = now - 1800 * SEC;
    let ada_session = "0195f3a0-0000-7000-8000-00000000a0a0";
    let mut ada = Connection::new(ada_session, "claude-code", Some(ADA));
    let mut obrien = Connection::new("0195f3a0-0000-7000-8000-00000000b0b0", "Cursor", Some(OBRIEN));
    let mut anon = Connection::new("0195f3a0-0000-7000-8000-00000000c0c0", "Windsurf", None);
    let spans = vec![
        with_usage(ada.call("search", t0, 40), "gpt-4o", 1000, 100),
        ada.call("summarize", t0 + 10 * SEC, 900).with_attribute("archon.cost.amount", 0.25),
        tool_error(ada.call("create_task", t0 + 20 * SEC, 5), "exists"),
        ada.end(t0, t0 + 60 * SEC, "client_disconnect").with_attribute("archon.session.catalog_tokens", 2_000_i64),
        with_estimate(obrien.call("search", t0 + 30 * SEC, 20), 400, 0),
        rpc_error(obrien.call("create_task", t0 + 40 * SEC, 1), -32602, "missing title"),
        anon.call("search", t0 + 50 * SEC, 10),
    ];
    let outcome = db.store(StoreConfig::default()).write(&map_spans(&spans)).await.unwrap();
    assert_eq!(outcome.requests_inserted, 6);
    // A budget for everyone ($100, far from used) and one Research has overspent ($0.20).
    db.client()
        .await
        .batch_execute(
            "INSERT INTO archon_budgets (scope, scope_value, monthly_amount, effective_from)
             VALUES ('all', NULL, 100, date_trunc('month', now())), ('department', 'Research', 0.20, date_trunc('month', now()))",
        )
        .await
        .unwrap();
    ada_session.to_owned()
}

#[tokio::test]
async fn every_panel_query_runs_read_only_and_adds_up() {
    let db = TestDb::migrated().await;
    let ada_session = seed(&db).await;
    let client = db.client().await;
    client.batch_execute("SET ROLE archon_grafana").await.unwrap();
    let range = TimeRange {
        from: rfc3339(SystemTime::now() - Duration::from_secs(86_400)),
        to: rfc3339(SystemTime::now() + Duration::from_secs(60)),
        interval: "1m".into(),
    };

    let all = |extra: &[(&'static str, Vec<&str>)]| {
        let mut vars: BTreeMap<&str, Vec<String>> =
            ["user", "department", "client_type", "tool"].into_iter().map(|n| (n, vec!["__all".to_owned()])).collect();
        vars.insert("session", vec![String::new()]);
        for (name, values) in extra {
            vars.insert(name, values.iter().map(|v| (*v).to_owned()).collect());
        }
        vars
    };
    let combinations: Vec<(&str, BTreeMap<&str, Vec<String>>)> = vec![
        ("all", all(&[])),
        ("one user", all(&[("user", vec!["ada"])])),
        ("two users, one with a quote", all(&[("user", vec!["ada", "o'brien"])])),
        ("quoted department", all(&[("department", vec!["R&D 'West'"])])),
        ("one client", all(&[("client_type", vec!["Cursor"])])),
        ("one tool", all(&[("tool", vec!["search"])])),
        ("a session", all(&[("session", vec![ada_session.as_str()])])),
    ];

    // (dashboard file, panel title, combination) → rows
    let mut results = BTreeMap::new();
    for (file, d) in dashboards() {
        for v in d["templating"]["list"].as_array().unwrap().iter().filter(|v| v["type"] == "query") {
            let sql = expand(v["query"].as_str().unwrap(), &combinations[0].1, &range);
            let (_, rows) =
                text_rows(&client, &sql).await.unwrap_or_else(|e| panic!("{file}: variable {}: {e}\n{sql}", v["name"]));
            assert!(!rows.is_empty(), "{file}: variable {} has values", v["name"]);
        }
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap().to_owned();
            for sql in panel_queries(p) {
                for (combination, vars) in &combinations {
                    let expanded = expand(&sql, vars, &range);
                    assert!(
                        referenced_variables(&expanded).is_empty() && !expanded.contains("$__"),
                        "unexpanded: {expanded}"
                    );
                    let (columns, rows) = text_rows(&client, &expanded).await.unwrap_or_else(|e| {
                        panic!(
                            "{file}: {title} ({combination}): {}\n{expanded}",
                            e.as_db_error().map_or(e.to_string(), |d| d.message().to_owned())
                        )
                    });
                    if p["targets"][0]["format"] == "time_series" {
                        assert_eq!(
                            columns.first().map(String::as_str),
                            Some("time"),
                            "{file}: {title} needs a time column"
                        );
                    }
                    results.insert((file.clone(), title.clone(), *combination), (columns, rows));
                }
            }
        }
    }
    let value = |file: &str, title: &str, combination: &str| -> Vec<Option<String>> {
        results.get(&(file.to_owned(), title.to_owned(), combination)).unwrap_or_else(|| panic!("no {file}: {title}")).1
            [0]
        .clone()
    };
    let one = |file: &str, title: &str, combination: &str| value(file, title, combination)[0].clone().unwrap();

    // Usage overview.
    assert_eq!(one("mcp-usage.json", "Requests", "all"), "6");
    assert_eq!(one("mcp-usage.json", "Requests", "one user"), "3");
    assert_eq!(one("mcp-usage.json", "Requests", "two users, one with a quote"), "5");
    assert_eq!(one("mcp-usage.json", "Requests", "quoted department"), "2");
    assert_eq!(one("mcp-usage.json", "Requests", "one client"), "2");
    assert_eq!(one("mcp-usage.json", "Requests", "one tool"), "3");
    assert_eq!(one("mcp-usage.json", "Active sessions now", "all"), "2");
    assert_eq!(one("mcp-usage.json", "Users", "all"), "2");
    assert_eq!(one("mcp-usage.json", "Error rate", "all").parse::<f64>().unwrap().round(), 33.0);
    let errors = &results[&("mcp-usage.json".to_owned(), "Errors by type".to_owned(), "all")].1;
    let kinds: BTreeSet<_> = errors.iter().map(|r| r[1].clone().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["caller mistake".to_owned(), "tool error".to_owned()]));
    // Binned finer than a day, unfiltered: the hours per tool (V27), adding up as the rows.
    let over_time = &results[&("mcp-usage.json".to_owned(), "Requests over time by tool".to_owned(), "all")].1;
    assert_eq!(over_time.iter().map(|r| r[2].as_deref().unwrap().parse::<i64>().unwrap()).sum::<i64>(), 6);

    // Users and cost.
    assert_eq!(one("mcp-users-cost.json", "Cost in range", "all").parse::<f64>().unwrap(), 0.2535);
    assert_eq!(one("mcp-users-cost.json", "Cost in range", "one user").parse::<f64>().unwrap(), 0.2535);
    assert_eq!(
        value("mcp-users-cost.json", "Tokens reported / estimated", "all"),
        [Some("1100".into()), Some("400".into())]
    );
    let users = &results[&("mcp-users-cost.json".to_owned(), "Users".to_owned(), "all")].1;
    let (_, stats) = text_rows(
        &client,
        "SELECT user_name, user_email, user_department, total_sessions, active_sessions, total_requests, failed_requests,
                reported_tokens, estimated_tokens, round(total_cost, 4) FROM archon_mcp_user_stats ORDER BY total_cost DESC, total_requests DESC",
    )
    .await
    .unwrap();
    assert_eq!(users.iter().map(|r| r[..10].to_vec()).collect::<Vec<_>>(), stats, "the table is archon_mcp_user_stats");
    // The Tool variable applies to the table as to the panels above it: only the users of the
    // tool, with its requests.
    let of_tool = &results[&("mcp-users-cost.json".to_owned(), "Users".to_owned(), "one tool")].1;
    let requests: Vec<i64> = of_tool.iter().map(|r| r[5].as_deref().unwrap().parse().unwrap()).collect();
    assert!(requests.iter().all(|n| *n > 0), "only users of the tool: {of_tool:?}");
    let (_, of_users) = text_rows(
        &client,
        "SELECT count(*) FROM archon_mcp_requests WHERE tool_name = 'search' AND user_id IS NOT NULL",
    )
    .await
    .unwrap();
    assert_eq!(requests.iter().sum::<i64>(), of_users[0][0].as_deref().unwrap().parse::<i64>().unwrap());
    let all_requests: i64 = users.iter().map(|r| r[5].as_deref().unwrap().parse::<i64>().unwrap()).sum();
    assert!(requests.iter().sum::<i64>() < all_requests, "the filter removes the other tools' requests");
    let by_department: BTreeMap<_, _> = results
        [&("mcp-users-cost.json".to_owned(), "Cost by department".to_owned(), "all")]
        .1
        .iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap().parse::<f64>().unwrap()))
        .collect();
    assert_eq!(
        by_department,
        BTreeMap::from([("(none)".into(), 0.0), ("R&D 'West'".into(), 0.0), ("Research".into(), 0.2535)])
    );
    let monthly: f64 = results[&("mcp-users-cost.json".to_owned(), "Monthly cost report".to_owned(), "all")]
        .1
        .iter()
        .map(|r| r[5].clone().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!((monthly - 0.2535).abs() < 1e-9);
    let top = &results[&("mcp-users-cost.json".to_owned(), "Top 10 users by cost".to_owned(), "all")].1;
    assert_eq!(top[0][0].as_deref(), Some("Ada Lovelace"));

    // Sessions.
    let live = &results[&("mcp-sessions.json".to_owned(), "Live sessions".to_owned(), "all")].1;
    assert_eq!(live.len(), 2);
    let of_session =
        &results[&("mcp-sessions.json".to_owned(), "Requests of session ${session}".to_owned(), "a session")].1;
    assert_eq!(of_session.len(), 3);
    let none = &results[&("mcp-sessions.json".to_owned(), "Requests of session ${session}".to_owned(), "all")].1;
    assert!(none.is_empty(), "no session picked, no rows");
    let reasons: BTreeMap<_, _> = results[&("mcp-sessions.json".to_owned(), "Disconnect reasons".to_owned(), "all")]
        .1
        .iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(reasons, BTreeMap::from([("client_disconnect".into(), "1".into()), ("open".into(), "2".into())]));

    // Budgets.
    let budgets: BTreeMap<_, _> = results[&("mcp-budgets.json".to_owned(), "Budgets this month".to_owned(), "all")]
        .1
        .iter()
        .map(|r| (r[0].clone().unwrap(), (r[2].clone().unwrap(), r[5].clone().unwrap())))
        .collect();
    assert_eq!(
        budgets,
        BTreeMap::from([
            ("all".into(), ("0.25".into(), "ok".into())),
            ("department:Research".into(), ("0.25".into(), "over".into()))
        ])
    );
    let contributors =
        &results[&("mcp-budgets.json".to_owned(), "Top contributors of each budget".to_owned(), "all")].1;
    assert_eq!(contributors[0][1].as_deref(), Some("Ada Lovelace"));
    let catalog = value("mcp-budgets.json", "Tool catalog in the context", "all");
    assert_eq!(
        (catalog[2].as_deref(), catalog[3].as_deref(), catalog[4].as_deref()),
        (Some("1"), Some("2000"), Some("64.5"))
    );

    // Read-only.
    for write in [
        "INSERT INTO archon_mcp_sessions (session_id) VALUES (gen_random_uuid())",
        "UPDATE archon_mcp_requests SET status = 'error'",
        "DELETE FROM archon_mcp_sessions",
        "UPDATE archon_llm_pricing SET input_price_per_1k = 0",
    ] {
        let err = client.batch_execute(write).await.expect_err("the Grafana role cannot write");
        let message = err.as_db_error().map_or(err.to_string(), |d| d.message().to_owned());
        assert!(message.contains("permission denied"), "{write}: {message}");
    }
}

/// Every dashboard against the `Dashboard` type Grafana publishes (`@grafana/schema` on npm),
/// type-checked by TypeScript (`dashboards/schema-check`): unknown or missing properties and
/// wrong types fail. Needs Node.js and npm; outside CI their absence skips the test, loudly.
#[test]
fn dashboards_match_grafanas_published_schema() {
    let check = root().join("dashboards/schema-check");
    let has = |tool: &str| std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !has("node") || !has("npm") {
        assert!(std::env::var_os("CI").is_none(), "Node.js and npm are needed to check the dashboards' schema");
        eprintln!("SKIPPED: no node/npm to check the dashboards against @grafana/schema");
        return;
    }
    if !check.join("node_modules/@grafana/schema").exists() {
        let installed = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&check)
            .status()
            .expect("npm ci");
        assert!(installed.success(), "npm ci in {} failed", check.display());
    }
    let output = std::process::Command::new("node").arg("check.mjs").current_dir(&check).output().expect("node");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the dashboards do not match @grafana/schema:\n{text}");
    assert!(text.contains("4 dashboards match"), "{text}");
}
