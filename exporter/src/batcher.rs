//! Group commit: concurrent exports are queued, and each writer takes everything queued (up to
//! a row limit) into one transaction. Memory is bounded by a row budget; an export that does not
//! fit is refused at once as busy, which the receivers turn into "retry later".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mapping::MappedBatch;
use crate::metrics::Metrics;
use crate::rows::SessionSet;
use crate::store::{PgStore, RowRef, StoreError, StoreRejection};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

/// Limits of the group commit.
///
/// ```
/// use std::time::Duration;
/// let config = archon_mcp_exporter::BatcherConfig::default().with_writers(4).with_write_timeout(Duration::from_secs(30));
/// assert_eq!(config.max_batch_rows, 5_000);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BatcherConfig {
    /// Most rows in one transaction.
    pub max_batch_rows: usize,
    /// Most rows queued or being written at once (the memory bound).
    pub max_pending_rows: usize,
    /// Concurrent writers (one connection each).
    pub writers: usize,
    /// A write that takes longer is abandoned and reported unavailable.
    pub write_timeout: Duration,
}

with_setters!(BatcherConfig {
    with_max_batch_rows => max_batch_rows: usize,
    with_max_pending_rows => max_pending_rows: usize,
    with_writers => writers: usize,
    with_write_timeout => write_timeout: Duration,
});

impl Default for BatcherConfig {
    fn default() -> Self {
        Self { max_batch_rows: 5_000, max_pending_rows: 200_000, writers: 2, write_timeout: Duration::from_secs(10) }
    }
}

impl BatcherConfig {
    /// Brought into range: at least one writer, row and second, and a transaction never larger
    /// than half the pending budget (so a part always fits).
    pub(crate) fn normalized(mut self) -> Self {
        self.writers = self.writers.max(1);
        self.max_pending_rows = self.max_pending_rows.max(1);
        self.max_batch_rows = self.max_batch_rows.clamp(1, (self.max_pending_rows / 2).max(1));
        self.write_timeout = self.write_timeout.max(Duration::from_secs(1));
        self
    }
}

/// Why an export was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SubmitError {
    /// Too much is queued already; retry later.
    #[error("the exporter is busy ({0} rows queued); retry later")]
    Busy(usize),
    /// The database cannot take writes now; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The write failed for another reason (no schema, no permission): retrying helps only once
    /// an operator fixes it.
    #[error("{0}")]
    Failed(String),
    /// The batcher is shutting down.
    #[error("the exporter is shutting down")]
    Closed,
}

impl SubmitError {
    /// A stable label, for metrics.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            SubmitError::Busy(_) => "busy",
            SubmitError::Unavailable(_) => "unavailable",
            SubmitError::Failed(_) => "failed",
            SubmitError::Closed => "closed",
        }
    }
}

impl From<StoreError> for SubmitError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() { SubmitError::Unavailable(e.to_string()) } else { SubmitError::Failed(e.to_string()) }
    }
}

struct Job {
    batch: MappedBatch,
    reply: oneshot::Sender<Result<Vec<StoreRejection>, SubmitError>>,
    _pending: Pending,
}

/// A part's share of the pending budget, shown in the `pending_rows` gauge until it is answered.
struct Pending {
    _permit: OwnedSemaphorePermit,
    rows: usize,
    metrics: Arc<Metrics>,
}

impl Pending {
    fn new(permit: OwnedSemaphorePermit, rows: usize, metrics: Arc<Metrics>) -> Self {
        metrics.pending_rows.add(rows);
        Self { _permit: permit, rows, metrics }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.metrics.pending_rows.sub(self.rows);
    }
}

