//! Budgets: every state, the forecast arithmetic to the cent, the CLI's library calls and
//! row-level rules, against seeded November 2026 spend.

use archon_mcp_exporter::StoreConfig;
use archon_mcp_exporter::budgets::{self, BudgetSpec, Scope};
use archon_mcp_exporter::span::Span;
use archon_mcp_exporter::testing::TestDb;
use archon_mcp_instrument::attributes as attr;

use crate::fixtures::*;

const NOV_1: u64 = 1_793_491_200 * SEC;
const DAY: u64 = 86_400 * SEC;
/// Mid-month: 14.5 of November's 30 days elapsed, a run-rate factor of 30 / 14.5.
const AT: &str = "2026-11-15 12:00:00+00";

fn costing(span: Span, usd: f64) -> Span {
    span.with_attribute(attr::ARCHON_COST_AMOUNT, usd)
}

/// Ada (Research, Claude Code): $10 on Nov 2 and Nov 10 (search); in her session an anonymous
/// $7 call (search) on Nov 12; Bob (Sales, Cursor): $5 on Nov 14 (summarize); and $100 of
/// Ada's in October, which no November budget counts.
async fn seed(db: &TestDb) {
    let mut ada = Conn::new(SESSION_1, "claude-code", Some(ADA));
    let mut anonymous = Conn::new(SESSION_1, "claude-code", None);
    let mut bob = Conn::new(SESSION_3, "Cursor", Some(BOB));
    let mut ada_october = Conn::new(SESSION_2, "claude-code", Some(ADA));
    let spans = vec![
        costing(ada.call("search", NOV_1 + DAY, 10), 10.0),
        costing(ada.call("search", NOV_1 + 9 * DAY, 10), 10.0),
        costing(anonymous.call("search", NOV_1 + 11 * DAY, 10), 7.0),
        costing(bob.call("summarize", NOV_1 + 13 * DAY, 10), 5.0),
        costing(ada_october.call("search", NOV_1 - 10 * DAY, 10), 100.0),
    ];
    write(&db.store(StoreConfig::default()), &spans).await;
}

async fn set(client: &tokio_postgres::Client, scope: &str, amount: f64, warn_at: &[i32], from: Option<&str>) {
    let mut spec = BudgetSpec::monthly(scope.parse().unwrap(), amount);
    spec.warn_at = warn_at.to_vec();
    spec.effective_from = from.map(|d| d.parse().unwrap());
    budgets::set(client, &spec).await.unwrap();
}

