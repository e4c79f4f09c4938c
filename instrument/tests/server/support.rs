//! A small notes server, span capture and span queries shared by the tests.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use archon_mcp_instrument::usage::{self, Usage};
use std::net::SocketAddr;

use archon_mcp_instrument::{TracedConfig, TracedConfigBuilder, TracedExt, TracedPeer, TracedSessionManager};
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter};
use rmcp::model::*;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const JWT_SECRET: &[u8] = b"test-secret-0123456789";

/// A knowledge/notes server: `search`, `summarize` (reports model usage), `fail` (an `isError`
/// result that mentions a secret), `boom` (panics), `echo` (returns its arguments), `slow`
/// (sleeps `ms`; stops early on cancellation only when `honour` is true), `context` (the trace
/// and baggage its handler runs in: `{trace id} {key=value,…}`), `ask` (asks its client for a
/// sampled message, its roots and a confirmation, through a [`TracedPeer`]).
#[derive(Debug, Clone, Default)]
pub struct Notes;

fn tool(name: &'static str) -> Tool {
    let schema = json!({"type": "object", "properties": {}}).as_object().unwrap().clone();
    Tool::new(name, format!("the {name} tool"), Arc::new(schema))
}

const TOOLS: [&str; 9] = ["search", "summarize", "fail", "boom", "echo", "slow", "unlock", "context", "ask"];

/// How many `slow` calls have started in this process, by their `tag` argument.
static SLOW_STARTED: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

/// Waits (up to 10 s) until `n` `slow` calls tagged `tag` have started in this process.
pub async fn slow_started(tag: &str, n: usize) {
    for _ in 0..1000 {
        if SLOW_STARTED.lock().unwrap().as_ref().and_then(|m| m.get(tag)).copied().unwrap_or(0) >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the slow tool never started for {tag}");
}

impl ServerHandler for Notes {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        TOOLS.contains(&name).then(|| tool(TOOLS.into_iter().find(|t| *t == name).unwrap()))
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(TOOLS.into_iter().map(tool).collect()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let result = match request.name.as_ref() {
            "search" => CallToolResult::success(vec![ContentBlock::text(format!("3 notes match {}", args["query"]))]),
            "summarize" => {
                usage::record(Usage::new("claude-sonnet-4-5").with_tokens(1200, 300));
                CallToolResult::success(vec![ContentBlock::text("a summary")])
            }
            "fail" => CallToolResult::error(vec![ContentBlock::text("disk full; password=hunter2")]),
            "boom" => panic!("the boom tool always panics"),
            "echo" => CallToolResult::success(vec![ContentBlock::text(args.to_string())]),
            "context" => {
                use opentelemetry::baggage::BaggageExt as _;
                use opentelemetry::trace::TraceContextExt as _;
                let cx = opentelemetry::Context::current();
                let mut baggage: Vec<String> = cx.baggage().iter().map(|(k, (v, _))| format!("{k}={v}")).collect();
                baggage.sort();
                let trace = cx.span().span_context().trace_id();
                CallToolResult::success(vec![ContentBlock::text(format!("{trace} {}", baggage.join(",")))])
            }
            // Typed arguments, as rmcp's `Parameters<T>` parses them: serde's message quotes the value.
            "unlock" => match serde_json::from_value::<u32>(args["pin"].clone()) {
                Ok(_) => CallToolResult::success(vec![ContentBlock::text("unlocked")]),
                Err(e) => return Err(McpError::invalid_params(e.to_string(), None)),
            },
            "slow" => {
                let tag = args["tag"].as_str().unwrap_or_default().to_owned();
                *SLOW_STARTED.lock().unwrap().get_or_insert_default().entry(tag).or_default() += 1;
                let sleep = tokio::time::sleep(std::time::Duration::from_millis(args["ms"].as_u64().unwrap_or(1000)));
                if args["honour"].as_bool() == Some(true) {
                    tokio::select! {
                        () = sleep => {}
                        () = context.ct.cancelled() => return Err(McpError::internal_error("stopped: cancelled", None)),
                    }
                } else {
                    sleep.await;
                }
                usage::record(Usage::new("claude-haiku-4-5").with_tokens(100, 10));
                CallToolResult::success(vec![ContentBlock::text("slept")])
            }
            "ask" => {
                #[allow(deprecated)] // sampling and roots: SEP-2577
                let (sampled, roots, confirmed) = {
                    let peer = TracedPeer::from(&context);
                    let failed = |e: rmcp::service::ServiceError| McpError::internal_error(e.to_string(), None);
                    let question = CreateMessageRequestParams::new(vec![SamplingMessage::user_text("which note?")], 50);
                    let sampled = peer.create_message(question).await.map_err(failed)?;
                    let roots = peer.list_roots().await.map_err(failed)?;
                    let confirm = ElicitRequestParams::FormElicitationParams {
                        meta: None,
                        message: "open it?".into(),
                        requested_schema: ElicitationSchema::builder().required_bool("ok").build().unwrap(),
                    };
                    (sampled.model, roots.roots.len(), peer.create_elicitation(confirm).await.map_err(failed)?.action)
                };
                CallToolResult::success(vec![ContentBlock::text(format!("{sampled} {roots} {confirmed:?}"))])
            }
            other => return Err(McpError::invalid_params(format!("no tool named {other}"), None)),
        };
        Ok(result.into())
    }
}

/// A tracer whose spans land in memory, and a config using it.
pub struct Capture {
    pub exporter: InMemorySpanExporter,
    pub provider: SdkTracerProvider,
}

impl Capture {
    pub fn new() -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        Self { exporter, provider }
    }

    pub fn config(&self, builder: TracedConfigBuilder) -> TracedConfig {
        builder.tracer(self.provider.tracer("test")).build()
    }

    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap()
    }

    /// Waits (up to 10 s) until `done` holds for the finished spans.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[SpanData]) -> bool) -> Vec<SpanData> {
        for _ in 0..200 {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}; spans: {:#?}", summary(&self.spans()));
    }
}

