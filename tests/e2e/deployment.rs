//! The "Trying it on your own deployment" path of docs/exporter.md, as a new user runs it: `serve
//! --estimate-model` → rotel → `tool_server` (the released binary, JWT users) → the `load`
//! binary. Every simulated user must come out with reported and estimated tokens and a
//! non-zero cost.

use std::time::Duration;

use crate::harness::*;

/// Runs `load` against `url` calling `tool`, its clients traced to `otlp`, and returns what it
/// printed.
async fn load(url: &str, secret: &str, tool: &str, otlp: &str) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_load"))
        .args(["--url", url, "--jwt-secret", secret, "--rate", "40", "--concurrency", "3", "--users", "6"])
        .args(["--duration", "2", "--tool", tool, "--otlp-endpoint", otlp])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "load failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_deployment_path_bills_every_user() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let exporter = Exporter::start_with(&db.url, |config| {
        config.store.estimate_model = Some("claude-sonnet-4-5".into());
    })
    .await;
    let Some(collector) = Collector::start(exporter.grpc).await else { return };

    let secret = "change-me-0123456789";
    let secret_file = std::env::temp_dir().join(format!("archon-jwt-{}", std::process::id()));
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let otlp = format!("http://{}", collector.grpc);
    let listen = addr.to_string();
    let args = ["--transport", "http", "--listen", &listen, "--otlp-endpoint", &otlp];
    let secret_arg = ["--jwt-secret-file", secret_file.to_str().unwrap()];
    let server =
        start_listening(env!("CARGO_BIN_EXE_tool_server"), &[&args[..], &secret_arg[..]].concat(), &[], addr).await;

    let url = format!("http://{addr}/mcp");
    for tool in ["summarize_document", "search_knowledge"] {
        let printed = load(&url, secret, tool, &otlp).await;
        assert!(printed.contains(" 0 failed, from 6 users"), "{tool}: {printed}");
    }
    // SIGINT: tool_server ends its sessions and flushes its spans before it exits.
    interrupt(server).await;
    let _ = std::fs::remove_file(&secret_file);

    let ended = "SELECT count(*) FROM archon_mcp_sessions WHERE status = 'disconnected'";
    assert!(db.wait_for_count(ended, 12, Duration::from_secs(30)).await >= 12, "each load run's sessions end");
    let users = db
        .rows(
            "SELECT user_key, reported_tokens::text, estimated_tokens::text, total_cost::text
               FROM archon_mcp_user_stats ORDER BY user_key",
        )
        .await;
    assert_eq!(users.len(), 6, "six users: {users:?}");
    for row in &users {
        let number = |i: usize| row[i].as_deref().unwrap_or("0").parse::<f64>().unwrap();
        assert!(number(1) > 0.0, "reported tokens (summarize_document reports usage): {row:?}");
        assert!(number(2) > 0.0, "estimated tokens (search_knowledge reports none): {row:?}");
        assert!(number(3) > 0.0, "a cost: {row:?}");
    }
    assert_eq!(db.query_i64("SELECT count(*) FROM archon_mcp_requests WHERE token_source = 'none'").await, 0);
    // The clients were traced (issue #33): each call's row names its client span, which the
    // exporter skipped, counted, rather than stored.
    assert_eq!(db.query_i64("SELECT count(*) FROM archon_mcp_requests WHERE parent_span_id IS NULL").await, 0);
    let skipped = exporter.metrics.spans_ignored.get("client_span");
    assert!(skipped > 0, "client spans are skipped with their reason");
    drop(collector);
    exporter.stop().await;
}

#[tokio::test]
async fn tool_server_refuses_an_empty_or_short_jwt_secret_and_warns_of_secrets_in_flags() {
    let file = std::env::temp_dir().join(format!("archon-blank-jwt-{}", std::process::id()));
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tool_server"))
            .args(["--transport", "stdio", "--otlp-endpoint", "http://127.0.0.1:9"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    for (content, says) in [("\n", "is empty"), ("change-me\n", "is 9 bytes: at least 16")] {
        std::fs::write(&file, content).unwrap();
        let (ok, err) = run(&["--jwt-secret-file", file.to_str().unwrap()]);
        assert!(!ok && err.contains("--jwt-secret-file") && err.contains(says), "{content:?}: {err}");
    }
    std::fs::remove_file(&file).unwrap();
    let (ok, err) = run(&["--jwt-secret", "", "--budgets-database-url", "postgres://u:pw@127.0.0.1:9/x"]);
    assert!(!ok && err.contains("--jwt-secret is empty"), "{err}");
    assert!(err.contains("a password in a connection string is visible"), "{err}");
}

/// The README's instrumenting path with the subscriber rmcp's examples set up — `fmt()` with
/// an `EnvFilter` — and the layer added to it: it starts (it panicked), and a tool that reports
/// no usage still gets a row with tokens and a cost (estimation is on by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_path_with_fmt_and_an_env_filter_gets_rows_with_cost() {
    use archon_mcp_exporter::{PgSpanExporter, PgStore, StoreConfig};
    use archon_mcp_instrument::{Telemetry, TracedConfig, TracedExt as _};
    use rmcp::ServiceExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let store = PgStore::connect(&db.url, StoreConfig::default().with_estimate_model("claude-sonnet-4-5")).unwrap();
    let telemetry = Telemetry::builder()
        .service_name("readme-server")
        .exporter(PgSpanExporter::new(store))
        .build_provider()
        .unwrap();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,rmcp=warn"))
        .with_writer(std::io::sink)
        .finish()
        .with(archon_mcp_instrument::layer(telemetry.provider()));
    let _subscriber = tracing::subscriber::set_default(subscriber);

    let (server_io, client_io) = tokio::io::duplex(64 << 10);
    let server = archon_mcp_otel::knowledge::KnowledgeServer::new().traced(TracedConfig::default());
    let served = tokio::spawn(async move { server.serve(server_io).await.unwrap().waiting().await });
    let client = ().serve(client_io).await.unwrap();
    client.call_tool(call("search_knowledge", serde_json::json!({"query": "sessions"}))).await.unwrap();
    client.cancel().await.unwrap();
    let _ = served.await;
    // The exporter writes on this runtime: shut down off it, as `Drop` in `main` would be.
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.unwrap();

    let rows = db
        .rows(
            "SELECT token_source::text, (prompt_tokens > 0)::text, (estimated_cost > 0)::text FROM archon_mcp_requests",
        )
        .await;
    let expected = [Some("estimated".to_owned()), Some("true".to_owned()), Some("true".to_owned())];
    assert_eq!(rows, [expected], "one row, with estimated tokens and a cost");
}
