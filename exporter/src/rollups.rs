//! The hourly rollups' long tier: the reaper keeps them current (V14, V15), and they outlive the
//! raw rows — retention drops request months but keeps their rollups until `drop_older_than`
//! removes those too.
//!
//! ```no_run
//! # async fn run(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
//! use archon_mcp_exporter::rollups;
//! let hours = rollups::rebuild(client, "2026-11-01", "2026-11-30").await?;
//! let gone = rollups::drop_older_than(client, "2 years", true).await?;
//! println!("rebuilt {hours} hours; would delete {gone} rollup rows");
//! # Ok(()) }
//! ```

use tokio_postgres::GenericClient;

/// Every rollup table, with the column that dates its rows and whether it names a user (those
/// are what erasure reaches).
pub(crate) const TABLES: [(&str, &str, bool); 9] = [
    ("archon_mcp_rollup_hourly", "hour", true),
    ("archon_mcp_rollup_hourly_tool", "hour", false),
    ("archon_mcp_rollup_session_hourly", "hour", true),
    ("archon_mcp_rollup_daily_tool", "day", false),
    ("archon_mcp_rollup_daily_user", "day", true),
    ("archon_mcp_rollup_daily_session", "day", true),
    ("archon_mcp_rollup_session_total", "hour", true),
    ("archon_mcp_rollup_monthly_user", "month", true),
    ("archon_mcp_rollup_monthly_user_sessions", "month", true),
];

/// Recomputes the rollups of every hour from `from` to `to` (dates PostgreSQL reads) from the raw
/// rows; returns how many hours. Hours before the oldest raw row are left as they are.
pub async fn rebuild(client: &impl GenericClient, from: &str, to: &str) -> Result<i32, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT archon_mcp_rollup_rebuild($1::text::timestamptz, $2::text::timestamptz)", &[&from, &to])
        .await?;
    Ok(row.get(0))
}

/// Deletes the rollups of the hours before now − `keep` (a PostgreSQL interval); with
/// `dry_run`, only counts them. Returns how many rows (hourly, per-session and daily) go.
pub async fn drop_older_than(
    client: &impl GenericClient,
    keep: &str,
    dry_run: bool,
) -> Result<u64, tokio_postgres::Error> {
    let mut rows = 0;
    for (table, at, _) in TABLES {
        // Whole periods only: a day is kept while any of its hours is.
        let before = format!("{at} < date_trunc('{at}', now() - $1::text::interval, 'UTC')");
        rows += if dry_run {
            let n: i64 =
                client.query_one(&format!("SELECT count(*) FROM {table} WHERE {before}"), &[&keep]).await?.get(0);
            n as u64
        } else {
            client.execute(&format!("DELETE FROM {table} WHERE {before}"), &[&keep]).await?
        };
    }
    Ok(rows)
}
