use archon_mcp_exporter::StoreConfig;
use archon_mcp_exporter::migrate;
use archon_mcp_exporter::testing::TestDb;
use archon_mcp_exporter::{SkipReason, map_spans};

use crate::fixtures::*;

#[tokio::test]
async fn concurrent_migrators_all_succeed_and_apply_once() {
    let db = TestDb::new().await;
    let (a, b, c) =
        tokio::join!(migrate::migrate_url(db.url()), migrate::migrate_url(db.url()), migrate::migrate_url(db.url()));
    let applied: usize = [a, b, c].into_iter().map(|run| run.expect("every migrator succeeds").len()).sum();
    assert_eq!(applied, migrate::known().len(), "each migration applied exactly once");

    let mut client = db.client().await;
    assert!(migrate::pending(&mut client).await.unwrap().is_empty());
    let n: i64 =
        client.query_one(&format!("SELECT count(*) FROM {}", migrate::HISTORY_TABLE), &[]).await.unwrap().get(0);
    assert_eq!(n as usize, migrate::known().len());
}

#[tokio::test]
async fn a_fresh_database_reports_pending_migrations() {
    let db = TestDb::new().await;
    let mut client = db.client().await;
    assert_eq!(migrate::pending(&mut client).await.unwrap(), migrate::known());
}

#[tokio::test]
async fn rows_outside_the_partitions_land_in_the_default_one_and_move_later() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let old = 1_577_836_800 * SEC; // 2020-01-01
    let future = 4_102_444_800 * SEC; // 2100-01-01
    let mut conn = Conn::new(SESSION_1, "Claude Code", None);
    let spans = vec![
        conn.call("search", old + SEC, 5),
        conn.call("search", future + SEC, 5),
        conn.call("now", an_hour_ago(), 5),
    ];
    let outcome = write(&store, &spans).await;
    // The store refuses no row for its date; the mapper refuses one dated 2100 (a wrong clock).
    assert_eq!(outcome.requests_inserted, 2);
    assert_eq!(map_spans(&spans).skipped[0].reason, SkipReason::FutureTimestamp);

    let client = db.client().await;
    let placed = partitions(&client).await;
    assert_eq!(placed[0], "archon_mcp_requests_default");
    assert!(placed[1].starts_with("archon_mcp_requests_2"), "this month has a partition: {placed:?}");

    // Creating the 2020-01 partition later moves the early row out of the default partition.
    let created: Vec<String> = client
        .query("SELECT archon_mcp_create_request_partitions(0, '2020-01-15')", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(created, ["archon_mcp_requests_2020_01"]);
    assert_eq!(partitions(&client).await[0], "archon_mcp_requests_2020_01");
    // Idempotent: nothing more to create.
    let again = client.query("SELECT archon_mcp_create_request_partitions(0, '2020-01-15')", &[]).await.unwrap();
    assert!(again.is_empty());
}

