//! The parts of an end-to-end run, started for real.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use archon_mcp_exporter::testing::LocalCluster;
use archon_mcp_exporter::{ServeConfig, Server};
use archon_mcp_instrument::user::JwtUser;
use archon_mcp_instrument::{TracedConfig, TracedConfigBuilder};
use archon_mcp_otel::knowledge::KnowledgeServer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

pub const JWT_SECRET: &[u8] = b"e2e-secret-0123456789abcdef";

/// The collector tests take turns: each runs a PostgreSQL, an exporter, rotel, an MCP server and
/// clients, and two of them on 2 cores at once starve the timings they depend on.
pub static ONE_PIPELINE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A throw-away PostgreSQL of our own (it gets stopped in the fault test), migrated.
pub struct Database {
    pub cluster: LocalCluster,
    pub url: String,
}

impl Database {
    pub async fn start() -> Self {
        let cluster = tokio::task::spawn_blocking(LocalCluster::start).await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        let url = cluster.url("postgres");
        archon_mcp_exporter::migrate::migrate_url(&url).await.expect("migrate");
        Self { cluster, url }
    }

    /// Queries a database the test does not own.
    pub fn connect(url: &str) -> Connected {
        Connected { url: url.to_owned() }
    }

    pub async fn query_i64(&self, sql: &str) -> i64 {
        query_i64(&self.url, sql).await
    }

    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.expect("connect");
        tokio::spawn(connection);
        client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|row| (0..row.len()).map(|i| row.get::<_, Option<String>>(i)).collect())
            .collect()
    }

    /// Waits until `sql` (a count) reaches `expected`, up to `limit`; returns the last count.
    pub async fn wait_for_count(&self, sql: &str, expected: i64, limit: Duration) -> i64 {
        let started = std::time::Instant::now();
        loop {
            let n = self.query_i64(sql).await;
            if n >= expected || started.elapsed() > limit {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A database someone else started.
pub struct Connected {
    url: String,
}

impl Connected {
    pub async fn query_i64(&self, sql: &str) -> i64 {
        query_i64(&self.url, sql).await
    }
}

async fn query_i64(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}

/// `archon-mcp-exporter serve`, in process, on real ports.
pub struct Exporter {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub metrics: std::sync::Arc<archon_mcp_exporter::metrics::Metrics>,
    running: archon_mcp_exporter::Running,
}

impl Exporter {
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(database_url, |_| {}).await
    }

    pub async fn start_with(database_url: &str, tune: impl FnOnce(&mut ServeConfig)) -> Self {
        let mut config = ServeConfig::new(database_url);
        config.grpc_listen = "127.0.0.1:0".parse().unwrap();
        config.http_listen = "127.0.0.1:0".parse().unwrap();
        config.reaper = None;
        config.store.acquire_timeout = Duration::from_secs(2);
        tune(&mut config);
        let running = Server::bind(config).await.expect("bind the exporter").spawn();
        Self { grpc: running.grpc_addr(), http: running.http_addr(), metrics: running.metrics().clone(), running }
    }

    pub async fn stop(self) {
        let _ = self.running.stop().await;
    }
}

/// `archon-mcp-exporter serve` as its own process (built by `cargo test --workspace`), to be
/// killed for real.
pub struct ExporterProcess {
    child: tokio::process::Child,
}

impl ExporterProcess {
    pub async fn start(database_url: &str, grpc_port: u16) -> Self {
        let binary = archon_mcp_otel::serve_process::exporter_binary();
        let (grpc, http) = (format!("127.0.0.1:{grpc_port}"), format!("127.0.0.1:{}", free_port()));
        let args =
            ["serve", "--database-url", database_url, "--no-reaper", "--grpc-listen", &grpc, "--http-listen", &http];
        let child = start_listening(binary.to_str().unwrap(), &args, &[], grpc.parse().unwrap()).await;
        Self { child }
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// The rotel collector, or `None` (after saying so loudly) when rotel is not installed outside
/// CI; in CI a missing collector fails the test.
pub struct Collector;

impl Collector {
    pub async fn start(forward_to: SocketAddr) -> Option<archon_mcp_otel::collector::Rotel> {
        let agent = Self::agent()?;
        Some(archon_mcp_otel::collector::Rotel::start(agent, forward_to).await.expect("start rotel-agent"))
    }

    /// Forwarding over TLS with a bearer token.
    pub async fn start_tls(forward_to: SocketAddr, token: &str) -> Option<archon_mcp_otel::collector::Rotel> {
        let agent = Self::agent()?;
        let rotel = archon_mcp_otel::collector::Rotel::start_tls(agent, forward_to, token).await;
        Some(rotel.expect("start rotel-agent"))
    }

    fn agent() -> Option<std::path::PathBuf> {
        let Some(agent) = archon_mcp_otel::collector::rotel_agent() else {
            let message = "rotel-agent not found: `pip install rotel` (or set ROTEL_AGENT) to run the collector tests";
            if std::env::var_os("CI").is_some() {
                panic!("{message}");
            }
            eprintln!("\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n");
            return None;
        };
        Some(agent)
    }
}

/// The knowledge server over streamable HTTP, traced, exporting OTLP/gRPC to `otlp`.
pub struct McpServer {
    pub addr: SocketAddr,
    pub provider: SdkTracerProvider,
    pub config: TracedConfig,
    ct: CancellationToken,
}

impl McpServer {
    pub async fn start(otlp: SocketAddr) -> Self {
        Self::start_with(Self::otlp(otlp), |config| config).await
    }

    /// An OTLP/gRPC span exporter to `otlp`, retrying as `Telemetry`'s does.
    pub fn otlp(otlp: SocketAddr) -> opentelemetry_otlp::SpanExporter {
        use opentelemetry_otlp::WithTonicConfig as _;
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_retry_policy(archon_mcp_instrument::otlp_retry_policy())
            .with_endpoint(format!("http://{otlp}"))
            .build()
            .expect("OTLP exporter")
    }

    /// Spans to `exporter`; the traced config (JWT users by default) as `tune` makes it.
    pub async fn start_with(
        exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
        tune: impl FnOnce(TracedConfigBuilder) -> TracedConfigBuilder,
    ) -> Self {
        Self::start_sampled(exporter, opentelemetry_sdk::trace::Sampler::AlwaysOn, tune).await
    }

    /// [`start_with`](Self::start_with), its spans sampled by `sampler`.
    pub async fn start_sampled(
        exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
        sampler: impl opentelemetry_sdk::trace::ShouldSample + 'static,
        tune: impl FnOnce(TracedConfigBuilder) -> TracedConfigBuilder,
    ) -> Self {
        // The SDK's own warnings (export failures, dropped spans) in the output of a failing test.
        let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(200))
            .with_max_queue_size(65_536)
            .build();
        let provider = SdkTracerProvider::builder()
            .with_resource(opentelemetry_sdk::Resource::builder_empty().with_service_name("knowledge-e2e").build())
            .with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batch).build())
            .with_sampler(sampler)
            .build();
        let config =
            tune(TracedConfig::builder().tracer(provider.tracer("e2e")).user_resolver(JwtUser::hs256(JWT_SECRET)))
                .build();
        let ct = CancellationToken::new();
        let server = KnowledgeServer::new();
        let service = config.streamable_http_service(
            move || Ok(server.clone()),
            StreamableHttpServerConfig::default().with_sse_keep_alive(None).with_cancellation_token(ct.child_token()),
        );
        let router = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = ct.clone();
        tokio::spawn(async move {
            let _ =
                axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled_owned().await }).await;
        });
        Self { addr, provider, config, ct }
    }

    /// Exports every finished span now (blocking the SDK's export, off the async threads).
    pub async fn flush(&self) {
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || provider.force_flush()).await.unwrap().expect("flush");
    }

    pub fn stop(&self) {
        self.ct.cancel();
    }
}