#[tokio::test]
async fn every_state_and_the_forecast_to_the_cent() {
    let db = TestDb::migrated().await;
    seed(&db).await;
    let client = db.client().await;
    set(&client, "all", 100.0, &[80, 100], Some("2026-01-01")).await;
    set(&client, &format!("user:{}", ADA.principal), 25.0, &[80, 100], Some("2026-01-01")).await;
    set(&client, "department:Research", 15.0, &[80, 100], Some("2026-01-01")).await;
    set(&client, "department:Sales", 9.0, &[90], Some("2026-01-01")).await;
    set(&client, "tool:search", 1000.0, &[80], Some("2026-01-01")).await;
    set(&client, "client_type:Cursor", 5.0, &[80], Some("2026-01-01")).await;
    // Bob's own budget starts on Nov 10: 5.5 of its 21 days elapsed, 5 × 21 / 5.5 = 19.09.
    set(&client, "user:bob@corp", 10.0, &[80], Some("2026-11-10")).await;
    // Ended before November: not in force.
    client
        .execute(
            "INSERT INTO archon_budgets (scope, scope_value, monthly_amount, effective_from, effective_to)
             VALUES ('tool', 'summarize', 1, '2026-01-01', '2026-10-31')",
            &[],
        )
        .await
        .unwrap();

    let rows = client
        .query(
            &format!(
                "SELECT scope || coalesce(':' || scope_value, ''), spend_mtd::text, forecast::numeric(14,2)::text,
                        percent_used::text, state, requests_mtd
                   FROM archon_budget_status('{AT}')"
            ),
            &[],
        )
        .await
        .unwrap();
    let table: Vec<(String, String, String, String, String, i64)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))).collect();
    let row =
        |scope: &str| table.iter().find(|r| r.0 == scope).unwrap_or_else(|| panic!("{scope} in {table:#?}")).clone();
    let expect = |scope: &str, spend: &str, forecast: &str, percent: &str, state: &str, requests: i64| {
        assert_eq!(
            row(scope),
            (scope.into(), spend.into(), forecast.into(), percent.into(), state.into(), requests),
            "{scope}"
        );
    };
    // all: 10 + 10 + 7 + 5 = 32; 32 × 30 / 14.5 = 66.21.
    expect("all", "32.000000", "66.21", "32.00", "ok", 4);
    // Ada's own two calls (not the anonymous one in her session): 20 of 25 = 80 % → warning.
    expect(&format!("user:{}", ADA.principal), "20.000000", "41.38", "80.00", "warning", 2);
    expect("department:Research", "20.000000", "41.38", "133.33", "over", 2);
    // 5 of 9 is 55.6 %, under the 90 % warning, but 5 × 30 / 14.5 = 10.34 ≥ 9.
    expect("department:Sales", "5.000000", "10.34", "55.56", "forecast_over", 1);
    // A tool's budget counts every call of the tool, the anonymous one too.
    expect("tool:search", "27.000000", "55.86", "2.70", "ok", 3);
    expect("client_type:Cursor", "5.000000", "10.34", "100.00", "over", 1);
    expect("user:bob@corp", "5.000000", "19.09", "50.00", "forecast_over", 1);
    assert!(table.iter().all(|r| r.0 != "tool:summarize"), "an ended budget is not in force");
    assert_eq!(table.len(), 7);

    // `set` again replaces the amount; `remove` removes; the library reads the state.
    set(&client, "department:Research", 50.0, &[80, 100], Some("2026-01-01")).await;
    let research: i64 = client
        .query_one("SELECT count(*) FROM archon_budgets WHERE scope_value = 'Research' AND monthly_amount = 50", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(research, 1);
    assert_eq!(budgets::remove(&client, &"tool:search".parse().unwrap()).await.unwrap(), 1);
    assert!(matches!(
        budgets::remove(&client, &"tool:search".parse().unwrap()).await,
        Err(budgets::BudgetError::NotFound(_))
    ));
    let bad = budgets::set(&client, &BudgetSpec::monthly(Scope::All, 1.0).with_currency("EUR".into())).await;
    assert!(bad.unwrap_err().to_string().contains("currency USD"));
    // Today's state (December: nothing spent yet) through the library.
    let now = budgets::status(&client).await.unwrap();
    assert!(now.iter().all(|s| s.spend_mtd == 0.0 && s.state == "ok"), "{now:?}");
}

