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