pub type Client = RunningService<RoleClient, ClientConfig>;

/// A real rmcp client over streamable HTTP, as `name`, with a JWT for `user`.
pub async fn connect(addr: SocketAddr, name: &str, user: &str, department: &str) -> Client {
    let token = token(user, department);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp")).auth_header(token),
    );
    ClientConfig::new(ClientCapabilities::default(), Implementation::new(name, "1.0.0"))
        .serve(transport)
        .await
        .expect("client connects")
}

pub fn token(user: &str, department: &str) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let claims = serde_json::json!({
        "sub": user, "email": format!("{user}@example.com"), "name": user.to_uppercase(), "department": department, "exp": exp
    });
    archon_mcp_instrument::user::hs256_token(JWT_SECRET, &claims)
}

pub fn call(tool: &str, arguments: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments.as_object().cloned().unwrap_or_default())
}

/// One real client per `(client name, user)` calling `call(client index, calls so far)` every
/// `pause` for `run_for`, then disconnecting; each task returns how many calls it made.
pub fn steady_callers(
    addr: SocketAddr,
    clients: &[(&'static str, &'static str)],
    run_for: Duration,
    pause: Duration,
    call: fn(usize, u64) -> CallToolRequestParams,
) -> Vec<tokio::task::JoinHandle<u64>> {
    let started = std::time::Instant::now();
    let spawn = |(i, &(name, user)): (usize, &(&'static str, &'static str))| {
        tokio::spawn(async move {
            let client = connect(addr, name, user, "Ops").await;
            let mut calls = 0u64;
            while started.elapsed() < run_for {
                client.call_tool(call(i, calls)).await.expect("the server keeps serving");
                calls += 1;
                tokio::time::sleep(pause).await;
            }
            client.cancel().await.unwrap();
            calls
        })
    };
    clients.iter().enumerate().map(spawn).collect()
}

/// The calls all `steady_callers` made.
pub async fn total_calls(callers: Vec<tokio::task::JoinHandle<u64>>) -> u64 {
    let mut total = 0;
    for caller in callers {
        total += caller.await.unwrap();
    }
    total
}

/// Starts a binary of this package (`CARGO_BIN_EXE_…`) with `args` and `env`, and waits until
/// it listens on `addr`.
pub async fn start_listening(
    binary: &str,
    args: &[&str],
    env: &[(&str, &str)],
    addr: SocketAddr,
) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // On a busy 2-core machine a debug build takes its time to start.
    for _ in 0..1200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{binary} exited before listening: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{binary} did not listen on {addr} within 60 s");
}

/// Stops a child with SIGINT, as Ctrl-C would, and waits (10 s at most) for a clean exit.
pub async fn interrupt(mut child: tokio::process::Child) {
    let pid = child.id().expect("still running").to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.expect("it exits").unwrap();
    assert!(status.success(), "exit status {status}");
}
