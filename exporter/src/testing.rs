//! Real PostgreSQL for tests and demos (DESIGN §7), behind the `testing` feature.
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

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_postgres::{Client, Config, NoTls, config::Host};

use crate::migrate;
use crate::store::{PgStore, StoreConfig};

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

/// A throw-away PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1.
///
/// Stopped and deleted on drop, and by a watchdog when this process dies without dropping it
/// (a static, a panic, Ctrl-C).
#[derive(Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl LocalCluster {
    /// Starts a cluster (blocking, a few seconds). The error says what to install.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin_dir().ok_or_else(|| INSTALL_HINT.to_owned())?;
        let dir = std::env::temp_dir().join(format!("archon-pg-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("find a free port: {e}"))?
            .port();
        let cluster = Self { dir, port, bin };
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&cluster.dir))?;
        }
        cluster.spawn_watchdog()?;
        let data = cluster.dir.join("data");
        run(cluster
            .pg_command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"]))?;
        run(cluster.pg_command("pg_ctl").arg("-D").arg(&data).arg("-l").arg(cluster.dir.join("log")).args([
            "-w",
            "-t",
            "60",
            "-o",
            &format!("-p {} -k {} -c listen_addresses=127.0.0.1", cluster.port, cluster.dir.display()),
            "start",
        ]))?;
        Ok(cluster)
    }

    /// The directory holding the cluster (removed when it stops).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection string for a database of this cluster, as user `postgres`.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname={dbname}", self.port)
    }

    /// The same as a `postgres://` URL.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{dbname}", self.port)
    }

    fn pg_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// A detached shell that stops the cluster and deletes its directory once this process is
    /// gone, however it ends.
    fn spawn_watchdog(&self) -> Result<(), String> {
        let as_postgres = if is_root() { "runuser -u postgres -- " } else { "" };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {as_postgres}'{bin}/pg_ctl' -D '{dir}/data' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            bin = self.bin.display(),
            dir = self.dir.display(),
        );
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map(drop)
            .map_err(|e| format!("start the cluster watchdog: {e}"))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        // Newest major version last; numeric order so 9 < 10.
        versions.sort_by_key(|p| version_of(p));
        versions.pop()
    })
}

fn version_of(bin: &Path) -> u32 {
    bin.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let output = cmd.output().map_err(|e| format!("run {cmd:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
