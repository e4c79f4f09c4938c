//! `archon-mcp-exporter`: the OTLP → PostgreSQL service and its schema tools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use archon_mcp_exporter::BatcherConfig;
use archon_mcp_exporter::BodyLimits;
use archon_mcp_exporter::ConnectionLimits;
use archon_mcp_exporter::ReaperConfig;
use archon_mcp_exporter::ReceiverTls;
use archon_mcp_exporter::budgets::{self, BudgetDate, BudgetSpec, Scope};
use archon_mcp_exporter::minimise::{FieldPolicy, Minimisation};
use archon_mcp_exporter::{ServeConfig, Server};
use archon_mcp_exporter::{migrate, partitions, privacy, rollups, secret};
use clap::{Args, Parser, Subcommand};

/// Turns MCP OpenTelemetry spans into Archon-compatible PostgreSQL rows.
#[derive(Debug, Parser)]
#[command(name = "archon-mcp-exporter", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive OTLP traces (gRPC and HTTP) and write MCP sessions and requests to PostgreSQL.
    Serve(Box<Serve>),
    /// Apply pending schema migrations (safe to run from several processes at once).
    Migrate {
        #[command(flatten)]
        db: Database,
        /// Print what would be done (the migrations to apply; for an Archon database, the rows
        /// kept and the objects replaced) and change nothing.
        #[arg(long, env = "ARCHON_EXPORTER_DRY_RUN")]
        dry_run: bool,
    },
    /// Drop request partitions older than --keep, and the sessions left without requests, and
    /// create the coming months. The hourly rollups of dropped months stay (the long tier) until
    /// --keep-rollups.
    Retention {
        #[command(flatten)]
        db: Database,
        /// How much raw history (requests, sessions, personal data) to keep: `90d`, `12w`, or any
        /// PostgreSQL interval (`6 months`).
        #[arg(long, env = "ARCHON_EXPORTER_KEEP")]
        keep: String,
        /// How long to keep the hourly rollups (at least --keep); kept for ever when not given.
        #[arg(long, env = "ARCHON_EXPORTER_KEEP_ROLLUPS")]
        keep_rollups: Option<String>,
        /// How many months after the current one to create.
        #[arg(long, env = "ARCHON_EXPORTER_MONTHS_AHEAD", default_value_t = ReaperConfig::default().months_ahead)]
        months_ahead: i32,
        /// Only list what would be dropped.
        #[arg(long)]
        dry_run: bool,
    },
    /// Monthly cost budgets: set, list (with spend, forecast and state), remove.
    Budgets {
        #[command(flatten)]
        db: AnywhereDatabase,
        #[command(subcommand)]
        action: BudgetAction,
    },
    /// One person's data: export it as JSON, or forget it (docs/privacy.md). Admins only.
    Users {
        #[command(flatten)]
        db: AnywhereDatabase,
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Hourly rollups (kept current by the reaper): recompute a range from the raw rows.
    Rollups {
        #[command(flatten)]
        db: AnywhereDatabase,
        #[command(subcommand)]
        action: RollupsAction,
    },
    /// Create the monthly request partitions for the coming months.
    Partitions {
        #[command(flatten)]
        db: Database,
        /// How many months after the current one to create.
        #[arg(long, env = "ARCHON_EXPORTER_MONTHS_AHEAD", default_value_t = ReaperConfig::default().months_ahead)]
        months_ahead: i32,
    },
}

