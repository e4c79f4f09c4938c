//! How sessions and requests end, checked against what the client saw: clients that die
//! (SIGKILL, as child processes: this test binary re-run as a client), go quiet, cancel, time
//! out, or talk stateless. Every end time, reason, duration and status is compared with the
//! times the test measured on the client side.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use archon_mcp_instrument::attributes::{self as attr, DisconnectReason};
use archon_mcp_instrument::user::JwtUser;
use archon_mcp_instrument::{TracedConfig, TracedSessionManager};
use rmcp::ServiceExt as _;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientCapabilities, ClientConfig, ClientRequest, Implementation,
};
use rmcp::service::{ClientLifecycleMode, PeerRequestOptions, serve_client_with_lifecycle};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::support::*;

const CLIENT_MODE: &str = "ARCHON_TEST_CLIENT_MODE";
const CLIENT_URL: &str = "ARCHON_TEST_CLIENT_URL";
const CLIENT_TAG: &str = "ARCHON_TEST_CLIENT_TAG";
const SPANS_FILE: &str = "ARCHON_TEST_SPANS_FILE";

fn now_ns() -> u64 {
    unix_ns(SystemTime::now())
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `measured` (the span's) is the client's view within 10 % + 50 ms.
fn assert_close(what: &str, measured: f64, client: f64) {
    let tolerance = 0.1 * client.abs() + 0.05;
    assert!((measured - client).abs() <= tolerance, "{what}: recorded {measured:.3} s, the client saw {client:.3} s");
}

fn slow(tag: &str, ms: u64, honour: bool) -> CallToolRequestParams {
    CallToolRequestParams::new("slow").with_arguments(args(json!({"ms": ms, "honour": honour, "tag": tag})))
}

fn search() -> CallToolRequestParams {
    CallToolRequestParams::new("search").with_arguments(args(json!({"query": "q"})))
}

// --- The client processes --------------------------------------------------------------------

/// What the client child does after its first call: `idle` waits; `slow` / `slow-honour`
/// starts a 4 s call of the `slow` tool (ignoring / honouring cancellation) and waits.
async fn client_script(client: &rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>, mode: &str, tag: &str) {
    println!("FIRST_CALL {}", now_ns());
    client.call_tool(search()).await.unwrap();
    // After the session exists: a `tools/list` that is not a row, so not in request_count.
    client.list_all_tools().await.unwrap();
    println!("CALLED {}", now_ns());
    if mode.starts_with("slow") {
        println!("CALLING {}", now_ns());
        let _ = client.call_tool(slow(tag, 4000, mode == "slow-honour")).await;
    }
    std::future::pending::<()>().await;
}

/// A streamable-HTTP client, run in a child process by the tests below (ignored in a normal run).
#[tokio::test]
#[ignore = "runs as the HTTP client child process of the tests in this module"]
async fn child_http_client() {
    let Ok(mode) = std::env::var(CLIENT_MODE) else { return };
    let url = std::env::var(CLIENT_URL).unwrap();
    let tag = std::env::var(CLIENT_TAG).unwrap_or_default();
    let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new("killed-client", "1.0"));
    let client = info.serve(StreamableHttpClientTransport::from_uri(url)).await.expect("client connects");
    client_script(&client, &mode, &tag).await;
}

/// A stdio client, run in a child process: it starts the stdio server as its own child (which
/// writes its spans to `ARCHON_TEST_SPANS_FILE`), so killing this process is a client dying.
#[tokio::test]
#[ignore = "runs as the stdio client child process of the tests in this module"]
async fn child_stdio_client() {
    let Ok(mode) = std::env::var(CLIENT_MODE) else { return };
    let mut server = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stdio::child_server", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env_remove(CLIENT_MODE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ARCHON-STDIO-READY") {
        line.clear();
        assert!(stdout.read_line(&mut line).await.unwrap() > 0, "the server exited before serving");
    }
    let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new("killed-stdio-client", "1.0"));
    let client = info.serve((stdout, server.stdin.take().unwrap())).await.expect("stdio client connects");
    client_script(&client, &mode, "").await;
}

