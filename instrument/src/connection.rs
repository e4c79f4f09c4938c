//! One client connection as the instrumentation sees it: its analytics session, the requests
//! in flight on it, and how it ended.
//!
//! A [`Connection`] is shared by the [`Traced`](crate::Traced) instance that serves the
//! connection and by whatever watches the transport underneath: the transport wrapper of
//! [`Traced::serve`](crate::Traced::serve) (stdio and any other duplex transport) or
//! [`TracedSessionManager`](crate::TracedSessionManager) (streamable HTTP). The watcher knows
//! *when* and *why* the connection ended — end of input, the client's `DELETE`, its event stream
//! closing, the session's keep-alive expiring — and ends the analytics session then, instead of
//! whenever rmcp gets round to dropping the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::{KeyValue, StringValue};

use crate::attributes::{self as attr, DisconnectReason};
use crate::session::{ActiveSession, lock};
use crate::user::{UserInfo, hash_email};

/// The `reason` of the `notifications/cancelled` that [`TracedSessionManager`](crate::TracedSessionManager)
/// delivers when an HTTP client goes away before a request's response: rmcp then cancels the
/// request as it does for a client's own cancellation, and the span records `client_disconnect`.
pub const CLIENT_GONE_REASON: &str = "client disconnected before the response (archon-mcp-instrument)";

/// How a connection's end is read when the transport closes without saying why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnexplainedEnd {
    /// End of input is the client leaving (stdio and other byte streams).
    ClientDisconnect,
    /// Only inactivity ends it (an HTTP session's keep-alive): `timeout` at the last activity.
    Inactivity,
}

/// What a connection keeps between its requests.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The analytics session, once a tool call has created it.
    pub(crate) session: Mutex<Option<Arc<ActiveSession>>>,
    identity: Mutex<Option<Identity>>,
    calls: Mutex<HashMap<Arc<str>, Arc<InFlight>>>,
    /// The reason for the coming end of the transport, when something announced it (`DELETE`).
    announced: Mutex<Option<DisconnectReason>>,
    unexplained: UnexplainedEnd,
    /// Standalone event streams open (HTTP `GET`): while one is, the client is there.
    streams: AtomicUsize,
    /// Estimated tokens of the last `tools/list` result sent on this connection (0: none yet).
    catalog_tokens: std::sync::atomic::AtomicU64,
    /// Messages the client sent over HTTP (not those the instrumentation delivers on its
    /// behalf), to tell a client that reconnected its stream from one that left.
    messages: AtomicUsize,
    /// Streams the client resumed (`GET` with `Last-Event-ID`), to tell a response stream that
    /// dropped and was taken up again from one whose client left.
    resumes: AtomicUsize,
    /// When a standalone event stream last closed (ns since the epoch; 0: never).
    stream_closed_at: std::sync::atomic::AtomicU64,
}

