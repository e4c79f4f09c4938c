//! Analytics sessions: created by a connection's first tool call, ended when it closes.
//!
//! Each session is an `mcp.session` span (kind INTERNAL) that lives from its creation to its
//! end. Open sessions are kept in a process-wide registry so a shutdown can end them all
//! ([`end_all`]). Stateless requests (protocol 2026-07-28 over HTTP) have no connection: their
//! sessions live in a registry of their own (`StatelessSessions`), keyed by an explicit hint or by (user, client) and
//! ended after an idle window.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::metrics::Histogram;
use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, StringValue};
use uuid::Uuid;

use crate::attributes::{self as attr, DisconnectReason};
use crate::tracer::SpanTracer;

/// One open analytics session.
pub(crate) struct ActiveSession {
    /// The `session.id` value, shared by every request span of the session.
    pub(crate) id: StringValue,
    /// Whose session it is: the principal of the request that created it (none: anonymous).
    pub(crate) principal: Option<String>,
    /// The `mcp.session` span (in a context of its own) until the session ends.
    span: Mutex<Option<Context>>,
    started: SystemTime,
    /// The idle window of a session of stateless requests: there is no connection whose end
    /// could be seen, so it always ends at its last activity.
    stateless_idle: Option<Duration>,
    requests: AtomicU64,
    last_activity_nanos: AtomicU64,
    duration: Histogram<f64>,
    /// The attributes of `mcp.server.session.duration` known at the start.
    labels: Vec<KeyValue>,
    owner: Owner,
}

/// Marks the sessions of one configuration, so it can count and end its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Owner(Arc<()>);

/// What starting a session needs from its configuration.
pub(crate) struct SessionStart<'a> {
    pub(crate) tracer: &'a SpanTracer,
    pub(crate) owner: Owner,
    /// Records the session's duration when it ends.
    pub(crate) duration: Histogram<f64>,
    /// `Some(idle window)` for a session of stateless requests.
    pub(crate) stateless_idle: Option<Duration>,
    /// The id the client named, if any; else a new UUIDv7.
    pub(crate) id: Option<String>,
    pub(crate) principal: Option<String>,
    /// The client and user attributes of the `mcp.session` span.
    pub(crate) attributes: Vec<KeyValue>,
    /// The attributes of `mcp.server.session.duration`: the protocol version, and
    /// `network.protocol.name` on HTTP.
    pub(crate) labels: Vec<KeyValue>,
}

impl std::fmt::Debug for ActiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveSession").field("id", &self.id.as_str()).finish_non_exhaustive()
    }
}

static OPEN: LazyLock<Mutex<HashMap<usize, Weak<ActiveSession>>>> = LazyLock::new(Default::default);

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl ActiveSession {
    /// Starts a session: a new UUIDv7 unless the client named one, and its `mcp.session` span
    /// carrying `attributes` (client, user).
    pub(crate) fn start(start: SessionStart<'_>) -> Arc<Self> {
        let SessionStart { tracer, owner, duration, stateless_idle, id, principal, mut attributes, labels } = start;
        let id: StringValue = id.unwrap_or_else(|| Uuid::now_v7().to_string()).into();
        let now = SystemTime::now();
        attributes.push(KeyValue::new(attr::SESSION_ID, id.clone()));
        let span = tracer.start(
            SpanBuilder::from_name(attr::SESSION_SPAN_NAME)
                .with_kind(SpanKind::Internal)
                .with_start_time(now)
                .with_attributes(attributes),
            &Context::new(),
        );
        let session = Arc::new(Self {
            id,
            principal,
            span: Mutex::new(Some(span)),
            started: now,
            stateless_idle,
            requests: AtomicU64::new(0),
            last_activity_nanos: AtomicU64::new(unix_nanos(now)),
            duration,
            labels,
            owner,
        });
        lock(&OPEN).insert(Arc::as_ptr(&session) as usize, Arc::downgrade(&session));
        session
    }

    /// Records the tool catalog the session's client received (see
    /// [`ARCHON_SESSION_CATALOG_TOKENS`](attr::ARCHON_SESSION_CATALOG_TOKENS)).
    pub(crate) fn set_catalog_tokens(&self, tokens: u64) {
        if let Some(cx) = lock(&self.span).as_ref() {
            cx.span().set_attribute(KeyValue::new(attr::ARCHON_SESSION_CATALOG_TOKENS, tokens as i64));
        }
    }

    /// A request that carries the session (a row) started: counted in
    /// `archon.session.request_count` now, so a request still running when the session ends is
    /// counted as its row will be. The connection's every `tools/list` is not.
    pub(crate) fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves the last activity to now (a request of the session finished).
    pub(crate) fn touch(&self) {
        self.last_activity_nanos.fetch_max(unix_nanos(SystemTime::now()), Ordering::Relaxed);
    }

    fn last_activity(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.last_activity_nanos.load(Ordering::Relaxed))
    }

    /// Ends the session now (once; later calls do nothing); see [`end_at`](Self::end_at).
    pub(crate) fn end(&self, reason: DisconnectReason) {
        self.end_at(reason, None);
    }

    /// Ends the session (once; later calls do nothing) at `at`, or now. A timeout without a
    /// time, and any end of a stateless session, is at its last activity: the wait for an idle
    /// window to pass is not part of the session. (A timeout with a time is the server dropping
    /// a session whose client was connected until then.)
    pub(crate) fn end_at(&self, reason: DisconnectReason, at: Option<SystemTime>) {
        let Some(cx) = lock(&self.span).take() else { return };
        let span = cx.span();
        lock(&OPEN).remove(&(self as *const Self as usize));
        let last_activity = self.last_activity();
        let at = match (&reason, at) {
            _ if self.stateless_idle.is_some() => last_activity,
            (DisconnectReason::Timeout, None) => last_activity,
            (_, Some(at)) => at.max(self.started),
            (_, None) => SystemTime::now(),
        };
        span.set_attribute(KeyValue::new(attr::ARCHON_SESSION_DISCONNECT_REASON, reason.as_str().to_owned()));
        span.set_attribute(KeyValue::new(
            attr::ARCHON_SESSION_REQUEST_COUNT,
            self.requests.load(Ordering::Relaxed) as i64,
        ));
        span.end_with_timestamp(at);
        let seconds = at.duration_since(self.started).unwrap_or_default().as_secs_f64();
        // `error.type` only when the session ended with an error, as the conventions say.
        let error = match &reason {
            DisconnectReason::TransportError => Some(reason.as_str().to_owned()),
            DisconnectReason::Error(spelled) => Some(spelled.trim_start_matches("error:").to_owned()),
            _ => None,
        };
        let mut labels = self.labels.clone();
        labels.extend(error.map(|e| KeyValue::new(attr::ERROR_TYPE, e)));
        self.duration.record(seconds, &labels);
    }

    /// Ends the session because its server stops: a stateless session already past its idle
    /// window timed out.
    pub(crate) fn end_for_shutdown(&self, reason: DisconnectReason) {
        let idle = self.stateless_idle.is_some_and(|idle| self.is_idle(idle, SystemTime::now()));
        self.end(if idle { DisconnectReason::Timeout } else { reason });
    }

    fn is_idle(&self, idle: Duration, now: SystemTime) -> bool {
        now.duration_since(self.last_activity()).is_ok_and(|d| d > idle)
    }
}

