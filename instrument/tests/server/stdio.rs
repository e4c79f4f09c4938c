//! stdio: real child processes (this test binary, re-run as a server), real rmcp clients.

use std::collections::BTreeSet;
use std::sync::Mutex;

use archon_mcp_instrument::attributes as attr;
use archon_mcp_instrument::user::EnvUser;
use archon_mcp_instrument::{Telemetry, TracedConfig, TracedExt};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use serde_json::json;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::support::*;

const SPANS_FILE: &str = "ARCHON_TEST_SPANS_FILE";
const READY: &str = "ARCHON-STDIO-READY";

/// The server side, run in a child process by the tests below (ignored in a normal run).
#[tokio::test]
#[ignore = "runs as the stdio child process of the tests in this module"]
async fn child_server() {
    let Ok(path) = std::env::var(SPANS_FILE) else { return };
    let file = std::fs::File::create(path).unwrap();
    let telemetry = Telemetry::builder()
        .service_name("notes-stdio")
        .exporter(JsonLinesExporter(Mutex::new(file)))
        .log_to_stderr(false)
        .build_provider()
        .unwrap();
    let config = TracedConfig::builder().user_resolver(EnvUser::from_env()).build();
    // libtest has written its own lines to stdout; the parent skips up to this marker.
    println!("{READY}");
    let server = Notes.traced(config).serve(rmcp::transport::stdio()).await.unwrap();
    let _ = server.waiting().await;
    telemetry.shutdown();
}

/// The server of `client_name`'s connection: this test binary re-run as [`child_server`], its
/// stdio piped to us, its spans written to a file in `dir`.
pub struct ChildServer {
    child: tokio::process::Child,
    spans_path: std::path::PathBuf,
}

impl ChildServer {
    pub async fn start(
        dir: &std::path::Path,
        client_name: &str,
        user: &str,
    ) -> (Self, (BufReader<tokio::process::ChildStdout>, tokio::process::ChildStdin)) {
        let spans_path = dir.join(format!("{client_name}.jsonl"));
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "stdio::child_server", "--include-ignored", "--nocapture", "--test-threads=1"])
            .env(SPANS_FILE, &spans_path)
            .env("ARCHON_USER_ID", user)
            .env("ARCHON_USER_EMAIL", format!("{user}@example.com"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains(READY) {
            line.clear();
            assert!(stdout.read_line(&mut line).await.unwrap() > 0, "the child exited before serving");
        }
        let stdin = child.stdin.take().unwrap();
        (Self { child, spans_path }, (stdout, stdin))
    }

    /// The child's spans, once its session has ended (its client closed the connection).
    pub async fn spans(mut self) -> Vec<Seen> {
        for _ in 0..200 {
            let text = std::fs::read_to_string(&self.spans_path).unwrap_or_default();
            if text.lines().any(|l| l.contains(attr::SESSION_SPAN_NAME)) {
                let _ = self.child.wait().await;
                return text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the child never reported its session span: {:?}", std::fs::read_to_string(&self.spans_path));
    }
}

async fn run_child(dir: &std::path::Path, client_name: &str, user: &str, calls: usize) -> Vec<Seen> {
    let (server, transport) = ChildServer::start(dir, client_name, user).await;
    let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new(client_name, "0.9"));
    let client = info.serve(transport).await.expect("stdio client connects");
    client.list_all_tools().await.unwrap();
    for i in 0..calls {
        client.call_tool(CallToolRequestParams::new("search").with_arguments(args(json!({"query": i})))).await.unwrap();
    }
    // Closing stdin ends the child's connection, hence its session; then it flushes and exits.
    client.cancel().await.unwrap();
    server.spans().await
}

#[tokio::test]
async fn two_stdio_connections_two_sessions_ended_by_disconnect() {
    let dir = std::env::temp_dir().join(format!("archon-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (claude, cursor) =
        tokio::join!(run_child(&dir, "claude-code", "dana", 3), run_child(&dir, "Cursor", "erin", 2));
    std::fs::remove_dir_all(&dir).ok();

    let mut sessions = BTreeSet::new();
    for (spans, client, user, calls) in [(&claude, "claude-code", "dana", 3), (&cursor, "Cursor", "erin", 2)] {
        let tool_calls: Vec<&Seen> =
            spans.iter().filter(|s| s.attr(attr::MCP_METHOD_NAME) == Some("tools/call")).collect();
        assert_eq!(tool_calls.len(), calls);
        let ids: BTreeSet<_> = tool_calls.iter().map(|s| s.attr(attr::SESSION_ID).unwrap()).collect();
        assert_eq!(ids.len(), 1, "one session per connection");
        for call in &tool_calls {
            assert_eq!(call.attr(attr::ARCHON_CLIENT_NAME), Some(client));
            assert_eq!(call.attr(attr::USER_ID), Some(user));
            assert_eq!(call.attr(attr::NETWORK_TRANSPORT), Some("pipe"));
        }
        let list = spans.iter().find(|s| s.attr(attr::MCP_METHOD_NAME) == Some("tools/list")).unwrap();
        assert_eq!(list.attr(attr::SESSION_ID), None);
        let session = spans.iter().find(|s| s.name == attr::SESSION_SPAN_NAME).unwrap();
        assert_eq!(session.attr(attr::SESSION_ID), ids.first().copied());
        assert_eq!(session.attr(attr::ARCHON_SESSION_DISCONNECT_REASON), Some("client_disconnect"));
        assert_eq!(session.attr(attr::ARCHON_SESSION_REQUEST_COUNT), Some(calls.to_string().as_str()));
        assert_eq!(spans.iter().filter(|s| s.name == attr::SESSION_SPAN_NAME).count(), 1);
        sessions.extend(ids.into_iter().map(str::to_owned));
    }
    assert_eq!(sessions.len(), 2, "two connections, two analytics sessions");
}
