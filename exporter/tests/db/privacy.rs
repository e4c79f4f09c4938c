//! One person's data (issue #34): exported whole, forgotten by deletion or pseudonymisation in
//! one transaction, audited without the data, and refused to logins that are not admins.

use archon_mcp_exporter::StoreConfig;
use archon_mcp_exporter::budgets::{self, BudgetSpec};
use archon_mcp_exporter::privacy::{self, ForgetPolicy, PrivacyError, Subject};
use archon_mcp_exporter::testing::TestDb;

use crate::fixtures::*;

/// Ada: two sessions with three calls ($1, $2 and an anonymous $4 in her first session); Bob:
/// one session, one $8 call. Ada has a reader login and a user budget.
async fn seed(db: &TestDb) -> tokio_postgres::Client {
    let t0 = an_hour_ago();
    let mut ada = Conn::new(SESSION_1, "claude-code", Some(ADA));
    let mut anonymous = Conn::new(SESSION_1, "claude-code", None);
    let mut ada_again = Conn::new(SESSION_2, "Cursor", Some(ADA));
    let mut bob = Conn::new(SESSION_3, "Windsurf", Some(BOB));
    let spans = vec![
        costing(ada.call("search", t0, 10), 1.0),
        costing(ada_again.call("search", t0 + SEC, 10), 2.0),
        costing(anonymous.call("search", t0 + 2 * SEC, 10), 4.0),
        costing(bob.call("search", t0 + 3 * SEC, 10), 8.0),
    ];
    write(&db.store(StoreConfig::default()), &spans).await;
    let client = db.client().await;
    client
        .execute("INSERT INTO archon_reader_logins (login, user_key) VALUES ('ada_login', $1)", &[&ADA.principal])
        .await
        .unwrap();
    let scope = format!("user:{}", ADA.principal).parse().unwrap();
    budgets::set(&client, &BudgetSpec::monthly(scope, 50.0)).await.unwrap();
    client
}

fn costing(span: archon_mcp_exporter::span::Span, usd: f64) -> archon_mcp_exporter::span::Span {
    span.with_attribute(archon_mcp_instrument::attributes::ARCHON_COST_AMOUNT, usd)
}

/// Every row of every table of the schema, as text: what a full-database search reads.
async fn whole_database(client: &tokio_postgres::Client) -> String {
    let tables = client
        .query(
            "SELECT format('%I', c.relname) FROM pg_class c
              WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            &[],
        )
        .await
        .unwrap();
    let mut text = String::new();
    for table in tables.iter().map(|row| row.get::<_, String>(0)) {
        let rows: String = client
            .query_one(&format!("SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t"), &[])
            .await
            .unwrap()
            .get(0);
        text.push_str(&format!("{table}: {rows}\n"));
    }
    assert!(text.contains("archon_mcp_requests") && text.contains("archon_llm_pricing"), "{text}");
    text
}