/// A client child process and the times it printed.
struct ClientProcess {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl ClientProcess {
    fn spawn(test: &str, env: &[(&str, &str)]) -> Self {
        let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", test, "--include-ignored", "--nocapture", "--test-threads=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    /// The time the client printed after `label`.
    async fn time(&mut self, label: &str) -> u64 {
        let read = async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                // libtest may have started the line ("test … ... ").
                if let Some((_, ns)) = line.split_once(&format!("{label} ")) {
                    return ns.trim().parse().unwrap();
                }
            }
            panic!("the client exited before printing {label}");
        };
        tokio::time::timeout(Duration::from_secs(20), read).await.expect("the client is too slow")
    }

    /// SIGKILL, now; returns when.
    fn kill(&mut self) -> u64 {
        let at = now_ns();
        self.child.start_kill().unwrap();
        at
    }
}

fn sessions_of(spans: &[Seen]) -> Vec<&Seen> {
    spans.iter().filter(|s| s.name == attr::SESSION_SPAN_NAME).collect()
}

fn calls_of<'a>(spans: &'a [Seen], tool: &str) -> Vec<&'a Seen> {
    spans.iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME) == Some(tool)).collect()
}

/// The session ended for `reason` at `end` (unix ns), give or take `slack` either way, and lasted
/// as long as the client saw from `first_call` to `end`.
fn assert_session(session: &Seen, reason: &str, first_call: u64, end: u64, slack: Duration) {
    assert_eq!(session.attr(attr::ARCHON_SESSION_DISCONNECT_REASON), Some(reason), "{session:?}");
    let late = secs(session.end_ns) - secs(end);
    assert!(late.abs() <= slack.as_secs_f64(), "the session ended {late:+.3} s from the client's end: {session:?}");
    assert_close("session duration", session.seconds(), secs(end) - secs(first_call));
}

// --- HTTP ------------------------------------------------------------------------------------

#[tokio::test]
async fn http_client_killed_without_delete_ends_its_session_within_seconds() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let url = format!("http://{addr}/mcp");
    let mut client = ClientProcess::spawn("lifecycle::child_http_client", &[(CLIENT_MODE, "idle"), (CLIENT_URL, &url)]);
    let first_call = client.time("FIRST_CALL").await;
    client.time("CALLED").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed = client.kill();

    let spans = summary(&capture.wait_for("the session to end", |s| !sessions_of(&summary(s)).is_empty()).await);
    let ended = now_ns();
    assert!(secs(ended) - secs(killed) < 5.0, "ended {:.1} s after the kill", secs(ended) - secs(killed));
    let session = sessions_of(&spans)[0];
    // Its end is when the client's connection closed: at the kill, not a keep-alive later.
    assert_session(session, "client_disconnect", first_call, killed, Duration::from_millis(500));
    assert_eq!(session.attr(attr::ARCHON_SESSION_REQUEST_COUNT), Some("1"), "tools/list is not a row");
    assert_eq!(config.open_sessions(), 0);
    stop.cancel();
}

