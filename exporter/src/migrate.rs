//! The schema (`exporter/migrations/`, also reachable as `migrations/` at the workspace root), embedded and applied with refinery under a
//! PostgreSQL advisory lock, so several exporters may start at once.
//!
//! ```no_run
//! # async fn run() -> Result<(), archon_mcp_exporter::migrate::MigrateError> {
//! let applied = archon_mcp_exporter::migrate::migrate_url("postgres://postgres@127.0.0.1/archon").await?;
//! println!("applied {} migrations", applied.len());
//! # Ok(()) }
//! ```

use tokio_postgres::Client;

use crate::adopt::{self, ArchonState, Found, Plan, Summary};

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub use crate::adopt::HISTORY_TABLE;

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
#[non_exhaustive]
pub enum MigrateError {
    /// Could not connect to PostgreSQL.
    #[error(transparent)]
    Connect(#[from] crate::ConnectError),
    /// A statement around the migrations (the advisory lock, the history) failed.
    #[error("{}", crate::pg_error::describe(.0))]
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
    #[error("{}", describe_refinery(.0))]
    Migration(refinery::Error),
    /// The database holds tables under the product's names that are neither this project's
    /// nor Archon's; nothing was changed.
    #[error(
        "the database holds {0}: `migrate` creates this project's schema on an empty database, upgrades its own, \
         or adopts Archon's; nothing was changed — point --database-url at another database"
    )]
    Unrecognised(String),
    /// Adopting an Archon database stopped; what was done is kept and a new run resumes.
    #[error("adopting the Archon database: {0}")]
    Adoption(#[from] crate::adopt::TakeInError),
}

impl From<refinery::Error> for MigrateError {
    fn from(e: refinery::Error) -> Self {
        MigrateError::Migration(e)
    }
}

/// A failed migration said once: which one, and PostgreSQL's own words (refinery's message
/// stops at "db error" and repeats it in its sources).
fn describe_refinery(e: &refinery::Error) -> String {
    match e.kind() {
        refinery::error::Kind::Connection(what, source) => match source.downcast_ref::<tokio_postgres::Error>() {
            Some(pg) => format!("{what}: {}", crate::pg_error::describe(pg)),
            None => format!("{what}: {source}"),
        },
        other => other.to_string(),
    }
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
/// whole run: a second migrator waits, then finds nothing to do. An Archon database is adopted
/// (see [`crate::adopt`]); a database with other tables under the product's names is refused.
pub async fn migrate(client: &mut Client) -> Result<Vec<MigrationInfo>, MigrateError> {
    Ok(migrate_reporting(client).await?.applied)
}

/// What [`migrate_reporting`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Migrated {
    /// The migrations applied.
    pub applied: Vec<MigrationInfo>,
    /// The Archon database adopted, if it was one (or one whose adoption this run resumed).
    pub adopted: Option<(Option<ArchonState>, Summary)>,
}

/// [`migrate`], saying what it did.
pub async fn migrate_reporting(client: &mut Client) -> Result<Migrated, MigrateError> {
    check_server_version(client).await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    let result = migrate_locked(client).await;
    // The lock also ends with the session; unlocking early lets a waiting migrator go on.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    let migrated = result?;
    unlocked?;
    Ok(migrated)
}

async fn migrate_locked(client: &mut Client) -> Result<Migrated, MigrateError> {
    let adopting = match adopt::inspect(&*client).await? {
        Found::Other(what) => return Err(MigrateError::Unrecognised(what)),
        Found::Archon(state) => {
            adopt::set_aside(client).await?;
            Some(Some(state))
        }
        Found::Adopting => Some(None),
        _ => None,
    };
    let report = runner().run_async(client).await?;
    let applied = report.applied_migrations().iter().map(info).collect();
    let adopted = match adopting {
        Some(state) => Some((state, adopt::take_in(client).await?)),
        None => None,
    };
    crate::privileges::confine(&*client).await?;
    Ok(Migrated { applied, adopted })
}

/// What `migrate` would do, changing nothing: the migrations it would apply, and for an Archon
/// database the adoption's [`Plan`].
pub async fn plan(client: &mut Client) -> Result<(Vec<MigrationInfo>, Option<Plan>), MigrateError> {
    check_server_version(client).await?;
    match adopt::inspect(&*client).await? {
        Found::Other(what) => Err(MigrateError::Unrecognised(what)),
        Found::Archon(state) => Ok((known(), Some(adopt::plan(&*client, state).await?))),
        _ => Ok((pending(client).await?, None)),
    }
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