#[derive(Debug, Subcommand)]
enum UsersAction {
    /// Print everything stored about a user as JSON: sessions, requests, reader logins, budgets.
    Export {
        #[command(flatten)]
        subject: SubjectArgs,
        /// Only count the rows of each table, show and audit nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Erase a user's personal data in one transaction, by deletion or pseudonymisation.
    Forget {
        #[command(flatten)]
        subject: SubjectArgs,
        /// `delete` the rows, or `pseudonymise` them (totals kept, the person replaced by a keyed hash).
        #[arg(long, default_value = "delete", value_parser = ["delete", "pseudonymise"])]
        policy: String,
        /// The key of `--policy pseudonymise`: a file holding at least 16 bytes.
        #[arg(long, env = "ARCHON_PSEUDONYM_KEY_FILE")]
        pseudonym_key_file: Option<PathBuf>,
        /// Count what would be erased, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RollupsAction {
    /// Recompute every hour from --from to --to (dates or timestamps PostgreSQL reads).
    Rebuild {
        /// The first hour, e.g. 2026-11-01 or '2026-11-01 13:00+00'.
        #[arg(long)]
        from: String,
        /// The last hour (included).
        #[arg(long)]
        to: String,
    },
}

/// Whose data.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
struct SubjectArgs {
    /// The user key: the principal the instrumentation recorded (e.g. the JWT `sub`).
    #[arg(long = "user")]
    user_key: Option<String>,
    /// An email address (any case).
    #[arg(long)]
    email: Option<String>,
}

impl SubjectArgs {
    fn subject(self) -> privacy::Subject {
        let mut subject = match self.user_key {
            Some(key) => privacy::Subject::user(key),
            None => privacy::Subject::default(),
        };
        subject.email = self.email;
        subject
    }
}

#[derive(Debug, Subcommand)]
enum BudgetAction {
    /// Set the monthly budget of a scope (replaces one set from the same day).
    Set {
        /// all, user:KEY (the principal, e.g. JWT sub), department:NAME, tool:NAME or client_type:TYPE.
        #[arg(long)]
        scope: Scope,
        /// The monthly amount.
        #[arg(long)]
        monthly: f64,
        /// Its currency (costs are stored in USD).
        #[arg(long, default_value = "USD")]
        currency: String,
        /// Warn at this percentage of the amount (repeatable; default 80 and 100).
        #[arg(long = "warn-at")]
        warn_at: Vec<i32>,
        /// First day in force, YYYY-MM-DD (default today).
        #[arg(long)]
        from: Option<BudgetDate>,
    },
    /// The budgets in force: spend this month, forecast, percent used, state.
    List,
    /// Remove every budget of a scope.
    Remove {
        /// The scope, as given to `set`.
        #[arg(long)]
        scope: Scope,
    },
}

#[derive(Debug, Args)]
struct Serve {
    #[command(flatten)]
    db: Database,
    /// OTLP/gRPC listen address, HOST:PORT (a name such as localhost:4317, or an IP).
    #[arg(long, env = "ARCHON_EXPORTER_GRPC_LISTEN", default_value_t = ServeConfig::DEFAULT_GRPC_LISTEN, value_parser = listen_address)]
    grpc_listen: SocketAddr,
    /// OTLP/HTTP listen address, HOST:PORT; also serves /healthz, /readyz and /metrics.
    #[arg(long, env = "ARCHON_EXPORTER_HTTP_LISTEN", default_value_t = ServeConfig::DEFAULT_HTTP_LISTEN, value_parser = listen_address)]
    http_listen: SocketAddr,
    /// Require `Authorization: Bearer <TOKEN>` on exports. Prefer --auth-token-file or the
    /// environment: a flag's value is visible to every user in `ps`.
    #[arg(long, env = "ARCHON_EXPORTER_AUTH_TOKEN", hide_env_values = true, conflicts_with = "auth_token_file")]
    auth_token: Option<String>,
    /// Read the bearer token from this file (surrounding whitespace ignored).
    #[arg(long, env = "ARCHON_EXPORTER_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Serve both ports over TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "ARCHON_EXPORTER_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "ARCHON_EXPORTER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Apply pending migrations before serving.
    #[arg(long, env = "ARCHON_EXPORTER_MIGRATE")]
    migrate: bool,
    /// Largest OTLP/HTTP body as sent, in bytes.
    #[arg(long, env = "ARCHON_EXPORTER_MAX_BODY_BYTES", default_value_t = BodyLimits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Largest export request once decompressed (HTTP and gRPC), in bytes.
    #[arg(long, env = "ARCHON_EXPORTER_MAX_DECOMPRESSED_BYTES", default_value_t = BodyLimits::default().max_decompressed_bytes)]
    max_decompressed_bytes: usize,
    /// OTLP/HTTP body bytes held in memory at once across all requests, compressed and
    /// decompressed; beyond it exports are answered 429 with Retry-After.
    #[arg(long, env = "ARCHON_EXPORTER_MAX_IN_FLIGHT_BYTES", default_value_t = BodyLimits::default().max_in_flight_bytes)]
    max_in_flight_bytes: usize,
    /// Connections open at once across both ports; a new one beyond it takes the slot of the one
    /// that has waited longest for a request, and is closed only when all are serving one.
    #[arg(long, env = "ARCHON_EXPORTER_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    max_connections: usize,
    /// Seconds a connection may wait for a request (whatever it sends meanwhile: header
    /// fragments, pings, a TLS handshake), or serve one with nothing moving, before it is closed.
    #[arg(long, env = "ARCHON_EXPORTER_IDLE_TIMEOUT_SECS", default_value_t = ConnectionLimits::default().idle_timeout.as_secs())]
    idle_timeout_secs: u64,
    /// Seconds an HTTP/1 request's headers may take to arrive.
    #[arg(long, env = "ARCHON_EXPORTER_HEADER_TIMEOUT_SECS", default_value_t = ConnectionLimits::default().header_timeout.as_secs())]
    header_timeout_secs: u64,
    /// Seconds a request's body may take to arrive in full.
    #[arg(long, env = "ARCHON_EXPORTER_BODY_TIMEOUT_SECS", default_value_t = ConnectionLimits::default().body_timeout.as_secs())]
    body_timeout_secs: u64,
    /// Requests at once on one HTTP/2 connection (gRPC or HTTP).
    #[arg(long, env = "ARCHON_EXPORTER_MAX_STREAMS_PER_CONNECTION", default_value_t = ConnectionLimits::default().max_streams_per_connection)]
    max_streams_per_connection: u32,
    /// Concurrent database writers (each holds one connection).
    #[arg(long, env = "ARCHON_EXPORTER_WRITERS", default_value_t = BatcherConfig::default().writers)]
    writers: usize,
    /// Most rows written in one transaction.
    #[arg(long, env = "ARCHON_EXPORTER_BATCH_ROWS", default_value_t = BatcherConfig::default().max_batch_rows)]
    batch_rows: usize,
    /// Most rows queued in memory; beyond it exports are refused as busy (retry later).
    #[arg(long, env = "ARCHON_EXPORTER_MAX_PENDING_ROWS", default_value_t = BatcherConfig::default().max_pending_rows)]
    max_pending_rows: usize,
    /// Seconds before a database write is abandoned and the export answered "retry later".
    #[arg(long, env = "ARCHON_EXPORTER_WRITE_TIMEOUT_SECS", default_value_t = BatcherConfig::default().write_timeout.as_secs())]
    write_timeout_secs: u64,
    /// Price estimated tokens at this model's price (else they stay unpriced).
    #[arg(long, env = "ARCHON_EXPORTER_ESTIMATE_MODEL")]
    estimate_model: Option<String>,
    /// Seconds without activity before a session is marked idle.
    #[arg(long, env = "ARCHON_EXPORTER_IDLE_AFTER_SECS", default_value_t = ReaperConfig::default().idle_after.as_secs())]
    idle_after_secs: u64,
    /// Seconds without activity before a session is disconnected as `timeout`.
    #[arg(long, env = "ARCHON_EXPORTER_TIMEOUT_AFTER_SECS", default_value_t = ReaperConfig::default().timeout_after.as_secs())]
    timeout_after_secs: u64,
    /// Seconds between reaper rounds.
    #[arg(long, env = "ARCHON_EXPORTER_REAP_INTERVAL_SECS", default_value_t = ReaperConfig::default().interval.as_secs())]
    reap_interval_secs: u64,
    /// Do not run the reaper in this process.
    #[arg(long, env = "ARCHON_EXPORTER_NO_REAPER")]
    no_reaper: bool,
    /// What to store of the principal (user_key, user_id): store, hash (keyed; per-user cost
    /// kept), or drop (requests anonymous). docs/privacy.md.
    #[arg(long, env = "ARCHON_EXPORTER_MINIMISE_PRINCIPAL", default_value = "store")]
    minimise_principal: FieldPolicy,
    /// What to store of the user's email: store, hash or drop.
    #[arg(long, env = "ARCHON_EXPORTER_MINIMISE_EMAIL", default_value = "store")]
    minimise_email: FieldPolicy,
    /// What to store of the user's display name: store, hash or drop.
    #[arg(long, env = "ARCHON_EXPORTER_MINIMISE_NAME", default_value = "store")]
    minimise_name: FieldPolicy,
    /// What to store of the user's login name: store, hash or drop.
    #[arg(long, env = "ARCHON_EXPORTER_MINIMISE_LOGIN", default_value = "store")]
    minimise_login: FieldPolicy,
    /// The key of the hashes (a file of at least 16 bytes; needed when anything is hashed).
    #[arg(long, env = "ARCHON_EXPORTER_MINIMISE_KEY_FILE")]
    minimise_key_file: Option<PathBuf>,
}

impl Serve {
    fn config(self) -> anyhow::Result<ServeConfig> {
        let auth_token = match &self.auth_token_file {
            Some(path) => Some(secret::read_file("--auth-token-file", path, 1)?),
            None => self.auth_token.map(|token| secret::check("--auth-token", token, 1)).transpose()?,
        };
        // Out-of-range values (0 writers, an in-flight budget below one body) are brought
        // into range by `Server::bind`, for this path and the library's alike.
        let mut config = ServeConfig::new(self.db.database_url);
        config.grpc_listen = self.grpc_listen;
        config.http_listen = self.http_listen;
        config.auth_token = auth_token;
        config.tls = self.tls_cert.zip(self.tls_key).map(|(cert, key)| ReceiverTls::new(cert, key));
        config.migrate = self.migrate;
        config.limits = BodyLimits::default()
            .with_max_body_bytes(self.max_body_bytes)
            .with_max_decompressed_bytes(self.max_decompressed_bytes)
            .with_max_in_flight_bytes(self.max_in_flight_bytes);
        config.connections = ConnectionLimits::default()
            .with_max_connections(self.max_connections)
            .with_idle_timeout(Duration::from_secs(self.idle_timeout_secs))
            .with_header_timeout(Duration::from_secs(self.header_timeout_secs))
            .with_body_timeout(Duration::from_secs(self.body_timeout_secs))
            .with_max_streams_per_connection(self.max_streams_per_connection);
        config.batcher = BatcherConfig::default()
            .with_max_batch_rows(self.batch_rows)
            .with_max_pending_rows(self.max_pending_rows)
            .with_writers(self.writers)
            .with_write_timeout(Duration::from_secs(self.write_timeout_secs));
        config.store.estimate_model = self.estimate_model;
        config.store.ca_file = self.db.database_ca_file;
        let policies = [self.minimise_principal, self.minimise_email, self.minimise_name, self.minimise_login];
        if policies.iter().any(|p| *p != FieldPolicy::Store) {
            let hashing = policies.contains(&FieldPolicy::Hash);
            let key = match (&self.minimise_key_file, hashing) {
                (Some(file), _) => secret::read_file("--minimise-key-file", file, 16)?.into_bytes(),
                (None, true) => {
                    anyhow::bail!("hashing a personal field needs --minimise-key-file FILE (16 bytes or more)")
                }
                // Nothing hashed: the key is never used.
                (None, false) => vec![0; 16],
            };
            config.store.minimisation = Minimisation::new(key)
                .map_err(anyhow::Error::msg)?
                .with_principal(self.minimise_principal)
                .with_email(self.minimise_email)
                .with_name(self.minimise_name)
                .with_login(self.minimise_login);
        }
        config.reaper = (!self.no_reaper).then(|| {
            ReaperConfig::default()
                .with_idle_after(Duration::from_secs(self.idle_after_secs))
                .with_timeout_after(Duration::from_secs(self.timeout_after_secs))
                .with_interval(Duration::from_secs(self.reap_interval_secs))
        });
        Ok(config)
    }
}

/// Text from the database as a terminal may show it: control characters (escape sequences
/// that would move the cursor, recolour or retitle the terminal) written as `\u{1b}`.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

/// Warns about secrets given as command-line flags: any local user can read them in `ps`.
fn warn_about_secret_flags() {
    for warning in archon_mcp_exporter::secret::on_command_line(std::env::args(), &["--auth-token"]) {
        tracing::warn!("{warning}");
    }
}

#[derive(Debug, Args)]
struct Database {
    /// PostgreSQL connection string (postgres://user:password@host:port/db or key=value).
    /// TLS follows its `sslmode`: `disable`, `prefer` (default) or `require`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Verify the database's TLS certificate against the CAs in this PEM file (without it, TLS
    /// is used but the server is not authenticated, as libpq's sslmode=require).
    #[arg(long, env = "ARCHON_EXPORTER_DATABASE_CA_FILE")]
    database_ca_file: Option<PathBuf>,
}

/// [`Database`] for a command with subcommands: the flags go before or after the subcommand
/// (`budgets set --database-url …` and `budgets --database-url … set`).
#[derive(Debug, Args)]
struct AnywhereDatabase {
    /// PostgreSQL connection string (postgres://user:password@host:port/db or key=value).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// Verify the database's TLS certificate against the CAs in this PEM file.
    #[arg(long, env = "ARCHON_EXPORTER_DATABASE_CA_FILE", global = true)]
    database_ca_file: Option<PathBuf>,
}

impl AnywhereDatabase {
    fn required(self) -> anyhow::Result<Database> {
        let database_url = self
            .database_url
            .context("say which database: --database-url URL (before or after the subcommand) or DATABASE_URL")?;
        Ok(Database { database_url, database_ca_file: self.database_ca_file })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    warn_about_secret_flags();
    match command {
        Command::Serve(options) => serve(*options).await,
        Command::Migrate { db, dry_run } => migrate(db, dry_run).await,
        Command::Retention { db, keep, keep_rollups, months_ahead, dry_run } => {
            retention(db, &keep, keep_rollups.as_deref(), months_ahead, dry_run).await
        }
        Command::Budgets { db, action } => budgets(db.required()?, action).await,
        Command::Users { db, action } => users(db.required()?, action).await,
        Command::Rollups { db, action: RollupsAction::Rebuild { from, to } } => {
            let client = connect(&db.required()?).await?;
            let hours = rollups::rebuild(&client, &from, &to)
                .await
                .with_context(|| format!("rebuilding the rollups from {from:?} to {to:?} (dates PostgreSQL reads; archon_exporter or archon_admin)"))?;
            println!("rebuilt the rollups of {hours} hours");
            Ok(())
        }
        Command::Partitions { db, months_ahead } => create_partitions(db, months_ahead).await,
    }
}

async fn serve(options: Serve) -> anyhow::Result<()> {
    let tls = options.tls_cert.is_some();
    let server = Server::bind(options.config()?).await?;
    tracing::info!(grpc = %server.grpc_addr(), http = %server.http_addr(), tls, "receiving OTLP traces");
    server.run(archon_mcp_exporter::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(db: Database, dry_run: bool) -> anyhow::Result<()> {
    let mut client = archon_mcp_exporter::connect(&db.database_url, db.database_ca_file.as_deref()).await?;
    if dry_run {
        let (pending, adoption) = migrate::plan(&mut client).await?;
        if let Some(plan) = adoption {
            print!("{plan}");
        }
        if pending.is_empty() {
            println!("schema is current ({} migrations): nothing to do", migrate::known().len());
        }
        for m in pending {
            println!("would apply V{}__{}", m.version, m.name);
        }
        println!("(dry run: nothing was changed)");
        return Ok(());
    }
    let migrated = migrate::migrate_reporting(&mut client).await?;
    if let Some((state, summary)) = &migrated.adopted {
        match state {
            Some(state) => println!("adopted the {state} database: {}", summary.before),
            None => println!("resumed adopting the Archon database: {}", summary.before),
        }
    }
    if migrated.applied.is_empty() {
        println!("schema is current ({} migrations)", migrate::known().len());
    }
    for m in &migrated.applied {
        println!("applied V{}__{}", m.version, m.name);
    }
    if let Some((_, summary)) = migrated.adopted {
        println!("kept: {} before, {} after", summary.before, summary.after);
    }
    Ok(())
}

async fn retention(
    db: Database,
    keep: &str,
    keep_rollups: Option<&str>,
    months_ahead: i32,
    dry_run: bool,
) -> anyhow::Result<()> {
    let keep = interval(keep)?;
    let keep_rollups = keep_rollups.map(interval).transpose()?;
    let client = connect(&db).await?;
    if let Some(long) = &keep_rollups {
        let shorter: bool = client
            .query_one("SELECT $1::text::interval < $2::text::interval", &[long, &keep])
            .await
            .with_context(|| format!("--keep-rollups {long:?} is not an interval PostgreSQL reads: use 2y, 104w"))?
            .get(0);
        anyhow::ensure!(
            !shorter,
            "--keep-rollups {long} is shorter than --keep {keep}: the rollups summarise the rows, keep them at least as long"
        );
    }
    let cutoff: String = client
        .query_one("SELECT (now() - $1::text::interval)::timestamptz(0)::text", &[&keep])
        .await
        .with_context(|| format!("--keep {keep:?} is not an interval PostgreSQL reads: use 90d, 12w, 6mo"))?
        .get(0);
    println!("keeping {keep}: dropping whole months of requests before {cutoff}");
    // Counted before: the drop takes them with the months.
    let sessions = partitions::sessions_going(&client, &keep).await.context("counting the old sessions")?;
    let dropped = partitions::drop_older_than(&client, &keep, dry_run)
        .await
        .context("dropping old partitions (has `archon-mcp-exporter migrate` run? is this role archon_admin?)")?;
    let verb = if dry_run { "would drop" } else { "dropped" };
    if dropped.is_empty() {
        println!("no partition ends before now - {keep}");
    }
    for name in dropped {
        println!("{verb} {name}");
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    println!(
        "{verb} {sessions} sessions last active before {cutoff} with no request kept (their personal data with them)"
    );
    match &keep_rollups {
        Some(long) => {
            let rows = rollups::drop_older_than(&client, long, dry_run).await.context("deleting old rollups")?;
            println!("{verb} {rows} rollup rows of hours before now - {long}");
        }
        None => println!("kept the rollups of every hour (--keep-rollups to bound them)"),
    }
    if !dry_run {
        for name in partitions::create(&client, months_ahead).await? {
            println!("created {name}");
        }
    }
    Ok(())
}

async fn budgets(db: Database, action: BudgetAction) -> anyhow::Result<()> {
    let client = connect(&db).await?;
    match action {
        BudgetAction::Set { scope, monthly, currency, warn_at, from } => {
            let mut spec =
                BudgetSpec::monthly(scope.clone(), monthly).with_currency(currency).with_effective_from(from);
            if !warn_at.is_empty() {
                spec = spec.with_warn_at(warn_at);
            }
            budgets::set(&client, &spec).await?;
            println!(
                "budget for {}: {monthly:.2} {} a month, warnings at {:?} %",
                printable(&scope.to_string()),
                printable(&spec.currency),
                spec.warn_at
            );
        }
        BudgetAction::List => {
            let all = budgets::status(&client).await?;
            if all.is_empty() {
                println!("no budgets: add one with `archon-mcp-exporter budgets set --scope all --monthly 500`");
                return Ok(());
            }
            println!("{:<32} {:>12} {:>12} {:>12} {:>7}  state", "scope", "monthly", "spent", "forecast", "used");
            for b in all {
                println!(
                    "{:<32} {:>8.2} {} {:>12.2} {:>12.2} {:>6.1}%  {}",
                    printable(&b.scope.to_string()),
                    b.monthly_amount,
                    printable(&b.currency),
                    b.spend_mtd,
                    b.forecast,
                    b.percent_used,
                    printable(&b.state)
                );
            }
        }
        BudgetAction::Remove { scope } => {
            let removed = budgets::remove(&client, &scope).await?;
            println!("removed {removed} budget(s) for {}", printable(&scope.to_string()));
        }
    }
    Ok(())
}

async fn users(db: Database, action: UsersAction) -> anyhow::Result<()> {
    let mut client = archon_mcp_exporter::connect(&db.database_url, db.database_ca_file.as_deref()).await?;
    match action {
        UsersAction::Export { subject, dry_run: true } => {
            let counts = privacy::export_counts(&mut client, &subject.subject()).await?;
            println!("would export {counts}\n(dry run: nothing shown)");
        }
        UsersAction::Export { subject, dry_run: false } => {
            let document = privacy::export(&mut client, &subject.subject()).await?;
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        UsersAction::Forget { subject, policy, pseudonym_key_file, dry_run } => {
            let policy = match (policy.as_str(), pseudonym_key_file) {
                ("pseudonymise", Some(file)) => {
                    let key = secret::read_file("--pseudonym-key-file", &file, 16)?;
                    privacy::ForgetPolicy::Pseudonymise { key: key.into_bytes() }
                }
                ("pseudonymise", None) => anyhow::bail!("--policy pseudonymise needs --pseudonym-key-file FILE"),
                _ => privacy::ForgetPolicy::Delete,
            };
            let counts = privacy::forget(&mut client, &subject.subject(), &policy, dry_run).await?;
            let verb = if dry_run { "would" } else { "did" };
            println!(
                "{verb} {}: {counts}",
                if matches!(policy, privacy::ForgetPolicy::Delete) { "delete" } else { "pseudonymise" }
            );
            if dry_run {
                println!("(dry run: nothing was changed)");
            }
        }
    }
    Ok(())
}

async fn create_partitions(db: Database, months_ahead: i32) -> anyhow::Result<()> {
    let client = connect(&db).await?;
    let created = partitions::create(&client, months_ahead)
        .await
        .context("creating partitions (has `archon-mcp-exporter migrate` run?)")?;
    if created.is_empty() {
        println!("partitions exist through {months_ahead} months ahead");
    }
    for name in created {
        println!("created {name}");
    }
    Ok(())
}

async fn connect(db: &Database) -> anyhow::Result<tokio_postgres::Client> {
    archon_mcp_exporter::connect(&db.database_url, db.database_ca_file.as_deref())
        .await
        .context("check --database-url / DATABASE_URL and that the server is up")
}

/// A listen address: `HOST:PORT`, the host an IP or a name (the first address it resolves to).
fn listen_address(value: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    value
        .to_socket_addrs()
        .map_err(|e| format!("{e}: use HOST:PORT, e.g. 0.0.0.0:4317 or localhost:4317"))?
        .next()
        .ok_or_else(|| format!("{value} resolves to no address: use HOST:PORT, e.g. 0.0.0.0:4317"))
}

/// `90d` → `90 days`, `12w` → `12 weeks`, `6mo` → `6 months`, `1y` → `1 years`; a bare `m` is
/// refused as ambiguous (PostgreSQL would read minutes); anything else is passed to PostgreSQL.
fn interval(keep: &str) -> anyhow::Result<String> {
    let keep = keep.trim();
    let (number, unit) = keep.split_at(keep.find(|c: char| !c.is_ascii_digit()).unwrap_or(keep.len()));
    let unit = match unit.trim() {
        "d" => "days",
        "w" => "weeks",
        "h" => "hours",
        "mo" => "months",
        "y" => "years",
        "m" => anyhow::bail!("--keep {keep:?} is ambiguous: write {number}mo for months or '{number} minutes'"),
        "" => {
            anyhow::bail!("--keep {keep:?} needs a unit: 90d, 12w, 6mo, 1y, or a PostgreSQL interval like '6 months'")
        }
        _ => return Ok(keep.to_owned()),
    };
    Ok(format!("{number} {unit}"))
}