#[tokio::test]
async fn http_client_killed_mid_call_cancels_the_call_whether_or_not_the_tool_stops() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let url = format!("http://{addr}/mcp");
    let mut ignoring = ClientProcess::spawn(
        "lifecycle::child_http_client",
        &[(CLIENT_MODE, "slow"), (CLIENT_URL, &url), (CLIENT_TAG, "http-kill-ignore")],
    );
    let mut honouring = ClientProcess::spawn(
        "lifecycle::child_http_client",
        &[(CLIENT_MODE, "slow-honour"), (CLIENT_URL, &url), (CLIENT_TAG, "http-kill-honour")],
    );
    let (ignoring_start, honouring_start) = (ignoring.time("CALLING").await, honouring.time("CALLING").await);
    slow_started("http-kill-ignore", 1).await;
    slow_started("http-kill-honour", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = ignoring.kill();
    honouring.kill();

    // The tool that honours cancellation stops at once; the other sleeps its 4 s out.
    let spans = summary(
        &capture
            .wait_for("both slow calls and sessions to end", |s| {
                let seen = summary(s);
                calls_of(&seen, "slow").len() == 2 && sessions_of(&seen).len() == 2
            })
            .await,
    );
    for (call, start) in calls_of(&spans, "slow").into_iter().zip([ignoring_start, honouring_start]) {
        assert_eq!(call.attr(attr::ERROR_TYPE), Some("cancelled"), "{call:?}");
        assert_eq!((call.status.as_str(), call.attr(attr::ARCHON_ERROR_MESSAGE)), ("unset", Some("client_disconnect")));
        let late = secs(call.end_ns) - secs(killed);
        assert!((-0.1..1.0).contains(&late), "the call ended {late:+.3} s from the kill: {call:?}");
        assert_close("call duration", call.seconds(), secs(killed) - secs(start));
    }
    for session in sessions_of(&spans) {
        assert_eq!(session.attr(attr::ARCHON_SESSION_DISCONNECT_REASON), Some("client_disconnect"));
        assert!((secs(session.end_ns) - secs(killed)).abs() < 1.0, "{session:?}");
        // The call still running at the end is counted, as its row will be.
        let rows = spans
            .iter()
            .filter(|s| s.name != attr::SESSION_SPAN_NAME && s.attr(attr::SESSION_ID) == session.attr(attr::SESSION_ID))
            .count()
            .to_string();
        assert_eq!(session.attr(attr::ARCHON_SESSION_REQUEST_COUNT), Some(rows.as_str()), "{session:?}");
    }
    stop.cancel();
}

#[tokio::test]
async fn idle_http_client_stays_open_until_keep_alive_then_ends_when_the_server_drops_it() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let mut local = LocalSessionManager::default();
    local.session_config.keep_alive = Some(Duration::from_secs(3));
    let (addr, stop) = serve_http(&config, Arc::new(TracedSessionManager::new(local, &config))).await;
    let url = format!("http://{addr}/mcp");
    let mut client = ClientProcess::spawn("lifecycle::child_http_client", &[(CLIENT_MODE, "idle"), (CLIENT_URL, &url)]);
    let first_call = client.time("FIRST_CALL").await;
    let last_activity = client.time("CALLED").await;

    // Connected and quiet: the session stays open.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(sessions_of(&summary(&capture.spans())).is_empty(), "an idle client is not disconnected");
    assert_eq!(config.open_sessions(), 1);

    // rmcp's keep-alive drops the session: `timeout`, when it expired — the client's stream was
    // open until then, so it was connected that long.
    let spans = summary(&capture.wait_for("the keep-alive to expire", |s| !sessions_of(&summary(s)).is_empty()).await);
    let dropped = now_ns();
    assert_session(sessions_of(&spans)[0], "timeout", first_call, dropped, Duration::from_millis(600));
    let _ = last_activity;
    client.kill();
    stop.cancel();
}

