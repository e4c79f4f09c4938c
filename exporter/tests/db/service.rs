//! `serve` in process, on real ports: OTLP over HTTP (protobuf, JSON, gzip) and gRPC, errors,
//! authentication, an unavailable database, replays and replicas, and the SDK exporter.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use archon_mcp_exporter::BodyLimits;
use archon_mcp_exporter::PgSpanExporter;
use archon_mcp_exporter::ReaperConfig;
use archon_mcp_exporter::ReceiverTls;
use archon_mcp_exporter::testing::{TestDb, otlp_request};
use archon_mcp_exporter::{PgStore, StoreConfig};
use archon_mcp_exporter::{Running, ServeConfig, Server};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message as _;

use crate::fixtures::*;

/// `serve` in process on free ports, tuned by `tune`.
pub(crate) async fn start(database_url: &str, tune: impl FnOnce(&mut ServeConfig)) -> Running {
    let mut config = ServeConfig::new(database_url);
    config.grpc_listen = "127.0.0.1:0".parse().unwrap();
    config.http_listen = "127.0.0.1:0".parse().unwrap();
    config.reaper = None;
    tune(&mut config);
    Server::bind(config).await.expect("bind").spawn()
}

fn url(service: &Running, path: &str) -> String {
    format!("http://{}{path}", service.http_addr())
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn try_post(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    let mut request = http().post(url).header("content-type", content_type).body(body);
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    request.send().await
}

async fn post(url: &str, content_type: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> reqwest::Response {
    try_post(url, content_type, body, extra).await.unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn count(db: &TestDb) -> i64 {
    db.client().await.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn otlp_http_protobuf_json_gzip_and_bad_input() {
    let db = TestDb::migrated().await;
    let service = start(db.url(), |c| {
        c.limits = BodyLimits::default().with_max_body_bytes(256 << 10).with_max_decompressed_bytes(1 << 20);
    })
    .await;
    let traces = url(&service, "/v1/traces");
    let request = otlp_request(&dataset(an_hour_ago()));

    let response = post(&traces, "application/x-protobuf", request.encode_to_vec(), &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let body = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(body.partial_success, None);
    assert_eq!(count(&db).await, 6);

    // The same data as OTLP/JSON (hex ids, string int64s), and gzip-compressed protobuf:
    // accepted, and nothing doubled.
    let json = serde_json::to_vec(&request).unwrap();
    let response = post(&traces, "application/json", json, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let response =
        post(&traces, "application/x-protobuf", gzip(&request.encode_to_vec()), &[("content-encoding", "gzip")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(count(&db).await, 6);

    // One bad span among good ones: partial success, the rest committed.
    let mut conn = Conn::new(SESSION_1, "Claude Code", None);
    let mut backwards = conn.call("backwards", an_hour_ago(), 5);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - SEC;
    let mixed = otlp_request(&[conn.call("good", an_hour_ago(), 5), backwards]);
    let response = post(&traces, "application/json", serde_json::to_vec(&mixed).unwrap(), &[]).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body["partialSuccess"]["rejectedSpans"]
            .as_i64()
            .or_else(|| body["partialSuccess"]["rejectedSpans"].as_str()?.parse().ok()),
        Some(1)
    );
    assert!(body["partialSuccess"]["errorMessage"].as_str().unwrap().contains("end_before_start"));
    assert_eq!(count(&db).await, 7);

    // Undecodable: 400 with a google.rpc.Status in the request's encoding.
    let response = post(&traces, "application/x-protobuf", b"\xff\xff\xff garbage".to_vec(), &[]).await;
    assert_eq!(response.status(), 400);
    let status = response.bytes().await.unwrap();
    assert!(!status.is_empty());
    let response = post(&traces, "application/json", b"{\"resourceSpans\": 7}".to_vec(), &[]).await;
    assert_eq!(response.status(), 400);
    let status: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(status["code"], 3);
    assert!(status["message"].as_str().unwrap().contains("decode"));

    // Too large as sent, too large once decompressed (a gzip bomb), wrong content type.
    let response = post(&traces, "application/x-protobuf", vec![0; 300 << 10], &[]).await;
    assert_eq!(response.status(), 413);
    let bomb = gzip(&vec![0u8; 4 << 20]);
    assert!(bomb.len() < 256 << 10);
    let response = post(&traces, "application/x-protobuf", bomb, &[("content-encoding", "gzip")]).await;
    assert_eq!(response.status(), 413);
    let response = post(&traces, "text/plain", b"hi".to_vec(), &[]).await;
    assert_eq!(response.status(), 415);
    let response = post(&traces, "application/x-protobuf", b"hi".to_vec(), &[("content-encoding", "gzip")]).await;
    assert_eq!(response.status(), 400, "corrupt gzip");

    assert_eq!(http().get(url(&service, "/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(http().get(url(&service, "/readyz")).send().await.unwrap().status(), 200);
    let metrics = http().get(url(&service, "/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("archon_exporter_requests_written_total 7"), "{metrics}");
    assert!(metrics.contains("archon_exporter_spans_rejected_total{reason=\"end_before_start\"} 1"));
    assert!(metrics.contains("archon_exporter_exports_total{outcome=\"invalid\"}"));
    assert!(metrics.contains("archon_exporter_pending_rows 0"), "every answered export released its rows: {metrics}");
    service.stop().await.unwrap();
}

/// Sends `body` as the `Export` message over gRPC, as is: what no well-behaved client sends.
async fn export_raw_grpc(service: &Running, body: Vec<u8>) -> Result<(), tonic::Status> {
    /// Bytes out as they are; the response is only checked to be there.
    #[derive(Clone, Copy)]
    struct Raw;
    impl tonic::codec::Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = ();
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }
    impl tonic::codec::Encoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }
    impl tonic::codec::Decoder for Raw {
        type Item = ();
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
            bytes::Buf::advance(src, bytes::Buf::remaining(src));
            Ok(Some(()))
        }
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", service.grpc_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(tonic::Request::new(body), path, Raw).await.map(drop)
}

#[tokio::test]
async fn grpc_takes_text_that_is_not_utf8_and_refuses_garbage_as_invalid() {
    let db = TestDb::migrated().await;
    let service = start(db.url(), |_| {}).await;
    // A tool name that is not UTF-8: decoded leniently, as over HTTP; the row is written.
    let mut conn = Conn::new(SESSION_1, "Claude Code", None);
    let mut body = otlp_request(&[conn.call("tool-XYZW", an_hour_ago(), 5)]).encode_to_vec();
    while let Some(at) = body.windows(4).position(|w| w == b"XYZW") {
        body[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xff, 0xfe]);
    }
    export_raw_grpc(&service, body).await.expect("accepted");
    assert_eq!(count(&db).await, 1);
    let tool: String =
        db.client().await.query_one("SELECT tool_name FROM archon_mcp_requests", &[]).await.unwrap().get(0);
    assert!(tool.starts_with("tool-\u{fffd}"), "{tool:?}");
    // Not protobuf at all: INVALID_ARGUMENT (not retryable), saying why.
    let status = export_raw_grpc(&service, b"\xff\xff\xff garbage".to_vec()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    assert!(status.message().contains("cannot decode"), "{status}");
    service.stop().await.unwrap();
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let db = TestDb::migrated().await;
    let service = start(db.url(), |c| c.auth_token = Some("s3cret".into())).await;
    let request = otlp_request(&dataset(an_hour_ago()));
    let body = request.encode_to_vec();
    let traces = url(&service, "/v1/traces");
    assert_eq!(post(&traces, "application/x-protobuf", body.clone(), &[]).await.status(), 401);
    assert_eq!(
        post(&traces, "application/x-protobuf", body.clone(), &[("authorization", "Bearer wrong")]).await.status(),
        401
    );
    assert_eq!(
        post(&traces, "application/x-protobuf", body.clone(), &[("authorization", "Bearer s3cret")]).await.status(),
        200
    );

    let mut grpc = TraceServiceClient::connect(format!("http://{}", service.grpc_addr())).await.unwrap();
    let denied = grpc.export(request.clone()).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert("authorization", "Bearer s3cret".parse().unwrap());
    grpc.export(request).await.expect("the right token is accepted");
    assert_eq!(count(&db).await, 6);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn an_unavailable_database_means_retry_later() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let service = start(&format!("postgres://postgres@127.0.0.1:{port}/none"), |c| {
        c.store.acquire_timeout = Duration::from_secs(1);
    })
    .await;
    let body = otlp_request(&dataset(an_hour_ago())).encode_to_vec();
    let response = post(&url(&service, "/v1/traces"), "application/x-protobuf", body, &[]).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "2");

    let mut grpc = TraceServiceClient::connect(format!("http://{}", service.grpc_addr())).await.unwrap();
    let status = grpc.export(otlp_request(&dataset(an_hour_ago()))).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    use tonic_types::StatusExt as _;
    let retry = status.get_details_retry_info().expect("RetryInfo in the status details");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));

    assert_eq!(http().get(url(&service, "/readyz")).send().await.unwrap().status(), 503);
    assert_eq!(http().get(url(&service, "/healthz")).send().await.unwrap().status(), 200);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn replays_and_replicas_give_identical_tables() {
    let request = otlp_request(&dataset(an_hour_ago()));

    let once = TestDb::migrated().await;
    let service = start(once.url(), |_| {}).await;
    TraceServiceClient::connect(format!("http://{}", service.grpc_addr()))
        .await
        .unwrap()
        .export(request.clone())
        .await
        .unwrap();
    service.stop().await.unwrap();
    let expected = dump(&once.client().await).await;

    let many = TestDb::migrated().await;
    let (a, b) = tokio::join!(start(many.url(), |_| {}), start(many.url(), |_| {}));
    let send = |addr: SocketAddr, request: ExportTraceServiceRequest| async move {
        TraceServiceClient::connect(format!("http://{addr}")).await.unwrap().export(request).await.unwrap();
    };
    // Twice to one replica, then to both at once.
    send(a.grpc_addr(), request.clone()).await;
    send(a.grpc_addr(), request.clone()).await;
    tokio::join!(send(a.grpc_addr(), request.clone()), send(b.grpc_addr(), request.clone()));
    let body = request.encode_to_vec();
    let (url_a, url_b) = (url(&a, "/v1/traces"), url(&b, "/v1/traces"));
    let (r1, r2) = tokio::join!(
        post(&url_a, "application/x-protobuf", body.clone(), &[]),
        post(&url_b, "application/x-protobuf", body, &[])
    );
    assert_eq!((r1.status().as_u16(), r2.status().as_u16()), (200, 200));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    assert_eq!(dump(&many.client().await).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_exporter_writes_spans_in_process() {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    let db = TestDb::migrated().await;
    let store = PgStore::connect(db.url(), StoreConfig::default()).unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(opentelemetry_sdk::Resource::builder_empty().with_service_name("kb-direct").build())
        .with_batch_exporter(PgSpanExporter::new(store))
        .build();
    let tracer = provider.tracer("test");
    for i in 0..3 {
        let mut span = tracer
            .span_builder("tools/call search")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("mcp.method.name", "tools/call"),
                KeyValue::new("gen_ai.tool.name", "search"),
                KeyValue::new("session.id", SESSION_1),
                KeyValue::new("mcp.client.name", "Zed"),
                KeyValue::new("gen_ai.request.model", "gpt-4o"),
                KeyValue::new("gen_ai.usage.input_tokens", 1000_i64),
                KeyValue::new("gen_ai.usage.output_tokens", 100_i64 * i),
            ])
            .start(&tracer);
        span.end();
    }
    // force_flush waits for the export, which runs its IO on this runtime's other worker.
    tokio::task::spawn_blocking(move || {
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT count(*), sum(estimated_cost)::text, min(s.service_name), min(s.client_type)
               FROM archon_mcp_requests r JOIN archon_mcp_sessions s USING (session_id)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 3);
    // 3 × 1000 in at $0.0025/1k + (0 + 100 + 200) out at $0.01/1k.
    assert_eq!(row.get::<_, String>(1), "0.010500");
    assert_eq!(row.get::<_, String>(2), "kb-direct");
    assert_eq!(row.get::<_, String>(3), "Zed");
}

#[tokio::test]
async fn the_reaper_idles_then_times_out_and_replicas_do_not_collide() {
    let db = TestDb::migrated().await;
    let store = db.store(StoreConfig::default());
    let now = an_hour_ago() + 3600 * SEC;
    let mut quiet = Conn::new(SESSION_1, "Cursor", None);
    let mut gone = Conn::new(SESSION_2, "Cursor", None);
    let mut busy = Conn::new(SESSION_3, "Cursor", None);
    write(
        &store,
        &[quiet.call("a", now - 600 * SEC, 5), gone.call("a", now - 7200 * SEC, 1000), busy.call("a", now - SEC, 5)],
    )
    .await;

    let config = ReaperConfig::default();
    let (c1, c2) = (db.client().await, db.client().await);
    let (r1, r2) =
        tokio::join!(archon_mcp_exporter::reap_once(&c1, &config), archon_mcp_exporter::reap_once(&c2, &config));
    let rounds = [r1.unwrap(), r2.unwrap()];
    let total = |f: fn(&archon_mcp_exporter::Reaped) -> u64| rounds.iter().map(f).sum::<u64>();
    assert_eq!((total(|r| r.idled), total(|r| r.timed_out)), (1, 1));
    let rows: Vec<(String, String, Option<String>, Option<i32>)> = c1
        .query("SELECT session_id::text, status::text, disconnect_reason::text, total_duration FROM archon_mcp_sessions ORDER BY session_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(rows[0].1, "idle");
    assert_eq!((rows[1].1.as_str(), rows[1].2.as_deref(), rows[1].3), ("disconnected", Some("timeout"), Some(1)));
    assert_eq!(rows[2].1, "active");
    // Activity after idling makes a session active again; a timed-out one stays ended.
    write(&store, &[quiet.call("b", now, 5), gone.call("b", now, 5)]).await;
    let statuses: Vec<String> = c1
        .query("SELECT status::text FROM archon_mcp_sessions ORDER BY session_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["active", "disconnected", "active"]);
}

#[tokio::test]
async fn a_locked_table_means_back_pressure_not_a_hang_or_a_drop() {
    let db = TestDb::migrated().await;
    let service = start(db.url(), |c| c.batcher.write_timeout = Duration::from_secs(2)).await;
    let request = otlp_request(&dataset(an_hour_ago()));
    // Another transaction holds the requests table for 10 s.
    let locker = db.client().await;
    locker.batch_execute("BEGIN; LOCK TABLE archon_mcp_requests IN ACCESS EXCLUSIVE MODE").await.unwrap();

    let started = std::time::Instant::now();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", service.grpc_addr())).await.unwrap();
    let status = grpc.export(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
    assert!(started.elapsed() < Duration::from_secs(8), "answered after the write timeout, not after the lock");
    let response = post(&url(&service, "/v1/traces"), "application/x-protobuf", request.encode_to_vec(), &[]).await;
    assert_eq!(response.status(), 503);

    locker.batch_execute("ROLLBACK").await.unwrap();
    // The sender's retry succeeds, and nothing was half-written meanwhile.
    grpc.export(request).await.expect("accepted once the lock is gone");
    assert_eq!(count(&db).await, 6);
    service.stop().await.unwrap();
}

/// One OTLP/HTTP request over TLS, trusting `ca`; the raw HTTP/1.1 response.
pub(crate) async fn post_over_tls(addr: SocketAddr, ca: &std::path::Path, body: &[u8]) -> std::io::Result<String> {
    use rustls::pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let server_name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(server_name, tcp).await?;
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-protobuf\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(body).await?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test]
async fn the_receivers_serve_tls_when_given_a_certificate() {
    let db = TestDb::migrated().await;
    let certs = archon_mcp_exporter::testing::TestCertificates::generate().expect("test certificates");
    let tls = ReceiverTls::new(&certs.cert, &certs.key);
    let service = start(db.url(), |c| c.tls = Some(tls.clone())).await;
    let body = otlp_request(&dataset(an_hour_ago())).encode_to_vec();

    let response = post_over_tls(service.http_addr(), &certs.ca, &body).await.expect("a TLS exchange");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(count(&db).await, 6);

    // Plain text to the TLS ports is refused, and nothing is written twice.
    assert!(try_post(&url(&service, "/v1/traces"), "application/x-protobuf", body.clone(), &[]).await.is_err());
    let plain = TraceServiceClient::connect(format!("http://{}", service.grpc_addr())).await;
    if let Ok(mut grpc) = plain {
        assert!(grpc.export(otlp_request(&dataset(an_hour_ago()))).await.is_err());
    }
    // A stalled handshake holds no one else up.
    let _stalled = tokio::net::TcpStream::connect(service.http_addr()).await.unwrap();
    let again = post_over_tls(service.http_addr(), &certs.ca, &body).await.expect("a second TLS exchange");
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    assert_eq!(count(&db).await, 6);
    service.stop().await.unwrap();

    // A key that does not match, or a missing file, stops `bind` with the file named.
    let mut config = ServeConfig::new(db.url());
    config.tls = Some(ReceiverTls::new(&certs.cert, &certs.ca));
    let error = Server::bind(config.clone()).await.unwrap_err().to_string();
    assert!(error.contains("ca.pem"), "{error}");
    config.tls = Some(ReceiverTls::new(certs.cert.with_extension("missing"), &certs.key));
    let error = Server::bind(config).await.unwrap_err().to_string();
    assert!(error.contains("server.missing"), "{error}");
}

#[tokio::test]
async fn no_connection_slot_left_means_retry_later_then_everything_lands() {
    let db = TestDb::migrated().await;
    // A login role of the exporter's kind allowed one connection, which someone else holds.
    let role = format!("archon_limited_{}", std::process::id());
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'limited' CONNECTION LIMIT 1 IN ROLE archon_exporter"
        ))
        .await
        .unwrap();
    let as_role = format!("{} user={role} password=limited", db.url());
    let (hog, connection) = tokio_postgres::connect(&as_role, tokio_postgres::NoTls).await.unwrap();
    let hogging = tokio::spawn(connection);
    let service = start(&as_role, |c| c.store.acquire_timeout = Duration::from_secs(1)).await;
    let request = otlp_request(&dataset(an_hour_ago()));

    let started = std::time::Instant::now();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", service.grpc_addr())).await.unwrap();
    let status = grpc.export(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status}");
    let response = post(&url(&service, "/v1/traces"), "application/x-protobuf", request.encode_to_vec(), &[]).await;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(10), "answered promptly, not hung");
    assert_eq!(count(&db).await, 0);

    // The slot comes free: the sender's retry lands, once.
    drop(hog);
    hogging.await.unwrap().unwrap();
    grpc.export(request.clone()).await.expect("accepted once a connection can be had");
    grpc.export(request).await.expect("a duplicate delivery is accepted too");
    assert_eq!(count(&db).await, 6);
    service.stop().await.unwrap();
    admin.batch_execute(&format!("DROP ROLE {role}")).await.unwrap();
}

#[tokio::test]
async fn senders_two_hours_ahead_or_behind_lose_no_span() {
    let db = TestDb::migrated().await;
    let service = start(db.url(), |_| {}).await;
    let now = an_hour_ago() + 3600 * SEC;
    let (mut ahead, mut behind) =
        (Conn::new(SESSION_1, "Cursor", Some(ADA)), Conn::new(SESSION_2, "Cursor", Some(BOB)));
    let mut spans = Vec::new();
    for (conn, skew) in [(&mut ahead, now + 2 * 3600 * SEC), (&mut behind, now - 2 * 3600 * SEC)] {
        for i in 0..5 {
            spans.push(conn.call("search", skew + i * SEC, 5));
        }
    }
    spans.push(ahead.end(now + 2 * 3600 * SEC, now + 2 * 3600 * SEC + 10 * SEC, "client_disconnect"));
    let response =
        post(&url(&service, "/v1/traces"), "application/x-protobuf", otlp_request(&spans).encode_to_vec(), &[]).await;
    assert_eq!(response.status(), 200);
    let answer = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success, None, "nothing refused");
    assert_eq!(count(&db).await, 10, "every span stored");
    assert!(service.metrics().clock_ahead_seconds.get() >= 7_200 - 5, "the skew is measured");

    let client = db.client().await;
    let rows = client
        .query(
            "SELECT user_key, last_activity <= now(), disconnected_at <= now(), total_duration,
                    (metadata ->> 'clock_ahead_ms')::bigint
               FROM archon_mcp_sessions ORDER BY user_key",
            &[],
        )
        .await
        .unwrap();
    let (ada, bob) = (&rows[0], &rows[1]);
    assert_eq!(ada.get::<_, String>(0), ADA.principal);
    assert!(ada.get::<_, bool>(1) && ada.get::<_, bool>(2), "the session ahead lives in the present");
    let ahead_ms = ada.get::<_, Option<i64>>(4).unwrap();
    assert!((7_195_000..=7_215_000).contains(&ahead_ms), "the difference is recorded: {ahead_ms}");
    assert_eq!(bob.get::<_, Option<i64>>(4), None, "a sender behind is nothing to clamp");
    service.stop().await.unwrap();
}
