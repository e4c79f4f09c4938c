//! `tool_server` stopped with SIGINT while streamable-HTTP clients hold connections: it exits
//! within 2 s, and their sessions are stored as ended by `server_shutdown` at the signal.

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_server_stops_on_sigint_with_clients_connected_and_ends_their_sessions_then() {
    let _turn = ONE_PIPELINE_AT_A_TIME.lock().await;
    let db = Database::start().await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let secret = std::str::from_utf8(JWT_SECRET).unwrap();
    // It migrates first; on a busy 2-core machine a debug build takes its time.
    let listen = addr.to_string();
    let mut server = start_listening(
        env!("CARGO_BIN_EXE_tool_server"),
        &["--transport", "http", "--listen", &listen, "--database-url", &db.url, "--jwt-secret", secret],
        &[],
        addr,
    )
    .await;

    // Two clients connected (each with its event stream open), one call each.
    let ada = connect(addr, "claude-code", "ada", "Research").await;
    let bob = connect(addr, "Cursor", "bob", "Sales").await;
    ada.call_tool(call("search_knowledge", json!({"query": "rust"}))).await.unwrap();
    bob.call_tool(call("search_knowledge", json!({"query": "sql"}))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let signalled = SystemTime::now();
    let sent = Instant::now();
    let status = std::process::Command::new("kill").args(["-INT", &server.id().unwrap().to_string()]).status().unwrap();
    assert!(status.success());
    let exited =
        tokio::time::timeout(Duration::from_secs(10), server.wait()).await.expect("tool_server exits").unwrap();
    let took = sent.elapsed();
    assert!(exited.success(), "exit status {exited}");
    assert!(took < Duration::from_secs(2), "tool_server took {took:?} to stop");

    let signalled_s = signalled.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    let sessions = db
        .rows(&format!(
            "SELECT client_name, disconnect_reason, status,
                    abs(extract(epoch FROM disconnected_at) - {signalled_s})::float8::text,
                    (SELECT count(*) FROM archon_mcp_requests r WHERE r.session_id = s.session_id)::text
               FROM archon_mcp_sessions s ORDER BY client_name"
        ))
        .await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for row in &sessions {
        assert_eq!(row[1].as_deref(), Some("server_shutdown"), "{row:?}");
        assert_eq!(row[2].as_deref(), Some("disconnected"));
        let off: f64 = row[3].as_deref().unwrap().parse().unwrap();
        assert!(off < 0.5, "ended {off:.3} s from the signal: {row:?}");
        assert_eq!(row[4].as_deref(), Some("1"));
    }
    drop((ada, bob));
}