async fn number(client: &tokio_postgres::Client, sql: &str) -> f64 {
    client.query_one(&format!("SELECT coalesce(({sql})::float8, 0)"), &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn export_holds_everything_about_the_person_and_nothing_about_others() {
    let db = TestDb::migrated().await;
    let mut client = seed(&db).await;
    let document = privacy::export(&mut client, &Subject::user(ADA.principal)).await.unwrap();
    let count = |table: &str| document[table].as_array().unwrap().len();
    assert_eq!((count("sessions"), count("requests"), count("reader_logins"), count("budgets")), (2, 3, 1, 1));
    let text = document.to_string();
    assert!(text.contains(ADA.email) && !text.contains(BOB.email), "{text}");
    // By email too, whatever its case.
    let by_email = privacy::export(&mut client, &Subject::email(ADA.email.to_uppercase())).await.unwrap();
    assert_eq!(by_email["sessions"], document["sessions"]);
    let counts = privacy::export_counts(&mut client, &Subject::user(ADA.principal)).await.unwrap();
    assert_eq!(counts, serde_json::json!({"sessions": 2, "requests": 3, "reader_logins": 1, "budgets": 1}));
    let audited = number(&client, "SELECT count(*) FROM archon_privacy_audit WHERE action = 'export'").await;
    assert_eq!(audited, 2.0);
}

#[tokio::test]
async fn forget_deletes_everything_of_one_person_in_one_go_and_audits_it() {
    let db = TestDb::migrated().await;
    let mut client = seed(&db).await;
    let ada = Subject::user(ADA.principal);
    let planned = privacy::forget(&mut client, &ada, &ForgetPolicy::Delete, true).await.unwrap();
    assert_eq!(planned, serde_json::json!({"requests": 3, "sessions": 2, "reader_logins": 1, "budgets": 1}));
    assert_eq!(number(&client, "SELECT count(*) FROM archon_mcp_requests").await, 4.0, "a dry run changes nothing");

    let done = privacy::forget(&mut client, &ada, &ForgetPolicy::Delete, false).await.unwrap();
    assert_eq!(done, planned);
    let everything = whole_database(&client).await;
    for trace in [ADA.principal, ADA.email, ADA.name, "ada_login"] {
        assert!(!everything.contains(trace), "{trace} is still stored somewhere: {everything}");
    }
    assert!(everything.contains(BOB.email), "Bob's data stays");
    let left = privacy::export(&mut client, &ada).await.unwrap();
    for table in ["sessions", "requests", "reader_logins", "budgets"] {
        assert_eq!(left[table], serde_json::json!([]), "{table}");
    }
    assert_eq!(number(&client, "SELECT sum(estimated_cost) FROM archon_mcp_requests").await, 8.0, "Bob's stays");
    let audit = client
        .query_one(
            "SELECT policy, subject_hash, performed_by::text, counts FROM archon_privacy_audit WHERE action = 'forget'",
            &[],
        )
        .await
        .unwrap();
    let (policy, hash): (String, String) = (audit.get(0), audit.get(1));
    assert_eq!(policy, "delete");
    assert!(hash.starts_with("sha256:") && !hash.contains(ADA.principal));
    assert_eq!(audit.get::<_, serde_json::Value>(3), done);
}

#[tokio::test]
async fn pseudonymising_keeps_the_totals_and_names_no_one() {
    let db = TestDb::migrated().await;
    let mut client = seed(&db).await;
    let total = "SELECT sum(estimated_cost) FROM archon_mcp_requests";
    let research = "SELECT sum(total_cost) FROM archon_mcp_user_stats WHERE user_department = 'Research'";
    let (before, research_before) = (number(&client, total).await, number(&client, research).await);
    let policy = ForgetPolicy::Pseudonymise { key: b"a pseudonym key of 32 bytes....!".to_vec() };
    privacy::forget(&mut client, &Subject::email(ADA.email), &policy, false).await.unwrap();

    assert_eq!(number(&client, total).await, before, "every request stays");
    assert_eq!(number(&client, research).await, research_before, "the department's cost stays");
    let everything = whole_database(&client).await;
    for trace in [ADA.principal, ADA.email, ADA.name, "ada_login"] {
        assert!(!everything.contains(trace), "{trace} is still stored");
    }
    assert!(everything.contains("pseudonym:"), "{everything}");
    assert_eq!(number(&client, "SELECT count(DISTINCT user_key) FROM archon_mcp_sessions").await, 2.0);
    let short = ForgetPolicy::Pseudonymise { key: b"short".to_vec() };
    assert!(matches!(
        privacy::forget(&mut client, &Subject::user("x"), &short, true).await,
        Err(PrivacyError::ShortKey(5))
    ));
}

#[tokio::test]
async fn only_admins_export_or_forget() {
    let db = TestDb::migrated().await;
    let admin = seed(&db).await;
    for (what, grant) in [
        ("privacy_reader", "archon_reader"),
        ("privacy_exporter", "archon_exporter"),
        ("privacy_grafana", "archon_grafana"),
    ] {
        let mut login = Login::create(&db, &admin, what, grant).await;
        let refused =
            privacy::forget(&mut login.client, &Subject::user(ADA.principal), &ForgetPolicy::Delete, false).await;
        assert!(matches!(&refused, Err(PrivacyError::NotAdmin { .. })), "{what}: {refused:?}");
        assert!(refused.unwrap_err().to_string().contains("archon_admin"));
        assert!(matches!(
            privacy::export(&mut login.client, &Subject::user(ADA.principal)).await,
            Err(PrivacyError::NotAdmin { .. })
        ));
    }
    let mut operator = Login::create(&db, &admin, "privacy_admin", "archon_admin").await;
    let done = privacy::forget(&mut operator.client, &Subject::user(BOB.principal), &ForgetPolicy::Delete, false)
        .await
        .unwrap();
    assert_eq!(done["requests"], 1);
    let who =
        number(&admin, "SELECT count(*) FROM archon_privacy_audit WHERE performed_by::text LIKE 'privacy_admin_%'")
            .await;
    assert_eq!(who, 1.0, "the audit names the login that ran it");
}

#[tokio::test]
async fn retention_takes_old_sessions_and_their_personal_data_and_says_how_many_first() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    // Monthly partitions back to 14 months ago, so an old month is dropped whole.
    client
        .execute("SELECT archon_mcp_create_request_partitions(16, (current_date - interval '14 months')::date)", &[])
        .await
        .unwrap();
    const DAY: u64 = 86_400 * SEC;
    let mut old = Conn::new(SESSION_1, "claude-code", Some(ADA));
    let mut recent = Conn::new(SESSION_3, "Windsurf", Some(BOB));
    let then = an_hour_ago() - 400 * DAY;
    let spans = vec![
        old.call("search", then, 10),
        old.end(then, then + SEC, "client_disconnect"),
        recent.call("search", an_hour_ago(), 10),
    ];
    write(&db.store(StoreConfig::default()), &spans).await;

    use archon_mcp_exporter::partitions;
    assert_eq!(partitions::sessions_going(&client, "90 days").await.unwrap(), 1, "Ada's old session goes");
    assert!(!partitions::drop_older_than(&client, "90 days", false).await.unwrap().is_empty());
    assert_eq!(partitions::sessions_going(&client, "90 days").await.unwrap(), 0);
    let left = client.query("SELECT user_key FROM archon_mcp_sessions", &[]).await.unwrap();
    assert_eq!(left.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), [BOB.principal]);
    assert_eq!(number(&client, "SELECT count(*) FROM archon_mcp_requests").await, 1.0, "the recent call stays");
}

