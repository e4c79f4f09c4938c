//! [`TracedSessionManager`]: sees streamable-HTTP sessions end when they end.
//!
//! rmcp drops a streamable-HTTP server only when its session worker stops: on the client's
//! `DELETE`, or when the session's keep-alive (5 minutes by default) expires — long after a
//! client that was killed, or whose library sends no `DELETE`, has gone. The session manager is
//! where rmcp shows the rest: the client's standalone event stream (`GET`) closing, a request's
//! response stream closing before its response, the worker's transport closing.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::Stream;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification, GetExtensions as _,
    JsonRpcMessage, RequestId, ServerJsonRpcMessage,
};
use rmcp::transport::streamable_http_server::session::{RestoreOutcome, ServerSseMessage, SessionId, SessionManager};

use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::TracedConfig;
use crate::attributes::DisconnectReason;
use crate::connection::{CLIENT_GONE_REASON, Connection, UnexplainedEnd};
use crate::runtime::Shared;
use crate::traced::{Traced, TracedExt as _};
use crate::transport::{Arrival, ObservedTransport};

/// The `retry` interval rmcp's `StreamableHttpService` advertises by default
/// (`StreamableHttpServerConfig::sse_retry`): a client whose stream dropped reconnects, or
/// resumes with `Last-Event-ID`, within it.
const DEFAULT_SSE_RETRY: Duration = Duration::from_secs(3);
/// Beyond the retry interval, how long a dropped stream may stay dropped before its client
/// counts as gone: its reconnection's own round trip, and time for the client's own
/// `notifications/cancelled`, with its reason, to arrive first.
const GRACE_BEYOND_RETRY: Duration = Duration::from_millis(500);

/// A [`SessionManager`] that reports how each streamable-HTTP session ends to the analytics
/// session of its [`Traced`](crate::Traced) server, as it happens:
///
/// - the client's `DELETE`: `client_disconnect`, then;
/// - its standalone event stream closing and not reopening within the `retry` interval the
///   service advertises and half a second (the client process died, or closed without a
///   `DELETE`): `client_disconnect`, at the moment it closed;
/// - a response stream closing before its response and not resumed (`Last-Event-ID`) within
///   that time: the request is cancelled the way rmcp cancels a request (a
///   `notifications/cancelled` to the server), so a tool that honours cancellation stops, and
///   its span says `cancelled`, `client_disconnect`. A client that resumes gets its result,
///   exactly as without the instrumentation;
/// - the session's keep-alive expiring with nothing else seen: `timeout`, at the last activity;
/// - a message the transport could not deliver: `transport_error`.
///
/// It wraps any session manager (rmcp's [`LocalSessionManager`] by default) and changes nothing
/// of what it does. Give it the same [`TracedConfig`] as the servers, and, when the service
/// advertises another `retry` than rmcp's default 3 s, the same with
/// [`with_sse_retry`](Self::with_sse_retry):
///
/// ```no_run
/// use std::sync::Arc;
/// use archon_mcp_instrument::{TracedConfig, TracedExt, TracedSessionManager};
/// use rmcp::transport::streamable_http_server::{StreamableHttpService, session::local::LocalSessionManager};
/// # #[derive(Clone)] struct MyServer;
/// # impl rmcp::ServerHandler for MyServer {}
///
/// let config = TracedConfig::default();
/// let sessions = Arc::new(TracedSessionManager::new(LocalSessionManager::default(), &config));
/// let service = StreamableHttpService::new(move || Ok(MyServer.traced(config.clone())), sessions, Default::default());
/// let app: axum::Router = axum::Router::new().nest_service("/mcp", service);
/// # let _ = app;
/// ```
///
/// [`LocalSessionManager`]: rmcp::transport::streamable_http_server::session::local::LocalSessionManager
pub struct TracedSessionManager<M> {
    inner: Arc<M>,
    shared: Arc<Shared>,
    /// How long a dropped stream may stay dropped before its client counts as gone.
    grace: Duration,
}

impl<M> TracedSessionManager<M> {
    /// Wraps `inner`, reporting to the servers of `config`.
    pub fn new(inner: M, config: &TracedConfig) -> Self {
        Self { inner: Arc::new(inner), shared: config.shared.clone(), grace: DEFAULT_SSE_RETRY + GRACE_BEYOND_RETRY }
    }

