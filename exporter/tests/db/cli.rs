//! The command line as a user meets it: errors that say what happened, to what, and what to do.

use archon_mcp_exporter::testing::TestDb;

fn run(args: &[&str], database_url: &str) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_archon-mcp-exporter"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn retention_says_which_interval_it_read_and_refuses_an_ambiguous_one() {
    let db = TestDb::migrated().await;
    let (code, _, err) = run(&["retention", "--keep", "3m", "--dry-run"], db.url());
    assert_eq!(code, Some(1));
    assert!(err.contains("ambiguous") && err.contains("3mo"), "{err}");
    let (code, out, err) = run(&["retention", "--keep", "3mo", "--dry-run"], db.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("keeping 3 months: dropping whole months of requests before 20"), "{out}");
    let (code, _, err) = run(&["retention", "--keep", "soon", "--dry-run"], db.url());
    assert_eq!(code, Some(1));
    assert!(err.contains("not an interval PostgreSQL reads"), "{err}");
}

#[tokio::test]
async fn serve_takes_host_names_and_names_the_flag_of_a_taken_port() {
    let db = TestDb::migrated().await;
    // Taken on the address `localhost` resolves to first, which is where serve will bind.
    use std::net::ToSocketAddrs as _;
    let localhost = "localhost:0".to_socket_addrs().unwrap().next().unwrap();
    let taken = std::net::TcpListener::bind(localhost).unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(
        &["serve", "--no-reaper", "--grpc-listen", &format!("localhost:{port}"), "--http-listen", "localhost:0"],
        db.url(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!(":{port} (OTLP/gRPC)")) && err.contains("--grpc-listen"), "{err}");
    let (code, _, err) = run(&["serve", "--grpc-listen", "nowhere:"], db.url());
    assert_eq!(code, Some(2));
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[tokio::test]
async fn connection_errors_name_the_server_and_say_what_went_wrong() {
    let db = TestDb::migrated().await;
    // A database that does not exist on a server that does: PostgreSQL's own words, and where.
    // (The test database's string is key=value; a later `dbname` wins.)
    let missing = format!("{} dbname=archon_no_such_db", db.url());
    let (code, _, err) = run(&["migrate"], &missing);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("database \"archon_no_such_db\" does not exist") && err.contains("/archon_no_such_db"),
        "{err}"
    );
    // Nothing listening: the host and port, and the reason.
    let (code, _, err) = run(&["budgets", "list"], "postgres://archon@127.0.0.1:1/archon?connect_timeout=2");
    assert_eq!(code, Some(1));
    assert!(err.contains("archon@127.0.0.1:1/archon") && err.contains("refused"), "{err}");
    assert!(err.contains("--database-url"), "what to check next: {err}");
    // A string that does not parse: what the forms are.
    let (code, _, err) = run(&["migrate"], "postgres://archon@db:notaport/archon");
    assert_eq!(code, Some(1));
    assert!(err.contains("expected postgres://user[:password]@host[:port]/database"), "{err}");
}

#[tokio::test]
async fn an_empty_or_blank_token_is_a_start_up_error_not_authentication_off() {
    let db = TestDb::migrated().await;
    let file = std::env::temp_dir().join(format!("archon-blank-token-{}", std::process::id()));
    for blank in ["", " \n\t\n"] {
        std::fs::write(&file, blank).unwrap();
        let (code, _, err) = run(
            &["serve", "--no-reaper", "--auth-token-file", file.to_str().unwrap(), "--http-listen", "127.0.0.1:0"],
            db.url(),
        );
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("--auth-token-file") && err.contains("is empty"), "{err}");
    }
    std::fs::remove_file(&file).unwrap();
    let (code, _, err) = run(&["serve", "--no-reaper", "--auth-token", " ", "--http-listen", "127.0.0.1:0"], db.url());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--auth-token is empty"), "{err}");
    assert!(err.contains("--auth-token is visible to every local user"), "the flag is warned about too: {err}");
}

