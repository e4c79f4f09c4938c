//! Writes mapped batches to PostgreSQL: one transaction per batch, idempotent.
//!
//! Sessions are upserted first (earliest start, latest activity, first known client and user,
//! an end once set is kept — a late request never reopens a session), then requests are
//! inserted with `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`, priced from
//! `archon_llm_pricing` at the request's time (one lookup per model and day of a batch) unless tool
//! code reported a cost.
//! Replaying a batch, or its spans in any order, leaves the same tables.
//!
//! If PostgreSQL refuses the data of a batch (a constraint, a value out of range), the batch
//! is written again row by row, each in a savepoint: the refused rows are reported with the
//! database's reason and the rest commit.

use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

mod columns;

use crate::mapping::MappedBatch;
use crate::pg_error::PgFailure;
use crate::rows::{RequestRow, SessionUpsert, TokenSource};

/// How the store prices and connects.
///
/// ```
/// let config = archon_mcp_exporter::StoreConfig::default().with_estimate_model("claude-sonnet-4-5").with_max_connections(8);
/// assert_eq!(config.max_connections, 8);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Model whose price applies to estimated tokens; `None` leaves estimates unpriced.
    pub estimate_model: Option<String>,
    /// Connections in the pool.
    pub max_connections: usize,
    /// How long a write waits for a free connection before reporting the database unavailable.
    pub acquire_timeout: Duration,
    /// Verify the database's certificate against these CAs (PEM); without, TLS is used when the
    /// server offers it but not verified (libpq's `sslmode=prefer`/`require`).
    pub ca_file: Option<std::path::PathBuf>,
    /// What is stored of the personal fields of spans (everything as sent by default). Applied
    /// as spans are mapped, by `serve` and [`PgSpanExporter`](crate::PgSpanExporter); writing
    /// with [`PgStore::write`] yourself, map with
    /// [`map_spans_with`](crate::map_spans_with)`(spans, &config.minimisation)`.
    pub minimisation: crate::minimise::Minimisation,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            estimate_model: None,
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
            ca_file: None,
            minimisation: Default::default(),
        }
    }
}

impl StoreConfig {
    /// Prices estimated tokens at this model's price.
    pub fn with_estimate_model(mut self, model: impl Into<String>) -> Self {
        self.estimate_model = Some(model.into());
        self
    }

    /// Sets the pool size.
    pub fn with_max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections.max(1);
        self
    }
}

with_setters!(StoreConfig {
    with_acquire_timeout => acquire_timeout: Duration,
    with_ca_file => ca_file: Option<std::path::PathBuf>,
    with_minimisation => minimisation: crate::minimise::Minimisation,
});

/// A write that did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot take the write now (down, restarting, pool exhausted, deadlock):
    /// retry later; nothing was committed.
    #[error("database unavailable, retry later: {0}")]
    Unavailable(String),
    /// Any other failure (no schema, no permission, …): retrying will not help.
    #[error("database error: {}{hint}", crate::pg_error::describe(.0), hint = hint(.0))]
    Database(tokio_postgres::Error),
    /// The connection string or pool settings are wrong.
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl StoreError {
    /// Whether trying the same write again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match PgFailure::of(e.code()) {
            PgFailure::Transient => StoreError::Unavailable(crate::pg_error::describe(&e)),
            PgFailure::RefusedData | PgFailure::Permanent => StoreError::Database(e),
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

fn hint(e: &tokio_postgres::Error) -> &'static str {
    match e.code() {
        Some(c) if *c == SqlState::UNDEFINED_TABLE || *c == SqlState::UNDEFINED_FUNCTION => {
            " (is the schema there? run `archon-mcp-exporter migrate --database-url URL`)"
        }
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => " (grant the archon_exporter role to this login)",
        _ => "",
    }
}

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Session rows inserted or updated.
    pub sessions_upserted: u64,
    /// Request rows inserted.
    pub requests_inserted: u64,
    /// Requests already stored (replays), skipped.
    pub requests_duplicate: u64,
    /// Rows the database refused; everything else committed.
    pub rejected: Vec<StoreRejection>,
}

/// A row PostgreSQL refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRejection {
    /// The refused row.
    pub row: RowRef,
    /// The database's reason.
    pub reason: String,
}

/// Which row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowRef {
    /// A session upsert (its requests are refused with it).
    Session(Uuid),
    /// A request.
    Request(Uuid),
}