    /// The `retry` interval the `StreamableHttpService` advertises
    /// (`StreamableHttpServerConfig::sse_retry`; rmcp's default is 3 s, `None` advertises none):
    /// a stream dropped within it is the client reconnecting, not leaving.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use archon_mcp_instrument::{TracedConfig, TracedSessionManager};
    /// use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    /// let config = TracedConfig::default();
    /// let sessions = TracedSessionManager::new(LocalSessionManager::default(), &config)
    ///     .with_sse_retry(Some(Duration::from_secs(10)));
    /// # let _ = sessions;
    /// ```
    pub fn with_sse_retry(mut self, retry: Option<Duration>) -> Self {
        self.grace = retry.unwrap_or_default() + GRACE_BEYOND_RETRY;
        self
    }

    /// The wrapped session manager.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    fn observe<T>(&self, id: &SessionId, transport: T) -> ObservedTransport<T> {
        let connection = Connection::new(UnexplainedEnd::Inactivity);
        self.shared.connections.insert(id, connection.clone());
        ObservedTransport::new(transport, connection)
    }
}

impl<M> std::fmt::Debug for TracedSessionManager<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedSessionManager").finish_non_exhaustive()
    }
}

impl<M: SessionManager> SessionManager for TracedSessionManager<M> {
    type Error = M::Error;
    type Transport = ObservedTransport<M::Transport>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.inner.create_session().await?;
        let transport = self.observe(&id, transport);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    // The client's `DELETE`, and rmcp's own clean-up after a worker stopped (by then the
    // session has ended, so the announcement changes nothing).
    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        if let Some(connection) = self.shared.connections.get(id) {
            connection.announce_end(DisconnectReason::ClientDisconnect);
        }
        let result = self.inner.close_session(id).await;
        self.shared.connections.remove(id);
        result
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        mut message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let request = match &mut message {
            JsonRpcMessage::Request(request) => {
                request.request.extensions_mut().insert(Arrival::now());
                Some(request.id.clone())
            }
            _ => None,
        };
        if let Some(connection) = self.shared.connections.get(id) {
            connection.message_received();
        }
        let stream = self.inner.create_stream(id, message).await?;
        let watch = request.map(|request| {
            let watch = ResponseWatch {
                manager: self.inner.clone(),
                shared: self.shared.clone(),
                session: id.clone(),
                request: request.clone(),
            };
            let grace = self.grace;
            let abandoned: Box<dyn FnOnce() + Send + Sync> = Box::new(move || {
                let resumes = watch.shared.connections.get(&watch.session).map_or(0, |c| c.resumes());
                after(grace, watch.cancel_if_pending(SystemTime::now(), resumes));
            });
            (request, abandoned)
        });
        Ok(ResponseStream { inner: Box::pin(stream), watch })
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        if let Some(connection) = self.shared.connections.get(id) {
            connection.message_received();
        }
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.inner.create_standalone_stream(id).await?;
        let connection = self.shared.connections.get(id);
        if let Some(connection) = &connection {
            connection.stream_opened();
        }
        Ok(StandaloneStream { inner: Box::pin(stream), connection, grace: self.grace })
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        // The client is there, and takes up a stream that dropped: its requests are not
        // abandoned (rmcp replays what it missed).
        if let Some(connection) = self.shared.connections.get(id) {
            connection.stream_resumed();
        }
        self.inner.resume(id, last_event_id).await
    }

    async fn restore_session(&self, id: SessionId) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(match self.inner.restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => RestoreOutcome::Restored(self.observe(&id, transport)),
            RestoreOutcome::AlreadyPresent => RestoreOutcome::AlreadyPresent,
            _ => RestoreOutcome::NotSupported,
        })
    }

    fn event_store(&self) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::EventStore>> {
        self.inner.event_store()
    }
}

/// Runs `task` on the current runtime after `delay`, or now when there is no runtime (a
/// stream dropped while the runtime shuts down).
fn after(delay: Duration, task: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                tokio::time::sleep(delay).await;
                task.await;
            });
        }
        Err(_) => drop(task),
    }
}

/// The standalone event stream of a session; its end may be the client's.
struct StandaloneStream<S> {
    inner: Pin<Box<S>>,
    connection: Option<Arc<Connection>>,
    grace: Duration,
}

impl<S: Stream<Item = ServerSseMessage>> Stream for StandaloneStream<S> {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<S> Drop for StandaloneStream<S> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let check = connection.stream_closed(SystemTime::now());
            after(self.grace, async move { check() });
        }
    }
}

/// What a response stream needs to cancel its request when the client leaves before the
/// response.
struct ResponseWatch<M> {
    manager: Arc<M>,
    shared: Arc<Shared>,
    session: SessionId,
    request: RequestId,
}

