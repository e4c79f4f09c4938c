//! The demo pipeline: PostgreSQL, `archon-mcp-exporter serve`, the knowledge server exporting
//! OTLP to it, simulated users on real rmcp clients over streamable HTTP (and one over stdio),
//! then the rows. Used by `examples/demo` and by the end-to-end test of the demo.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use archon_mcp_exporter::testing::LocalCluster;
use archon_mcp_exporter::{ServeConfig, Server};
use archon_mcp_instrument::usage::TokenEstimation;
use archon_mcp_instrument::user::{EnvUser, JwtUser, UserResolverExt};
use archon_mcp_instrument::{Telemetry, TelemetryGuard, TracedClientExt as _, TracedConfig, TracedExt};
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use crate::knowledge::KnowledgeServer;
use crate::report::Report;
use crate::round_trips::ClientCalls;

/// The HS256 secret of the demo's tokens.
pub const JWT_SECRET: &str = "archon-demo-secret";

/// A simulated user.
#[derive(Debug, Clone, Copy)]
pub struct DemoUser {
    /// Principal (`sub`).
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Department.
    pub department: &'static str,
    /// The MCP client they use.
    pub client: &'static str,
}

/// The team of the demo; the last one works over stdio.
pub const USERS: [DemoUser; 6] = [
    DemoUser {
        id: "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a01",
        name: "Ada Lovelace",
        department: "Research",
        client: "claude-code",
    },
    DemoUser {
        id: "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a02",
        name: "Grace Hopper",
        department: "Platform",
        client: "Cursor",
    },
    DemoUser { id: "github|583231", name: "Linus Torvalds", department: "Platform", client: "Windsurf" },
    DemoUser {
        id: "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a04",
        name: "Margaret Hamilton",
        department: "Research",
        client: "Cline",
    },
    DemoUser { id: "okta|00u1a2b3", name: "Ken Thompson", department: "Support", client: "Visual Studio Code" },
    DemoUser {
        id: "5b0e6a6e-3c1f-4b8e-9a51-0d4c3c1f2a06",
        name: "Barbara Liskov",
        department: "Research",
        client: "claude-ai",
    },
];

fn email(user: &DemoUser) -> String {
    format!("{}@example.com", user.name.split(' ').next().unwrap_or("user").to_lowercase())
}

/// How big a run is.
#[derive(Debug)]
pub struct DemoOptions {
    /// Use this database instead of a throw-away cluster.
    pub database_url: Option<String>,
    /// Simulated users over streamable HTTP (at most 5).
    pub http_users: usize,
    /// Tool calls per user.
    pub calls_per_user: usize,
    /// Command that serves the knowledge server on stdio (for the sixth user); `None` skips it.
    /// It gets `ARCHON_DEMO_OTLP` (where to export) and `ARCHON_USER_*` in its environment.
    pub stdio_server: Option<std::process::Command>,
    /// Print progress on stderr.
    pub progress: bool,
}

/// A finished run: the database holds the rows.
pub struct DemoRun {
    /// Where the rows are.
    pub database_url: String,
    /// Tool calls made (= request rows expected).
    pub calls: u64,
    /// Connections made (= sessions expected).
    pub connections: u64,
    cluster: Option<LocalCluster>,
    exporter: Option<archon_mcp_exporter::Running>,
    client_calls: ClientCalls,
}

fn step(progress: bool, message: &str) {
    if progress {
        eprintln!("▸ {message}");
    }
}

