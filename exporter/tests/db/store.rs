//! The store: idempotency, arrival order, session ends, pricing and bad input.

use std::time::{Duration, UNIX_EPOCH};

use archon_mcp_exporter::ids;
use archon_mcp_exporter::rows::{RequestRow, RequestStatus, TokenSource};
use archon_mcp_exporter::span::{StatusCode, Value};
use archon_mcp_exporter::testing::TestDb;
use archon_mcp_exporter::{PgStore, RowRef, StoreConfig, StoreError};
use archon_mcp_exporter::{SkipReason, map_spans};
use archon_mcp_instrument::attributes as attr;
use uuid::Uuid;

use crate::fixtures::*;

/// A fixed permutation generator (xorshift), so a failure reproduces.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut state = seed.max(1);
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.swap(i, (state % (i as u64 + 1)) as usize);
    }
    out
}

#[tokio::test]
async fn the_same_batch_three_times_or_shuffled_gives_identical_tables() {
    let spans = dataset(an_hour_ago());

    let once = TestDb::migrated().await;
    write(&once.store(StoreConfig::default()), &spans).await;
    let expected = dump(&once.client().await).await;
    assert_eq!((expected.0.len(), expected.1.len()), (3, 6));

    let thrice = TestDb::migrated().await;
    let store = thrice.store(StoreConfig::default());
    let first = write(&store, &spans).await;
    assert_eq!(first.requests_inserted, 6);
    for _ in 0..2 {
        let again = write(&store, &spans).await;
        assert_eq!((again.requests_inserted, again.requests_duplicate), (0, 6));
    }
    assert_eq!(dump(&thrice.client().await).await, expected);

    // Any order, any batching: one span per batch, pairs, and everything at once.
    for (seed, batch_size) in [(1, 1), (2, 2), (3, 3), (4, 8)] {
        let db = TestDb::migrated().await;
        let store = db.store(StoreConfig::default());
        for chunk in shuffled(&spans, seed).chunks(batch_size) {
            write(&store, chunk).await;
        }
        assert_eq!(dump(&db.client().await).await, expected, "seed {seed}, batches of {batch_size}");
    }
}

#[tokio::test]
async fn a_session_end_before_its_requests_still_ends_the_session() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let t0 = an_hour_ago();
    let mut conn = Conn::new(SESSION_1, "Claude Code", Some(ADA));
    // The session span starts inside the first call (the session is created by it).
    let end = conn.end(t0 + 10 * MS, t0 + 100 * SEC, "client_disconnect");
    let calls = vec![conn.call("a", t0, 50), conn.call("b", t0 + 30 * SEC, 50), conn.call("c", t0 + 60 * SEC, 50)];

    write(&store, &[end]).await;
    write(&store, &calls).await;

    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT status::text, total_duration, disconnect_reason::text,
                    (extract(epoch FROM connected_at) * 1000000)::bigint = $1 AS starts_at_first_call,
                    (SELECT count(*) FROM archon_mcp_requests r WHERE r.session_id = s.session_id)
               FROM archon_mcp_sessions s",
            &[&((t0 / 1000) as i64)],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "disconnected");
    assert_eq!(row.get::<_, i32>(1), 100);
    assert_eq!(row.get::<_, String>(2), "client_disconnect");
    assert!(row.get::<_, bool>(3));
    assert_eq!(row.get::<_, i64>(4), 3);
}

#[tokio::test]
async fn a_late_request_never_reopens_a_session() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let t0 = an_hour_ago();
    let mut conn = Conn::new(SESSION_1, "Claude Code", None);
    write(&store, &[conn.call("a", t0, 5), conn.end(t0, t0 + 10 * SEC, "server_shutdown")]).await;
    write(&store, &[conn.call("late", t0 + 20 * SEC, 5)]).await;

    let row = db
        .client()
        .await
        .query_one("SELECT status::text, disconnect_reason::text, total_duration FROM archon_mcp_sessions", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, i32>(2)),
        ("disconnected".into(), "server_shutdown".into(), 10)
    );
}

