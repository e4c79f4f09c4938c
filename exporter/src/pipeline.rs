//! One export, from decoded spans to an outcome: map → count what was skipped → group commit.
//! The OTLP receivers and the in-process [`PgSpanExporter`](crate::PgSpanExporter) all run it,
//! so every path gets the same batching, metrics and counted rejects.

use std::sync::Arc;

use crate::batcher::{Batcher, BatcherConfig, SubmitError};
use crate::mapping::map_spans_with;
use crate::metrics::Metrics;
use crate::minimise::Minimisation;
use crate::otlp::Undecodable;
use crate::span::Span;
use crate::store::PgStore;

/// How many refusal reasons an outcome's message quotes per stage.
const QUOTED_REASONS: usize = 3;

/// The result of one export.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Committed; `rejected` spans were refused individually (an OTLP partial success), the
    /// first reasons in `message`.
    Accepted {
        /// Spans refused by the decoder, the mapping or the database.
        rejected: u64,
        /// The first few reasons, for the sender's log.
        message: String,
    },
    /// Nothing committed; [`retry`](crate::retry) says how the sender is told.
    NotCommitted(SubmitError),
}

/// Decoded spans → rows → committed, with the service metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Pipeline {
    batcher: Batcher,
    metrics: Arc<Metrics>,
    /// The store's: what is kept of the personal fields.
    minimisation: Arc<Minimisation>,
}

impl Pipeline {
    /// Starts the group commit's writers on the current Tokio runtime.
    pub(crate) fn start(store: PgStore, config: BatcherConfig, metrics: Arc<Metrics>) -> Self {
        let minimisation = Arc::new(store.config().minimisation.clone());
        Self { batcher: Batcher::start(store, config, metrics.clone()), metrics, minimisation }
    }

    /// The metrics this pipeline updates.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Exports decoded spans; `undecodable` are the spans the decoder refused, counted with the
    /// rest. Returns once the rows are committed or it is certain they were not.
    pub(crate) async fn export(&self, spans: &[Span], undecodable: Vec<Undecodable>) -> Outcome {
        let metrics = &self.metrics;
        metrics.spans_received.add((spans.len() + undecodable.len()) as u64);
        metrics.spans_rejected.add(Undecodable::REASON, undecodable.len() as u64);
        let mut reasons: Vec<String> =
            undecodable.iter().take(QUOTED_REASONS).map(|u| format!("{}: {}", Undecodable::REASON, u.detail)).collect();

        let batch = map_spans_with(spans, &self.minimisation);
        metrics.clock_ahead_seconds.set(batch.clock_ahead.as_secs() as i64);
        for (reason, count) in batch.skipped_by_reason() {
            let counter = if reason.is_rejection() { &metrics.spans_rejected } else { &metrics.spans_ignored };
            counter.add(reason.as_str(), count as u64);
        }
        let mut rejected = (undecodable.len() + batch.rejected()) as u64;
        reasons.extend(
            batch
                .skipped
                .iter()
                .filter(|s| s.reason.is_rejection())
                .take(QUOTED_REASONS)
                .map(|s| format!("{}: {}", s.reason, s.detail)),
        );

        if !batch.requests.is_empty() || !batch.sessions.is_empty() {
            match self.batcher.submit(batch).await {
                Ok(refused) => {
                    rejected += refused.len() as u64;
                    reasons.extend(refused.iter().take(QUOTED_REASONS).map(|r| format!("database: {}", r.reason)));
                }
                Err(e) => {
                    metrics.exports.add(e.as_str(), 1);
                    return Outcome::NotCommitted(e);
                }
            }
        }
        metrics.exports.add("ok", 1);
        Outcome::Accepted { rejected, message: reasons.join("; ") }
    }

    /// Stops taking exports and waits until everything queued is written.
    #[cfg(feature = "service")]
    pub(crate) async fn close(self) {
        self.batcher.close().await;
    }
}