/// Runs the pipeline until every call is a row.
pub async fn run(options: DemoOptions) -> anyhow::Result<DemoRun> {
    let (database_url, cluster) = match &options.database_url {
        Some(url) => (url.clone(), None),
        None => {
            step(options.progress, "starting a throw-away PostgreSQL");
            let cluster = tokio::task::spawn_blocking(LocalCluster::start).await?.map_err(anyhow::Error::msg)?;
            (cluster.url("postgres"), Some(cluster))
        }
    };

    step(options.progress, "starting archon-mcp-exporter serve (and migrating)");
    let mut config = ServeConfig::new(&database_url);
    config.migrate = true;
    // Estimated tokens (of tools that report no usage) are priced as this model.
    config.store.estimate_model = Some(crate::knowledge::SUMMARY_MODEL.into());
    config.grpc_listen = "127.0.0.1:0".parse()?;
    config.http_listen = "127.0.0.1:0".parse()?;
    let exporter = Server::bind(config).await.context("starting the exporter")?.spawn();
    let otlp = format!("http://{}", exporter.grpc_addr());

    step(options.progress, "starting the knowledge MCP server (streamable HTTP), exporting OTLP to the exporter");
    let telemetry = Telemetry::builder()
        .service_name("knowledge-demo")
        .scheduled_delay(Duration::from_millis(200))
        .otlp_endpoint(otlp.clone())
        .build_provider()?;
    let traced = TracedConfig::builder()
        .user_resolver(JwtUser::hs256(JWT_SECRET.as_bytes()).or(EnvUser::from_env()))
        .token_estimation(TokenEstimation::CharsDiv4)
        .build();
    let ct = CancellationToken::new();
    let addr = serve_http(traced.clone(), ct.clone()).await?;

    let http_users = &USERS[..options.http_users.min(USERS.len() - 1)];
    let stdio_user = options.stdio_server.is_some().then_some(USERS[USERS.len() - 1]);
    let connections = (http_users.len() + usize::from(stdio_user.is_some())) as u64;
    let calls = connections * options.calls_per_user as u64;
    step(
        options.progress,
        &format!("{connections} users call tools ({} over stdio)", usize::from(stdio_user.is_some())),
    );
    // The clients are traced too: each call's row then names its client span, and the report
    // can say how much of the call was the network and the client.
    let client_calls = ClientCalls::default();
    let client_config = client_calls.config();
    let done = Arc::new(AtomicU64::new(0));
    let bar = options.progress.then(|| tokio::spawn(progress_bar(done.clone(), calls)));

    let mut work = Vec::new();
    for (i, user) in http_users.iter().copied().enumerate() {
        let done = done.clone();
        let calls = options.calls_per_user;
        let client_config = client_config.clone();
        work.push(tokio::spawn(async move {
            let client = connect_http(addr, &user).await?.traced(client_config);
            let outcome = workload(&client, i, calls, &done).await;
            client.cancel().await.ok();
            outcome
        }));
    }
    if let (Some(user), Some(command)) = (stdio_user, options.stdio_server) {
        let done = done.clone();
        let calls = options.calls_per_user;
        let client_config = client_config.clone();
        let mut command = tokio::process::Command::from(command);
        command
            .env("ARCHON_DEMO_OTLP", &otlp)
            .env("ARCHON_USER_ID", user.id)
            .env("ARCHON_USER_EMAIL", email(&user))
            .env("ARCHON_USER_NAME", user.name)
            .env("ARCHON_USER_DEPARTMENT", user.department);
        work.push(tokio::spawn(async move {
            let (transport, _) = TokioChildProcess::builder(command).stderr(std::process::Stdio::inherit()).spawn()?;
            let client = ClientConfig::new(ClientCapabilities::default(), Implementation::new(user.client, "1.0.0"))
                .serve(transport)
                .await?
                .traced(client_config);
            let outcome = workload(&client, 5, calls, &done).await;
            client.cancel().await.ok();
            outcome
        }));
    }
    for task in work {
        task.await??;
    }
    if let Some(bar) = bar {
        bar.await?;
    }

    step(options.progress, "closing connections and flushing spans");
    let deadline = Instant::now() + Duration::from_secs(10);
    while traced.open_sessions() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ct.cancel();
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;

    step(options.progress, "waiting for the exporter to commit every row");
    let (client, connection) = tokio_postgres::connect(&database_url, NoTls).await?;
    tokio::spawn(connection);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: i64 = client.query_one("SELECT count(*) FROM archon_mcp_requests", &[]).await?.get(0);
        let ended: i64 = client
            .query_one("SELECT count(*) FROM archon_mcp_sessions WHERE status = 'disconnected'", &[])
            .await?
            .get(0);
        if rows as u64 >= calls && ended as u64 >= connections {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {rows} of {calls} requests and {ended} of {connections} sessions arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    step(options.progress, "setting budgets: one department is over its own");
    set_budgets(&client).await?;
    Ok(DemoRun { database_url, calls, connections, cluster, exporter: Some(exporter), client_calls })
}

/// A budget for everyone, one per department — the department that spent most gets one it has
/// already crossed (80 % of its spend), the others twice theirs.
async fn set_budgets(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    use archon_mcp_exporter::budgets::{self, BudgetSpec, Scope};
    let spend = client
        .query(
            "SELECT s.user_department, sum(r.estimated_cost)::float8
               FROM archon_mcp_requests r JOIN archon_mcp_sessions s USING (session_id)
              WHERE s.user_department IS NOT NULL AND r.user_id = s.user_id
              GROUP BY 1 ORDER BY 2 DESC",
            &[],
        )
        .await?;
    let total: f64 = spend.iter().map(|r| r.get::<_, f64>(1)).sum();
    budgets::set(client, &BudgetSpec::monthly(Scope::All, (total * 10.0).max(1.0))).await?;
    for (i, row) in spend.iter().enumerate() {
        let (department, spent): (String, f64) = (row.get(0), row.get(1));
        let amount = if i == 0 { spent * 0.8 } else { spent * 2.0 };
        budgets::set(client, &BudgetSpec::monthly(Scope::Department(department), amount.max(0.01))).await?;
    }
    Ok(())
}

impl DemoRun {
    /// The report of what is stored.
    pub async fn report(&self) -> anyhow::Result<Report> {
        let (client, connection) = tokio_postgres::connect(&self.database_url, NoTls).await?;
        tokio::spawn(connection);
        let mut report = Report::read(&client).await?;
        report.tables.extend(self.client_calls.table(&client).await?);
        Ok(report)
    }

    async fn stop_exporter(&mut self) {
        if let Some(exporter) = self.exporter.take()
            && let Err(e) = exporter.stop().await
        {
            eprintln!("exporter: {e}");
        }
    }

    /// Stops everything and removes the throw-away database.
    pub async fn finish(mut self) {
        self.stop_exporter().await;
        if let Some(cluster) = self.cluster.take() {
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        }
    }

    /// Stops the exporter but leaves the throw-away database running; returns how to stop it
    /// (`None` when the database was not ours).
    pub async fn keep(mut self) -> Option<String> {
        self.stop_exporter().await;
        self.cluster.take().map(LocalCluster::keep)
    }
}

/// A signed demo token for `user`.
pub fn token(user: &DemoUser) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 3600;
    let claims =
        json!({"sub": user.id, "email": email(user), "name": user.name, "department": user.department, "exp": exp});
    archon_mcp_instrument::user::hs256_token(JWT_SECRET.as_bytes(), &claims)
}