#[tokio::test]
async fn non_uuid_session_and_user_ids_are_stable_across_databases() {
    let t0 = an_hour_ago();
    let mut ids_seen = Vec::new();
    for _ in 0..2 {
        let db = TestDb::migrated().await;
        let mut conn = Conn::new("stdio-7", "goose", Some(BOB));
        write(&db.store(StoreConfig::default()), &[conn.call("x", t0, 1)]).await;
        let row = db
            .client()
            .await
            .query_one("SELECT session_id, user_id, user_key FROM archon_mcp_sessions", &[])
            .await
            .unwrap();
        ids_seen.push((row.get::<_, Uuid>(0), row.get::<_, Uuid>(1), row.get::<_, String>(2)));
    }
    assert_eq!(ids_seen[0], ids_seen[1]);
    assert_eq!(ids_seen[0], (ids::session_id("stdio-7"), ids::user_id("bob@corp"), "bob@corp".to_owned()));
}

#[tokio::test]
async fn costs_use_the_price_effective_at_the_request() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    // A price change for a made-up model, in the middle of our two requests.
    client
        .batch_execute(
            "INSERT INTO archon_llm_pricing (model_name, provider, input_price_per_1k, output_price_per_1k, effective_date)
             VALUES ('acme-1', 'Acme', 0.001, 0.002, '2020-01-01'), ('acme-1', 'Acme', 0.010, 0.020, '2024-01-01')",
        )
        .await
        .unwrap();
    let store = db.store(StoreConfig::default().with_estimate_model("acme-1"));
    let mut conn = Conn::new(SESSION_1, "Cursor", None);
    let in_2023 = 1_688_169_600 * SEC; // 2023-07-01
    let spans = vec![
        with_usage(conn.call("old", in_2023, 1), "acme-1", 1000, 1000),
        with_usage(conn.call("new", an_hour_ago(), 1), "acme-1", 1000, 1000),
        with_estimate(conn.call("estimated", an_hour_ago() + SEC, 1), 2000, 0),
        conn.call("reported", an_hour_ago() + 2 * SEC, 1).with_attribute(attr::ARCHON_COST_AMOUNT, 1.5),
        with_usage(conn.call("unknown_model", an_hour_ago() + 3 * SEC, 1), "mystery-9", 1000, 1000),
    ];
    write(&store, &spans).await;
    let costs: Vec<(String, Option<String>, String)> = client
        .query(
            r#"SELECT tool_name::text, estimated_cost::text, token_source::text FROM archon_mcp_requests ORDER BY "timestamp""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expect =
        |tool: &str, cost: Option<&str>, source: &str| (tool.to_owned(), cost.map(str::to_owned), source.to_owned());
    assert_eq!(
        costs,
        [
            expect("old", Some("0.003000"), "reported"),
            expect("new", Some("0.030000"), "reported"),
            expect("estimated", Some("0.020000"), "estimated"),
            expect("reported", Some("1.500000"), "none"),
            expect("unknown_model", None, "reported"),
        ]
    );
}

#[tokio::test]
async fn bad_spans_are_refused_with_reasons_and_the_rest_commits() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let t0 = an_hour_ago();
    let mut conn = Conn::new(SESSION_1, "Claude Code", None);
    let megabyte = "x".repeat(1 << 20);

    let mut backwards = conn.call("backwards", t0, 5);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - SEC;
    let spans = vec![
        conn.call("good", t0, 5),
        conn.call("huge", t0 + SEC, 5)
            .with_attribute(attr::JSONRPC_REQUEST_ID, megabyte.clone())
            .with_status(StatusCode::Error, megabyte),
        conn.call("nul\0byte", t0 + 2 * SEC, 5),
        conn.call("utf8", t0 + 3 * SEC, 5)
            .with_attribute(attr::GEN_AI_TOOL_NAME, Value::Bytes(b"bad\xc3\x28utf8".to_vec())),
        backwards,
        conn.call("odd_status", t0 + 4 * SEC, 5).with_status(StatusCode::Unknown(9), ""),
    ];
    let batch = map_spans(&spans);
    let reasons: Vec<SkipReason> = batch.skipped.iter().map(|s| s.reason).collect();
    assert_eq!(reasons, [SkipReason::EndBeforeStart, SkipReason::UnknownStatusCode]);
    assert!(batch.skipped.iter().all(|s| !s.detail.is_empty()));
    let outcome = store.write(&batch).await.unwrap();
    assert_eq!((outcome.requests_inserted, outcome.rejected.len()), (4, 0));

    let rows: Vec<(String, i32, i32)> = db
        .client()
        .await
        .query(
            r#"SELECT tool_name::text, length(coalesce(jsonrpc_request_id, '')), length(coalesce(error_message, ''))
                 FROM archon_mcp_requests ORDER BY "timestamp""#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows[0].0, "good");
    assert_eq!((rows[1].0.as_str(), rows[1].1, rows[1].2), ("huge", 4096, 4096), "long strings are cut, not refused");
    assert_eq!(rows[2].0, "nulbyte");
    assert_eq!(rows[3].0, "bad\u{fffd}(utf8");
}

