//! `archon-mcp-exporter serve`: the OTLP receivers, the group-commit writer and the reaper,
//! started together and stopped gracefully.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::batcher::BatcherConfig;
use crate::metrics::Metrics;
use crate::migrate;
use crate::pipeline::Pipeline;
use crate::reaper::{self, ReaperConfig};
use crate::receiver::Ingest;
use crate::receiver::budget::InFlight;
use crate::receiver::grpc::GrpcReceiver;
use crate::receiver::http::{self, BodyLimits};
use crate::receiver::incoming::ConnectionLimits;
use crate::receiver::port::{self, Protocols};
use crate::receiver::tls::{ReceiverTls, ReceiverTlsError};
use crate::store::{PgStore, StoreConfig, StoreError};

/// Everything `serve` is told.
///
/// ```
/// let mut config = archon_mcp_exporter::ServeConfig::new("postgres://archon_exporter@db/archon");
/// config.auth_token = Some("a-long-random-token".into()); // empty or blank: `Server::bind` refuses it
/// config.migrate = true;
/// assert_eq!(config.grpc_listen.port(), 4317);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// PostgreSQL connection string.
    pub database_url: String,
    /// OTLP/gRPC address (default 0.0.0.0:4317).
    pub grpc_listen: SocketAddr,
    /// OTLP/HTTP, health and metrics address (default 0.0.0.0:4318).
    pub http_listen: SocketAddr,
    /// Require `Authorization: Bearer <token>` (surrounding whitespace ignored; an empty or
    /// blank token is refused by [`Server::bind`], never taken as "no authentication").
    pub auth_token: Option<String>,
    /// Serve both ports over TLS.
    pub tls: Option<ReceiverTls>,
    /// Apply migrations before serving.
    pub migrate: bool,
    /// HTTP body limits (the gRPC limit is the decompressed one).
    pub limits: BodyLimits,
    /// Connections open at once and their idle timeout, both ports.
    pub connections: ConnectionLimits,
    /// Group commit.
    pub batcher: BatcherConfig,
    /// Pool and pricing.
    pub store: StoreConfig,
    /// The reaper; `None` disables it.
    pub reaper: Option<ReaperConfig>,
}

impl ServeConfig {
    /// OTLP/gRPC's standard port, on every interface.
    pub const DEFAULT_GRPC_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4317));
    /// OTLP/HTTP's standard port, on every interface.
    pub const DEFAULT_HTTP_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4318));

    /// Defaults for a database.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            grpc_listen: Self::DEFAULT_GRPC_LISTEN,
            http_listen: Self::DEFAULT_HTTP_LISTEN,
            auth_token: None,
            tls: None,
            migrate: false,
            limits: BodyLimits::default(),
            connections: ConnectionLimits::default(),
            batcher: BatcherConfig::default(),
            store: StoreConfig::default(),
            reaper: Some(ReaperConfig::default()),
        }
    }

    /// The configuration with every value brought into range (the batcher's and connection
    /// limits' own rules apply where they are used): an in-flight budget of at least one body,
    /// a reaper round of at least a second, and a pool with one connection per writer plus one
    /// for the reaper and readiness checks.
    fn normalized(mut self) -> Self {
        self.batcher = self.batcher.normalized();
        self.store.max_connections = self.store.max_connections.max(self.batcher.writers + 1);
        self.limits.max_in_flight_bytes = self.limits.max_in_flight_bytes.max(self.limits.max_body_bytes);
        if let Some(reaper) = &mut self.reaper {
            reaper.interval = reaper.interval.max(SECOND);
        }
        self
    }
}

