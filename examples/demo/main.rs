//! The demo: the whole system on a throw-away PostgreSQL, then a usage report.
//!
//! ```text
//! cargo run --release --example demo            # throw-away PostgreSQL, removed at the end
//! cargo run --release --example demo -- --keep  # leave it running for Grafana / psql
//! DATABASE_URL=postgres://… cargo run --release --example demo
//! ```
//!
//! PostgreSQL → `archon-mcp-exporter serve` → the knowledge MCP server (traced, OTLP to the
//! exporter) → five users on real rmcp clients over streamable HTTP with JWTs and a sixth over
//! stdio → the report from Archon's SQL API.

use std::time::Instant;

use archon_mcp_otel::demo::{self, DemoOptions};
use clap::Parser;

/// Shows archon-mcp-otel end to end and prints a usage report.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// Use this PostgreSQL instead of starting a throw-away one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Leave the throw-away PostgreSQL running and print how to use it.
    #[arg(long)]
    keep: bool,
    /// Tool calls per simulated user.
    #[arg(long, default_value_t = 40)]
    calls: usize,
    /// Internal: serve the knowledge server on stdio (the demo's stdio user).
    #[arg(long, hide = true)]
    serve_stdio: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve_stdio {
        let otlp = std::env::var("ARCHON_DEMO_OTLP")?;
        return demo::serve_stdio(&otlp).await;
    }
    let started = Instant::now();
    let mut stdio = std::process::Command::new(std::env::current_exe()?);
    stdio.arg("--serve-stdio");
    let run = demo::run(DemoOptions {
        database_url: args.database_url.clone(),
        http_users: 5,
        calls_per_user: args.calls,
        stdio_server: Some(stdio),
        progress: true,
    })
    .await?;
    println!("\n{}", run.report().await?);
    eprintln!("(done in {:.1} s)", started.elapsed().as_secs_f64());

    let url = run.database_url.clone();
    if args.keep {
        if let Some(stop) = run.keep().await {
            println!("\nPostgreSQL keeps running: {url}");
            println!("  psql '{url}'");
            let port = url.rsplit(':').next().and_then(|p| p.split('/').next()).unwrap_or("5432");
            println!("  Grafana with the dashboards (then http://localhost:3000, admin/admin), from this directory:");
            println!(
                "  docker run --rm --network host -e ARCHON_PG_HOST=127.0.0.1:{port} -e ARCHON_PG_DATABASE=postgres \\\n    \
                 -e ARCHON_PG_USER=postgres -e ARCHON_PG_PASSWORD= -e ARCHON_PG_SSLMODE=disable \\\n    \
                 -e ARCHON_DASHBOARDS_DIR=/archon-dashboards -v \"$PWD/dashboards/provisioning:/etc/grafana/provisioning\" \\\n    \
                 -v \"$PWD/dashboards/json:/archon-dashboards\" grafana/grafana"
            );
            println!("  stop it: {stop}");
        }
    } else {
        run.finish().await;
    }
    Ok(())
}