impl Connection {
    pub(crate) fn new(unexplained: UnexplainedEnd) -> Arc<Self> {
        Arc::new(Self {
            session: Mutex::default(),
            identity: Mutex::default(),
            calls: Mutex::default(),
            announced: Mutex::default(),
            unexplained,
            streams: AtomicUsize::new(0),
            messages: AtomicUsize::new(0),
            resumes: AtomicUsize::new(0),
            stream_closed_at: std::sync::atomic::AtomicU64::new(0),
            catalog_tokens: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Ends the analytics session (if any) for `reason` at `at`; later requests start a new one.
    pub(crate) fn end_session(&self, reason: DisconnectReason, at: Option<SystemTime>) {
        if let Some(session) = lock(&self.session).take() {
            session.end_at(reason, at);
        }
    }

    /// The transport will close for `reason` (the client's `DELETE`): the requests still
    /// running were abandoned now.
    pub(crate) fn announce_end(&self, reason: DisconnectReason) {
        *lock(&self.announced) = Some(reason);
        self.client_gone(SystemTime::now());
    }

    /// The transport closed: end the session for the announced reason, else as this kind of
    /// transport's unexplained end. Requests still running lose their client.
    pub(crate) fn transport_closed(&self) {
        let now = SystemTime::now();
        let announced = lock(&self.announced).take();
        match (announced, self.unexplained) {
            (Some(reason), _) => {
                // A request still running never reaches a client that said goodbye.
                self.client_gone(now);
                self.end_session(reason, Some(now));
            }
            (None, UnexplainedEnd::ClientDisconnect) => {
                self.client_gone(now);
                self.end_session(DisconnectReason::ClientDisconnect, Some(now));
            }
            // The server dropped the session for inactivity (rmcp's keep-alive). A client with its
            // event stream still open was connected until then: the session lasted that long.
            // Without one, nothing shows it was there after its last activity.
            (None, UnexplainedEnd::Inactivity) if self.stream_open_until(now) => {
                self.client_gone(now);
                self.end_session(DisconnectReason::Timeout, Some(now));
            }
            (None, UnexplainedEnd::Inactivity) => self.end_session(DisconnectReason::Timeout, None),
        }
    }

    /// Whether a standalone event stream is open, or closed just now (the server closes it as it
    /// drops the session, a moment before the transport).
    fn stream_open_until(&self, now: SystemTime) -> bool {
        let closed = std::time::UNIX_EPOCH + Duration::from_nanos(self.stream_closed_at.load(Ordering::Relaxed));
        self.streams.load(Ordering::Relaxed) > 0
            || now.duration_since(closed).is_ok_and(|ago| ago < Duration::from_secs(1))
    }

    /// The transport failed to deliver a message: the connection is broken.
    pub(crate) fn transport_failed(&self) {
        let now = SystemTime::now();
        self.client_gone(now);
        self.end_session(DisconnectReason::TransportError, Some(now));
    }

    /// A message arrived from the client.
    pub(crate) fn message_received(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    /// The client resumed a stream with `Last-Event-ID`.
    pub(crate) fn stream_resumed(&self) {
        self.resumes.fetch_add(1, Ordering::Relaxed);
        self.message_received();
    }

    /// Streams resumed so far.
    pub(crate) fn resumes(&self) -> usize {
        self.resumes.load(Ordering::Relaxed)
    }

    /// A standalone event stream opened.
    pub(crate) fn stream_opened(&self) {
        self.streams.fetch_add(1, Ordering::Relaxed);
    }

    /// A standalone event stream closed at `at`. Returns a check to run after a grace period:
    /// if by then no stream has reopened and no message has arrived, the client has gone.
    pub(crate) fn stream_closed(self: &Arc<Self>, at: SystemTime) -> impl FnOnce() + Send + 'static {
        self.streams.fetch_sub(1, Ordering::Relaxed);
        let nanos = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        self.stream_closed_at.store(nanos, Ordering::Relaxed);
        let messages = self.messages.load(Ordering::Relaxed);
        let connection = self.clone();
        move || {
            let quiet = connection.messages.load(Ordering::Relaxed) == messages;
            if quiet && connection.streams.load(Ordering::Relaxed) == 0 {
                connection.client_gone(at);
                connection.end_session(DisconnectReason::ClientDisconnect, Some(at));
            }
        }
    }

    /// A `tools/list` result of `tokens` (estimated) went to the client: its model now carries
    /// the catalog; the session (now or once it starts) records it.
    pub(crate) fn catalog_sent(&self, tokens: u64) {
        self.catalog_tokens.store(tokens, Ordering::Relaxed);
        if let Some(session) = lock(&self.session).as_ref() {
            session.set_catalog_tokens(tokens);
        }
    }

    /// The estimated tokens of the catalog last sent, if any.
    pub(crate) fn catalog_tokens(&self) -> Option<u64> {
        Some(self.catalog_tokens.load(Ordering::Relaxed)).filter(|n| *n > 0)
    }

    /// Registers a request about to be handled.
    pub(crate) fn call_started(&self, id: &Arc<str>) -> Arc<InFlight> {
        let call = Arc::new(InFlight::default());
        lock(&self.calls).insert(id.clone(), call.clone());
        call
    }

    /// Forgets a finished request.
    pub(crate) fn call_finished(&self, id: &str) {
        lock(&self.calls).remove(id);
    }

    /// The client stopped waiting for request `id` at `at` (its response stream closed): if
    /// the request is still running and nothing has cancelled it since, it is abandoned then.
    /// Returns whether it was.
    pub(crate) fn abandon(&self, id: &str, at: SystemTime) -> bool {
        let call = lock(&self.calls).get(id).cloned();
        match call {
            Some(call) if call.cancellation().is_none() => {
                call.cancel(Cancellation::ClientDisconnect, at);
                true
            }
            _ => false,
        }
    }

    /// The client's `notifications/cancelled` for request `id`.
    pub(crate) fn cancelled(&self, id: &str, reason: Option<&str>) {
        let call = lock(&self.calls).get(id).cloned();
        if let Some(call) = call {
            call.cancel(Cancellation::from_reason(reason), SystemTime::now());
        }
    }

    /// The client went away at `at`: every request in flight is cancelled then.
    fn client_gone(&self, at: SystemTime) {
        let calls: Vec<_> = lock(&self.calls).values().cloned().collect();
        for call in calls {
            call.cancel(Cancellation::ClientDisconnect, at);
        }
    }

    /// The client, user and protocol attributes for a request, reused while they stay the same.
    pub(crate) fn identity(
        &self,
        client: Option<(&str, &str)>,
        user: &Option<Arc<UserInfo>>,
        protocol: Option<&str>,
        hash_emails: bool,
    ) -> Arc<[KeyValue]> {
        let mut slot = lock(&self.identity);
        let same = slot.as_ref().is_some_and(|known| {
            known.client.as_ref().map(|(n, v)| (n.as_str(), v.as_str())) == client
                && known.user == *user
                && known.protocol.as_deref() == protocol
        });
        if !same {
            *slot = Some(Identity::new(client, user, protocol, hash_emails));
        }
        slot.as_ref().map(|known| known.attributes.clone()).unwrap_or_else(|| Arc::from([]))
    }
}

/// The connections of streamable-HTTP sessions by `Mcp-Session-Id`, so the server instance of a
/// session finds the connection its [`TracedSessionManager`](crate::TracedSessionManager) watches.
#[derive(Debug, Default)]
pub(crate) struct Connections(Mutex<HashMap<Arc<str>, Arc<Connection>>>);

impl Connections {
    pub(crate) fn insert(&self, id: &Arc<str>, connection: Arc<Connection>) {
        lock(&self.0).insert(id.clone(), connection);
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Connection>> {
        lock(&self.0).get(id).cloned()
    }

    pub(crate) fn remove(&self, id: &str) {
        lock(&self.0).remove(id);
    }
}

/// The client, user and protocol attributes of a connection, built once with reference-counted
/// values: later requests of the same connection clone them without allocating.
#[derive(Debug)]
struct Identity {
    client: Option<(String, String)>,
    user: Option<Arc<UserInfo>>,
    protocol: Option<String>,
    attributes: Arc<[KeyValue]>,
}

impl Identity {
    fn new(
        client: Option<(&str, &str)>,
        user: &Option<Arc<UserInfo>>,
        protocol: Option<&str>,
        hash_emails: bool,
    ) -> Self {
        let mut attributes = Vec::with_capacity(8);
        if let Some((name, version)) = client {
            attributes.push(KeyValue::new(attr::ARCHON_CLIENT_NAME, text(name)));
            attributes.push(KeyValue::new(attr::ARCHON_CLIENT_VERSION, text(version)));
        }
        if let Some(protocol) = protocol {
            attributes.push(KeyValue::new(attr::MCP_PROTOCOL_VERSION, text(protocol)));
        }
        if let Some(user) = user {
            push_user(&mut attributes, user, hash_emails);
        }
        Self {
            client: client.map(|(n, v)| (n.to_owned(), v.to_owned())),
            user: user.clone(),
            protocol: protocol.map(str::to_owned),
            attributes: attributes.into(),
        }
    }
}

/// A text attribute value shared by reference count: cloning it for each span allocates nothing.
fn text(s: &str) -> StringValue {
    StringValue::from(Arc::<str>::from(s))
}

fn push_user(attributes: &mut Vec<KeyValue>, user: &UserInfo, hash_emails: bool) {
    attributes.push(KeyValue::new(attr::USER_ID, text(&user.id)));
    if let Some(email) = &user.email {
        if hash_emails {
            attributes.push(KeyValue::new(attr::USER_HASH, text(&hash_email(email))));
        } else {
            attributes.push(KeyValue::new(attr::USER_EMAIL, text(email)));
        }
    }
    for (key, value) in [
        (attr::USER_FULL_NAME, &user.full_name),
        (attr::USER_NAME, &user.name),
        (attr::ARCHON_USER_DEPARTMENT, &user.department),
    ] {
        if let Some(value) = value {
            attributes.push(KeyValue::new(key, text(value)));
        }
    }
}

/// Why a request in flight was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cancellation {
    /// The client cancelled it (`notifications/cancelled`), with its reason.
    Client(Option<String>),
    /// The client cancelled it because it timed out (the notification's reason says so).
    Timeout(String),
    /// The client went away before the response.
    ClientDisconnect,
    /// Cancelled with no reason the instrumentation saw (the server shutting down, or a
    /// stateless request whose HTTP connection closed: rmcp cancels those on disconnect).
    Unexplained,
}

impl Cancellation {
    fn from_reason(reason: Option<&str>) -> Self {
        match reason {
            Some(CLIENT_GONE_REASON) => Self::ClientDisconnect,
            Some(reason) if names_timeout(reason) => Self::Timeout(reason.to_owned()),
            reason => Self::Client(reason.map(str::to_owned)),
        }
    }

    /// `error.type` of the request.
    pub(crate) fn error_type(&self) -> &'static str {
        match self {
            Self::Timeout(_) => attr::ERROR_TYPE_TIMEOUT,
            _ => attr::ERROR_TYPE_CANCELLED,
        }
    }

    /// The span status description, stored as the row's `error_message`.
    pub(crate) fn description(&self) -> String {
        match self {
            Self::Client(Some(reason)) => format!("cancelled by the client: {reason}"),
            Self::Client(None) => "cancelled by the client".to_owned(),
            Self::Timeout(reason) => format!("timeout: {reason}"),
            Self::ClientDisconnect => attr::CANCEL_CLIENT_DISCONNECT.to_owned(),
            Self::Unexplained => "cancelled".to_owned(),
        }
    }
}

/// Whether a cancellation reason says the client timed out ("request timeout", "Request timed
/// out", "maximum total timeout exceeded", …).
fn names_timeout(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("timeout") || reason.contains("timed out")
}

/// A request in flight: whether and when it was given up.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    cancellation: Mutex<Option<(Cancellation, SystemTime)>>,
    notify: tokio::sync::Notify,
}

impl InFlight {
    /// Records the first cancellation; later ones (a disconnect after a timeout) do not
    /// overwrite it, except that a known reason replaces an unexplained one.
    pub(crate) fn cancel(&self, why: Cancellation, at: SystemTime) {
        let mut slot = lock(&self.cancellation);
        match &*slot {
            None => *slot = Some((why, at)),
            Some((Cancellation::Unexplained, first)) if why != Cancellation::Unexplained => {
                *slot = Some((why, *first));
            }
            Some(_) => return,
        }
        drop(slot);
        self.notify.notify_waiters();
    }

