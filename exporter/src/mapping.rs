//! Spans → rows: a pure function, no IO (docs/span-contract.md).
//!
//! An MCP request span (it has `mcp.method.name` and `session.id`) becomes one
//! [`RequestRow`] and a [`SessionUpsert`] of what it knows about its session; the
//! `mcp.session` span becomes a [`SessionUpsert`] carrying the session's end. Every other span
//! is skipped with a counted [`SkipReason`] — never a panic.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use archon_mcp_instrument::attributes::{self as attr, DisconnectReason};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::client_type::ClientType;
use crate::ids;
use crate::minimise::Minimisation;
use crate::rows::{RequestRow, RequestStatus, SessionSet, SessionUpsert, TokenSource, clean_text, limits};
use crate::span::{Span, SpanKind, SpanRef, StatusCode, Text, Value, hex};

mod fields;

#[cfg(test)]
use fields::REQUEST_ONLY;
use fields::{Field, Fields, request_only};

/// Why a span produced no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// No `mcp.method.name`: not an MCP request span (other spans share the pipeline).
    NotMcp,
    /// An MCP request outside any analytics session (e.g. `tools/list` before the first
    /// tool call), or a session span without `session.id`.
    NoSession,
    /// A start or end time of zero.
    MissingTimestamp,
    /// The span ends before it starts.
    EndBeforeStart,
    /// A status code outside the OTLP enum.
    UnknownStatusCode,
    /// The span ends more than an hour after now: a wrong clock (or a forged date)
    /// that would keep its session active for ever.
    FutureTimestamp,
    /// A CLIENT span of an MCP request: the caller's side (a traced MCP client). The server's
    /// span of the same request is its row, and links to it (`parent_span_id`).
    ClientSpan,
}

impl SkipReason {
    /// A stable label, for metrics and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotMcp => "not_mcp",
            SkipReason::NoSession => "no_session",
            SkipReason::MissingTimestamp => "missing_timestamp",
            SkipReason::EndBeforeStart => "end_before_start",
            SkipReason::UnknownStatusCode => "unknown_status_code",
            SkipReason::FutureTimestamp => "future_timestamp",
            SkipReason::ClientSpan => "client_span",
        }
    }

    /// Whether the span was bad (rejected: an OTLP partial success counts it) rather than
    /// simply not ours to store.
    pub fn is_rejection(self) -> bool {
        !matches!(self, SkipReason::NotMcp | SkipReason::NoSession | SkipReason::ClientSpan)
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far ahead of the time of receipt a span may end (a sender's clock set wrong); later ones
/// are refused, as no clock is that wrong. Within it, nothing is lost: the request keeps its
/// own times, and its session's times are clamped to the time of receipt, so a session is never
/// kept "active" by activity from the future (the reaper compares `last_activity` with now).
pub(crate) const MAX_FUTURE_SKEW: Duration = Duration::from_secs(2 * 86_400);

/// The session metadata key saying how far (ms) its first span seen ahead of the time of receipt
/// ended after it: the sender's clock is off by about that much.
pub(crate) const CLOCK_AHEAD_MS: &str = "clock_ahead_ms";

/// A span that produced no row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The span.
    pub span: SpanRef,
    /// Why.
    pub reason: SkipReason,
    /// Details for a person reading a log.
    pub detail: String,
}

/// Rows from a batch of spans, ready for the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MappedBatch {
    /// One upsert per session, merged, ordered by session id (a fixed lock order for
    /// concurrent writers).
    pub sessions: Vec<SessionUpsert>,
    /// One row per request span.
    pub requests: Vec<RequestRow>,
    /// Spans that produced no row.
    pub skipped: Vec<Skipped>,
    /// The furthest a mapped span ended ahead of the time of receipt (a sender's clock ahead
    /// of this one); its session's times were clamped to the time of receipt.
    pub clock_ahead: Duration,
}

