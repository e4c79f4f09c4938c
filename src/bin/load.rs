//! A load generator for an MCP server over streamable HTTP: simulated users with JWTs call
//! tools at a target rate, and the latency and error figures are printed every second.
//!
//! ```text
//! cargo run --release --bin load -- --url http://127.0.0.1:8000/mcp --jwt-secret change-me \
//!     --rate 200 --concurrency 8 --users 20 --duration 30
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use archon_mcp_instrument::{Telemetry, TracedClientExt as _, TracedConfig};
use clap::Parser;
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use tokio::sync::Mutex;

/// Calls MCP tools at a steady rate from many simulated users.
#[derive(Debug, Parser)]
#[command(name = "load")]
struct Args {
    /// The server's streamable HTTP endpoint.
    #[arg(long, env = "LOAD_URL", default_value = "http://127.0.0.1:8000/mcp")]
    url: String,
    /// Tool calls per second, in total.
    #[arg(long, env = "LOAD_RATE", default_value_t = 100)]
    rate: u64,
    /// Calls in flight at once (each worker calls in turn through its users' connections).
    #[arg(long, env = "LOAD_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
    /// Distinct users, each with its own connection (and so its own session).
    #[arg(long, env = "LOAD_USERS", default_value_t = 10)]
    users: usize,
    /// Seconds to run.
    #[arg(long, env = "LOAD_DURATION", default_value_t = 10)]
    duration: u64,
    /// Sign HS256 tokens for the users with this secret (prefer ARCHON_JWT_SECRET: a flag's
    /// value is visible in `ps`).
    #[arg(long, env = "ARCHON_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// The tool to call, with arguments it accepts (the knowledge server's tools).
    #[arg(long, default_value = "search_knowledge")]
    tool: String,
    /// Export the clients' spans over OTLP to this collector: each call a CLIENT span whose
    /// context reaches the server in `_meta`, so client and server are one trace.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

fn token(secret: &str, user: usize) -> String {
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 86_400;
    let department = ["Research", "Platform", "Support"][user % 3];
    let claims = json!({"sub": format!("load-user-{user}"), "email": format!("user{user}@example.com"),
                        "department": department, "exp": exp});
    archon_mcp_instrument::user::hs256_token(secret.as_bytes(), &claims)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for warning in archon_mcp_exporter::secret::on_command_line(std::env::args(), &["--jwt-secret"]) {
        eprintln!("warning: {warning}");
    }
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // Before the clients: their config finds the installed provider on first use.
    let telemetry = match &args.otlp_endpoint {
        Some(endpoint) => Some(
            Telemetry::builder()
                .service_name("load")
                .otlp_endpoint(endpoint.clone())
                .install()
                .context("installing the OTLP exporter")?,
        ),
        None => None,
    };
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let end = Instant::now() + Duration::from_secs(args.duration);
    let per_connection = Duration::from_secs_f64(args.concurrency as f64 / args.rate.max(1) as f64);

    // One connection per user; `concurrency` workers share them out, so every user is seen.
    let (users, workers) = (args.users.max(1), args.concurrency.max(1));
    let mut connections: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
    for user in 0..users.max(workers) {
        let mut config = StreamableHttpClientTransportConfig::with_uri(args.url.clone());
        if let Some(secret) = &args.jwt_secret {
            config = config.auth_header(token(secret, user % users));
        }
        let client = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new(["claude-code", "Cursor", "Windsurf"][user % 3], "load"),
        )
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .with_context(|| format!("connecting to {} (is the server up?)", args.url))?
        .traced(TracedConfig::default());
        connections[user % workers].push(client);
    }
    let failures = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let mut tasks = Vec::new();
    for (c, clients) in connections.into_iter().enumerate() {
        let (ok, failed, latencies, tool, failures) =
            (ok.clone(), failed.clone(), latencies.clone(), args.tool.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(per_connection);
            let mut n = 0u64;
            while Instant::now() < end {
                tick.tick().await;
                let client = &clients[n as usize % clients.len()];
                let request = CallToolRequestParams::new(tool.clone()).with_arguments(arguments(&tool, c, n));
                let started = Instant::now();
                let why = match client.call_tool(request).await {
                    Ok(result) if result.is_error != Some(true) => None,
                    Ok(_) => Some("the tool returned an error result".to_owned()),
                    Err(e) => Some(e.to_string().chars().take(120).collect()),
                };
                match why {
                    None => ok.fetch_add(1, Ordering::Relaxed),
                    Some(why) => {
                        *failures.lock().await.entry(why).or_default() += 1;
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                latencies.lock().await.push(started.elapsed());
                n += 1;
            }
            for client in clients {
                let _ = client.cancel().await;
            }
        }));
    }

    let started = Instant::now();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut l = latencies.lock().await.clone();
        l.sort();
        let pct =
            |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or_default();
        eprintln!(
            "{:>4.0} s  {:>8} ok  {:>6} failed  {:>7.0} calls/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
            started.elapsed().as_secs_f64(),
            ok.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
        );
    }
    for task in tasks {
        task.await?;
    }
    println!("{} calls, {} failed, from {users} users", ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    for (why, count) in failures.lock().await.iter() {
        println!("  {count:>6} × {why}");
    }
    if args.jwt_secret.is_none() {
        println!("no --jwt-secret: the calls were anonymous (no user, no per-user cost)");
    }
    if let Some(telemetry) = telemetry {
        // Flushes the clients' spans (a blocking export, off the async threads).
        tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    }
    Ok(())
}

/// Arguments the knowledge server's tools accept (unknown tools get a query).
fn arguments(tool: &str, worker: usize, n: u64) -> rmcp::model::JsonObject {
    let value = match tool {
        "get_document" | "summarize_document" => json!({"id": format!("doc-{}", n % 5 + 1)}),
        "create_task" => json!({"title": format!("task {worker}-{n}")}),
        "list_tasks" => json!({}),
        _ => json!({"query": format!("q{worker}-{n}")}),
    };
    value.as_object().cloned().unwrap_or_default()
}