/// Ends every open session with `reason` — `server_shutdown` when the process stops. Called by
/// [`TelemetryGuard`](crate::TelemetryGuard) before it flushes.
pub fn end_all(reason: DisconnectReason) {
    for session in open(|_| true) {
        session.end_for_shutdown(reason.clone());
    }
}

/// How many analytics sessions are open in this process.
pub fn open_sessions() -> usize {
    open(|_| true).len()
}

/// The open sessions that pass `filter`.
pub(crate) fn open(filter: impl Fn(&ActiveSession) -> bool) -> Vec<Arc<ActiveSession>> {
    lock(&OPEN).values().filter_map(Weak::upgrade).filter(|s| filter(s)).collect()
}

impl ActiveSession {
    /// Whether this session was started by the configuration that holds `owner`.
    pub(crate) fn belongs_to(&self, owner: &Owner) -> bool {
        Arc::ptr_eq(&self.owner.0, &owner.0)
    }
}

/// Sessions of stateless requests, shared by every server instance of one configuration.
#[derive(Debug)]
pub(crate) struct StatelessSessions {
    map: Mutex<HashMap<String, Arc<ActiveSession>>>,
    pub(crate) idle: Duration,
    capacity: usize,
    /// When idle sessions were last swept (unix nanos).
    swept: AtomicU64,
}

impl StatelessSessions {
    pub(crate) fn new(idle: Duration, capacity: usize) -> Self {
        Self { map: Mutex::new(HashMap::new()), idle, capacity: capacity.max(1), swept: AtomicU64::new(0) }
    }

    /// The session for `key`, if one is open and not idle; with `create`, a new one otherwise.
    pub(crate) fn get(&self, key: &str, create: Option<&dyn Fn() -> Arc<ActiveSession>>) -> Option<Arc<ActiveSession>> {
        let now = SystemTime::now();
        let mut map = lock(&self.map);
        // Sessions past their idle window end (at their last activity) with the next request
        // of anyone, at most once a second, so they do not stay open until the server stops.
        let last_sweep = self.swept.load(Ordering::Relaxed);
        if unix_nanos(now).saturating_sub(last_sweep) > 1_000_000_000 {
            self.swept.store(unix_nanos(now), Ordering::Relaxed);
            self.end_idle(&mut map, now);
        }
        if let Some(session) = map.get(key) {
            if !session.is_idle(self.idle, now) {
                return Some(session.clone());
            }
            session.end(DisconnectReason::Timeout);
            map.remove(key);
        }
        let create = create?;
        if map.len() >= self.capacity {
            // Sweep idle sessions; if still full, end the least recently active one.
            self.end_idle(&mut map, now);
            if map.len() >= self.capacity
                && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_activity()).map(|(k, _)| k.clone())
                && let Some(s) = map.remove(&oldest)
            {
                s.end(DisconnectReason::Timeout);
            }
        }
        let session = create();
        map.insert(key.to_owned(), session.clone());
        Some(session)
    }

    fn end_idle(&self, map: &mut HashMap<String, Arc<ActiveSession>>, now: SystemTime) {
        map.retain(|_, s| {
            let idle = s.is_idle(self.idle, now);
            if idle {
                s.end(DisconnectReason::Timeout);
            }
            !idle
        });
    }
}

/// A poisoned lock only means another thread panicked while holding it; the data is still
/// usable, and telemetry must not turn one panic into many.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