#[tokio::test]
async fn minimised_at_ingest_per_user_cost_without_the_person() {
    use archon_mcp_exporter::minimise::{FieldPolicy, Minimisation};
    let db = TestDb::migrated().await;
    let minimisation = Minimisation::new(b"an ingest key of 16+ bytes".to_vec())
        .unwrap()
        .with_principal(FieldPolicy::Hash)
        .with_email(FieldPolicy::Hash)
        .with_name(FieldPolicy::Drop);
    let store = db.store(StoreConfig::default().with_minimisation(minimisation));
    let t0 = an_hour_ago();
    let (mut ada, mut ada_again, mut bob) = (
        Conn::new(SESSION_1, "claude-code", Some(ADA)),
        Conn::new(SESSION_2, "Cursor", Some(ADA)),
        Conn::new(SESSION_3, "Windsurf", Some(BOB)),
    );
    let spans = vec![
        costing(ada.call("search", t0, 10), 1.0),
        costing(ada_again.call("search", t0 + SEC, 10), 2.0),
        costing(bob.call("search", t0 + 2 * SEC, 10), 8.0),
    ];
    // As the pipeline of `serve` and `PgSpanExporter` maps them.
    let batch = archon_mcp_exporter::map_spans_with(&spans, &store.config().minimisation);
    assert!(store.write(&batch).await.unwrap().rejected.is_empty());
    let client = db.client().await;
    let everything = client
        .query_one(
            "SELECT (SELECT jsonb_agg(s)::text FROM archon_mcp_sessions s) || (SELECT jsonb_agg(r)::text FROM archon_mcp_requests r)",
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    for trace in [ADA.principal, ADA.email, ADA.name, BOB.principal, BOB.email, BOB.name] {
        assert!(!everything.contains(trace), "{trace} is stored in clear: {everything}");
    }
    // Per-user cost still adds up, by the hashed key.
    let users = client
        .query(
            "SELECT user_key, total_cost::float8, user_department FROM archon_mcp_user_stats ORDER BY total_cost",
            &[],
        )
        .await
        .unwrap();
    let costs: Vec<(String, f64, String)> = users.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(costs.len(), 2, "{costs:?}");
    assert!(costs.iter().all(|(key, ..)| key.starts_with("hmac:")), "{costs:?}");
    assert_eq!((costs[0].1, costs[1].1), (3.0, 8.0), "Ada's two sessions are one user: {costs:?}");
    assert_eq!(costs[0].2, "Research", "the department stays");
}