const SECOND: std::time::Duration = std::time::Duration::from_secs(1);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listen address is taken or not ours.
    #[error("cannot listen on {addr} ({port}): {source} — is another process using it? choose another with {flag}")]
    Listen {
        /// Which port: `OTLP/gRPC` or `OTLP/HTTP`.
        port: &'static str,
        /// The flag that sets it.
        flag: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `--migrate` failed.
    #[error("migrating before serving failed (check --database-url / DATABASE_URL)")]
    Migrate(#[from] migrate::MigrateError),
    /// The database settings are wrong.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] ReceiverTlsError),
    /// The bearer token cannot be used.
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    /// The database has not had every migration this build needs.
    #[error(
        "the database is {count} migration(s) behind this build (first: {first}): run `archon-mcp-exporter migrate \
         --database-url URL` as a role that may create tables, or start serve with --migrate"
    )]
    NotMigrated {
        /// How many are pending.
        count: usize,
        /// The first pending one, `V{n}__{name}`.
        first: String,
    },
    /// A receiver failed while serving.
    #[error("the {0} receiver failed: {1}")]
    Serve(&'static str, String),
}

/// Refuses to serve a database that lacks migrations, when it can tell: a database that cannot be
/// reached now is served anyway (writes wait for it), as is one whose history this login cannot read.
async fn refuse_unmigrated(config: &ServeConfig) -> Result<(), ServeError> {
    let Ok(mut client) = crate::connect(&config.database_url, config.store.ca_file.as_deref()).await else {
        return Ok(());
    };
    match migrate::pending(&mut client).await {
        Ok(pending) if !pending.is_empty() => Err(ServeError::NotMigrated {
            count: pending.len(),
            first: format!("V{}__{}", pending[0].version, pending[0].name),
        }),
        _ => Ok(()),
    }
}

/// A bound, not yet running service.
///
/// ```no_run
/// use archon_mcp_exporter::{ServeConfig, Server, shutdown_signal};
/// # async fn run() -> anyhow::Result<()> {
/// let config = ServeConfig::new("postgres://postgres@127.0.0.1/archon");
/// let server = Server::bind(config).await?;
/// println!("OTLP/gRPC on {}, OTLP/HTTP on {}", server.grpc_addr(), server.http_addr());
/// server.run(shutdown_signal()).await?; // SIGINT or SIGTERM
/// # Ok(()) }
/// ```
pub struct Server {
    config: ServeConfig,
    grpc: TcpListener,
    http: TcpListener,
    store: PgStore,
    tls: Option<Arc<rustls::ServerConfig>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("grpc", &self.grpc_addr())
            .field("http", &self.http_addr())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Migrates (when asked) and binds both ports.
    pub async fn bind(config: ServeConfig) -> Result<Self, ServeError> {
        let mut config = config.normalized();
        config.auth_token =
            config.auth_token.map(|token| crate::secret::check("the bearer token", token, 1)).transpose()?;
        // A bad certificate is found before anything else is touched.
        let tls = config.tls.as_ref().map(ReceiverTls::load).transpose()?;
        if config.migrate {
            for m in migrate::migrate_url_verified(&config.database_url, config.store.ca_file.as_deref()).await? {
                tracing::info!(version = m.version, name = %m.name, "applied migration");
            }
        }
        let listen = |addr: SocketAddr, port: &'static str, flag: &'static str| async move {
            TcpListener::bind(addr).await.map_err(|source| ServeError::Listen { port, flag, addr, source })
        };
        if !config.migrate {
            refuse_unmigrated(&config).await?;
        }
        let grpc = listen(config.grpc_listen, "OTLP/gRPC", "--grpc-listen").await?;
        let http = listen(config.http_listen, "OTLP/HTTP", "--http-listen").await?;
        let store = PgStore::connect(&config.database_url, config.store.clone())?;
        Ok(Self { config, grpc, http, store, tls, metrics: Arc::new(Metrics::default()) })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("a bound listener has an address")
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("a bound listener has an address")
    }

    /// The service metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, finishes in-flight exports and
    /// their writes, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server { config, grpc, http, store, tls, metrics } = self;
        let pipeline = Pipeline::start(store.clone(), config.batcher.clone(), metrics.clone());
        let ingest = Ingest::new(pipeline.clone(), config.auth_token.clone());
        let stop = CancellationToken::new();