#[tokio::test]
async fn readers_see_the_budgets_that_cover_their_rows_and_only_their_spend() {
    let db = TestDb::migrated().await;
    seed(&db).await;
    let admin = db.client().await;
    let ada_scope = format!("user:{}", ADA.principal);
    for (scope, amount) in
        [("all", 100.0), (ada_scope.as_str(), 25.0), ("user:bob@corp", 10.0), ("department:Sales", 9.0)]
    {
        set(&admin, scope, amount, &[80], Some("2026-01-01")).await;
    }
    let name = format!(
        "budget_reader_{}",
        admin.query_one("SELECT current_database()", &[]).await.unwrap().get::<_, String>(0)
    );
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD 'pw'; GRANT archon_reader TO {name};
             INSERT INTO archon_reader_logins VALUES ('{name}', '{}');",
            ADA.principal
        ))
        .await
        .unwrap();
    let (reader, connection) =
        tokio_postgres::connect(&format!("{} user={name} password=pw", db.url()), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows = reader
        .query(
            &format!(
                "SELECT scope || coalesce(':' || scope_value, ''), spend_mtd::float8 FROM archon_budget_status('{AT}')"
            ),
            &[],
        )
        .await
        .unwrap();
    let seen: Vec<(String, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // Ada sees the overall budget (over her own rows only) and her own; not Bob's, not Sales'.
    assert_eq!(seen, [("all".to_owned(), 20.0), (ada_scope.clone(), 20.0)]);
    assert!(
        reader.execute("DELETE FROM archon_budgets", &[]).await.is_err() || {
            let left: i64 = admin.query_one("SELECT count(*) FROM archon_budgets", &[]).await.unwrap().get(0);
            left == 4
        },
        "readers manage nothing"
    );
    drop(reader);
    admin.batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE {name}")).await.unwrap();
}

#[tokio::test]
async fn the_budgets_command() {
    let db = TestDb::migrated().await;
    seed(&db).await;
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_archon-mcp-exporter"))
            .arg("budgets")
            .args(args)
            .env("DATABASE_URL", db.url())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("no budgets"), "{out}");
    let (code, out, err) =
        run(&["set", "--scope", "department:Research", "--monthly", "500", "--currency", "USD", "--warn-at", "80"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("department:Research: 500.00 USD a month, warnings at [80] %"), "{out}");
    let (_, out, _) = run(&["list"]);
    assert!(out.contains("department:Research") && out.contains("ok"), "{out}");
    // Usage errors exit 2 and say what is expected; a missing budget exits 1 and says what to do.
    let (code, _, err) = run(&["set", "--scope", "team:x", "--monthly", "5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("department:NAME"), "{err}");
    let (code, _, err) = run(&["set", "--scope", "all", "--monthly", "5", "--currency", "EUR"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("currency USD"), "{err}");
    let (code, out, _) = run(&["remove", "--scope", "department:Research"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("removed 1"), "{out}");
    let (code, _, err) = run(&["remove", "--scope", "department:Research"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("budgets list"), "{err}");
}

/// The same figures, to the cent, whether a budget's hours are read from the rows (written, not
/// rolled up yet) or from the hourly rollups (issue #35).
#[tokio::test]
async fn budget_status_is_the_same_from_the_rollups() {
    let db = TestDb::migrated().await;
    seed(&db).await;
    let client = db.client().await;
    for (scope, amount) in [
        ("all", 100.0),
        ("anonymous", 20.0),
        ("user:bob@corp", 10.0),
        ("department:Research", 9.0),
        ("tool:search", 50.0),
        ("client_type:Cursor", 30.0),
    ] {
        set(&client, scope, amount, &[80], Some("2026-01-01")).await;
    }
    set(&client, &format!("user:{}", ADA.principal), 25.0, &[80], Some("2026-01-01")).await;
    let from_rows = status_rows(&client).await;
    let hours: i32 = client.query_one("SELECT archon_mcp_rollup_refresh(10000)", &[]).await.unwrap().get(0);
    assert!(hours >= 5, "the seeded hours rolled up: {hours}");
    assert_eq!(
        client.query_one("SELECT count(*) FROM archon_mcp_rollup_dirty", &[]).await.unwrap().get::<_, i64>(0),
        0
    );
    let from_rollups = status_rows(&client).await;
    assert_eq!(from_rollups, from_rows);
    assert!(from_rows.iter().any(|s| s.contains("\"spend_mtd\":20.")), "{from_rows:?}");

    // A late call on a rolled-up day: read from the hours and rows until the reaper's next round,
    // and the same figures after it (from the days again).
    let mut late = Conn::new(SESSION_1, "claude-code", Some(ADA));
    write(
        &db.store(StoreConfig::default()),
        &[costing(late.call("search", NOV_1 + 9 * DAY + 3 * 3600 * SEC, 10), 3.0)],
    )
    .await;
    let marked = status_rows(&client).await;
    assert_ne!(marked, from_rows, "the late call is counted before its day is rolled up again");
    client.query_one("SELECT archon_mcp_rollup_refresh(10000)", &[]).await.unwrap();
    assert_eq!(status_rows(&client).await, marked);
}

/// Each budget's status, and its spend by day, user and tool (what the burn panel draws).
async fn status_rows(client: &tokio_postgres::Client) -> Vec<String> {
    let status = format!("SELECT row_to_json(s)::text FROM archon_budget_status('{AT}') s");
    let by_day = format!(
        "SELECT concat_ws(' ', b.scope, b.scope_value, date_trunc('day', h.at, 'UTC'), h.user_id, h.tool_name,
                          sum(h.requests), sum(h.cost))
           FROM archon_budget_status('{AT}') b,
                LATERAL archon_budget_usage(b.scope, b.scope_value, b.month_start, '{AT}') h
          GROUP BY b.scope, b.scope_value, date_trunc('day', h.at, 'UTC'), h.user_id, h.tool_name
          ORDER BY 1"
    );
    let mut rows = Vec::new();
    for sql in [status, by_day] {
        rows.extend(client.query(&sql, &[]).await.unwrap().iter().map(|r| r.get::<_, String>(0)));
    }
    rows
}