#[tokio::test]
async fn rows_the_database_refuses_are_reported_and_the_rest_commits() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let t0 = an_hour_ago();
    let mut conn = Conn::new(SESSION_1, "Claude Code", None);
    let mut batch = map_spans(&[conn.call("good", t0, 5), conn.call("also_good", t0 + SEC, 5)]);
    // Rows made by hand, past the mapping's checks: the schema's constraints still hold.
    let bad = |name: &str, f: &dyn Fn(&mut RequestRow)| {
        let mut row = RequestRow {
            request_id: Uuid::new_v4(),
            session_id: batch.sessions[0].session_id,
            method: "tools/call".into(),
            tool_name: Some(name.into()),
            status: RequestStatus::Success,
            error_type: None,
            error_code: None,
            error_message: None,
            timestamp: UNIX_EPOCH + Duration::from_nanos(t0),
            duration_ms: 1.0,
            prompt_tokens: 0,
            completion_tokens: 0,
            token_source: TokenSource::None,
            model: None,
            reported_cost: None,
            user_id: None,
            trace_id: String::new(),
            span_id: String::new(),
            parent_span_id: None,
            jsonrpc_request_id: None,
        };
        f(&mut row);
        row
    };
    let negative = bad("negative_duration", &|r| r.duration_ms = -5.0);
    let tokens = bad("negative_tokens", &|r| r.prompt_tokens = -1);
    let cost = bad("absurd_cost", &|r| r.reported_cost = Some(1e30));
    let orphan = bad("orphan", &|r| r.session_id = Uuid::new_v4());
    let refused = [negative.request_id, tokens.request_id, cost.request_id, orphan.request_id];
    batch.requests.extend([negative, tokens, cost, orphan]);

    let outcome = store.write(&batch).await.expect("the batch commits");
    assert_eq!(outcome.requests_inserted, 2);
    let rejected: Vec<Uuid> = outcome
        .rejected
        .iter()
        .map(|r| match r.row {
            RowRef::Request(id) => id,
            RowRef::Session(id) => panic!("session {id} refused: {}", r.reason),
        })
        .collect();
    assert_eq!(rejected, refused);
    let reasons: Vec<&str> = outcome.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons[0].contains("non_negative_duration"), "{reasons:?}");
    assert!(reasons[1].contains("non_negative_tokens"), "{reasons:?}");
    assert!(reasons[2].contains("numeric field overflow"), "{reasons:?}");
    assert!(reasons[3].contains("foreign key"), "{reasons:?}");

    let n: i64 = db.client().await.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
}

#[tokio::test]
async fn an_unreachable_database_is_a_retryable_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = PgStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/x"), StoreConfig::default()).unwrap();
    let mut conn = Conn::new(SESSION_1, "Claude Code", None);
    let err = store.write(&map_spans(&[conn.call("a", an_hour_ago(), 1)])).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(err, StoreError::Unavailable(_)));
}

#[tokio::test]
async fn a_missing_schema_says_to_migrate() {
    let db = TestDb::new().await;
    let store = db.store(StoreConfig::default());
    let mut conn = Conn::new(SESSION_1, "Claude Code", None);
    let err = store.write(&map_spans(&[conn.call("a", an_hour_ago(), 1)])).await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("archon-mcp-exporter migrate"), "{err}");
}

