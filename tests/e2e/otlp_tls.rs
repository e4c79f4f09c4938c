//! `Telemetry` exporting to an `https://` collector endpoint (gRPC over TLS): the system's roots
//! plus a private CA file, as `OTEL_EXPORTER_OTLP_CERTIFICATE` or `.otlp_ca_file(..)` give it.

use archon_mcp_exporter::ReceiverTls;
use archon_mcp_exporter::testing::TestCertificates;
use archon_mcp_instrument::{Telemetry, TracedConfig, TracedExt};
use archon_mcp_otel::knowledge::KnowledgeServer;
use opentelemetry::trace::TracerProvider as _;
use rmcp::ServiceExt as _;
use rmcp::model::ClientConfig;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_collector_trusted_through_a_ca_file() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let db = Database::start().await;
    let certs = TestCertificates::generate().expect("test certificates (openssl)");
    let exporter = Exporter::start_with(&db.url, |c| c.tls = Some(ReceiverTls::new(&certs.cert, &certs.key))).await;

    let telemetry = Telemetry::builder()
        .service_name("tls-client")
        .otlp_endpoint(format!("https://localhost:{}", exporter.grpc.port()))
        .otlp_ca_file(&certs.ca)
        .build_provider()
        .expect("an https endpoint with a CA file");
    let config = TracedConfig::builder().tracer(telemetry.provider().tracer("tls")).build();
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let server = KnowledgeServer::new().traced(config).serve(server_io).await.unwrap();
        let _ = server.waiting().await;
    });
    let client = ClientConfig::default().serve(client_io).await.unwrap();
    for query in ["rust", "tls"] {
        client.call_tool(call("search_knowledge", json!({"query": query}))).await.unwrap();
    }
    client.cancel().await.unwrap();
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.unwrap();

    for _ in 0..100 {
        if db.query_i64("SELECT count(*) FROM archon_mcp_requests").await == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(db.query_i64("SELECT count(*) FROM archon_mcp_requests").await, 2, "both calls arrived over TLS");
    exporter.stop().await;
}
