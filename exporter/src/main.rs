//! `archon-mcp-exporter`: schema management for the Archon MCP tables (the OTLP receiver,
//! `serve`, comes with the exporter service).

use std::process::ExitCode;

use anyhow::Context;
use archon_mcp_exporter::migrate;
use clap::{Args, Parser, Subcommand};
use tokio_postgres::NoTls;

/// Turns MCP OpenTelemetry spans into Archon-compatible PostgreSQL rows.
#[derive(Debug, Parser)]
#[command(name = "archon-mcp-exporter", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending schema migrations (safe to run from several processes at once).
    Migrate {
        #[command(flatten)]
        db: Database,
    },
    /// Create the monthly request partitions for the coming months.
    Partitions {
        #[command(flatten)]
        db: Database,
        /// How many months after the current one to create.
        #[arg(long, env = "ARCHON_EXPORTER_MONTHS_AHEAD", default_value_t = 3)]
        months_ahead: i32,
    },
}

#[derive(Debug, Args)]
struct Database {
    /// PostgreSQL connection string (postgres://user:password@host:port/db or key=value).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate { db } => {
            let applied = migrate::migrate_url(&db.database_url)
                .await
                .context("migrating (check --database-url / DATABASE_URL and that the server is up)")?;
            if applied.is_empty() {
                println!("schema is current ({} migrations)", migrate::known().len());
            }
            for m in applied {
                println!("applied V{}__{}", m.version, m.name);
            }
        }
        Command::Partitions { db, months_ahead } => {
            let (client, connection) = tokio_postgres::connect(&db.database_url, NoTls)
                .await
                .context("connecting (check --database-url / DATABASE_URL and that the server is up)")?;
            tokio::spawn(connection);
            let rows = client
                .query("SELECT archon_mcp_create_request_partitions($1)", &[&months_ahead])
                .await
                .context("creating partitions (has `archon-mcp-exporter migrate` run?)")?;
            if rows.is_empty() {
                println!("partitions exist through {months_ahead} months ahead");
            }
            for row in rows {
                println!("created {}", row.get::<_, String>(0));
            }
        }
    }
    Ok(())
}