async fn serve_http(config: TracedConfig, ct: CancellationToken) -> anyhow::Result<SocketAddr> {
    let server = KnowledgeServer::new();
    let service = config.streamable_http_service(
        move || Ok(server.clone()),
        StreamableHttpServerConfig::default().with_sse_keep_alive(None).with_cancellation_token(ct.child_token()),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).with_graceful_shutdown(async move { ct.cancelled_owned().await }).await;
    });
    Ok(addr)
}

type Client = rmcp::service::RunningService<rmcp::RoleClient, ClientConfig>;
type TracedClient = archon_mcp_instrument::TracedClient<ClientConfig>;

async fn connect_http(addr: SocketAddr, user: &DemoUser) -> anyhow::Result<Client> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp")).auth_header(token(user)),
    );
    Ok(ClientConfig::new(ClientCapabilities::default(), Implementation::new(user.client, "1.0.0"))
        .serve(transport)
        .await?)
}

/// A user's work: searches, reads, tasks (some duplicate or malformed), summaries.
async fn workload(client: &TracedClient, user: usize, calls: usize, done: &AtomicU64) -> anyhow::Result<()> {
    const DOCS: [&str; 4] = ["onboarding", "postgres-tuning", "mcp-sessions", "cost-allocation"];
    const QUERIES: [&str; 4] = ["postgres", "session", "cost", "rust"];
    for n in 0..calls {
        let (tool, arguments): (&str, Value) = match (n + user) % 8 {
            0 | 1 => ("search_knowledge", json!({"query": QUERIES[n % 4]})),
            2 => ("get_document", json!({"id": DOCS[(n + user) % 4]})),
            3 => ("list_tasks", json!({})),
            4 => ("create_task", json!({"title": format!("task {}", n % 5)})), // repeats → isError
            5 => ("summarize_document", json!({"id": DOCS[n % 4]})),
            6 if n % 3 == 0 => ("create_task", json!({})), // a caller mistake: -32602
            _ => ("search_knowledge", json!({"query": "mcp"})),
        };
        let request = CallToolRequestParams::new(tool.to_owned())
            .with_arguments(arguments.as_object().cloned().unwrap_or_default());
        // Failures are part of the data: the demo records them, it does not stop on them.
        let _ = client.call_tool(request).await;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// A bar redrawn in place on a terminal; elsewhere (a CI log, a file) a line per quarter.
async fn progress_bar(done: Arc<AtomicU64>, total: u64) {
    const WIDTH: u64 = 30;
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let mut quarter = 0;
        loop {
            let n = done.load(Ordering::Relaxed).min(total);
            if n * 4 >= (quarter + 1) * total {
                quarter = n * 4 / total.max(1);
                eprintln!("  tool calls {n}/{total}");
            }
            if n >= total {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    loop {
        let n = done.load(Ordering::Relaxed).min(total);
        let filled = (n * WIDTH).checked_div(total).unwrap_or(WIDTH);
        eprint!(
            "\r  tool calls [{}{}] {n}/{total}",
            "█".repeat(filled as usize),
            "░".repeat((WIDTH - filled) as usize)
        );
        let _ = std::io::stderr().flush();
        if n >= total {
            eprintln!();
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves the knowledge server on stdio, exporting OTLP to `ARCHON_DEMO_OTLP`; the user comes
/// from `ARCHON_USER_*`. What the demo's stdio child and `tool_server --transport stdio`
/// run.
pub async fn serve_stdio(otlp_endpoint: &str) -> anyhow::Result<()> {
    let telemetry: TelemetryGuard = Telemetry::builder()
        .service_name("knowledge-demo-stdio")
        .scheduled_delay(Duration::from_millis(200))
        .otlp_endpoint(otlp_endpoint)
        .build_provider()?;
    let config =
        TracedConfig::builder().user_resolver(EnvUser::from_env()).token_estimation(TokenEstimation::CharsDiv4).build();
    let server = KnowledgeServer::new().traced(config).serve(rmcp::transport::stdio()).await?;
    server.waiting().await?;
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    Ok(())
}
