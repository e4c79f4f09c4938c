//! `serve` under hostile load, on real sockets: unauthenticated and oversized bodies, more
//! connections than it allows, connections that never finish, and a login granted only
//! `archon_exporter`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use archon_mcp_exporter::ConnectionLimits;
use archon_mcp_exporter::testing::{TestDb, otlp_request};
use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::fixtures::*;
use crate::service::start;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The peak resident memory of a process, in MiB.
fn peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// `archon-mcp-exporter serve` as its own process (so its memory is its own), token from a file.
struct ServeProcess {
    child: tokio::process::Child,
    http: SocketAddr,
    grpc: SocketAddr,
}

impl ServeProcess {
    async fn start(db: &TestDb, dir: &std::path::Path, extra: &[&str]) -> Self {
        let token_file = dir.join("token");
        std::fs::write(&token_file, "s3cret-token\n").unwrap();
        let (http, grpc) = (free_addr(), free_addr());
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_archon-mcp-exporter"))
            .args(["serve", "--no-reaper", "--http-listen", &http.to_string(), "--grpc-listen", &grpc.to_string()])
            .arg("--auth-token-file")
            .arg(&token_file)
            .args(extra)
            .env("DATABASE_URL", db.url())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let ready = format!("http://{http}/healthz");
        for _ in 0..200 {
            if reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
                return Self { child, http, grpc };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("serve did not start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_never_hold_more_memory_than_the_budget() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("archon-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let serve = ServeProcess::start(&db, &dir, &["--max-in-flight-bytes", &(48u64 << 20).to_string()]).await;
    let pid = serve.child.id().unwrap();
    let baseline = peak_mib(pid);
    let traces = format!("http://{}/v1/traces", serve.http);
    let body = Bytes::from(vec![0x0a_u8; 15 << 20]); // 15 MB that do not decode
    let client = reqwest::Client::new();

    // 200 at once with a wrong token: refused from the headers, the bodies never read.
    let send = |token: &'static str| {
        let (client, traces, body) = (client.clone(), traces.clone(), body.clone());
        tokio::spawn(async move {
            let response = client
                .post(traces)
                .header("content-type", "application/x-protobuf")
                .header("authorization", format!("Bearer {token}"))
                .body(body)
                .send()
                .await;
            // The server may answer and close before the client has sent it all.
            response.map(|r| r.status().as_u16()).unwrap_or(0)
        })
    };
    let wrong: Vec<_> = (0..200).map(|_| send("wrong")).collect();
    for status in futures::future::join_all(wrong).await {
        assert!(matches!(status.unwrap(), 401 | 0));
    }
    let after_unauthenticated = peak_mib(pid);

    // 100 at once with the right token: held within the 48 MiB budget, the rest told to retry.
    let right: Vec<_> = (0..100).map(|_| send("s3cret-token")).collect();
    let statuses: Vec<u16> = futures::future::join_all(right).await.into_iter().map(Result::unwrap).collect();
    assert!(statuses.iter().all(|s| matches!(s, 400 | 429 | 0)), "{statuses:?}");
    assert!(statuses.contains(&429), "some were over the budget: {statuses:?}");
    let peak = peak_mib(pid);
    println!(
        "serve peak RSS: {baseline} MiB idle, {after_unauthenticated} MiB after 200 × 15 MB unauthenticated, {peak} MiB after 100 × 15 MB authenticated"
    );
    assert!(after_unauthenticated < baseline + 40, "unauthenticated bodies were held: {after_unauthenticated} MiB");
    assert!(peak < 150, "peak RSS {peak} MiB");

    // gRPC: the token is checked before the message is read.
    let mut big = otlp_request(&dataset(an_hour_ago()));
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(20 << 20);
    let mut grpc = TraceServiceClient::connect(format!("http://{}", serve.grpc))
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20);
    let calls = (0..8).map(|_| {
        let mut request = tonic::Request::new(big.clone());
        request.metadata_mut().insert("authorization", "Bearer wrong".parse().unwrap());
        let mut grpc = grpc.clone();
        async move { grpc.export(request).await.unwrap_err().code() }
    });
    for code in futures::future::join_all(calls).await {
        assert_eq!(code, tonic::Code::Unauthenticated);
    }
    let mut ok = tonic::Request::new(otlp_request(&dataset(an_hour_ago())));
    ok.metadata_mut().insert("authorization", "Bearer s3cret-token".parse().unwrap());
    grpc.export(ok).await.expect("the right token is served");
    assert!(peak_mib(pid) < 150, "peak RSS {} MiB after gRPC", peak_mib(pid));

    // 12 at once with the right token: held within the same 48 MiB budget as HTTP bodies, the
    // rest told to retry (RESOURCE_EXHAUSTED with RetryInfo).
    let calls = (0..12).map(|_| {
        let mut request = tonic::Request::new(big.clone());
        request.metadata_mut().insert("authorization", "Bearer s3cret-token".parse().unwrap());
        let mut grpc = grpc.clone();
        async move { grpc.export(request).await.map(|_| ()).map_err(|e| e.code()) }
    });
    let outcomes = futures::future::join_all(calls).await;
    assert!(outcomes.contains(&Err(tonic::Code::ResourceExhausted)), "some were over the budget: {outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(()) | Err(tonic::Code::ResourceExhausted))), "{outcomes:?}");
    let peak = peak_mib(pid);
    println!("serve peak RSS after 12 × 20 MB authenticated gRPC messages: {peak} MiB");
    assert!(peak < 150, "peak RSS {peak} MiB after authenticated gRPC");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_or_that_never_finish_are_closed() {
    let db = TestDb::migrated().await;
    let service = start(db.url(), |c| {
        c.connections = ConnectionLimits::default().with_max_connections(64).with_idle_timeout(Duration::from_secs(1));
    })
    .await;
    let addr = service.http_addr();

    // 200 sockets: silent, a header that never ends, a body that stalls.
    let mut sockets = Vec::new();
    for i in 0..200 {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        match i % 3 {
            0 => {}
            1 => socket.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Ty").await.unwrap_or(()),
            _ => socket
                .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"resou")
                .await
                .unwrap_or(()),
        }
        sockets.push(socket);
    }
    // Within the idle timeout (and at once for those beyond the limit) every one is closed.
    let closed = futures::future::join_all(sockets.iter_mut().map(|socket| async move {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {} // an error response before the close
                }
            }
        });
        read.await.unwrap_or(false)
    }))
    .await;
    assert!(closed.iter().all(|c| *c), "{} of 200 still open", closed.iter().filter(|c| !**c).count());

    // And the service answers again.
    let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let export = reqwest::Client::new()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(otlp_request(&dataset(an_hour_ago())).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_works_for_a_login_granted_only_archon_exporter_and_floods_share_one_check() {
    let db = TestDb::migrated().await;
    let admin = db.client().await;
    let name =
        format!("exporter_{}", admin.query_one("SELECT current_database()", &[]).await.unwrap().get::<_, String>(0));
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN PASSWORD 'pw'; GRANT archon_exporter TO {name};"
        ))
        .await
        .unwrap();
    // Later keys win: the same database, as the exporter login.
    let url = format!("{} user={name} password=pw", db.url());
    let service = start(&url, |_| {}).await;
    let ready = format!("http://{}/readyz", service.http_addr());
    let answers = futures::future::join_all((0..200).map(|_| reqwest::get(&ready))).await;
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    }
    // A flood costs at most a check every 2 s, not a connection each.
    let checks: i64 = admin
        .query_one(&format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{name}'"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(checks <= 3, "{checks} connections for readiness");
    let export = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", service.http_addr()))
        .header("content-type", "application/x-protobuf")
        .body(otlp_request(&dataset(an_hour_ago())).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200, "the exporter login writes");
    service.stop().await.unwrap();
    drop(admin);
    let admin = db.client().await;
    admin.batch_execute(&format!("DROP OWNED BY {name}; DROP ROLE {name}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_larger_than_the_pending_budget_is_stored_in_full() {
    let db = TestDb::migrated().await;
    let service = start(db.url(), |c| {
        // Scaled down: an export of 5× the pending budget, 25× a transaction.
        c.batcher.max_pending_rows = 1_000;
        c.batcher.max_batch_rows = 200;
    })
    .await;
    let t0 = an_hour_ago();
    let mut conns: Vec<Conn> =
        (0..50).map(|i| Conn::new(&format!("0195f3a0-0000-7000-8000-{i:012}"), "Claude Code", Some(ADA))).collect();
    let spans: Vec<_> = (0..5_000u64).map(|i| conns[(i % 50) as usize].call("search", t0 + i * MS, 1)).collect();
    let export = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", service.http_addr()))
        .header("content-type", "application/x-protobuf")
        .body(otlp_request(&spans).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200, "{}", export.text().await.unwrap());
    let client = db.client().await;
    let stored: i64 = client.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await.unwrap().get(0);
    assert_eq!(stored, 5_000);
    let sessions: i64 = client.query_one("SELECT count(*) FROM archon_mcp_sessions", &[]).await.unwrap().get(0);
    assert_eq!(sessions, 50);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn one_span_with_broken_text_does_not_lose_the_export() {
    let db = TestDb::migrated().await;
    let service = start(db.url(), |_| {}).await;
    let traces = format!("http://{}/v1/traces", service.http_addr());
    let mut conn = Conn::new(SESSION_1, "Claude Code", Some(ADA));
    let t0 = an_hour_ago();
    let request = otlp_request(&[conn.call("good_tool", t0, 5), conn.call("bad_toolQ", t0 + SEC, 5)]);

    // Protobuf: one tool name with a byte that is not UTF-8.
    let mut body = request.encode_to_vec();
    let places: Vec<usize> =
        body.windows(9).enumerate().filter(|(_, w)| *w == b"bad_toolQ").map(|(i, _)| i + 8).collect();
    assert!(!places.is_empty());
    for at in places {
        body[at] = 0xff;
    }
    let post = |content_type: &'static str, body: Vec<u8>| {
        reqwest::Client::new().post(&traces).header("content-type", content_type).body(body).send()
    };
    let response = post("application/x-protobuf", body).await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    // JSON: a lone surrogate in another span's tool name.
    let request = otlp_request(&[conn.call("json_good", t0 + 2 * SEC, 5), conn.call("json_badQ", t0 + 3 * SEC, 5)]);
    let json = serde_json::to_string(&request).unwrap().replace("json_badQ", "json_bad\\ud800");
    let response = post("application/json", json.into_bytes()).await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let client = db.client().await;
    let tools: Vec<String> = client
        .query("SELECT tool_name FROM archon_mcp_requests ORDER BY \"timestamp\"", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tools, ["good_tool", "bad_tool\u{fffd}", "json_good", "json_bad\u{fffd}"]);
    service.stop().await.unwrap();
}

/// A hostile HTTP/2 client written frame by frame, so it obeys no limit the server announces:
/// one connection, no token, `streams` streams of an OTLP/gRPC export each with 16 KiB of a
/// message it never finishes. Everything the server sends is read and dropped, so the server
/// is never slowed by its own writes. Returns the streams it opened before the server closed
/// the connection.
async fn h2_stream_flood(addr: SocketAddr, streams: u32, whole_requests_unread: bool) -> u32 {
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }
    // HPACK: every field a literal without indexing, new name, no Huffman (all under 127 bytes).
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
        (":authority", "serve"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    // A gRPC message announced as 1 MiB, of which 16 KiB are sent.
    let mut data = vec![0u8, 0, 0x10, 0, 0];
    data.resize(16 << 10, 0x0a);

    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = socket.into_split();
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        if whole_requests_unread {
            std::future::pending::<()>().await;
        }
        while matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    opening.extend(frame(4, 0, 0, &[]));
    if write.write_all(&opening).await.is_err() {
        return 0;
    }
    let mut opened = 0;
    for chunk in (0..streams).collect::<Vec<_>>().chunks(64) {
        let mut burst = Vec::new();
        for i in chunk {
            let stream = 2 * i + 1;
            if whole_requests_unread {
                burst.extend(frame(1, 0x4 | 0x1, stream, &block));
            } else {
                burst.extend(frame(1, 0x4, stream, &block));
                burst.extend(frame(0, 0, stream, &data));
            }
        }
        if write.write_all(&burst).await.is_err() {
            break;
        }
        opened += chunk.len() as u32;
    }
    drop(write);
    drain.abort();
    opened
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_http2_stream_flood_is_bounded_and_exports_go_on() {
    let db = TestDb::migrated().await;
    let dir = std::env::temp_dir().join(format!("archon-h2-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let serve = ServeProcess::start(&db, &dir, &[]).await;
    let pid = serve.child.id().unwrap();
    let baseline = peak_mib(pid);

    // Four connections flooding at once, 20,000 streams each (320 MB of message bytes each).
    let floods: Vec<_> = (0..4).map(|i| tokio::spawn(h2_stream_flood(serve.grpc, 200_000, i % 2 == 0))).collect();
    // A collector with the token exports during it.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", serve.grpc)).await.unwrap();
    for _ in 0..5 {
        let mut ok = tonic::Request::new(otlp_request(&dataset(an_hour_ago())));
        ok.metadata_mut().insert("authorization", "Bearer s3cret-token".parse().unwrap());
        grpc.export(ok).await.expect("a legitimate export during the flood");
    }
    let opened: Vec<u32> = futures::future::join_all(floods).await.into_iter().map(Result::unwrap).collect();
    let peak = peak_mib(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    println!(
        "serve peak RSS: {baseline} MiB idle, {peak} MiB during 4 floods (streams sent: {opened:?}); now {}",
        now.lines().find(|l| l.starts_with("VmRSS:")).unwrap()
    );
    assert!(peak < baseline + 100, "the flood held {} MiB", peak - baseline);
    let mut ok = tonic::Request::new(otlp_request(&dataset(an_hour_ago())));
    ok.metadata_mut().insert("authorization", "Bearer s3cret-token".parse().unwrap());
    grpc.export(ok).await.expect("and after it");
    std::fs::remove_dir_all(&dir).ok();
}

/// Connections that send a byte now and then but never a whole request, as a slowloris does:
/// HTTP/1 header fragments and HTTP/2 pings on a connection without streams, every 200 ms.
/// Returns the tasks; each ends when the server closes its connection.
async fn tricklers(addr: SocketAddr, http1: usize, http2: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..http1 + http2 {
        let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await else { continue };
        tasks.push(tokio::spawn(async move {
            let (opening, again): (Vec<u8>, Vec<u8>) = if i < http1 {
                (b"POST /v1/traces HTTP/1.1\r\nx-a: ".to_vec(), b"a".to_vec())
            } else {
                // The HTTP/2 preface, an empty SETTINGS, then a PING (8 bytes of payload) each time.
                let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
                preface.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
                (preface, vec![0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
            };
            if socket.write_all(&opening).await.is_err() {
                return;
            }
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    read = socket.read(&mut buf) => if !matches!(read, Ok(n) if n > 0) { return },
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if socket.write_all(&again).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_on_every_slot_keeps_no_export_out() {
    let db = TestDb::migrated().await;
    // The idle timeout is far off: what lets the exports in is the budget's eviction.
    let service = start(db.url(), |c| c.connections = ConnectionLimits::default().with_max_connections(32)).await;
    let tricklers = tricklers(service.http_addr(), 24, 24).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let body = otlp_request(&dataset(an_hour_ago())).encode_to_vec();
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let export = http
            .post(format!("http://{}/v1/traces", service.http_addr()))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await
            .expect("an export while every slot trickles");
        assert_eq!(export.status(), 200);
        let mut grpc = TraceServiceClient::connect(format!("http://{}", service.grpc_addr())).await.unwrap();
        grpc.export(otlp_request(&dataset(an_hour_ago()))).await.expect("a gRPC export while every slot trickles");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let closed = tricklers.iter().filter(|t| t.is_finished()).count();
    println!("{closed} of {} trickling connections closed to make room", tricklers.len());
    assert!(closed >= 16, "the exports took slots of tricklers: {closed} closed");
    for t in tricklers {
        t.abort();
    }
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_on_every_slot_keep_no_export_out() {
    let db = TestDb::migrated().await;
    let certs = archon_mcp_exporter::testing::TestCertificates::generate().expect("test certificates");
    let tls = archon_mcp_exporter::ReceiverTls::new(&certs.cert, &certs.key);
    let service = start(db.url(), |c| {
        c.tls = Some(tls);
        c.connections = ConnectionLimits::default().with_max_connections(32);
    })
    .await;
    // Twice the budget of handshakes that never finish: a TLS record header, then nothing.
    let mut stalled = Vec::new();
    for _ in 0..64 {
        let mut socket = tokio::net::TcpStream::connect(service.http_addr()).await.unwrap();
        let _ = socket.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await;
        stalled.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = otlp_request(&dataset(an_hour_ago())).encode_to_vec();
    for _ in 0..3 {
        let response = crate::service::post_over_tls(service.http_addr(), &certs.ca, &body)
            .await
            .expect("a TLS export while every slot holds a stalled handshake");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    drop(stalled);
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_now_and_then_is_not_progress() {
    let db = TestDb::migrated().await;
    let limits = ConnectionLimits::default()
        .with_idle_timeout(Duration::from_secs(1))
        .with_header_timeout(Duration::from_secs(1))
        .with_body_timeout(Duration::from_secs(2));
    let service = start(db.url(), |c| c.connections = limits).await;
    // Header fragments and pings every 200 ms: closed once the wait for a request is over.
    let tricklers = tricklers(service.http_addr(), 4, 4).await;
    // A body of 1,000 bytes sent a byte every 200 ms: answered (or closed) at its deadline.
    let mut slow_body = tokio::net::TcpStream::connect(service.http_addr()).await.unwrap();
    slow_body
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n",
        )
        .await
        .unwrap();
    let body_ended = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            tokio::select! {
                read = slow_body.read(&mut buf) => return String::from_utf8_lossy(&buf[..read.unwrap_or(0)]).into_owned(),
                () = tokio::time::sleep(Duration::from_millis(200)) => if slow_body.write_all(b" ").await.is_err() {
                    return String::new();
                },
            }
        }
    });
    let all_closed = tokio::time::timeout(Duration::from_secs(8), async {
        for t in tricklers {
            t.await.unwrap();
        }
        body_ended.await.unwrap()
    })
    .await;
    let answer = all_closed.expect("every trickling connection closed within 8 s");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "the slow body is refused: {answer}");
    service.stop().await.unwrap();
}