#[tokio::test]
async fn cancelled_and_timed_out_calls_end_when_the_client_gave_up() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new("canceller", "1.0"));
    let client = info
        .serve(StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(format!(
            "http://{addr}/mcp"
        ))))
        .await
        .unwrap();
    let request = |tag: &str| ClientRequest::CallToolRequest(CallToolRequest::new(slow(tag, 1500, false)));

    // The client cancels; the tool ignores it and sleeps on.
    let started = now_ns();
    let handle =
        client.send_cancellable_request(request("cancel-ignore"), PeerRequestOptions::no_options()).await.unwrap();
    slow_started("cancel-ignore", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled = now_ns();
    handle.cancel(Some("user pressed stop".into())).await.unwrap();

    // The client's own timeout: rmcp sends the cancellation with reason "request timeout".
    let timeout_started = now_ns();
    let timed_out = client
        .send_request_with_option(request("timeout"), PeerRequestOptions::with_timeout(Duration::from_millis(300)))
        .await
        .unwrap()
        .await_response()
        .await;
    assert!(timed_out.is_err(), "the client timed out");
    let timeout_at = now_ns();

    let spans = summary(&capture.wait_for("both calls", |s| calls_of(&summary(s), "slow").len() == 2).await);
    let by_error = |error_type: &str| {
        *calls_of(&spans, "slow")
            .iter()
            .find(|c| c.attr(attr::ERROR_TYPE) == Some(error_type))
            .unwrap_or_else(|| panic!("no {error_type} call among {spans:#?}"))
    };
    let cancel = by_error("cancelled");
    assert_eq!(cancel.attr(attr::ERROR_TYPE), Some("cancelled"));
    assert_eq!(
        (cancel.status.as_str(), cancel.attr(attr::ARCHON_ERROR_MESSAGE)),
        ("unset", Some("cancelled by the client: user pressed stop"))
    );
    assert_close("cancelled call", cancel.seconds(), secs(cancelled) - secs(started));
    let timeout = by_error("timeout");
    assert_eq!(timeout.attr(attr::ERROR_TYPE), Some("timeout"));
    assert!(timeout.attr(attr::ARCHON_ERROR_MESSAGE).is_some_and(|m| m.starts_with("timeout: ")), "{timeout:?}");
    assert_eq!(timeout.status, "unset", "the client gave up: not the server's failure");
    assert_close("timed-out call", timeout.seconds(), secs(timeout_at) - secs(timeout_started));
    drop(client);
    stop.cancel();
}

