//! Configuration of [`Traced`](crate::Traced), shared by every server instance it wraps.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::TracerProvider as _;

use crate::capture::CapturePolicy;
use crate::session::StatelessSessions;
use crate::usage::TokenEstimation;
use crate::user::{EnvUser, ExtensionUser, UserResolver, UserResolverExt};

/// The instrumentation scope name of our spans and metrics.
pub const SCOPE: &str = "archon-mcp-instrument";

/// How [`Traced`](crate::Traced) observes a server. Cheap to clone; clones share state (the
/// stateless-session map), so hand the same config to every instance a factory creates.
///
/// ```
/// use std::time::Duration;
/// use archon_mcp_instrument::{TracedConfig, usage::TokenEstimation, user::JwtUser};
///
/// let config = TracedConfig::builder()
///     .user_resolver(JwtUser::hs256(b"secret"))
///     .hash_emails(true)
///     .token_estimation(TokenEstimation::CharsDiv4)
///     .stateless_idle(Duration::from_secs(15 * 60))
///     .build();
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct TracedConfig {
    pub(crate) shared: Arc<Shared>,
}

impl Default for TracedConfig {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl TracedConfig {
    /// Starts a configuration.
    pub fn builder() -> TracedConfigBuilder {
        TracedConfigBuilder::default()
    }

    /// Ends the open analytics sessions of servers using this configuration (a graceful
    /// shutdown of one server among several in a process; [`TelemetryGuard`](crate::TelemetryGuard)
    /// ends all of them).
    pub fn end_sessions(&self, reason: crate::attributes::DisconnectReason) {
        for session in crate::session::open(|s| s.belongs_to(&self.shared)) {
            session.end_for_shutdown(reason.clone());
        }
    }

    /// How many analytics sessions of this configuration are open.
    pub fn open_sessions(&self) -> usize {
        crate::session::open(|s| s.belongs_to(&self.shared)).len()
    }
}

/// Builds a [`TracedConfig`].
pub struct TracedConfigBuilder {
    user_resolver: Box<dyn UserResolver>,
    hash_emails: bool,
    record_all_methods: bool,
    refuse_foreign_principals: bool,
    budgets: Option<crate::budget::BudgetGate>,
    estimation: TokenEstimation,
    capture: CapturePolicy,
    stateless_idle: Duration,
    stateless_capacity: usize,
    tracer: Option<BoxedTracer>,
}

impl Default for TracedConfigBuilder {
    fn default() -> Self {
        Self {
            user_resolver: Box::new(ExtensionUser.or(EnvUser::from_env())),
            hash_emails: false,
            record_all_methods: false,
            refuse_foreign_principals: false,
            budgets: None,
            estimation: TokenEstimation::Off,
            capture: CapturePolicy::none(),
            stateless_idle: Duration::from_secs(30 * 60),
            stateless_capacity: 10_000,
            tracer: None,
        }
    }
}

impl std::fmt::Debug for TracedConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedConfigBuilder").finish_non_exhaustive()
    }
}

impl TracedConfigBuilder {
    /// Who the user of a request is (default: a [`UserContext`](crate::user::UserContext) in
    /// the request's extensions, else the `ARCHON_USER_*` environment variables).
    pub fn user_resolver(mut self, resolver: impl UserResolver) -> Self {
        self.user_resolver = Box::new(resolver);
        self
    }

    /// Sends `user.hash` (SHA-256 of the email) instead of `user.email`.
    pub fn hash_emails(mut self, on: bool) -> Self {
        self.hash_emails = on;
        self
    }

    /// Puts every request of a session into it (and so into the database), not only tool calls.
    pub fn record_all_methods(mut self, on: bool) -> Self {
        self.record_all_methods = on;
        self
    }

    /// Refuses (JSON-RPC "invalid request") a request whose user is not its session's — no
    /// credential, a failed one, or another principal's — instead of recording it as anonymous
    /// in the session. Either way it is never billed to the session's user.
    pub fn refuse_foreign_principals(mut self, on: bool) -> Self {
        self.refuse_foreign_principals = on;
        self
    }

    /// Refuses tool calls whose user, department or tool (or everyone) is over budget, as
    /// `gate` last read it (see [`budget`](crate::budget)). Off by default.
    pub fn enforce_budgets(mut self, gate: crate::budget::BudgetGate) -> Self {
        self.budgets = Some(gate);
        self
    }

    /// Estimates tokens of tool arguments and results when tools report no usage.
    pub fn token_estimation(mut self, estimation: TokenEstimation) -> Self {
        self.estimation = estimation;
        self
    }

    /// Which tools' arguments and results are captured (redacted, truncated). Default: none.
    pub fn capture(mut self, policy: CapturePolicy) -> Self {
        self.capture = policy;
        self
    }

