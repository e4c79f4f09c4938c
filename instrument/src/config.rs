//! Configuration of [`Traced`](crate::Traced), shared by every server instance it wraps.

use std::sync::Arc;
use std::time::Duration;

use crate::capture::CapturePolicy;
use crate::runtime::{Settings, Shared};
use crate::session::StatelessSessions;
use crate::tracer::SpanTracer;
use crate::usage::TokenEstimation;
use crate::user::{EnvUser, ExtensionUser, UserResolver, UserResolverExt};

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
        for session in crate::session::open(|s| s.belongs_to(&self.shared.owner)) {
            session.end_for_shutdown(reason.clone());
        }
    }

    /// How many analytics sessions of this configuration are open.
    pub fn open_sessions(&self) -> usize {
        crate::session::open(|s| s.belongs_to(&self.shared.owner)).len()
    }
}

/// Builds a [`TracedConfig`].
pub struct TracedConfigBuilder {
    user_resolver: Box<dyn UserResolver>,
    hash_emails: bool,
    record_all_methods: bool,
    record_notifications: bool,
    refuse_foreign_principals: bool,
    budgets: Option<crate::budget::BudgetGate>,
    estimation: TokenEstimation,
    capture: CapturePolicy,
    stateless_idle: Duration,
    stateless_capacity: usize,
    tracer: Option<SpanTracer>,
}

impl Default for TracedConfigBuilder {
    fn default() -> Self {
        Self {
            user_resolver: Box::new(ExtensionUser.or(EnvUser::from_env())),
            hash_emails: false,
            record_all_methods: false,
            record_notifications: false,
            refuse_foreign_principals: false,
            budgets: None,
            estimation: TokenEstimation::default(),
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

    /// Makes the notifications the server receives — `notifications/cancelled`, `/progress`,
    /// `/initialized`, `/roots/list_changed` — SERVER spans too (children of the context in
    /// their `_meta`). Off by default: a long call's progress notifications would outnumber the
    /// requests. They never become rows.
    pub fn record_notifications(mut self, on: bool) -> Self {
        self.record_notifications = on;
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

    /// How tokens of tool arguments and results are estimated when tools report no usage
    /// (default [`TokenEstimation::CharsDiv4`]; [`TokenEstimation::Off`] leaves such calls
    /// without tokens or cost).
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

    /// The tracer to use: an [`SdkTracer`](opentelemetry_sdk::trace::SdkTracer) (fastest) or a
    /// [`BoxedTracer`](opentelemetry::global::BoxedTracer). By default the provider
    /// [`Telemetry`](crate::Telemetry) installed, else the global one, looked up at the first
    /// request (so installing telemetry after building the config works).
    pub fn tracer(mut self, tracer: impl Into<SpanTracer>) -> Self {
        self.tracer = Some(tracer.into());
        self
    }

    /// Finishes the configuration.
    pub fn build(self) -> TracedConfig {
        let settings = Settings {
            user_resolver: self.user_resolver,
            hash_emails: self.hash_emails,
            record_all_methods: self.record_all_methods,
            record_notifications: self.record_notifications,
            refuse_foreign_principals: self.refuse_foreign_principals,
            budgets: self.budgets,
            estimation: self.estimation,
            capture: self.capture,
        };
        let stateless = StatelessSessions::new(self.stateless_idle, self.stateless_capacity);
        TracedConfig { shared: Arc::new(Shared::new(settings, stateless, self.tracer)) }
    }
}