impl MappedBatch {
    /// Skipped spans counted by reason.
    pub fn skipped_by_reason(&self) -> BTreeMap<SkipReason, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.reason).or_insert(0) += 1;
        }
        counts
    }

    /// How many spans were rejected as bad (see [`SkipReason::is_rejection`]).
    pub fn rejected(&self) -> usize {
        self.skipped.iter().filter(|s| s.reason.is_rejection()).count()
    }

    /// Splits into parts of at most `max_requests` request rows, each carrying the session
    /// upserts its requests need (upserts are idempotent, so a session in two parts is
    /// harmless); sessions without requests go with the first part. Writing the parts one
    /// after another stores what writing the whole would. Skipped spans stay with the first.
    pub fn split(self, max_requests: usize) -> Vec<MappedBatch> {
        let max_requests = max_requests.max(1);
        if self.requests.len() <= max_requests {
            return vec![self];
        }
        let sessions: BTreeMap<Uuid, SessionUpsert> = self.sessions.into_iter().map(|s| (s.session_id, s)).collect();
        let mut parts: Vec<MappedBatch> = Vec::new();
        let mut requests = self.requests.into_iter().peekable();
        while requests.peek().is_some() {
            let chunk: Vec<RequestRow> = requests.by_ref().take(max_requests).collect();
            let needed: std::collections::BTreeSet<Uuid> = chunk.iter().map(|r| r.session_id).collect();
            let sessions = needed.iter().filter_map(|id| sessions.get(id).cloned()).collect();
            parts.push(MappedBatch { sessions, requests: chunk, ..MappedBatch::default() });
        }
        let referenced: std::collections::BTreeSet<Uuid> =
            parts.iter().flat_map(|p| p.requests.iter().map(|r| r.session_id)).collect();
        let first = &mut parts[0];
        first.clock_ahead = self.clock_ahead;
        first.sessions.extend(sessions.into_values().filter(|s| !referenced.contains(&s.session_id)));
        first.sessions.sort_by_key(|s| s.session_id);
        first.skipped = self.skipped;
        parts
    }
}

/// What one span maps to.
#[allow(clippy::large_enum_variant)] // short-lived: moved straight into a batch
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mapped {
    /// An MCP request.
    Request(RequestRow, SessionUpsert),
    /// A `mcp.session` span.
    Session(SessionUpsert),
}

/// Maps a batch of spans, merging what they say about each session.
///
/// ```
/// use archon_mcp_exporter::map_spans;
/// use archon_mcp_exporter::span::Span;
///
/// let call = Span::new("tools/call search", 1_000_000_000, 1_250_000_000)
///     .with_ids([1; 16], [2; 8])
///     .with_attribute("mcp.method.name", "tools/call")
///     .with_attribute("gen_ai.tool.name", "search")
///     .with_attribute("session.id", "0195f3a0-0000-7000-8000-000000000001")
///     .with_attribute("archon.client.name", "claude-code");
/// let batch = map_spans([&call]);
/// assert_eq!(batch.requests.len(), 1);
/// assert_eq!(batch.requests[0].duration_ms, 250.0);
/// assert_eq!(batch.sessions[0].client_type.as_str(), "Claude");
/// ```
pub fn map_spans<'a>(spans: impl IntoIterator<Item = &'a Span>) -> MappedBatch {
    map_spans_with(spans, &Minimisation::default())
}

/// [`map_spans`], the personal fields of sessions minimised as `minimisation` says (the request
/// rows take the minimised user id).
pub fn map_spans_with<'a>(spans: impl IntoIterator<Item = &'a Span>, minimisation: &Minimisation) -> MappedBatch {
    let mut sessions = SessionSet::default();
    let mut batch = MappedBatch::default();
    // Per session id, a request span mapped in full and its session's ids: a later request
    // span that says the same about the session (most spans of a batch) only moves the
    // session's times, so its upsert is not built again — same rows, a third of the work.
    let mut known: HashMap<&'a str, (&'a Span, Uuid, Option<Uuid>)> = HashMap::new();
    let received = SystemTime::now();
    for span in spans {
        let fields = Fields::of(&span.attributes);
        let key = match fields.get(Field::SESSION_ID) {
            Some(Value::Str(key)) => Some(key.as_str()),
            _ => None,
        };
        let same = key.and_then(|k| known.get(k)).filter(|(first, ..)| same_session_attributes(first, span));
        if let Some(&(_, session_id, user_id)) = same {
            match check(span, &fields, received) {
                Ok(Checked { method: Some(method), session_span: false, start, end, ahead, .. }) => {
                    batch.requests.push(request_row(span, &fields, &method, session_id, user_id, start));
                    sessions.touch(session_id, start.min(received), end.min(received));
                    batch.clock_ahead = batch.clock_ahead.max(ahead);
                    continue;
                }
                Err(skipped) => {
                    batch.skipped.push(skipped);
                    continue;
                }
                Ok(_) => {} // a session span: mapped in full below
            }
        }
        let mapped = map_fields(span, &fields, received, minimisation);
        if mapped.is_ok() {
            batch.clock_ahead = batch.clock_ahead.max(ahead_of(span, received));
        }
        match mapped {
            Ok(Mapped::Request(request, session)) => {
                if let Some(key) = key {
                    known.insert(key, (span, session.session_id, session.user_id));
                }
                batch.requests.push(request);
                sessions.add(session);
            }
            Ok(Mapped::Session(session)) => sessions.add(session),
            Err(skipped) => batch.skipped.push(skipped),
        }
    }
    batch.sessions = sessions.into_vec();
    batch
}

