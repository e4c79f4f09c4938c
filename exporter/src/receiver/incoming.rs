//! The connections of both ports, bounded: at most `max_connections` open at once (beyond it a
//! new connection is closed at once), and each closed when nothing has moved on it for
//! `idle_timeout` — a header that never ends, a body that stalls, an idle keep-alive or an idle
//! TLS session. TLS handshakes run in their own tasks with their own deadline, so a stalled
//! client blocks no one.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::tls::HANDSHAKE_TIMEOUT;

/// Bounds on the connections of the receiver's ports.
///
/// ```
/// use std::time::Duration;
/// let limits = archon_mcp_exporter::ConnectionLimits { max_connections: 2048, idle_timeout: Duration::from_secs(60) };
/// # let _ = limits;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once across both ports (default 512: under the common limit of
    /// 1,024 file descriptors, with room for the database pool).
    pub max_connections: usize,
    /// A connection on which nothing is read or written for this long is closed (default 30 s).
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self { max_connections: 512, idle_timeout: Duration::from_secs(30) }
    }
}

impl ConnectionLimits {
    /// The limits with one connection budget, to share between the ports.
    pub fn shared(self) -> SharedLimits {
        // At least one connection and one second: zero would refuse or close everything.
        SharedLimits {
            slots: Arc::new(Semaphore::new(self.max_connections.max(1))),
            idle_timeout: self.idle_timeout.max(Duration::from_secs(1)),
        }
    }
}

/// [`ConnectionLimits`] with their connection budget, shared by the listeners that use it.
#[derive(Debug, Clone)]
pub struct SharedLimits {
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
}

/// A bounded connection: it holds one of the budget's slots until it is dropped, and fails
/// with `TimedOut` once nothing has moved on it for the idle timeout.
#[derive(Debug)]
pub(crate) struct Bounded<Io> {
    io: Io,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<Io> Bounded<Io> {
    fn new(io: Io, idle_timeout: Duration, slot: OwnedSemaphorePermit) -> Self {
        Self { io, idle_timeout, deadline: Box::pin(tokio::time::sleep(idle_timeout)), _slot: slot }
    }

    /// Something moved: the idle clock starts again.
    fn progressed(&mut self) {
        let next = Instant::now() + self.idle_timeout;
        self.deadline.as_mut().reset(next);
    }

    /// Nothing moved: whether the connection has been idle too long.
    fn idle(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<Io: AsyncRead + Unpin> AsyncRead for Bounded<Io> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.progressed();
                Poll::Ready(result)
            }
            Poll::Pending if self.idle(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Bounded<Io> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, data) {
            Poll::Ready(result) => {
                self.progressed();
                Poll::Ready(result)
            }
            Poll::Pending if self.idle(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<Io: tonic::transport::server::Connected> tonic::transport::server::Connected for Bounded<Io> {
    type ConnectInfo = Io::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// A listener's accepted connections, bounded by [`SharedLimits`]: an [`axum::serve::Listener`]
/// for the HTTP port and a stream of connections for tonic's `serve_with_incoming`.
#[derive(Debug)]
pub(crate) struct Incoming<Io> {
    local_addr: SocketAddr,
    connections: mpsc::Receiver<(Bounded<Io>, SocketAddr)>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Incoming<TcpStream> {
    /// Plain-text connections of `listener` (starts accepting on the current Tokio runtime).
    pub(crate) fn plain(listener: TcpListener, limits: SharedLimits) -> Self {
        Self::start(listener, limits, |tcp| async move { Some(tcp) })
    }
}

impl Incoming<TlsStream<TcpStream>> {
    /// Connections of `listener` through their TLS handshake (at most
    /// [`HANDSHAKE_TIMEOUT`](super::tls::HANDSHAKE_TIMEOUT) each).
    pub(crate) fn tls(listener: TcpListener, config: Arc<ServerConfig>, limits: SharedLimits) -> Self {
        let acceptor = TlsAcceptor::from(config);
        Self::start(listener, limits, move |tcp| {
            let acceptor = acceptor.clone();
            async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => Some(tls),
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        None
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
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
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = Option<Io>> + Send + 'static,
    {
        let local_addr = listener.local_addr().expect("a bound listener has an address");
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
                let Ok(slot) = limits.slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "connection limit reached: closing a new connection");
                    continue; // dropping `tcp` closes it
                };
                let (opening, ready, idle_timeout) = (open(tcp), ready.clone(), limits.idle_timeout);
                tokio::spawn(async move {
                    if let Some(io) = opening.await {
                        let _ = ready.send((Bounded::new(io, idle_timeout, slot), peer)).await;
                    }
                });
            }
        });
        Self { local_addr, connections, accept_loop }
    }
}

impl<Io> Drop for Incoming<Io> {
    fn drop(&mut self) {
        // Closes the port with the listener.
        self.accept_loop.abort();
    }
}

impl<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static> axum::serve::Listener for Incoming<Io> {
    type Io = Bounded<Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when aborted, which only happens on drop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

impl<Io> futures_core::Stream for Incoming<Io> {
    type Item = std::io::Result<Bounded<Io>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx).map(|connection| connection.map(|(io, _)| Ok(io)))
    }
}