/// A span reduced to what the assertions read; also the JSON-lines format of the stdio child.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub name: String,
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub status: String,
    pub attributes: HashMap<String, String>,
    /// Start and end, unix nanoseconds.
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Seen {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

impl From<&SpanData> for Seen {
    fn from(span: &SpanData) -> Self {
        Self {
            name: span.name.to_string(),
            kind: match span.span_kind {
                SpanKind::Server => "server",
                SpanKind::Internal => "internal",
                SpanKind::Client => "client",
                _ => "other",
            }
            .into(),
            trace_id: span.span_context.trace_id().to_string(),
            span_id: span.span_context.span_id().to_string(),
            parent_span_id: span.parent_span_id.to_string(),
            status: match &span.status {
                Status::Unset => "unset".into(),
                Status::Ok => "ok".into(),
                Status::Error { description } => format!("error:{description}"),
            },
            attributes: span.attributes.iter().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect(),
            start_ns: unix_ns(span.start_time),
            end_ns: unix_ns(span.end_time),
        }
    }
}

/// Unix nanoseconds of a time.
pub fn unix_ns(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

impl Seen {
    /// Seconds from start to end.
    pub fn seconds(&self) -> f64 {
        (self.end_ns as f64 - self.start_ns as f64) / 1e9
    }
}

pub fn summary(spans: &[SpanData]) -> Vec<Seen> {
    spans.iter().map(Seen::from).collect()
}

/// Writes every finished span as one JSON line: how the stdio child reports its spans.
#[derive(Debug)]
pub struct JsonLinesExporter(pub Mutex<std::fs::File>);

impl SpanExporter for JsonLinesExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut file = self.0.lock().unwrap();
        for span in &batch {
            writeln!(file, "{}", serde_json::to_string(&Seen::from(span)).unwrap()).unwrap();
        }
        file.flush().unwrap();
        Ok(())
    }
}

/// A signed HS256 token for `sub`, valid for an hour (or expired an hour ago).
pub fn token(sub: &str, email: &str, department: &str, expired: bool) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let exp = if expired { now - 3600 } else { now + 3600 };
    let claims =
        json!({"sub": sub, "email": email, "name": format!("User {sub}"), "department": department, "exp": exp});
    archon_mcp_instrument::user::hs256_token(JWT_SECRET, &claims)
}

/// Arguments for a call.
pub fn args(value: Value) -> JsonObject {
    value.as_object().unwrap().clone()
}

/// The notes server over streamable HTTP on a free port, its sessions watched by `sessions`;
/// cancel the token to stop it. No SSE keep-alive pings: a dead client must be seen from its
/// connection closing alone.
pub async fn serve_http(
    config: &TracedConfig,
    sessions: Arc<TracedSessionManager<LocalSessionManager>>,
) -> (SocketAddr, CancellationToken) {
    let ct = CancellationToken::new();
    let factory = config.clone();
    let service = StreamableHttpService::new(
        move || Ok(Notes.traced(factory.clone())),
        sessions,
        StreamableHttpServerConfig::default().with_sse_keep_alive(None).with_cancellation_token(ct.child_token()),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = ct.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled_owned().await }).await;
    });
    (addr, ct)
}
