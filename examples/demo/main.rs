//! The demo: the whole data path on a throw-away PostgreSQL, then a usage report.
//!
//! ```text
//! cargo run --release --example demo            # throw-away PostgreSQL, removed at the end
//! cargo run --release --example demo -- --keep  # leave it running for Grafana / psql
//! DATABASE_URL=postgres://… cargo run --release --example demo
//! ```
//!
//! Today the demo feeds the exporter's mapping and store with the spans an instrumented rmcp
//! server emits for several users and clients (the direct path), then prints what Archon's SQL
//! API and the dashboards' queries answer.

mod report;
mod traffic;

use std::time::Instant;

use anyhow::Context;
use archon_mcp_exporter::mapping::map_spans;
use archon_mcp_exporter::migrate;
use archon_mcp_exporter::store::{PgStore, StoreConfig};
use archon_mcp_exporter::testing::LocalCluster;
use clap::Parser;

/// Shows archon-mcp-otel end to end on a throw-away PostgreSQL and prints a usage report.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// Use this PostgreSQL instead of starting a throw-away one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Leave the throw-away PostgreSQL running and print how to connect to it.
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();

    let (url, cluster) = match args.database_url {
        Some(url) => (url, None),
        None => {
            eprintln!("▸ starting a throw-away PostgreSQL …");
            let cluster = tokio::task::spawn_blocking(LocalCluster::start).await?.map_err(anyhow::Error::msg)?;
            (cluster.url("postgres"), Some(cluster))
        }
    };

    eprintln!("▸ migrating the schema …");
    migrate::migrate_url(&url).await.context("migrating")?;

    let spans = traffic::simulate();
    eprintln!("▸ exporting {} spans from {} simulated connections …", spans.len(), traffic::CONNECTIONS);
    let store = PgStore::connect(&url, StoreConfig::default().with_estimate_model("claude-sonnet-4-5"))?;
    let mut written = 0;
    for (i, chunk) in spans.chunks(64).enumerate() {
        let outcome = store.write(&map_spans(chunk)).await?;
        written += outcome.requests_inserted;
        eprint!("\r  batch {:>3}: {written} request rows", i + 1);
    }
    eprintln!();

    report::print(&url).await.context("reading the report")?;
    eprintln!("\n(done in {:.1} s)", started.elapsed().as_secs_f64());

    if let Some(cluster) = cluster {
        if args.keep {
            let url = cluster.url("postgres");
            let stop = cluster.keep();
            println!("\nPostgreSQL keeps running at {url}");
            println!("  psql '{url}'");
            println!("  stop it with: {stop}");
        } else {
            tokio::task::spawn_blocking(move || drop(cluster)).await?;
        }
    }
    Ok(())
}
