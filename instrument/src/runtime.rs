//! What every server instance of one configuration shares at run time: the settings the
//! builder fixed, the tracer and metrics (resolved on first use, so a provider installed after
//! the configuration is built still applies), stateless sessions, watched connections and the
//! interned tool names.

use std::sync::{Arc, OnceLock};

use opentelemetry::KeyValue;

use crate::capture::CapturePolicy;
use crate::metrics::Metrics;
use crate::session::{ActiveSession, Owner, SessionStart, StatelessSessions};
use crate::tracer::SpanTracer;
use crate::usage::TokenEstimation;
use crate::user::UserResolver;

/// What the builder fixed (see [`TracedConfigBuilder`](crate::TracedConfigBuilder)).
pub(crate) struct Settings {
    pub(crate) user_resolver: Box<dyn UserResolver>,
    pub(crate) hash_emails: bool,
    pub(crate) record_all_methods: bool,
    pub(crate) record_notifications: bool,
    pub(crate) refuse_foreign_principals: bool,
    pub(crate) budgets: Option<crate::budget::BudgetGate>,
    pub(crate) estimation: TokenEstimation,
    pub(crate) capture: CapturePolicy,
}

/// What every instance of one configuration shares.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) stateless: StatelessSessions,
    tracer: OnceLock<SpanTracer>,
    metrics: OnceLock<Metrics>,
    /// Marks the sessions this configuration started.
    pub(crate) owner: Owner,
    /// Streamable-HTTP sessions watched by a [`TracedSessionManager`](crate::TracedSessionManager).
    pub(crate) connections: crate::connection::Connections,
    /// Clients that sent `initialize` to a server serving statelessly.
    pub(crate) stateless_clients: crate::stateless_clients::StatelessClients,
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
    /// The run-time state of a configuration; `tracer` overrides the global provider's.
    pub(crate) fn new(settings: Settings, stateless: StatelessSessions, tracer: Option<SpanTracer>) -> Self {
        let lazy_tracer = OnceLock::new();
        if let Some(given) = tracer {
            let _ = lazy_tracer.set(given);
        }
        Self {
            settings,
            stateless,
            tracer: lazy_tracer,
            metrics: OnceLock::new(),
            owner: Owner::default(),
            connections: Default::default(),
            stateless_clients: Default::default(),
            tool_names: Default::default(),
        }
    }

    pub(crate) fn tracer(&self) -> &SpanTracer {
        self.tracer.get_or_init(SpanTracer::global)
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        self.metrics.get_or_init(Metrics::new)
    }

    /// Starts an analytics session of this configuration (see [`ActiveSession`]).
    pub(crate) fn start_session(
        &self,
        id: Option<String>,
        principal: Option<String>,
        stateless: bool,
        attributes: Vec<KeyValue>,
        labels: Vec<KeyValue>,
    ) -> Arc<ActiveSession> {
        ActiveSession::start(SessionStart {
            tracer: self.tracer(),
            owner: self.owner.clone(),
            duration: self.metrics().session_duration.clone(),
            stateless_idle: stateless.then_some(self.stateless.idle),
            id,
            principal,
            attributes,
            labels,
        })
    }

    /// The interned tool name and `tools/call {tool}` span name of a tool the server knows.
    /// Whether the server has the tool is asked of `has_tool` only for a name not interned yet:
    /// a known tool costs one map lookup per call, never a call into the wrapped server (its
    /// `get_tool` may build the whole `Tool`). Returns whether the tool is known, and its
    /// interned names unless the set is full.
    pub(crate) fn tool(
        &self,
        tool: &str,
        has_tool: impl FnOnce() -> bool,
    ) -> (bool, Option<(&'static str, &'static str)>) {
        if let Some(names) = self.tool_names.read().unwrap_or_else(|p| p.into_inner()).get(tool) {
            return (true, Some(*names));
        }
        if !has_tool() {
            return (false, None);
        }
        (true, self.intern_tool(tool))
    }

    /// Interns the names of a tool the server has (from `tools/list`, or a call it answered).
    /// The set is bounded (the server's tools, at most [`MAX_INTERNED_TOOLS`]) and each name is
    /// leaked once, so it costs a fixed amount however often tools are listed.
    pub(crate) fn intern_tool(&self, tool: &str) -> Option<(&'static str, &'static str)> {
        let mut names = self.tool_names.write().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = names.get(tool) {
            return Some(*known);
        }
        if names.len() >= MAX_INTERNED_TOOLS {
            return None;
        }
        let interned: &'static str = Box::leak(tool.to_owned().into_boxed_str());
        let span: &'static str = Box::leak(format!("{} {tool}", crate::attributes::METHOD_TOOLS_CALL).into_boxed_str());
        names.insert(tool.to_owned(), (interned, span));
        Some((interned, span))
    }
}