/// Whether two spans say the same about their session: the same resource, and the same
/// session-describing attributes in the same order.
fn same_session_attributes(a: &Span, b: &Span) -> bool {
    (std::sync::Arc::ptr_eq(&a.resource, &b.resource) || a.resource == b.resource)
        && same_about_session(&a.attributes.0, &b.attributes.0)
}

/// Whether two attribute lists have the same session-describing attributes in the same order.
/// Spans of one producer list their attributes in one order, with request-only ones (tokens,
/// errors) in some and not others: both lists are walked together, and a key is looked up
/// only where the lists differ.
fn same_about_session(a: &[(Text, Value)], b: &[(Text, Value)]) -> bool {
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (None, None) => return true,
            (Some((ka, va)), Some((kb, vb))) if ka == kb => {
                if va != vb && !request_only(ka) {
                    return false;
                }
                (i, j) = (i + 1, j + 1);
            }
            (Some((ka, _)), _) if request_only(ka) => i += 1,
            (_, Some((kb, _))) if request_only(kb) => j += 1,
            _ => return false,
        }
    }
}

/// What every span must have to be mapped, read once.
struct Checked<'a> {
    method: Option<Cow<'a, str>>,
    session_value: Cow<'a, str>,
    session_span: bool,
    start: SystemTime,
    end: SystemTime,
    /// How far the span's end is ahead of the time of receipt (zero when it is not).
    ahead: Duration,
}

/// How far `span` ends ahead of `received` (zero when it does not).
fn ahead_of(span: &Span, received: SystemTime) -> Duration {
    unix_nanos(span.end_time_unix_nano).duration_since(received).unwrap_or_default()
}

/// Refuses a span that is not an MCP span of a session, or whose times or status are bad, or
/// that ends more than [`MAX_FUTURE_SKEW`] after `received` (read once per batch).
fn check<'a>(span: &Span, fields: &Fields<'a>, received: SystemTime) -> Result<Checked<'a>, Skipped> {
    let skip = |reason: SkipReason, detail: String| Skipped { span: span.span_ref(), reason, detail };
    let session_span = span.name == attr::SESSION_SPAN_NAME;
    let method = fields.str(Field::METHOD);
    if method.is_none() && !session_span {
        return Err(skip(SkipReason::NotMcp, format!("span {:?} has no {}", span.name, attr::MCP_METHOD_NAME)));
    }
    if span.kind == SpanKind::Client && !session_span {
        return Err(skip(SkipReason::ClientSpan, format!("span {:?} is the client's side of a request", span.name)));
    }
    let Some(session_value) = fields.str(Field::SESSION_ID) else {
        return Err(skip(SkipReason::NoSession, format!("span {:?} has no {}", span.name, attr::SESSION_ID)));
    };
    if span.start_time_unix_nano == 0 || span.end_time_unix_nano == 0 {
        return Err(skip(SkipReason::MissingTimestamp, "start or end time is 0".into()));
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(skip(
            SkipReason::EndBeforeStart,
            format!("ends {} ns before it starts", span.start_time_unix_nano - span.end_time_unix_nano),
        ));
    }
    let end = unix_nanos(span.end_time_unix_nano);
    if end > received + MAX_FUTURE_SKEW {
        return Err(skip(
            SkipReason::FutureTimestamp,
            format!("ends more than {} s after its time of receipt", MAX_FUTURE_SKEW.as_secs()),
        ));
    }
    if let StatusCode::Unknown(code) = span.status.code {
        return Err(skip(SkipReason::UnknownStatusCode, format!("status code {code} is not 0, 1 or 2")));
    }
    Ok(Checked {
        method,
        session_value,
        session_span,
        start: unix_nanos(span.start_time_unix_nano),
        end,
        ahead: ahead_of(span, received),
    })
}

