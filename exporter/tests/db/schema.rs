use archon_mcp_exporter::migrate;
use archon_mcp_exporter::store::StoreConfig;
use archon_mcp_exporter::testing::TestDb;

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
    assert_eq!(outcome.requests_inserted, 3, "nothing is rejected for its date");

    let client = db.client().await;
    let placed = partitions(&client).await;
    assert_eq!(placed[0], "archon_mcp_requests_default");
    assert!(placed[1].starts_with("archon_mcp_requests_2"), "this month has a partition: {placed:?}");
    assert_eq!(placed[2], "archon_mcp_requests_default");

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
async fn readers_see_only_their_own_rows_and_grafana_cannot_write() {
    let db = TestDb::migrated().await;
    write(&db.store(StoreConfig::default()), &dataset(an_hour_ago())).await;
    let client = db.client().await;
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };

    client.batch_execute("SET ROLE archon_reader").await.unwrap();
    assert_eq!(count("SELECT count(*) FROM archon_mcp_sessions").await, 0, "no identity, no rows");
    client.batch_execute(&format!("SET archon.user_id = '{}'", ADA.principal)).await.unwrap();
    assert_eq!(count("SELECT count(*) FROM archon_mcp_sessions").await, 2);
    assert_eq!(count("SELECT count(*) FROM archon_mcp_requests").await, 4);
    assert_eq!(count("SELECT count(*) FROM archon_mcp_user_stats").await, 1, "views apply RLS too");

    // PostgREST style, with a principal that is not a UUID.
    client.batch_execute("RESET archon.user_id; SET request.jwt.claims = '{\"sub\": \"bob@corp\"}'").await.unwrap();
    assert_eq!(count("SELECT count(*) FROM archon_mcp_sessions").await, 1);
    assert_eq!(count("SELECT count(*) FROM archon_mcp_requests").await, 2);
    client.batch_execute("SET request.jwt.claims = 'not json'").await.unwrap();
    assert_eq!(count("SELECT count(*) FROM archon_mcp_sessions").await, 0, "a malformed claim sees nothing");

    client.batch_execute("RESET ROLE; RESET request.jwt.claims; SET ROLE archon_grafana").await.unwrap();
    assert_eq!(count("SELECT count(*) FROM archon_mcp_sessions").await, 3);
    let write = client.batch_execute("UPDATE archon_mcp_sessions SET client_type = 'x'").await;
    assert!(write.is_err(), "grafana is read-only");
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
