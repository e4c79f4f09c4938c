//! The rows the mapping produces and the store writes.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use archon_mcp_exporter::rows::SessionUpsert;
//! use uuid::Uuid;
//!
//! let id = Uuid::nil();
//! let t = |s| UNIX_EPOCH + Duration::from_secs(s);
//! let mut a = SessionUpsert::new(id, t(10), t(20));
//! let mut b = SessionUpsert::new(id, t(5), t(15));
//! b.client_name = Some("Cursor".into());
//! a.merge(b);
//! assert_eq!((a.connected_at, a.last_activity), (t(5), t(20)));
//! assert_eq!(a.client_name.as_deref(), Some("Cursor"));
//! ```

use std::time::SystemTime;

use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::client_type::ClientType;

/// Column limits of the schema (characters), applied by the mapping so no string is refused.
pub mod limits {
    /// `client_version`.
    pub const CLIENT_VERSION: usize = 100;
    /// `disconnect_reason`.
    pub const DISCONNECT_REASON: usize = 100;
    /// `user_email`, `user_name`.
    pub const USER_FIELD: usize = 255;
    /// `method`.
    pub const METHOD: usize = 100;
    /// `tool_name`.
    pub const TOOL_NAME: usize = 255;
    /// Free-text columns with no schema limit (`error_message`, `model`, `user_key`, …):
    /// a bound of our own, so one span cannot bloat a row.
    pub const TEXT: usize = 4096;
}

/// One session's state as seen by one or more spans; upserted idempotently.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUpsert {
    /// Analytics session id.
    pub session_id: Uuid,
    /// Normalised client.
    pub client_type: ClientType,
    /// Raw client name.
    pub client_name: Option<String>,
    /// Raw client version.
    pub client_version: Option<String>,
    /// Client capabilities from `initialize`.
    pub client_capabilities: Option<Json>,
    /// Earliest moment seen.
    pub connected_at: SystemTime,
    /// Latest moment seen.
    pub last_activity: SystemTime,
    /// When the session ended, if a span said so.
    pub disconnected_at: Option<SystemTime>,
    /// Why it ended.
    pub disconnect_reason: Option<String>,
    /// The user: the principal if it is a UUID, else UUIDv5 of it.
    pub user_id: Option<Uuid>,
    /// The raw principal.
    pub user_key: Option<String>,
    /// Email.
    pub user_email: Option<String>,
    /// Display name.
    pub user_name: Option<String>,
    /// Department or team.
    pub user_department: Option<String>,
    /// The transport's `Mcp-Session-Id`.
    pub mcp_session_id: Option<String>,
    /// `service.name` of the server.
    pub service_name: Option<String>,
    /// Estimated tokens of the tool catalog the session received.
    pub catalog_tokens: Option<i32>,
    /// Everything else worth keeping (`service.instance.id`, protocol version, …).
    pub metadata: Map<String, Json>,
}

impl SessionUpsert {
    /// A session seen from `connected_at` to `last_activity`, with nothing else known.
    pub fn new(session_id: Uuid, connected_at: SystemTime, last_activity: SystemTime) -> Self {
        Self {
            session_id,
            client_type: ClientType::Unknown,
            client_name: None,
            client_version: None,
            client_capabilities: None,
            connected_at,
            last_activity,
            disconnected_at: None,
            disconnect_reason: None,
            user_id: None,
            user_key: None,
            user_email: None,
            user_name: None,
            user_department: None,
            mcp_session_id: None,
            service_name: None,
            catalog_tokens: None,
            metadata: Map::new(),
        }
    }

    /// Folds another view of the same session into this one, by the same rules as the store's
    /// upsert: earliest start, latest activity, first known value of each field, and the end
    /// chosen by [`end_wins`].
    pub fn merge(&mut self, other: SessionUpsert) {
        debug_assert_eq!(self.session_id, other.session_id);
        self.connected_at = self.connected_at.min(other.connected_at);
        self.last_activity = self.last_activity.max(other.last_activity);
        if self.client_type == ClientType::Unknown {
            self.client_type = other.client_type;
        }
        fill(&mut self.client_name, other.client_name);
        fill(&mut self.client_version, other.client_version);
        fill(&mut self.client_capabilities, other.client_capabilities);
        if end_wins(
            other.disconnected_at,
            other.disconnect_reason.as_deref(),
            self.disconnected_at,
            self.disconnect_reason.as_deref(),
        ) {
            self.disconnected_at = other.disconnected_at;
            self.disconnect_reason = other.disconnect_reason;
        }
        fill(&mut self.user_id, other.user_id);
        fill(&mut self.user_key, other.user_key);
        fill(&mut self.user_email, other.user_email);
        fill(&mut self.user_name, other.user_name);
        fill(&mut self.user_department, other.user_department);
        fill(&mut self.mcp_session_id, other.mcp_session_id);
        fill(&mut self.service_name, other.service_name);
        self.catalog_tokens = self.catalog_tokens.max(other.catalog_tokens);
        for (key, value) in other.metadata {
            self.metadata.entry(key).or_insert(value);
        }
    }
}