/// The queue in front of the store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Job>,
    budget: Arc<Semaphore>,
    max_pending: usize,
    max_batch_rows: usize,
    /// Awaited by [`close`](Self::close), the service's graceful shutdown.
    #[cfg_attr(not(feature = "service"), allow(dead_code))]
    writers: Arc<Mutex<JoinSet<()>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("max_pending", &self.max_pending).finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the writers.
    pub(crate) fn start(store: PgStore, config: BatcherConfig, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let mut writers = JoinSet::new();
        let config = config.normalized();
        for _ in 0..config.writers {
            writers.spawn(write_loop(rx.clone(), store.clone(), config.clone(), metrics.clone()));
        }
        Self {
            tx,
            budget: Arc::new(Semaphore::new(config.max_pending_rows)),
            max_pending: config.max_pending_rows,
            max_batch_rows: config.max_batch_rows,
            writers: Arc::new(Mutex::new(writers)),
            metrics,
        }
    }

    /// Queues a batch and waits until it is committed; returns the rows the database refused.
    ///
    /// A batch larger than one transaction is written in parts, one after another, each within
    /// the write timeout and the pending budget: an export of any size can succeed. If a part
    /// fails the export is retried whole, and the parts already written are duplicates, which
    /// the store ignores.
    pub(crate) async fn submit(&self, batch: MappedBatch) -> Result<Vec<StoreRejection>, SubmitError> {
        let mut refused = Vec::new();
        for part in batch.split(self.max_batch_rows) {
            refused.extend(self.submit_part(part).await?);
        }
        Ok(refused)
    }

    async fn submit_part(&self, batch: MappedBatch) -> Result<Vec<StoreRejection>, SubmitError> {
        let rows = (batch.requests.len() + batch.sessions.len()).max(1);
        if rows > self.max_pending {
            return Err(SubmitError::Busy(rows));
        }
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(rows as u32)
            .map_err(|_| SubmitError::Busy(self.max_pending - self.budget.available_permits()))?;
        let pending = Pending::new(permit, rows, self.metrics.clone());
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { batch, reply, _pending: pending }).map_err(|_| SubmitError::Closed)?;
        answer.await.map_err(|_| SubmitError::Closed)?
    }

    /// Stops taking work and waits until everything queued is written.
    #[cfg(feature = "service")]
    pub(crate) async fn close(self) {
        let Batcher { tx, writers, .. } = self;
        drop(tx);
        let mut writers = writers.lock().await;
        while writers.join_next().await.is_some() {}
    }
}

async fn write_loop(
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    store: PgStore,
    config: BatcherConfig,
    metrics: Arc<Metrics>,
) {
    loop {
        let jobs = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut rows = first.batch.requests.len() + first.batch.sessions.len();
            let mut jobs = vec![first];
            while rows < config.max_batch_rows {
                match rx.try_recv() {
                    Ok(job) => {
                        rows += job.batch.requests.len() + job.batch.sessions.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        write_jobs(jobs, &store, &config, &metrics).await;
    }
}

/// Writes the jobs in one transaction and answers each.
async fn write_jobs(jobs: Vec<Job>, store: &PgStore, config: &BatcherConfig, metrics: &Metrics) {
    let (merged, owners) = merge(&jobs);
    let started = Instant::now();
    let result = match tokio::time::timeout(config.write_timeout, store.write(&merged)).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(format!("the write took longer than {:?}", config.write_timeout))),
    };
    metrics.batch_latency.observe(started.elapsed());
    match result {
        Ok(outcome) => {
            metrics.batches.add(1);
            metrics.requests_written.add(outcome.requests_inserted);
            metrics.requests_duplicate.add(outcome.requests_duplicate);
            metrics.spans_rejected.add("database", outcome.rejected.len() as u64);
            let mut per_job: Vec<Vec<StoreRejection>> = vec![Vec::new(); jobs.len()];
            for rejection in outcome.rejected {
                for &job in owners.get(&rejection.row).map(Vec::as_slice).unwrap_or_default() {
                    per_job[job].push(rejection.clone());
                }
            }
            for (job, rejected) in jobs.into_iter().zip(per_job) {
                let _ = job.reply.send(Ok(rejected));
            }
        }
        Err(e) => {
            metrics.database_errors.add(if e.is_retryable() { "unavailable" } else { "error" }, 1);
            tracing::warn!(error = %e, rows = merged.requests.len(), "write failed; the senders will retry");
            let failure = SubmitError::from(e);
            for job in jobs {
                let _ = job.reply.send(Err(failure.clone()));
            }
        }
    }
}

/// One batch from many, and which jobs each row came from.
fn merge(jobs: &[Job]) -> (MappedBatch, HashMap<RowRef, Vec<usize>>) {
    let mut sessions = SessionSet::default();
    let mut merged = MappedBatch::default();
    let mut owners: HashMap<RowRef, Vec<usize>> = HashMap::new();
    for (i, job) in jobs.iter().enumerate() {
        for session in &job.batch.sessions {
            owners.entry(RowRef::Session(session.session_id)).or_default().push(i);
            sessions.add(session.clone());
        }
        for request in &job.batch.requests {
            owners.entry(RowRef::Request(request.request_id)).or_default().push(i);
            merged.requests.push(request.clone());
        }
    }
    merged.sessions = sessions.into_vec();
    (merged, owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_rows_are_shown_until_the_part_is_answered() {
        let metrics = Arc::new(Metrics::default());
        let permit = Arc::new(Semaphore::new(10)).try_acquire_many_owned(5).unwrap();
        let pending = Pending::new(permit, 5, metrics.clone());
        assert_eq!(metrics.pending_rows.get(), 5);
        drop(pending);
        assert_eq!(metrics.pending_rows.get(), 0);
    }
}