#[tokio::test]
async fn sql_looking_strings_are_stored_verbatim() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let nasty = "x'); DROP TABLE archon_mcp_requests; --";
    let user =
        archon_mcp_exporter::testing::TestUser { principal: nasty, email: nasty, name: nasty, department: nasty };
    let mut conn = Conn::new(nasty, nasty, Some(user));
    let span = conn
        .call(nasty, an_hour_ago(), 1)
        .with_attribute(attr::GEN_AI_REQUEST_MODEL, nasty)
        .with_status(StatusCode::Error, nasty);
    write(&store, &[span]).await;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT r.tool_name::text, r.model, r.error_message, s.client_name, s.user_key, s.user_email::text, s.user_department
               FROM archon_mcp_requests r JOIN archon_mcp_sessions s USING (session_id)",
            &[],
        )
        .await
        .unwrap();
    for i in 0..7 {
        assert_eq!(row.get::<_, String>(i), nasty, "column {i}");
    }
}

#[tokio::test]
async fn tls_is_used_when_the_server_offers_it_and_verified_against_a_ca_file() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        eprintln!("this PostgreSQL has ssl=off: TLS not exercised");
        return;
    }
    let required = format!("{} sslmode=require", db.url());
    let store = PgStore::connect(&required, StoreConfig::default()).unwrap();
    let pooled = store.pool().get().await.expect("sslmode=require connects, unverified like libpq");
    let encrypted: bool =
        pooled.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(encrypted);

    // The system's public CAs did not sign this server's certificate: verification refuses it.
    let verified = StoreConfig::default()
        .with_ca_file(Some("/etc/ssl/certs/ca-certificates.crt".into()))
        .with_acquire_timeout(Duration::from_secs(3));
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        let store = PgStore::connect(&required, verified).unwrap();
        assert!(store.pool().get().await.is_err(), "an unknown CA must fail verification");
    }
    let missing = StoreConfig::default().with_ca_file(Some("/nonexistent/ca.pem".into()));
    let err = PgStore::connect(&required, missing).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test]
async fn a_request_without_its_sessions_user_is_billed_to_nobody() {
    let db = TestDb::migrated().await;
    let t0 = an_hour_ago();
    // Alice's session; then a call in it carrying no user (no token, or one that failed), priced.
    let mut alice = Conn::new(SESSION_1, "claude-code", Some(ADA));
    let mut stolen = Conn::new(SESSION_1, "claude-code", None);
    // The anonymous call arrives first: it must neither take the session nor inherit its user.
    let spans = vec![
        with_usage(stolen.call("search", t0 + SEC, 10), "claude-sonnet-4-5", 1000, 1000),
        with_usage(alice.call("search", t0, 10), "claude-sonnet-4-5", 100, 100),
    ];
    write(&db.store(StoreConfig::default()), &spans).await;
    let client = db.client().await;
    let rows = client
        .query("SELECT user_id, estimated_cost::float8 FROM archon_mcp_requests ORDER BY \"timestamp\"", &[])
        .await
        .unwrap();
    let ada = archon_mcp_exporter::ids::user_id(ADA.principal);
    assert_eq!(rows[0].get::<_, Option<uuid::Uuid>>(0), Some(ada));
    assert_eq!(rows[1].get::<_, Option<uuid::Uuid>>(0), None, "the anonymous call is nobody's");
    let session_user: Option<uuid::Uuid> =
        client.query_one("SELECT user_id FROM archon_mcp_sessions", &[]).await.unwrap().get(0);
    assert_eq!(session_user, Some(ada));
    let (requests, cost): (i64, f64) = {
        let row = client
            .query_one(
                "SELECT total_requests::int8, total_cost::float8 FROM archon_mcp_user_stats WHERE user_id = $1",
                &[&ada],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(requests, 1, "Alice is billed for her own call only");
    assert!((cost - rows[0].get::<_, f64>(1)).abs() < 1e-9);
}