/// Session upserts keyed by id, each id merged into one (an upsert may touch a row only once
/// per statement), in id order (a fixed lock order for concurrent writers).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionSet(std::collections::BTreeMap<Uuid, SessionUpsert>);

impl SessionSet {
    /// Adds a view of a session, merging it with what is known of the same id.
    pub fn add(&mut self, session: SessionUpsert) {
        match self.0.entry(session.session_id) {
            std::collections::btree_map::Entry::Occupied(mut known) => known.get_mut().merge(session),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(session);
            }
        }
    }

    /// Widens a known session's times to `start`..`end` (what merging another view of it with
    /// the same attributes would do); an unknown id is ignored.
    pub fn touch(&mut self, session_id: Uuid, start: SystemTime, end: SystemTime) {
        if let Some(session) = self.0.get_mut(&session_id) {
            session.connected_at = session.connected_at.min(start);
            session.last_activity = session.last_activity.max(end);
        }
    }

    /// The merged upserts, by id.
    pub fn into_vec(self) -> Vec<SessionUpsert> {
        self.0.into_values().collect()
    }
}

fn fill<T>(slot: &mut Option<T>, candidate: Option<T>) {
    if slot.is_none() {
        *slot = candidate;
    }
}

/// Whether a new session end replaces the current one: a real end beats the reaper's
/// `timeout`, then the earlier end, then the smaller reason — a total order, so any arrival
/// order gives the same result. Mirrors SQL `archon_mcp_end_wins`.
pub fn end_wins(
    new_at: Option<SystemTime>,
    new_reason: Option<&str>,
    old_at: Option<SystemTime>,
    old_reason: Option<&str>,
) -> bool {
    match (new_at, old_at) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(new_at), Some(old_at)) => {
            let key = |at, reason: Option<&str>| (reason == Some("timeout"), at, reason.unwrap_or("").to_owned());
            key(new_at, new_reason) < key(old_at, old_reason)
        }
    }
}

/// Outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Succeeded.
    Success,
    /// Failed: a JSON-RPC error or a tool result with `isError`.
    Error,
    /// Timed out: the client gave up waiting (its cancellation said so).
    Timeout,
    /// Cancelled by the client, or abandoned: the client went away before the response.
    Cancelled,
}

impl RequestStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Success => "success",
            RequestStatus::Error => "error",
            RequestStatus::Timeout => "timeout",
            RequestStatus::Cancelled => "cancelled",
        }
    }
}

/// Where a request's token counts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// Tool code reported usage.
    Reported,
    /// The instrumentation estimated the arguments and result.
    Estimated,
    /// Nothing known.
    None,
}

impl TokenSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Reported => "reported",
            TokenSource::Estimated => "estimated",
            TokenSource::None => "none",
        }
    }
}

/// One `archon_mcp_requests` row.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    /// UUIDv5 of trace id + span id.
    pub request_id: Uuid,
    /// The analytics session.
    pub session_id: Uuid,
    /// MCP method.
    pub method: String,
    /// Tool name, on `tools/call`.
    pub tool_name: Option<String>,
    /// Outcome.
    pub status: RequestStatus,
    /// `error.type`.
    pub error_type: Option<String>,
    /// JSON-RPC error code.
    pub error_code: Option<i32>,
    /// Error description.
    pub error_message: Option<String>,
    /// Span start.
    pub timestamp: SystemTime,
    /// Span duration.
    pub duration_ms: f64,
    /// Input tokens (reported) or estimated result tokens.
    pub prompt_tokens: i32,
    /// Output tokens (reported) or estimated argument tokens.
    pub completion_tokens: i32,
    /// Where the token counts came from.
    pub token_source: TokenSource,
    /// Model the tool used.
    pub model: Option<String>,
    /// A cost in USD reported by tool code; wins over pricing.
    pub reported_cost: Option<f64>,
    /// The user who made the request: its span's own principal, never its session's (`None`
    /// for an anonymous request).
    pub user_id: Option<Uuid>,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// The span it continues (its caller's), hex; none for a new trace.
    pub parent_span_id: Option<String>,
    /// JSON-RPC request id.
    pub jsonrpc_request_id: Option<String>,
}

/// A string made safe for a PostgreSQL text column: NUL characters removed (PostgreSQL cannot
/// store them) and at most `max_chars` characters kept.
///
/// ```
/// use archon_mcp_exporter::rows::clean_text;
/// assert_eq!(clean_text("a\0bcd", 2), "ab");
/// ```
pub fn clean_text(value: &str, max_chars: usize) -> String {
    // Nearly every value is short and clean: copy it whole.
    if value.len() <= max_chars && !value.contains('\0') {
        return value.to_owned();
    }
    value.chars().filter(|&c| c != '\0').take(max_chars).collect()
}