    /// How long a stateless session may be idle before the next request starts a new one
    /// (default 30 minutes).
    pub fn stateless_idle(mut self, idle: Duration) -> Self {
        self.stateless_idle = idle;
        self
    }

    /// The most stateless sessions kept open at once (default 10,000).
    pub fn stateless_capacity(mut self, capacity: usize) -> Self {
        self.stateless_capacity = capacity;
        self
    }

    /// The tracer to use; by default the global tracer provider's, looked up at the first
    /// request (so installing telemetry after building the config works).
    pub fn tracer(mut self, tracer: BoxedTracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Finishes the configuration.
    pub fn build(self) -> TracedConfig {
        let tracer = OnceLock::new();
        if let Some(given) = self.tracer {
            let _ = tracer.set(given);
        }
        TracedConfig {
            shared: Arc::new(Shared {
                user_resolver: self.user_resolver,
                hash_emails: self.hash_emails,
                record_all_methods: self.record_all_methods,
                refuse_foreign_principals: self.refuse_foreign_principals,
                budgets: self.budgets,
                estimation: self.estimation,
                capture: self.capture,
                stateless: StatelessSessions::new(self.stateless_idle, self.stateless_capacity),
                tracer,
                metrics: OnceLock::new(),
                tool_names: Default::default(),
                connections: Default::default(),
            }),
        }
    }
}

/// What every instance of one configuration shares.
pub(crate) struct Shared {
    pub(crate) user_resolver: Box<dyn UserResolver>,
    pub(crate) hash_emails: bool,
    pub(crate) record_all_methods: bool,
    pub(crate) refuse_foreign_principals: bool,
    pub(crate) budgets: Option<crate::budget::BudgetGate>,
    pub(crate) estimation: TokenEstimation,
    pub(crate) capture: CapturePolicy,
    pub(crate) stateless: StatelessSessions,
    tracer: OnceLock<BoxedTracer>,
    metrics: OnceLock<Metrics>,
    /// Streamable-HTTP sessions watched by a [`TracedSessionManager`](crate::TracedSessionManager).
    pub(crate) connections: crate::connection::Connections,
    /// Interned names of the server's tools: (tool, span name).
    tool_names: std::sync::RwLock<std::collections::HashMap<String, (&'static str, &'static str)>>,
}

/// The most tool names interned; a server with more (generated tools) pays an allocation.
const MAX_INTERNED_TOOLS: usize = 1024;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn tracer(&self) -> &BoxedTracer {
        self.tracer.get_or_init(|| global::tracer_provider().tracer(SCOPE))
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        self.metrics.get_or_init(Metrics::new)
    }

    /// The interned tool name and `tools/call {tool}` span name of a tool the server knows.
    /// The set is bounded (the server's tools, at most [`MAX_INTERNED_TOOLS`]), so leaking the
    /// strings costs a fixed amount once.
    pub(crate) fn tool_names(&self, tool: &str) -> Option<(&'static str, &'static str)> {
        if let Some(names) = self.tool_names.read().unwrap_or_else(|p| p.into_inner()).get(tool) {
            return Some(*names);
        }
        let mut names = self.tool_names.write().unwrap_or_else(|p| p.into_inner());
        if names.len() >= MAX_INTERNED_TOOLS {
            return None;
        }
        let interned: &'static str = Box::leak(tool.to_owned().into_boxed_str());
        let span: &'static str = Box::leak(format!("{} {tool}", crate::attributes::METHOD_TOOLS_CALL).into_boxed_str());
        Some(*names.entry(tool.to_owned()).or_insert((interned, span)))
    }
}

/// The MCP duration metrics of the semantic conventions, recorded through the global meter
/// provider (a no-op unless one is installed).
pub(crate) struct Metrics {
    pub(crate) operation_duration: Histogram<f64>,
    pub(crate) session_duration: Histogram<f64>,
    /// Tool calls let through because the budget state was unknown or stale.
    pub(crate) budget_unknown: opentelemetry::metrics::Counter<u64>,
}

impl Metrics {
    fn new() -> Self {
        let meter = global::meter(SCOPE);
        Self {
            operation_duration: meter
                .f64_histogram("mcp.server.operation.duration")
                .with_unit("s")
                .with_description("Duration of MCP requests as seen by the server")
                .with_boundaries(vec![0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0])
                .build(),
            // Sessions last minutes to hours: the conventions' 300 s top bucket is too short.
            session_duration: meter
                .f64_histogram("mcp.server.session.duration")
                .with_unit("s")
                .with_description("Duration of MCP analytics sessions")
                .with_boundaries(vec![1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0])
                .build(),
            budget_unknown: meter
                .u64_counter("archon.budget.unknown_state")
                .with_description("Tool calls let through because the budget state was not known or was stale")
                .build(),
        }
    }
}
