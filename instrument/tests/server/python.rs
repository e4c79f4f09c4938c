//! The official Python MCP SDK as the client (issue #33): its own `_meta` propagation (SEP-414)
//! parents the server's span, and its baggage reaches the tool — in the SDK's default mode
//! (the 2026-07-28 protocol where the server speaks it) and in its legacy handshake mode.
//!
//! Needs `python3` with `mcp` and `opentelemetry-sdk` (`.ci/run` installs them from
//! `instrument/tests/server/python/requirements.txt`); without them it fails under CI and is
//! skipped, saying so, elsewhere.

use archon_mcp_instrument::TracedConfig;
use archon_mcp_instrument::attributes as attr;
use serde_json::Value;

use crate::support::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/server/python/client.py");

fn python_sdk_present() -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import mcp, opentelemetry.sdk"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        let fix = "pip install -r instrument/tests/server/python/requirements.txt";
        assert!(std::env::var_os("CI").is_none(), "the Python MCP SDK is missing: {fix}");
        eprintln!("skipped: the Python MCP SDK is missing ({fix})");
    }
    found
}

async fn python_client_calls_context(mode: &str) {
    let capture = Capture::new();
    let config = capture.config(TracedConfig::builder());
    let (addr, stop) = serve_http(&config, config.session_manager()).await;
    let out = tokio::process::Command::new("python3")
        .args([SCRIPT, &format!("http://{addr}/mcp"), mode])
        .output()
        .await
        .expect("python3 runs");
    assert!(out.status.success(), "the Python client failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("the client's report");
    let python_spans = report["spans"].as_array().unwrap();
    let span = |name: &str| {
        python_spans.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no {name}: {python_spans:?}"))
    };
    let agent = span("agent run");
    let send = span("MCP send tools/call context");
    assert_eq!(send["kind"], "client");
    assert_eq!(send["parent_span_id"], agent["span_id"]);

    let spans =
        capture.wait_for("the server's span", |s| summary(s).iter().any(|s| s.name == "tools/call context")).await;
    let served = summary(&spans).into_iter().find(|s| s.name == "tools/call context").unwrap();
    assert_eq!(served.trace_id, agent["trace_id"].as_str().unwrap(), "one trace: {served:?}");
    assert_eq!(served.parent_span_id, send["span_id"].as_str().unwrap(), "the SDK's client span is the parent");
    assert_eq!(served.attr(attr::ARCHON_CLIENT_NAME), Some("mcp"), "{served:?}");
    let answer = report["answer"].as_str().unwrap();
    assert!(answer.starts_with(served.trace_id.as_str()), "the tool ran in the client's trace: {answer}");
    assert!(answer.contains("tenant=py"), "the client's baggage reached the tool: {answer}");
    stop.cancel();
}

#[tokio::test]
async fn the_python_sdk_client_parents_the_server_span() {
    if python_sdk_present() {
        python_client_calls_context("auto").await;
    }
}

#[tokio::test]
async fn the_python_sdk_client_parents_the_server_span_after_a_legacy_handshake() {
    if python_sdk_present() {
        python_client_calls_context("legacy").await;
    }
}