/// Maps one span.
#[cfg(test)]
pub(crate) fn map_span(span: &Span) -> Result<Mapped, Skipped> {
    map_fields(span, &Fields::of(&span.attributes), SystemTime::now(), &Minimisation::default())
}

/// Maps one span, its per-request attributes found.
fn map_fields(
    span: &Span,
    fields: &Fields<'_>,
    received: SystemTime,
    minimisation: &Minimisation,
) -> Result<Mapped, Skipped> {
    let Checked { method, session_value, session_span, start, end, ahead } = check(span, fields, received)?;
    let attrs = &span.attributes;
    // The session's times, unlike the request's, never lie ahead of the time of receipt.
    let (session_start, session_end) = (start.min(received), end.min(received));
    let mut session = session_upsert(span, ids::session_id(&session_value), session_start, session_end);
    minimisation.session(&mut session);
    if !ahead.is_zero() {
        session.metadata.insert(CLOCK_AHEAD_MS.into(), (ahead.as_millis() as u64).into());
    }

    match method {
        Some(method) if !session_span => {
            let request = request_row(span, fields, &method, session.session_id, session.user_id, start);
            Ok(Mapped::Request(request, session))
        }
        _ => {
            let reason = attrs
                .str(attr::ARCHON_SESSION_DISCONNECT_REASON)
                .map_or(DisconnectReason::ClientDisconnect, |r| DisconnectReason::parse(&r));
            session.disconnected_at = Some(session_end);
            session.disconnect_reason = Some(clean_text(reason.as_str(), limits::DISCONNECT_REASON));
            session.catalog_tokens = attrs
                .get(attr::ARCHON_SESSION_CATALOG_TOKENS)
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n.max(0)).ok());
            if let Some(count) = attrs.get(attr::ARCHON_SESSION_REQUEST_COUNT).and_then(Value::as_i64) {
                session.metadata.insert("request_count".into(), count.into());
            }
            Ok(Mapped::Session(session))
        }
    }
}

/// What any span of a session says about it: client, user, service.
fn session_upsert(span: &Span, session_id: Uuid, start: SystemTime, end: SystemTime) -> SessionUpsert {
    let attrs = &span.attributes;
    let text = |key: &str, max: usize| attrs.str(key).map(|v| clean_text(&v, max));
    let mut session = SessionUpsert::new(session_id, start, end);

    session.client_name =
        text(attr::ARCHON_CLIENT_NAME, limits::TEXT).or_else(|| text(attr::LEGACY_MCP_CLIENT_NAME, limits::TEXT));
    session.client_type = session.client_name.as_deref().map_or(ClientType::Unknown, ClientType::from_client_name);
    session.client_version = text(attr::ARCHON_CLIENT_VERSION, limits::CLIENT_VERSION)
        .or_else(|| text(attr::LEGACY_MCP_CLIENT_VERSION, limits::CLIENT_VERSION));
    session.client_capabilities = attrs
        .str(attr::ARCHON_CLIENT_CAPABILITIES)
        .and_then(|raw| serde_json::from_str::<Json>(&raw).ok())
        .map(clean_json);

    // Hashing mode sends `user.hash` instead of `user.email`; with no principal it identifies.
    let hash = text(attr::USER_HASH, limits::TEXT);
    let principal = text(attr::USER_ID, limits::TEXT).or_else(|| hash.clone());
    // The id from the principal as sent: two principals that differ only in what cleaning
    // removes (a NUL) stay two users.
    session.user_id = attrs.str(attr::USER_ID).or_else(|| attrs.str(attr::USER_HASH)).as_deref().map(ids::user_id);
    session.user_key = principal;
    session.user_email = text(attr::USER_EMAIL, limits::USER_FIELD);
    session.user_name =
        text(attr::USER_FULL_NAME, limits::USER_FIELD).or_else(|| text(attr::USER_NAME, limits::USER_FIELD));
    session.user_department = text(attr::ARCHON_USER_DEPARTMENT, limits::TEXT);
    // Stored hashed: a live session id read from the table must not let anyone call as its user.
    session.mcp_session_id = attrs.str(attr::MCP_SESSION_ID).map(|id| ids::mcp_session_ref(&id));
    session.service_name = span.resource.str(attr::SERVICE_NAME).map(|v| clean_text(&v, limits::TEXT));

    let mut metadata = Map::new();
    for (source, key, column) in [
        (&*span.resource, attr::SERVICE_INSTANCE_ID, "service_instance_id"),
        (&*span.resource, attr::SERVICE_VERSION, "service_version"),
        (attrs, attr::MCP_PROTOCOL_VERSION, "protocol_version"),
        (attrs, attr::NETWORK_TRANSPORT, "network_transport"),
        (attrs, attr::USER_NAME, "user_login"),
        (attrs, attr::USER_HASH, "user_hash"),
    ] {
        if let Some(value) = source.str(key) {
            metadata.insert(column.into(), Json::String(clean_text(&value, limits::TEXT)));
        }
    }
    session.metadata = metadata;
    session
}

