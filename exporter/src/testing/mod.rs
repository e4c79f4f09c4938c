//! Real PostgreSQL for tests and demos (docs/development.md, Tests), behind the `testing` feature.
//!
//! The server is, in order: `DATABASE_URL` when set; PostgreSQL on 127.0.0.1:5432 (user
//! `postgres`) when one answers; else a throw-away cluster started with `initdb`/`pg_ctl` from
//! `PATH` or `/usr/lib/postgresql/*/bin` — run as the `postgres` user when we are root — and
//! removed when the process ends. Each [`TestDb`] is a fresh database, dropped on drop.
//!
//! ```no_run
//! # async fn t() {
//! use archon_mcp_exporter::testing::TestDb;
//!
//! let db = TestDb::migrated().await;
//! let client = db.client().await;
//! let n: i64 = client.query_one("SELECT count(*) FROM archon_mcp_sessions", &[]).await.unwrap().get(0);
//! assert_eq!(n, 0);
//! # }
//! ```

use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::{Client, Config, NoTls, config::Host};

mod certificates;
mod cluster;
mod spans;

pub use certificates::TestCertificates;
pub use cluster::LocalCluster;
pub use spans::{Connection, TestUser, rpc_error, tool_error, with_estimate, with_usage};

use crate::migrate;
use crate::store::{PgStore, StoreConfig};

/// The OTLP export request a collector would send for `spans`, consecutive spans of one
/// resource grouped as the SDK groups them.
pub fn otlp_request(
    spans: &[crate::span::Span],
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    crate::otlp::request_from_spans(spans)
}

/// What to install when there is no PostgreSQL at all.
pub const INSTALL_HINT: &str = "PostgreSQL is needed: set DATABASE_URL, start a server on 127.0.0.1:5432, \
     or install the server binaries (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`)";

/// A fresh database on the test server, dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
}

struct Server {
    config: Config,
    _cluster: Option<LocalCluster>,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

async fn server() -> &'static Server {
    SERVER
        .get_or_init(|| async {
            match find_server().await {
                Ok(server) => server,
                Err(e) => panic!("{e}"),
            }
        })
        .await
}

async fn find_server() -> Result<Server, String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        let config: Config = url.parse().map_err(|e| format!("DATABASE_URL is not a valid connection string: {e}"))?;
        connect(&config).await.map_err(|e| format!("DATABASE_URL does not answer: {e}"))?;
        return Ok(Server { config, _cluster: None });
    }
    let mut local = Config::new();
    local.host("127.0.0.1").port(5432).user("postgres").dbname("postgres").connect_timeout(Duration::from_secs(3));
    if connect(&local).await.is_ok() {
        return Ok(Server { config: local, _cluster: None });
    }
    let cluster = tokio::task::spawn_blocking(LocalCluster::start).await.map_err(|e| e.to_string())??;
    let config: Config = cluster.connection_string("postgres").parse().map_err(|e| format!("{e}"))?;
    Ok(Server { config, _cluster: Some(cluster) })
}

async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

impl TestDb {
    /// A fresh, empty database.
    pub async fn new() -> Self {
        let server = server().await;
        let name = format!("archon_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&server.config).await.expect("connect to the test server");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create the test database");
        let mut config = server.config.clone();
        let url = connection_string(config.dbname(&name));
        Self { name, url, admin_url: connection_string(&server.config) }
    }

    /// A fresh database with every migration applied.
    pub async fn migrated() -> Self {
        let db = Self::new().await;
        migrate::migrate_url(&db.url).await.expect("migrate the test database");
        db
    }

    /// Connection string of this database (key=value form, accepted by tokio-postgres and libpq).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection to this database.
    pub async fn client(&self) -> Client {
        connect(&self.url.parse().expect("valid connection string")).await.expect("connect to the test database")
    }

    /// A store writing to this database.
    pub fn store(&self, config: StoreConfig) -> PgStore {
        PgStore::connect(&self.url, config).expect("store for the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside async: a short-lived runtime on its own thread does the IO.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let admin = connect(&admin_url.parse().ok()?).await.ok()?;
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A key=value connection string for a config (host, port, user, password, dbname).
fn connection_string(config: &Config) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    if let Some(host) = config.get_hosts().first() {
        let host = match host {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        };
        parts.push(format!("host={}", quote(&host)));
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={}", quote(user)));
    }
    if let Some(password) = config.get_password() {
        parts.push(format!("password={}", quote(&String::from_utf8_lossy(password))));
    }
    if let Some(db) = config.get_dbname() {
        parts.push(format!("dbname={}", quote(db)));
    }
    parts.join(" ")
}