impl<M: SessionManager> ResponseWatch<M> {
    /// The response stream closed at `closed`, when the session had `resumes` resumed streams;
    /// a grace period later, a request still running, not cancelled by the client and not
    /// resumed meanwhile is abandoned as of `closed`, and cancelled.
    async fn cancel_if_pending(self, closed: SystemTime, resumes: usize) {
        let Some(connection) = self.shared.connections.get(&self.session) else { return };
        if connection.resumes() != resumes || !connection.abandon(&self.request.to_string(), closed) {
            return;
        }
        let param = CancelledNotificationParam::new(Some(self.request), Some(CLIENT_GONE_REASON.to_owned()));
        let notification = ClientNotification::from(CancelledNotification::new(param));
        let _ = self.manager.accept_message(&self.session, ClientJsonRpcMessage::notification(notification)).await;
    }
}

/// The response stream of one request.
struct ResponseStream<S> {
    inner: Pin<Box<S>>,
    /// The request, and what to do if the stream closes before its response; present until
    /// the response has gone out.
    watch: Option<(RequestId, Box<dyn FnOnce() + Send + Sync>)>,
}

impl<S: Stream<Item = ServerSseMessage>> Stream for ResponseStream<S> {
    type Item = ServerSseMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        let answered = match &next {
            Poll::Ready(None) => true,
            Poll::Ready(Some(event)) => match (event.message.as_deref(), &self.watch) {
                (Some(JsonRpcMessage::Response(response)), Some((request, _))) => response.id == *request,
                (Some(JsonRpcMessage::Error(error)), Some((request, _))) => error.id.as_ref() == Some(request),
                _ => false,
            },
            Poll::Pending => false,
        };
        if answered {
            self.watch = None;
        }
        next
    }
}

impl<S> Drop for ResponseStream<S> {
    fn drop(&mut self) {
        if let Some((_, abandoned)) = self.watch.take() {
            abandoned();
        }
    }
}

impl TracedConfig {
    /// rmcp's [`LocalSessionManager`](rmcp::transport::streamable_http_server::session::local::LocalSessionManager)
    /// in a [`TracedSessionManager`] reporting to this configuration's servers: the session
    /// manager to give a `StreamableHttpService` whose servers use this configuration.
    ///
    /// ```no_run
    /// # use archon_mcp_instrument::{TracedConfig, TracedExt};
    /// # use rmcp::transport::streamable_http_server::StreamableHttpService;
    /// # #[derive(Clone)] struct MyServer;
    /// # impl rmcp::ServerHandler for MyServer {}
    /// let config = TracedConfig::default();
    /// let sessions = config.session_manager();
    /// let service = StreamableHttpService::new(move || Ok(MyServer.traced(config.clone())), sessions, Default::default());
    /// # let _ = service;
    /// ```
    pub fn session_manager(&self) -> Arc<TracedSessionManager<LocalSessionManager>> {
        Arc::new(TracedSessionManager::new(Default::default(), self))
    }

    /// rmcp's `StreamableHttpService` serving `factory()`'s servers traced with this
    /// configuration, and its sessions watched by [`session_manager`](Self::session_manager)
    /// (told the SSE `retry` that `server_config` advertises, so a client resuming within it is
    /// not taken for gone). The one line of the streamable-HTTP case.
    ///
    /// ```no_run
    /// # use archon_mcp_instrument::TracedConfig;
    /// # #[derive(Clone)] struct MyServer;
    /// # impl rmcp::ServerHandler for MyServer {}
    /// # async fn run(config: TracedConfig) -> std::io::Result<()> {
    /// let service = config.streamable_http_service(|| Ok(MyServer), Default::default());
    /// let router = axum::Router::new().nest_service("/mcp", service);
    /// axum::serve(tokio::net::TcpListener::bind("127.0.0.1:8000").await?, router).await
    /// # }
    /// ```
    pub fn streamable_http_service<H: ServerHandler>(
        &self,
        factory: impl Fn() -> Result<H, std::io::Error> + Send + Sync + 'static,
        server_config: StreamableHttpServerConfig,
    ) -> StreamableHttpService<Traced<H>, TracedSessionManager<LocalSessionManager>> {
        let sessions =
            TracedSessionManager::new(LocalSessionManager::default(), self).with_sse_retry(server_config.sse_retry);
        let config = self.clone();
        StreamableHttpService::new(move || Ok(factory()?.traced(config.clone())), Arc::new(sessions), server_config)
    }
}