fn request_row(
    span: &Span,
    fields: &Fields<'_>,
    method: &str,
    session_id: Uuid,
    user_id: Option<Uuid>,
    start: SystemTime,
) -> RequestRow {
    let text = |field: Field, max: usize| fields.str(field).map(|v| clean_text(&v, max));

    let error_type = text(Field::ERROR_TYPE, limits::TEXT);
    let status = match (span.status.code, error_type.as_deref()) {
        (_, Some(attr::ERROR_TYPE_TIMEOUT)) => RequestStatus::Timeout,
        (_, Some(attr::ERROR_TYPE_CANCELLED)) => RequestStatus::Cancelled,
        (StatusCode::Error, _) | (_, Some(_)) => RequestStatus::Error,
        _ => RequestStatus::Success,
    };
    let error_code = fields
        .get(Field::RPC_STATUS_CODE)
        .and_then(Value::as_i64)
        .or_else(|| error_type.as_deref().and_then(|t| t.parse().ok()))
        .and_then(|code| i32::try_from(code).ok());
    // A failure the server caused is described by the span status; one its caller caused, whose
    // status the conventions leave unset, by `archon.error.message`.
    let error_message = (status != RequestStatus::Success)
        .then(|| match span.status.message.as_ref() {
            "" => text(Field::ERROR_MESSAGE, limits::TEXT),
            described => Some(clean_text(described, limits::TEXT)),
        })
        .flatten();

    let tokens = |field: Field| fields.get(field).and_then(Value::as_i64).filter(|n| *n >= 0);
    let clamp = |n: Option<i64>| n.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX));
    let reported = (tokens(Field::INPUT_TOKENS), tokens(Field::OUTPUT_TOKENS));
    let estimated = (tokens(Field::ESTIMATED_INPUT_TOKENS), tokens(Field::ESTIMATED_OUTPUT_TOKENS));
    let (token_source, (input, output)) = if reported != (None, None) {
        (TokenSource::Reported, reported)
    } else if estimated != (None, None) {
        (TokenSource::Estimated, estimated)
    } else {
        (TokenSource::None, (None, None))
    };

    RequestRow {
        request_id: ids::request_id(&span.trace_id, &span.span_id),
        session_id,
        method: clean_text(method, limits::METHOD),
        tool_name: text(Field::TOOL, limits::TOOL_NAME),
        status,
        error_type,
        error_code,
        error_message,
        timestamp: start,
        duration_ms: (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6,
        prompt_tokens: clamp(input),
        completion_tokens: clamp(output),
        token_source,
        model: text(Field::MODEL, limits::TEXT),
        reported_cost: reported_cost(fields),
        user_id,
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: span.parent_span_id.as_ref().map(|id| hex(id)),
        jsonrpc_request_id: text(Field::JSONRPC_REQUEST_ID, limits::TEXT),
    }
}

/// The largest cost one request may report (the column holds numeric(14, 6)).
const MAX_REPORTED_COST: f64 = 1e7;

/// A reported cost in USD that the schema can hold; other currencies are not converted, so they
/// are ignored and the request is priced from its tokens instead.
fn reported_cost(fields: &Fields<'_>) -> Option<f64> {
    let currency = fields.str(Field::COST_CURRENCY);
    if currency.is_some_and(|c| !c.trim().eq_ignore_ascii_case("USD")) {
        return None;
    }
    fields
        .get(Field::COST_AMOUNT)
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && (0.0..MAX_REPORTED_COST).contains(c))
}

fn unix_nanos(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// JSON that PostgreSQL's jsonb accepts: no NUL characters in strings or keys.
fn clean_json(value: Json) -> Json {
    match value {
        Json::String(s) => Json::String(clean_text(&s, limits::TEXT)),
        Json::Array(items) => Json::Array(items.into_iter().map(clean_json).collect()),
        Json::Object(map) => {
            Json::Object(map.into_iter().map(|(k, v)| (clean_text(&k, limits::TEXT), clean_json(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
