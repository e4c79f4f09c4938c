//! The monthly partitions of `archon_mcp_requests`, through the schema's own functions (they
//! lock, so several exporters may call them at once): the reaper creates the coming months, the
//! `partitions` and `retention` commands call them on demand.
//!
//! ```no_run
//! # async fn run(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
//! use archon_mcp_exporter::partitions;
//! for name in partitions::create(client, 3).await? {
//!     println!("created {name}");
//! }
//! for name in partitions::drop_older_than(client, "90 days", true).await? {
//!     println!("would drop {name}");
//! }
//! # Ok(()) }
//! ```

use tokio_postgres::GenericClient;

/// Creates the partitions of the current month and `months_ahead` more that do not exist yet;
/// returns the names of those it created.
pub async fn create(client: &impl GenericClient, months_ahead: i32) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client.query("SELECT archon_mcp_create_request_partitions($1)", &[&months_ahead]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Drops the partitions that end before now − `keep` (a PostgreSQL interval such as
/// `90 days`); with `dry_run`, only names them. Needs a login granted `archon_admin`.
pub async fn drop_older_than(
    client: &impl GenericClient,
    keep: &str,
    dry_run: bool,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows =
        client.query("SELECT archon_mcp_drop_request_partitions($1::text::interval, $2)", &[&keep, &dry_run]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// How many sessions [`drop_older_than`] takes with the months it drops: those that ended (or
/// were last active) before now − `keep` with no request in a month that stays — the personal
/// data on them goes too (`docs/privacy.md`). A session with a request still kept stays.
pub async fn sessions_going(client: &impl GenericClient, keep: &str) -> Result<u64, tokio_postgres::Error> {
    let count: i64 = client
        .query_one(
            "SELECT count(*) FROM archon_mcp_sessions s
              WHERE coalesce(s.disconnected_at, s.last_activity) < now() - $1::text::interval
                AND NOT EXISTS (SELECT 1 FROM archon_mcp_requests r
                                 WHERE r.session_id = s.session_id
                                   AND r.timestamp >= date_trunc('month', now() - $1::text::interval))",
            &[&keep],
        )
        .await?
        .get(0);
    Ok(count as u64)
}