#[tokio::test]
async fn budgets_list_shows_control_characters_escaped_not_executed() {
    let db = TestDb::migrated().await;
    let hostile = "user:eve\u{1b}]0;owned\u{7}\u{1b}[2J";
    let (code, out, err) = run(&["budgets", "set", "--scope", hostile, "--monthly", "5"], db.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    let (code, out, err) = run(&["budgets", "list"], db.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
    assert!(out.contains(r"user:eve\u{1b}]0;owned\u{7}\u{1b}[2J"), "{out}");
}

#[tokio::test]
async fn migrate_says_what_it_found_and_a_dry_run_changes_nothing() {
    let db = TestDb::new().await;
    db.client().await.batch_execute("CREATE TABLE archon_mcp_sessions (id int)").await.unwrap();
    let (code, _, err) = run(&["migrate"], db.url());
    assert_eq!(code, Some(1));
    assert!(err.contains("archon_mcp_sessions (id)") && err.contains("nothing was changed"), "{err}");
    assert!(
        !err.contains("check --database-url") && err.matches("db error").count() == 0,
        "no misleading words: {err}"
    );

    let fresh = TestDb::new().await;
    let (code, out, err) = run(&["migrate", "--dry-run"], fresh.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("would apply V1__sessions_and_requests") && out.contains("nothing was changed"), "{out}");
    let (code, out, _) = run(&["migrate"], fresh.url());
    assert_eq!(code, Some(0));
    assert!(out.contains("applied V1__sessions_and_requests"), "{out}");
}

#[tokio::test]
async fn budget_commands_take_the_database_url_before_or_after_the_subcommand() {
    let db = TestDb::migrated().await;
    let run_without_env = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_archon-mcp-exporter"))
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, err) =
        run_without_env(&["budgets", "set", "--database-url", db.url(), "--scope", "all", "--monthly", "5"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run_without_env(&["budgets", "--database-url", db.url(), "list"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run_without_env(&["budgets", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--database-url URL (before or after the subcommand) or DATABASE_URL"), "{err}");
}

#[tokio::test]
async fn serve_on_an_unmigrated_database_says_to_migrate() {
    let db = TestDb::new().await;
    let (code, _, err) =
        run(&["serve", "--no-reaper", "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"], db.url());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("migration(s) behind") && err.contains("archon-mcp-exporter migrate"), "{err}");
}

#[tokio::test]
async fn users_export_and_forget_from_the_command_line() {
    let db = TestDb::migrated().await;
    let (code, out, err) = run(&["users", "export", "--user", "nobody"], db.url());
    assert_eq!(code, Some(0), "{err}");
    let document: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(document["sessions"], serde_json::json!([]));
    let (code, out, err) = run(&["users", "forget", "--email", "Nobody@Example.com", "--dry-run"], db.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("would delete") && out.contains("dry run"), "{out}");
    let (code, _, err) = run(&["users", "forget", "--user", "x", "--policy", "pseudonymise"], db.url());
    assert_eq!(code, Some(1));
    assert!(err.contains("--pseudonym-key-file"), "{err}");
    let (code, _, err) = run(&["users", "forget"], db.url());
    assert_eq!(code, Some(2), "no subject is a usage error: {err}");
}

#[tokio::test]
async fn serve_needs_a_key_to_hash_personal_fields() {
    let db = TestDb::migrated().await;
    let (code, _, err) = run(&["serve", "--minimise-email", "hash", "--grpc-listen", "127.0.0.1:0"], db.url());
    assert_eq!(code, Some(1));
    assert!(err.contains("--minimise-key-file"), "{err}");
    let (code, _, err) = run(&["serve", "--minimise-name", "shred"], db.url());
    assert_eq!(code, Some(2), "an unknown policy is a usage error");
    assert!(err.contains("store, hash or drop"), "{err}");
}

#[tokio::test]
async fn rollups_rebuild_from_the_command_line() {
    let db = TestDb::migrated().await;
    let (code, out, err) =
        run(&["rollups", "rebuild", "--from", "2026-11-01", "--to", "2026-11-01 23:00+00"], db.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("rebuilt the rollups of 24 hours"), "{out}");
    let (code, _, err) = run(&["rollups", "rebuild", "--from", "yesterday-ish", "--to", "now"], db.url());
    assert_eq!(code, Some(1));
    assert!(err.contains("dates PostgreSQL reads"), "{err}");
}

/// Retention by tier (issue #35): the raw months go at --keep, their hourly rollups stay — the
/// year still reads the same — until --keep-rollups, which may not be shorter.
#[tokio::test]
async fn retention_keeps_the_rollups_of_dropped_months_until_keep_rollups() {
    use crate::fixtures::*;
    use archon_mcp_exporter::StoreConfig;
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let client = db.client().await;
    client.query("SELECT archon_mcp_create_request_partitions(1, (current_date - 400))", &[]).await.unwrap();
    let mut old = Conn::new(SESSION_1, "Cursor", Some(ADA));
    let mut recent = Conn::new(SESSION_2, "Cursor", Some(ADA));
    let days_ago = |days: u64| an_hour_ago() - days * 86_400 * SEC;
    let spans = vec![
        old.call("a", days_ago(399), 5),
        old.call("b", days_ago(398), 5),
        old.end(days_ago(399), days_ago(398) + SEC, "client_disconnect"),
        recent.call("c", an_hour_ago(), 5),
    ];
    write(&store, &spans).await;
    client.query_one("SELECT archon_mcp_rollup_rebuild(now() - interval '400 days', now())", &[]).await.unwrap();
    let year = "SELECT sum(requests)::bigint FROM archon_mcp_usage_hours(now() - interval '401 days', now())";
    let requests = async || client.query_one(year, &[]).await.unwrap().get::<_, Option<i64>>(0);
    assert_eq!(requests().await, Some(3));

    let (code, _, err) = run(&["retention", "--keep", "365d", "--keep-rollups", "30d"], db.url());
    assert_eq!(code, Some(1));
    assert!(err.contains("--keep-rollups 30 days is shorter than --keep 365 days"), "{err}");

    let (code, out, err) = run(&["retention", "--keep", "365d"], db.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("kept the rollups of every hour"), "{out}");
    let raw: i64 = client.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await.unwrap().get(0);
    assert_eq!(raw, 1, "the old months' rows went");
    assert_eq!(requests().await, Some(3), "the year reads the same from the rollups");
    // A rebuild over the dropped months does not erase what only the rollups still know.
    client.query_one("SELECT archon_mcp_rollup_rebuild(now() - interval '400 days', now())", &[]).await.unwrap();
    assert_eq!(requests().await, Some(3));

    let (code, out, err) = run(&["retention", "--keep", "365d", "--keep-rollups", "2y", "--dry-run"], db.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("would delete 0 rollup rows"), "{out}");
    let (code, out, err) = run(&["retention", "--keep", "365d", "--keep-rollups", "380d"], db.url());
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("deleted 13 rollup rows"),
        "two hourly, two per tool and hour, two session-hours, two per tool and day, two per user, two session-days, \
         a session's total: {out}"
    );
    assert_eq!(requests().await, Some(1));
}