    pub(crate) fn cancellation(&self) -> Option<(Cancellation, SystemTime)> {
        lock(&self.cancellation).clone()
    }

    /// Waits until a reason is known (`notifications/cancelled` reaches the handler after rmcp
    /// has cancelled the request), at most `limit`.
    pub(crate) async fn reason_known(&self, limit: std::time::Duration) {
        let known = || !matches!(self.cancellation(), None | Some((Cancellation::Unexplained, _)));
        let wait = async {
            loop {
                let notified = self.notify.notified();
                if known() {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellation_reasons_are_classified() {
        assert_eq!(Cancellation::from_reason(Some("request timeout")), Cancellation::Timeout("request timeout".into()));
        assert!(matches!(Cancellation::from_reason(Some("Request timed out")), Cancellation::Timeout(_)));
        assert_eq!(Cancellation::from_reason(Some(CLIENT_GONE_REASON)), Cancellation::ClientDisconnect);
        assert_eq!(
            Cancellation::from_reason(Some("user pressed stop")),
            Cancellation::Client(Some("user pressed stop".into()))
        );
        assert_eq!(Cancellation::from_reason(None), Cancellation::Client(None));
    }

    #[test]
    fn the_first_known_cancellation_wins() {
        let call = InFlight::default();
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10);
        let t1 = t0 + std::time::Duration::from_secs(1);
        call.cancel(Cancellation::Unexplained, t0);
        call.cancel(Cancellation::Timeout("request timeout".into()), t1);
        assert_eq!(call.cancellation(), Some((Cancellation::Timeout("request timeout".into()), t0)));
        call.cancel(Cancellation::ClientDisconnect, t1);
        assert_eq!(call.cancellation().unwrap().0, Cancellation::Timeout("request timeout".into()));
    }
}
