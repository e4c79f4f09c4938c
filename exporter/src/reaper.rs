//! The reaper: sessions without activity become `idle`, then `disconnected` with
//! reason `timeout` (ended at their last activity, so `total_duration` is the time they were in
//! use). It also keeps the coming months' request partitions in place. Safe with several
//! replicas: one transaction-scoped advisory lock per round, and idempotent updates.

use std::time::Duration;

use tokio_postgres::Client;

/// When sessions go idle and time out.
///
/// ```
/// use std::time::Duration;
/// let config = archon_mcp_exporter::ReaperConfig::default().with_idle_after(Duration::from_secs(120));
/// assert_eq!(config.timeout_after, Duration::from_secs(1800));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReaperConfig {
    /// Without activity for this long, an active session becomes idle (default 5 min).
    pub idle_after: Duration,
    /// Without activity for this long, a session is disconnected as `timeout` (default 30 min).
    pub timeout_after: Duration,
    /// Time between rounds (default 30 s).
    pub interval: Duration,
    /// Months of request partitions kept ahead (default 3).
    pub months_ahead: i32,
}

with_setters!(ReaperConfig {
    with_idle_after => idle_after: Duration,
    with_timeout_after => timeout_after: Duration,
    with_interval => interval: Duration,
    with_months_ahead => months_ahead: i32,
});

impl Default for ReaperConfig {
    fn default() -> Self {
        Self {
            idle_after: Duration::from_secs(5 * 60),
            timeout_after: Duration::from_secs(30 * 60),
            interval: Duration::from_secs(30),
            months_ahead: 3,
        }
    }
}

/// What one round changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reaped {
    /// Sessions marked idle.
    pub idled: u64,
    /// Sessions disconnected as `timeout`.
    pub timed_out: u64,
    /// Whether another replica held the round's lock (nothing was done).
    pub skipped: bool,
    /// Hours whose rollups were recomputed because writes touched them.
    pub rolled_up: u64,
}

/// Lock key of a reaper round (`'archon-reaper'`, truncated).
const LOCK_KEY: i64 = 0x6172_6368_7265_6170;

/// Runs one round.
///
/// ```no_run
/// use std::time::Duration;
/// use archon_mcp_exporter::ReaperConfig;
/// # async fn run(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
/// let reaped = archon_mcp_exporter::reap_once(client, &ReaperConfig::default()).await?;
/// println!("{} idle, {} timed out", reaped.idled, reaped.timed_out);
/// # Ok(()) }
/// ```
pub async fn reap_once(client: &Client, config: &ReaperConfig) -> Result<Reaped, tokio_postgres::Error> {
    let idle = config.idle_after.as_secs_f64();
    let timeout = config.timeout_after.as_secs_f64();
    client.batch_execute("BEGIN").await?;
    let result = async {
        let locked: bool = client.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY]).await?.get(0);
        if !locked {
            return Ok(Reaped { skipped: true, ..Reaped::default() });
        }
        let timed_out = client
            .execute(
                "UPDATE archon_mcp_sessions
                    SET status = 'disconnected', disconnected_at = last_activity, disconnect_reason = 'timeout'
                  WHERE status IN ('active', 'idle')
                    AND last_activity < now() - make_interval(secs => $1)",
                &[&timeout],
            )
            .await?;
        let idled = client
            .execute(
                "UPDATE archon_mcp_sessions SET status = 'idle'
                  WHERE status = 'active' AND last_activity < now() - make_interval(secs => $1)",
                &[&idle],
            )
            .await?;
        Ok(Reaped { idled, timed_out, skipped: false, rolled_up: 0 })
    }
    .await;
    match &result {
        Ok(_) => client.batch_execute("COMMIT").await?,
        Err(_) => {
            let _ = client.batch_execute("ROLLBACK").await;
        }
    }
    let mut reaped = result?;
    if !reaped.skipped {
        // The hours writes touched since the last round (V14): rollups stay a round behind.
        let hours: i32 = client.query_one("SELECT archon_mcp_rollup_refresh(48)", &[]).await?.get(0);
        reaped.rolled_up = hours as u64;
    }
    Ok(reaped)
}
