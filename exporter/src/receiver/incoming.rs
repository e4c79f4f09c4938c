//! The connections of both ports, bounded: at most `max_connections` open at once (a new one
//! beyond it takes the slot of the connection that has waited longest for a request — see
//! [`slots`](super::slots) — and is closed only when every connection is serving one), and each
//! closed when it has waited `idle_timeout` for a request, whatever bytes (header fragments,
//! HTTP/2 pings) it sends meanwhile, or when nothing has moved for `idle_timeout` while a request
//! of it is served. TLS handshakes run in their own tasks, each waiting in its slot under its
//! own deadline, so a stalled client blocks no one.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::slots::{Slot, SlotGuard, Slots};
use super::tls::HANDSHAKE_TIMEOUT;

/// Bounds on the connections of the receiver's ports.
///
/// ```
/// use std::time::Duration;
/// let limits = archon_mcp_exporter::ConnectionLimits::default()
///     .with_max_connections(2048)
///     .with_idle_timeout(Duration::from_secs(60));
/// assert_eq!(limits.max_streams_per_connection, 100);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Connections open at once across both ports (default 512: under the common limit of
    /// 1,024 file descriptors, with room for the database pool). Beyond it a new connection
    /// takes the slot of the one that has waited longest for a request.
    pub max_connections: usize,
    /// A connection waiting this long for a request (default 30 s), or serving one on which
    /// nothing moved this long, is closed.
    pub idle_timeout: Duration,
    /// How long an HTTP/1 request's headers may take to arrive (default 10 s; hyper's
    /// `header_read_timeout`).
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive in full once its headers are read (default
    /// 60 s): a byte now and then is not progress.
    pub body_timeout: Duration,
    /// Requests at once on one HTTP/2 connection (default 100; h2's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`, enforced from the connection's first frame).
    pub max_streams_per_connection: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            idle_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            max_streams_per_connection: 100,
        }
    }
}

with_setters!(ConnectionLimits {
    with_max_connections => max_connections: usize,
    with_idle_timeout => idle_timeout: Duration,
    with_header_timeout => header_timeout: Duration,
    with_body_timeout => body_timeout: Duration,
    with_max_streams_per_connection => max_streams_per_connection: u32,
});

impl ConnectionLimits {
    /// The limits with one connection budget, to share between the ports.
    pub(crate) fn shared(self) -> SharedLimits {
        // At least one connection, stream and second: zero would refuse or close everything.
        let second = Duration::from_secs(1);
        SharedLimits {
            slots: Slots::new(self.max_connections),
            limits: Self {
                max_connections: self.max_connections.max(1),
                idle_timeout: self.idle_timeout.max(second),
                header_timeout: self.header_timeout.max(second),
                body_timeout: self.body_timeout.max(second),
                max_streams_per_connection: self.max_streams_per_connection.max(1),
            },
        }
    }
}

/// [`ConnectionLimits`] with their connection budget, shared by the listeners that use it.
#[derive(Debug, Clone)]
pub(crate) struct SharedLimits {
    slots: Arc<Slots>,
    pub(crate) limits: ConnectionLimits,
}

/// A bounded connection: it holds a slot of the budget until it is dropped, and fails once it
/// has waited too long for a request, has stalled while serving one, or lost its slot.
#[derive(Debug)]
pub(crate) struct Bounded<Io> {
    io: Io,
    guard: SlotGuard,
    idle_timeout: Duration,
    last_progress: Instant,
    deadline: Pin<Box<Sleep>>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<Io> Bounded<Io> {
    fn new(io: Io, guard: SlotGuard, idle_timeout: Duration) -> Self {
        let evicted = Box::pin(guard.slot().evicted());
        Self {
            io,
            guard,
            idle_timeout,
            last_progress: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(idle_timeout)),
            evicted,
        }
    }

    /// The connection's standing in the budget.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        self.guard.slot()
    }

    /// Nothing moved: whether the connection must close — evicted, waited too long for a
    /// request (bytes do not count), or stalled while serving one.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<std::io::Error> {
        if self.evicted.as_mut().poll(cx).is_ready() {
            return Some(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the connection budget is full and this connection was waiting longest",
            ));
        }
        let slot = self.guard.slot();
        let since = if slot.working() { self.last_progress } else { slot.waiting_since() };
        let until = since + self.idle_timeout;
        if self.deadline.deadline() != until {
            self.deadline.as_mut().reset(until);
        }
        self.deadline
            .as_mut()
            .poll(cx)
            .is_ready()
            .then(|| std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle for too long"))
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Bounded<Io> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.last_progress = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => match self.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Bounded<Io> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, data) {
            Poll::Ready(result) => {
                self.last_progress = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => match self.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A listener's accepted connections, bounded by [`SharedLimits`].
#[derive(Debug)]
pub(crate) struct Incoming<Io> {
    connections: mpsc::Receiver<Bounded<Io>>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Incoming<TcpStream> {
    /// Plain-text connections of `listener` (starts accepting on the current Tokio runtime).
    pub(crate) fn plain(listener: TcpListener, limits: SharedLimits) -> Self {
        Self::start(listener, limits, |tcp, _| async move { Some(tcp) })
    }
}

impl Incoming<TlsStream<TcpStream>> {
    /// Connections of `listener` through their TLS handshake (at most
    /// [`HANDSHAKE_TIMEOUT`](super::tls::HANDSHAKE_TIMEOUT) each, and given up when the
    /// connection's slot is taken by a newer one meanwhile).
    pub(crate) fn tls(listener: TcpListener, config: Arc<ServerConfig>, limits: SharedLimits) -> Self {
        let acceptor = TlsAcceptor::from(config);
        Self::start(listener, limits, move |tcp, slot| {
            let acceptor = acceptor.clone();
            async move {
                tokio::select! {
                    handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match handshake {
                        Ok(Ok(tls)) => Some(tls),
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            None
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            None
                        }
                    },
                    () = slot.evicted() => {
                        tracing::debug!("TLS handshake given up: its slot went to a newer connection");
                        None
                    }
                }
            }
        })
    }
}

impl<Io: Send + 'static> Incoming<Io> {
    fn start<F, Fut>(listener: TcpListener, limits: SharedLimits, open: F) -> Self
    where
        F: Fn(TcpStream, Arc<Slot>) -> Fut + Send + 'static,
        Fut: Future<Output = Option<Io>> + Send + 'static,
    {
        let (ready, connections) = mpsc::channel(64);
        let accept_loop = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(guard) = limits.slots.acquire() else {
                    tracing::debug!(%peer, "every connection is serving a request: closing a new connection");
                    continue; // dropping `tcp` closes it
                };
                let (opening, ready) = (open(tcp, guard.slot().clone()), ready.clone());
                let idle_timeout = limits.limits.idle_timeout;
                tokio::spawn(async move {
                    if let Some(io) = opening.await {
                        let _ = ready.send(Bounded::new(io, guard, idle_timeout)).await;
                    }
                });
            }
        });
        Self { connections, accept_loop }
    }

    /// The next connection.
    pub(crate) async fn accept(&mut self) -> Bounded<Io> {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when aborted, which only happens on drop.
            None => std::future::pending().await,
        }
    }
}

impl<Io> Drop for Incoming<Io> {
    fn drop(&mut self) {
        // Closes the port with the listener.
        self.accept_loop.abort();
    }
}
