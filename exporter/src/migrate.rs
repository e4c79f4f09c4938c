//! The schema (`migrations/` at the workspace root), embedded and applied with refinery under a
//! PostgreSQL advisory lock, so several exporters may start at once.
//!
//! ```no_run
//! # async fn run() -> Result<(), archon_mcp_exporter::migrate::MigrateError> {
//! let applied = archon_mcp_exporter::migrate::migrate_url("postgres://postgres@127.0.0.1/archon").await?;
//! println!("applied {} migrations", applied.len());
//! # Ok(()) }
//! ```

use tokio_postgres::Client;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// The table recording applied migrations; our own name, so it never meets an application's
/// refinery table in a shared database.
pub const HISTORY_TABLE: &str = "archon_schema_history";

/// The oldest PostgreSQL the schema runs on (`server_version_num`).
pub const MIN_SERVER_VERSION: i32 = 150_000;
const MIN_SERVER_VERSION_NAME: &str = "15";

/// Refuses a server older than [`MIN_SERVER_VERSION`] before anything is changed.
async fn check_server_version(client: &Client) -> Result<(), MigrateError> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int, current_setting('server_version')", &[])
        .await?;
    let (number, found): (i32, String) = (row.get(0), row.get(1));
    if number < MIN_SERVER_VERSION { Err(MigrateError::ServerTooOld { found }) } else { Ok(()) }
}

/// Advisory lock key held while migrating (`'archon-mcp-otel'` in ASCII, truncated).
pub const LOCK_KEY: i64 = 0x6172_6368_6f6e_6d63;

/// Failure to migrate.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Could not connect to PostgreSQL.
    #[error(transparent)]
    Connect(#[from] crate::ConnectError),
    /// A statement around the migrations (the advisory lock, the history) failed.
    #[error("{}", crate::connect::describe(.0))]
    Database(tokio_postgres::Error),
    /// The server is older than the schema needs.
    #[error(
        "PostgreSQL {found} is too old: the schema needs {MIN_SERVER_VERSION_NAME} or later (its views use \
         security_invoker); upgrade the server, e.g. from the PGDG packages (apt.postgresql.org)"
    )]
    ServerTooOld {
        /// The server's version, as it reports it.
        found: String,
    },
    /// A migration failed; the database is left at the last migration that succeeded.
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
}

// By hand, not `#[from]`: the driver's error is described in the message, not chained.
impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Database(e)
    }
}

/// A migration this build knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationInfo {
    /// Version number (`V{n}__…`).
    pub version: i64,
    /// Name after the version.
    pub name: String,
}

/// Connects to `url`, applies every pending migration and returns those it applied.
pub async fn migrate_url(url: &str) -> Result<Vec<MigrationInfo>, MigrateError> {
    migrate_url_verified(url, None).await
}

/// [`migrate_url`], verifying the database's certificate against `ca_file` (see [`crate::connect`]).
pub async fn migrate_url_verified(
    url: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<Vec<MigrationInfo>, MigrateError> {
    let mut client = crate::connect(url, ca_file).await?;
    migrate(&mut client).await
}

/// Applies every pending migration on `client`, holding the advisory lock [`LOCK_KEY`] for the
/// whole run: a second migrator waits, then finds nothing to do.
pub async fn migrate(client: &mut Client) -> Result<Vec<MigrationInfo>, MigrateError> {
    check_server_version(client).await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    let result = runner().run_async(client).await;
    // The lock also ends with the session; unlocking early lets a waiting migrator go on.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    let report = result?;
    unlocked?;
    Ok(report.applied_migrations().iter().map(info).collect())
}

/// Migrations this build knows that the database has not applied (empty when current).
pub async fn pending(client: &mut Client) -> Result<Vec<MigrationInfo>, MigrateError> {
    // Read directly (not through refinery, which would try to create the table): a login
    // granted only `archon_exporter` can read it (V7) but create nothing.
    let last: i64 =
        match client.query_one(&format!("SELECT coalesce(max(version), 0)::int8 FROM {HISTORY_TABLE}"), &[]).await {
            Ok(row) => row.get(0),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
            Err(e) => return Err(e.into()),
        };
    Ok(runner().get_migrations().iter().filter(|m| i64::from(m.version()) > last).map(info).collect())
}

/// Every migration this build embeds, in order.
pub fn known() -> Vec<MigrationInfo> {
    runner().get_migrations().iter().map(info).collect()
}

fn runner() -> refinery::Runner {
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name(HISTORY_TABLE);
    runner
}

fn info(m: &refinery::Migration) -> MigrationInfo {
    MigrationInfo { version: i64::from(m.version()), name: m.name().to_owned() }
}