#[tokio::test]
async fn stateless_sessions_end_at_their_last_activity() {
    let capture = Capture::new();
    let config = capture.config(
        TracedConfig::builder().user_resolver(JwtUser::hs256(JWT_SECRET)).stateless_idle(Duration::from_secs(1)),
    );
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let connect = |name: &str| {
        let mut transport = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"));
        transport = transport.auth_header(token("stella", "stella@example.com", "Ops", false));
        let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new(name, "1.0"));
        let lifecycle =
            ClientLifecycleMode::Discover { preferred_versions: vec![rmcp::model::ProtocolVersion::LATEST] };
        serve_client_with_lifecycle(info, StreamableHttpClientTransport::from_config(transport), lifecycle)
    };

    // goose: three calls over ~0.6 s, then nothing. zed: one call, then the server stops.
    let goose = connect("goose").await.unwrap();
    let goose_first = now_ns();
    for _ in 0..3 {
        goose.call_tool(search()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let goose_last = now_ns() - 300_000_000;
    // Past goose's idle window, another client's request ends goose's session.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let zed = connect("zed").await.unwrap();
    let zed_first = now_ns();
    zed.call_tool(search()).await.unwrap();
    let zed_last = now_ns();
    tokio::time::sleep(Duration::from_millis(500)).await;
    config.end_sessions(DisconnectReason::ServerShutdown);

    let spans = summary(&capture.wait_for("both sessions", |s| sessions_of(&summary(s)).len() == 2).await);
    let session =
        |client: &str| *sessions_of(&spans).iter().find(|s| s.attr(attr::ARCHON_CLIENT_NAME) == Some(client)).unwrap();
    assert_session(session("goose"), "timeout", goose_first, goose_last, Duration::from_millis(100));
    assert_eq!(session("goose").attr(attr::ARCHON_SESSION_REQUEST_COUNT), Some("3"));
    // Stopped with the server, but it ends at its last activity: the wait is not part of it.
    assert_session(session("zed"), "server_shutdown", zed_first, zed_last, Duration::from_millis(100));
    drop((goose, zed));
    stop.cancel();
}

// --- stdio -----------------------------------------------------------------------------------

/// The spans the stdio server wrote, once its session and `calls` tool calls have ended.
async fn stdio_spans(path: &std::path::Path, calls: usize) -> Vec<Seen> {
    for _ in 0..300 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let spans: Vec<Seen> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let ended = spans.iter().filter(|s| s.attr(attr::GEN_AI_TOOL_NAME).is_some()).count();
        if !sessions_of(&spans).is_empty() && ended == calls {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the stdio server never reported its session: {:?}", std::fs::read_to_string(path));
}

#[tokio::test]
async fn stdio_client_killed_mid_session_and_mid_call() {
    let dir = std::env::temp_dir().join(format!("archon-lifecycle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (idle_file, busy_file) = (dir.join("idle.jsonl"), dir.join("busy.jsonl"));
    let mut idle = ClientProcess::spawn(
        "lifecycle::child_stdio_client",
        &[(CLIENT_MODE, "idle"), (SPANS_FILE, idle_file.to_str().unwrap()), ("ARCHON_USER_ID", "ivy")],
    );
    let mut busy = ClientProcess::spawn(
        "lifecycle::child_stdio_client",
        &[(CLIENT_MODE, "slow"), (SPANS_FILE, busy_file.to_str().unwrap()), ("ARCHON_USER_ID", "bo")],
    );
    let idle_first = idle.time("FIRST_CALL").await;
    idle.time("CALLED").await;
    let busy_first = busy.time("FIRST_CALL").await;
    let busy_calling = busy.time("CALLING").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_killed = idle.kill();
    let busy_killed = busy.kill();

    let idle_spans = stdio_spans(&idle_file, 1).await;
    assert_session(
        sessions_of(&idle_spans)[0],
        "client_disconnect",
        idle_first,
        idle_killed,
        Duration::from_millis(300),
    );
    assert_eq!(sessions_of(&idle_spans)[0].attr(attr::ARCHON_SESSION_REQUEST_COUNT), Some("1"));

    let busy_spans = stdio_spans(&busy_file, 2).await;
    assert_session(
        sessions_of(&busy_spans)[0],
        "client_disconnect",
        busy_first,
        busy_killed,
        Duration::from_millis(300),
    );
    let call = calls_of(&busy_spans, "slow")[0];
    assert_eq!(call.attr(attr::ERROR_TYPE), Some("cancelled"), "{call:?}");
    assert_eq!((call.status.as_str(), call.attr(attr::ARCHON_ERROR_MESSAGE)), ("unset", Some("client_disconnect")));
    assert_close("abandoned call", call.seconds(), secs(busy_killed) - secs(busy_calling));
    std::fs::remove_dir_all(&dir).ok();
}

/// A raw streamable-HTTP client: one JSON-RPC message posted in the session, the response.
async fn post_raw(url: &str, session: Option<&str>, message: serde_json::Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.json(&message).send().await.unwrap()
}

/// Reads server-sent events from `response` until one holds `wanted` (or 10 s pass); returns
/// the text read and the id of the last event that had one.
async fn read_events_until(response: &mut reqwest::Response, wanted: &str) -> (String, Option<String>) {
    let mut text = String::new();
    let read = async {
        while !text.contains(wanted) {
            match response.chunk().await {
                Ok(Some(chunk)) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    let last_id = text.lines().filter_map(|l| l.strip_prefix("id:")).map(|id| id.trim().to_owned()).next_back();
    (text, last_id)
}

/// A streamable-HTTP session opened by a raw client named `name`: `initialize`, then
/// `notifications/initialized`; its `Mcp-Session-Id`.
async fn open_raw_session(url: &str, name: &str) -> String {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": name, "version": "1.0"}}});
    let mut response = post_raw(url, None, initialize).await;
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    read_events_until(&mut response, "\"id\":1").await;
    post_raw(url, Some(&session), json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    session
}

#[tokio::test]
async fn a_client_that_drops_its_response_stream_and_resumes_gets_its_result() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let url = format!("http://{addr}/mcp");
    let session = open_raw_session(&url, "raw-resumer").await;

    // A call that takes 1.5 s; its response stream drops after its first event...
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"ms": 1500, "tag": "resume"}}});
    let mut stream = post_raw(&url, Some(&session), call).await;
    let (_, last_id) = read_events_until(&mut stream, "id:").await;
    let last_id = last_id.expect("the response stream's priming event has an id");
    drop(stream);
    // ...and is resumed 1 s later, inside the 3 s `retry` the service advertises.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut resumed = reqwest::Client::new()
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    let (events, _) = read_events_until(&mut resumed, "slept").await;
    assert!(events.contains("slept"), "the client gets its result, as without tracing: {events}");

    let spans = summary(&capture.wait_for("the slow call", |s| calls_of(&summary(s), "slow").len() == 1).await);
    let call = calls_of(&spans, "slow")[0];
    assert_eq!(call.attr(attr::ERROR_TYPE), None, "the call succeeded: {call:?}");
    assert_close("call duration", call.seconds(), 1.5);
    drop(resumed);
    stop.cancel();
}

#[tokio::test]
async fn a_tool_that_stops_on_cancellation_is_recorded_cancelled_every_time() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let info = ClientConfig::new(ClientCapabilities::default(), Implementation::new("canceller", "1.0"));
    let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(format!(
        "http://{addr}/mcp"
    )));
    let client = info.serve(transport).await.unwrap();
    // The tool returns its error the moment it sees the cancellation: the race between that
    // error and the cancellation's reason, twenty times.
    const TIMES: usize = 20;
    for _ in 0..TIMES {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(slow("honour-race", 5000, true)));
        let handle = client.send_cancellable_request(request, PeerRequestOptions::no_options()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        handle.cancel(Some("user pressed stop".into())).await.unwrap();
    }
    let spans = summary(&capture.wait_for("every call", |s| calls_of(&summary(s), "slow").len() == TIMES).await);
    let outcomes: Vec<Option<&str>> = calls_of(&spans, "slow").iter().map(|c| c.attr(attr::ERROR_TYPE)).collect();
    assert!(outcomes.iter().all(|o| *o == Some("cancelled")), "every call cancelled, none an error: {outcomes:?}");
    for call in calls_of(&spans, "slow") {
        assert_eq!(
            (call.status.as_str(), call.attr(attr::ARCHON_ERROR_MESSAGE)),
            ("unset", Some("cancelled by the client: user pressed stop")),
            "with the client's reason"
        );
    }
    drop(client);
    stop.cancel();
}

#[tokio::test]
async fn a_call_running_when_its_client_deletes_the_session_is_abandoned_then() {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let url = format!("http://{addr}/mcp");
    let session = open_raw_session(&url, "raw-deleter").await;

    // A 1.5 s call, given up: the client deletes its session 0.2 s in.
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"ms": 1500, "tag": "deleted"}}});
    let (pending_url, pending_session) = (url.clone(), session.clone());
    let pending = tokio::spawn(async move { post_raw(&pending_url, Some(&pending_session), call).await });
    slow_started("deleted", 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deleted_at = now_ns();
    let delete = reqwest::Client::new()
        .delete(&url)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert!(delete.status().is_success(), "{}", delete.status());
    pending.abort();

    let spans = summary(
        &capture
            .wait_for("the call and the session", |s| {
                let seen = summary(s);
                calls_of(&seen, "slow").len() == 1 && !sessions_of(&seen).is_empty()
            })
            .await,
    );
    let call = calls_of(&spans, "slow")[0];
    assert_eq!(call.attr(attr::ERROR_TYPE), Some("cancelled"), "{call:?}");
    assert_eq!((call.status.as_str(), call.attr(attr::ARCHON_ERROR_MESSAGE)), ("unset", Some("client_disconnect")));
    let session = sessions_of(&spans)[0];
    assert!(call.end_ns <= session.end_ns, "the row ends within its session: {call:?} {session:?}");
    assert!((secs(call.end_ns) - secs(deleted_at)).abs() < 0.5, "ended at the DELETE: {call:?}");
    stop.cancel();
}
