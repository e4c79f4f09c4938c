//! One connection to PostgreSQL, reached the way libpq would reach it: the connection string
//! read by [`crate::connection_string`] (password from `PGPASSWORD` or `~/.pgpass` when the
//! string has none), TLS by [`crate::tls`] (`sslmode`, and a CA file to verify against).

use std::path::Path;

use tokio_postgres::Client;
use tokio_postgres::config::Host;

/// Why a connection could not be opened; each message says what to check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection string does not parse.
    #[error("{0}")]
    ConnectionString(String),
    /// The CA file for TLS is unusable.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The server refused or could not be reached; `target` names host, port, database and user.
    // The driver's error is described in the message, not chained as a source: its own
    // `Display` ("db error") would only repeat it.
    #[error("cannot connect to PostgreSQL at {target}: {}", crate::pg_error::describe(.cause))]
    Postgres {
        /// `user@host:port/database`, without the password.
        target: String,
        /// What the driver reported.
        cause: tokio_postgres::Error,
    },
    /// The connection opened, then a statement failed.
    #[error("{}", crate::pg_error::describe(.0))]
    Query(tokio_postgres::Error),
}

// By hand, not `#[from]`: that would chain the driver's error as the source, and its
// `Display` would repeat the description.
impl From<tokio_postgres::Error> for ConnectError {
    fn from(e: tokio_postgres::Error) -> Self {
        ConnectError::Query(e)
    }
}

/// Opens one connection to `url`, verifying the server against `ca_file` when given; the
/// connection is driven on its own task and ends when the client is dropped.
///
/// ```no_run
/// # async fn run() -> Result<(), archon_mcp_exporter::ConnectError> {
/// let client = archon_mcp_exporter::connect("postgres://postgres@127.0.0.1/archon?sslmode=prefer", None).await?;
/// let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
/// # let _ = one; Ok(()) }
/// ```
pub async fn connect(url: &str, ca_file: Option<&Path>) -> Result<Client, ConnectError> {
    let tls = crate::tls::connector(ca_file)?;
    let config = crate::connection_string::parse(url).map_err(ConnectError::ConnectionString)?;
    let (client, connection) =
        config.connect(tls).await.map_err(|cause| ConnectError::Postgres { target: target(&config), cause })?;
    tokio::spawn(connection);
    Ok(client)
}

/// `user@host:port/database` as the server will see it, for error messages.
pub(crate) fn target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{database}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_everything_but_the_password() {
        let config = crate::connection_string::parse("postgres://app:s3cret@db.internal:5433/archon").unwrap();
        assert_eq!(target(&config), "app@db.internal:5433/archon");
    }

    #[tokio::test]
    async fn refused_connection_names_the_target() {
        // Port 1 on loopback: nothing listens there.
        let err = connect("postgres://app@127.0.0.1:1/archon?connect_timeout=2", None).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("app@127.0.0.1:1/archon"), "{text}");
        assert!(text.contains("refused"), "the reason, not only the driver's summary: {text}");
    }
}