/// The PostgreSQL store: a connection pool and the two statements.
///
/// ```no_run
/// use archon_mcp_exporter::{PgStore, StoreConfig, map_spans};
/// # async fn run(spans: Vec<archon_mcp_exporter::span::Span>) -> Result<(), archon_mcp_exporter::StoreError> {
/// let store = PgStore::connect(
///     "postgres://archon_exporter@db/archon",
///     StoreConfig::default().with_estimate_model("claude-sonnet-4-5"),
/// )?;
/// let outcome = store.write(&map_spans(&spans)).await?;
/// assert!(outcome.rejected.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: StoreConfig,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("config", &self.config).finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store over an existing pool.
    pub fn new(pool: Pool, config: StoreConfig) -> Self {
        Self { pool, config }
    }

    /// The configuration it writes with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// A store with its own pool for a `postgres://` URL or key=value connection string.
    /// Connects lazily: an unreachable database shows up as [`StoreError::Unavailable`] on write.
    pub fn connect(url: &str, config: StoreConfig) -> Result<Self, StoreError> {
        let pg = crate::connection_string::parse(url).map_err(StoreError::Config)?;
        let tls = crate::tls::connector(config.ca_file.as_deref()).map_err(|e| StoreError::Config(e.to_string()))?;
        let manager = Manager::from_config(pg, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.max_connections)
            .wait_timeout(Some(config.acquire_timeout))
            .create_timeout(Some(config.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Self::new(pool, config))
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Writes a batch in one transaction. On [`StoreError`] nothing was committed.
    pub async fn write(&self, batch: &MappedBatch) -> Result<WriteOutcome, StoreError> {
        if batch.sessions.is_empty() && batch.requests.is_empty() {
            return Ok(WriteOutcome::default());
        }
        if self.config.estimate_model.is_none() {
            warn_unpriced_estimates(batch.requests.iter().filter(|r| r.token_source == TokenSource::Estimated).count());
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        match self.write_rows(&tx, &batch.sessions, &batch.requests).await {
            Ok((sessions_upserted, requests_inserted)) => {
                tx.commit().await?;
                Ok(WriteOutcome {
                    sessions_upserted,
                    requests_inserted,
                    requests_duplicate: batch.requests.len() as u64 - requests_inserted,
                    rejected: Vec::new(),
                })
            }
            Err(e) if is_refused_data(&e) => {
                tx.rollback().await?;
                let mut tx = client.transaction().await?;
                let outcome = self.write_row_by_row(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(outcome)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn write_rows(
        &self,
        client: &impl GenericClient,
        sessions: &[SessionUpsert],
        requests: &[RequestRow],
    ) -> Result<(u64, u64), tokio_postgres::Error> {
        let sessions_upserted = if sessions.is_empty() { 0 } else { upsert_sessions(client, sessions).await? };
        let requests_inserted =
            if requests.is_empty() { 0 } else { insert_requests(client, requests, &self.config).await? };
        Ok((sessions_upserted, requests_inserted))
    }

    /// The slow path, after PostgreSQL refused the batch's data: every row in its own
    /// savepoint, so only the refused rows are lost.
    async fn write_row_by_row(
        &self,
        tx: &mut deadpool_postgres::Transaction<'_>,
        batch: &MappedBatch,
    ) -> Result<WriteOutcome, StoreError> {
        let mut outcome = WriteOutcome::default();
        let mut refused_sessions = Vec::new();
        for session in &batch.sessions {
            match self.in_savepoint(tx, std::slice::from_ref(session), &[]).await? {
                Ok((n, _)) => outcome.sessions_upserted += n,
                Err(reason) => {
                    refused_sessions.push(session.session_id);
                    outcome.rejected.push(StoreRejection { row: RowRef::Session(session.session_id), reason });
                }
            }
        }
        for request in &batch.requests {
            if refused_sessions.contains(&request.session_id) {
                outcome.rejected.push(StoreRejection {
                    row: RowRef::Request(request.request_id),
                    reason: "its session was refused".into(),
                });
                continue;
            }
            match self.in_savepoint(tx, &[], std::slice::from_ref(request)).await? {
                Ok((_, 1)) => outcome.requests_inserted += 1,
                Ok(_) => outcome.requests_duplicate += 1,
                Err(reason) => {
                    outcome.rejected.push(StoreRejection { row: RowRef::Request(request.request_id), reason })
                }
            }
        }
        Ok(outcome)
    }

    /// `Ok(Err(reason))` when PostgreSQL refused the rows' data; `Err` for anything else.
    async fn in_savepoint(
        &self,
        tx: &mut deadpool_postgres::Transaction<'_>,
        sessions: &[SessionUpsert],
        requests: &[RequestRow],
    ) -> Result<Result<(u64, u64), String>, StoreError> {
        let savepoint = tx.savepoint("row").await?;
        match self.write_rows(&savepoint, sessions, requests).await {
            Ok(counts) => {
                savepoint.commit().await?;
                Ok(Ok(counts))
            }
            Err(e) if is_refused_data(&e) => {
                savepoint.rollback().await?;
                Ok(Err(e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned())))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Says in the log, at most every 10 minutes, that requests with estimated tokens are stored
/// without a price: with no estimate model their cost stays empty, silently otherwise.
fn warn_unpriced_estimates(count: usize) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_WARNING: AtomicU64 = AtomicU64::new(0);
    if count == 0 {
        return;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let last = LAST_WARNING.load(Ordering::Relaxed);
    if (last == 0 || now >= last + 600)
        && LAST_WARNING.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        tracing::warn!(
            count,
            "requests with estimated tokens are stored without a cost: give `serve --estimate-model MODEL` \
             (in process: StoreConfig::with_estimate_model) to price them at a model's price (one warning every 10 min)"
        );
    }
}

/// Whether PostgreSQL refused the data itself rather than being unreachable or misconfigured.
fn is_refused_data(e: &tokio_postgres::Error) -> bool {
    PgFailure::of(e.code()) == PgFailure::RefusedData
}

async fn upsert_sessions(
    client: &impl GenericClient,
    sessions: &[SessionUpsert],
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(&columns::UPSERT_SESSIONS).await?;
    execute(client, &statement, columns::session_params(sessions)).await
}

async fn insert_requests(
    client: &impl GenericClient,
    requests: &[RequestRow],
    config: &StoreConfig,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(&columns::INSERT_REQUESTS).await?;
    execute(client, &statement, columns::request_params(requests, config)).await
}

async fn execute(
    client: &impl GenericClient,
    statement: &tokio_postgres::Statement,
    params: Vec<columns::Param<'_>>,
) -> Result<u64, tokio_postgres::Error> {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    client.execute(statement, &params).await
}
