//! A port: its [`Incoming`] connections served by hyper with the limits hyper and h2 provide —
//! HTTP/1's header read timeout, HTTP/2's concurrent-stream limit (announced and enforced from
//! the first frame), keep-alive pings — and the ones they do not: a deadline for a request's
//! body, and the connection's standing in the budget (working while a request is served).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Sleep;
use tower_service::Service as _;

use super::incoming::{ConnectionLimits, Incoming, SharedLimits};
use super::slots::Slot;

/// Which protocols a port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocols {
    /// HTTP/1.1 and HTTP/2 (by ALPN or the prior-knowledge preface).
    Any,
    /// HTTP/2 only (gRPC).
    Http2,
}

/// Spawns the connection loop of one port: `router` on the connections of `listener`, through
/// TLS when `tls` is given, until `stop` completes. One call per port, whatever the TLS.
pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: SharedLimits,
    router: axum::Router,
    protocols: Protocols,
    stop: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let limits = shared.limits;
    match tls {
        Some(tls) => tokio::spawn(serve(Incoming::tls(listener, tls, shared), router, protocols, limits, stop)),
        None => tokio::spawn(serve(Incoming::plain(listener, shared), router, protocols, limits, stop)),
    }
}

/// Serves `router` on every connection of `incoming` until `stop` completes, then stops
/// accepting and waits for the connections to finish what they are serving.
pub(crate) async fn serve<Io>(
    mut incoming: Incoming<Io>,
    router: axum::Router,
    protocols: Protocols,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection)
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        // Pings find dead peers; they do not keep a connection without requests open (the
        // budget's wait clock ignores them).
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    if protocols == Protocols::Http2 {
        builder = builder.http2_only();
    }
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let io = tokio::select! {
            io = incoming.accept() => io,
            () = &mut stop => break,
        };
        let service = hyper::service::service_fn({
            let (router, slot, body_timeout) = (router.clone(), io.slot().clone(), limits.body_timeout);
            move |request: http::Request<hyper::body::Incoming>| {
                serve_request(router.clone(), &slot, request, body_timeout)
            }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(io), service).into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(incoming); // closes the port
    graceful.shutdown().await;
}

/// The largest HTTP/2 header block taken (h2's default is 16 MiB): OTLP needs a few hundred bytes.
const MAX_HEADER_LIST_BYTES: u32 = 16 << 10;

/// One request: the connection works until the response is ready, and the body must arrive
/// within `body_timeout`.
fn serve_request(
    mut router: axum::Router,
    slot: &Arc<Slot>,
    request: http::Request<hyper::body::Incoming>,
    body_timeout: Duration,
) -> impl Future<Output = Result<http::Response<Body>, std::convert::Infallible>> + use<> {
    let working = slot.work();
    let request = request.map(|body| Body::new(Deadline::new(body, body_timeout)));
    // A `Router` is always ready.
    let response = router.call(request);
    async move {
        let response = response.await;
        drop(working);
        response
    }
}

/// A request body that fails once its deadline passes before its end.
struct Deadline<B> {
    body: B,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<B> Deadline<B> {
    fn new(body: B, timeout: Duration) -> Self {
        Self { body, timeout, deadline: Box::pin(tokio::time::sleep(timeout)) }
    }
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout.as_secs();
            return Poll::Ready(Some(Err(format!("the request body did not arrive within {timeout} s").into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