        // One in-flight budget for both ports.
        let in_flight = InFlight::new(config.limits.max_in_flight_bytes);
        let grpc_router = tonic::service::Routes::new(GrpcReceiver::service(
            ingest.clone(),
            config.limits.max_decompressed_bytes,
            in_flight.clone(),
        ))
        .into_axum_router();
        let router =
            http::router(ingest, config.limits, in_flight).merge(crate::admin::router(store.clone(), metrics.clone()));
        let shared = config.connections.shared();
        let port = |listener, router, protocols| {
            port::spawn(listener, tls.clone(), shared.clone(), router, protocols, stop.clone().cancelled_owned())
        };
        let (grpc_task, http_task) = (port(grpc, grpc_router, Protocols::Http2), port(http, router, Protocols::Any));
        let reaper_task = config.reaper.clone().map(|reaper| tokio::spawn(reap_forever(store, reaper, metrics)));

        tokio::select! {
            () = shutdown => tracing::info!("shutting down: finishing in-flight exports"),
            () = stop.cancelled() => {}
        }
        stop.cancel();
        let (grpc_result, http_result) = tokio::join!(grpc_task, http_task);
        if let Some(task) = reaper_task {
            task.abort();
        }
        pipeline.close().await;
        let joined = |e: tokio::task::JoinError| ServeError::Serve("receiver", e.to_string());
        grpc_result.map_err(joined)?;
        http_result.map_err(joined)?;
        Ok(())
    }
}

/// A service running in this process (see [`Server::spawn`]).
#[derive(Debug)]
pub struct Running {
    grpc: SocketAddr,
    http: SocketAddr,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// The gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The service metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Stops gracefully (in-flight exports finish) and returns how the service ended.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(|e| ServeError::Serve("service", e.to_string()))?
    }
}

impl Server {
    /// Runs the service on this runtime until [`Running::stop`]: for tests, demos and
    /// embedding the receiver in another program.
    ///
    /// ```no_run
    /// # async fn run() -> anyhow::Result<()> {
    /// use archon_mcp_exporter::{ServeConfig, Server};
    /// let mut config = ServeConfig::new("postgres://postgres@127.0.0.1/archon");
    /// config.grpc_listen = "127.0.0.1:0".parse()?;
    /// config.http_listen = "127.0.0.1:0".parse()?;
    /// let running = Server::bind(config).await?.spawn();
    /// println!("OTLP/gRPC on {}", running.grpc_addr());
    /// running.stop().await?;
    /// # Ok(()) }
    /// ```
    pub fn spawn(self) -> Running {
        let (grpc, http, metrics) = (self.grpc_addr(), self.http_addr(), self.metrics());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        Running { grpc, http, metrics, stop: Some(stop), task }
    }
}

async fn reap_forever(store: PgStore, config: ReaperConfig, metrics: Arc<Metrics>) {
    let mut rounds: u64 = 0;
    loop {
        match store.pool().get().await {
            Ok(client) => {
                // Partitions at start and then about hourly.
                if rounds.is_multiple_of((3600 / config.interval.as_secs()).max(1))
                    && let Err(e) = crate::partitions::create(&**client, config.months_ahead).await
                {
                    tracing::warn!(error = %StoreError::from(e), "could not create the coming request partitions");
                }
                match reaper::reap_once(&client, &config).await {
                    Ok(reaped) => {
                        metrics.sessions_reaped.add("idle", reaped.idled);
                        metrics.sessions_reaped.add("disconnected", reaped.timed_out);
                    }
                    Err(e) => tracing::warn!(error = %StoreError::from(e), "reaper round failed; retrying next round"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "reaper cannot reach the database; retrying next round"),
        }
        rounds += 1;
        tokio::time::sleep(config.interval).await;
    }
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM: what the `serve` command stops on, for
/// [`Server::run`] and any other server that stops as services do.
///
/// ```no_run
/// # async fn run(server: archon_mcp_exporter::Server) -> Result<(), archon_mcp_exporter::ServeError> {
/// server.run(archon_mcp_exporter::shutdown_signal()).await
/// # }
/// ```
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
