//! The OpenTelemetry environment variables, as an operator sets them for `tool_server`:
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf` with a base `OTEL_EXPORTER_OTLP_ENDPOINT` (the
//! signal path `/v1/traces` appended), and `OTEL_SERVICE_NAME` winning over the name the code
//! gives. Spans go straight to `serve`'s OTLP/HTTP port.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_protobuf_and_service_name_from_the_environment() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let exporter = Exporter::start(&db.url).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let listen = addr.to_string();
    let endpoint = format!("http://{}", exporter.http);
    let secret = std::str::from_utf8(JWT_SECRET).unwrap();
    let server = start_listening(
        env!("CARGO_BIN_EXE_tool_server"),
        &["--transport", "http", "--listen", &listen],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "named-by-the-environment"),
            ("ARCHON_JWT_SECRET", secret),
        ],
        addr,
    )
    .await;
    let ada = connect(addr, "claude-code", "ada", "Research").await;
    ada.call_tool(call("search_knowledge", json!({"query": "otel"}))).await.unwrap();
    ada.cancel().await.unwrap();
    interrupt(server).await;

    let stored = "SELECT count(*) FROM archon_mcp_requests";
    assert_eq!(db.wait_for_count(stored, 1, Duration::from_secs(30)).await, 1, "the call arrived over OTLP/HTTP");
    let sessions = db.rows("SELECT service_name, user_key FROM archon_mcp_sessions").await;
    assert_eq!(sessions, [[Some("named-by-the-environment".to_owned()), Some("ada".to_owned())]]);
    exporter.stop().await;
}