#[tokio::test]
async fn a_reader_login_sees_its_own_rows_whatever_it_sets() {
    let db = TestDb::migrated().await;
    write(&db.store(StoreConfig::default()), &dataset(an_hour_ago())).await;
    let admin = db.client().await;

    // Ada's login, mapped by an admin; it tries to be Bob every way it can.
    let ada = Login::create(&db, &admin, "ada_reader", "archon_reader").await;
    admin
        .execute("INSERT INTO archon_reader_logins (login, user_key) VALUES ($1, $2)", &[&ada.name, &ADA.principal])
        .await
        .unwrap();
    let own = ada.visible(&BOB).await;
    assert_eq!(own[..3], [2, 4, 1], "Ada's 2 sessions, 4 requests, 1 user row");
    let bob_id = archon_mcp_exporter::ids::user_id(BOB.principal);
    for attempt in [
        format!("SET archon.user_id = '{bob_id}'"),
        format!("SET archon.user_id = '{}'", BOB.principal),
        r#"SET request.jwt.claims = '{"sub": "bob@corp"}'"#.to_owned(),
        "SET ROLE archon_reader".to_owned(),
        "SELECT set_config('request.jwt.claims', '{\"sub\": \"bob@corp\"}', false)".to_owned(),
    ] {
        ada.client.batch_execute(&attempt).await.unwrap();
        assert_eq!(ada.visible(&BOB).await, own, "after {attempt}");
    }
    let probe =
        ada.client.query_one("SELECT archon_current_user_id()", &[]).await.unwrap().get::<_, Option<uuid::Uuid>>(0);
    assert_eq!(probe, Some(archon_mcp_exporter::ids::user_id(ADA.principal)), "its own id, never another's");

    // A reader login nobody mapped sees nothing, whatever it sets.
    let stranger = Login::create(&db, &admin, "stranger_reader", "archon_reader").await;
    stranger
        .client
        .batch_execute(&format!(r#"SET archon.user_id = '{bob_id}'; SET request.jwt.claims = '{{"sub": "bob@corp"}}'"#))
        .await
        .unwrap();
    assert_eq!(stranger.visible(&BOB).await[..3], [0, 0, 0]);

    // PostgREST/Supabase: a registered authenticator switches into a NOLOGIN role granted
    // archon_reader and sets the verified claims.
    let authenticator = Login::create(&db, &admin, "authenticator", "archon_reader").await;
    admin
        .execute("INSERT INTO archon_trusted_authenticators (login) VALUES ($1)", &[&authenticator.name])
        .await
        .unwrap();
    authenticator
        .client
        .batch_execute(r#"SET ROLE archon_reader; SET request.jwt.claims = '{"sub": "bob@corp"}'"#)
        .await
        .unwrap();
    assert_eq!(authenticator.visible(&ADA).await[..3], [1, 2, 1], "Bob's session, 2 requests, 1 user row");
    authenticator.client.batch_execute("SET request.jwt.claims = 'not json'").await.unwrap();
    assert_eq!(authenticator.visible(&ADA).await[..3], [0, 0, 0], "a malformed claim sees nothing");

    // Nobody else may ask who a key is.
    let grafana = Login::create(&db, &admin, "grafana_login", "archon_grafana").await;
    let denied = grafana.client.query_one("SELECT archon_current_user_id()", &[]).await;
    assert!(denied.is_err(), "archon_current_user_id is not executable by PUBLIC");
    assert_eq!(grafana.count("SELECT * FROM archon_mcp_sessions").await, 3, "grafana reads every row");
    assert!(
        grafana.client.batch_execute("UPDATE archon_mcp_sessions SET client_type = 'x'").await.is_err(),
        "grafana is read-only"
    );
    assert!(grafana.client.batch_execute("SELECT * FROM archon_reader_logins").await.is_err(), "nor reads the mapping");

    for login in [ada, stranger, authenticator, grafana] {
        login.remove(&admin).await;
    }
}

/// The partition of each request, oldest first.
async fn partitions(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(r#"SELECT tableoid::regclass::text FROM archon_mcp_requests ORDER BY "timestamp""#, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

#[tokio::test]
async fn retention_drops_whole_old_partitions_and_keeps_the_rest() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let client = db.client().await;
    client.query("SELECT archon_mcp_create_request_partitions(1, '2020-01-01')", &[]).await.unwrap();
    let mut old = Conn::new(SESSION_1, "Cursor", None);
    let mut recent = Conn::new(SESSION_2, "Cursor", None);
    let jan_2020 = 1_579_000_000 * SEC;
    let spans = vec![
        old.call("a", jan_2020, 5),
        old.call("b", jan_2020 + 40 * 86_400 * SEC, 5), // February 2020
        old.end(jan_2020, jan_2020 + 41 * 86_400 * SEC, "client_disconnect"),
        recent.call("c", an_hour_ago(), 5),
    ];
    write(&store, &spans).await;

    let dry: Vec<String> = client
        .query("SELECT archon_mcp_drop_request_partitions('365 days', true)", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(dry, ["archon_mcp_requests_2020_01", "archon_mcp_requests_2020_02"]);
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM archon_mcp_requests").await, 3, "a dry run changes nothing");

    client.query("SELECT archon_mcp_drop_request_partitions('365 days')", &[]).await.unwrap();
    assert_eq!(count("SELECT count(*) FROM archon_mcp_requests").await, 1);
    assert_eq!(count("SELECT count(*) FROM archon_mcp_sessions").await, 1, "the emptied old session goes too");
    assert_eq!(count("SELECT count(*) FROM pg_class WHERE relname LIKE 'archon_mcp_requests_2020%'").await, 0);
}
