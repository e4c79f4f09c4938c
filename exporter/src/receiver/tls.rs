//! TLS for the receivers (rustls): one certificate and key for both ports, HTTP/2 and
//! HTTP/1.1 offered by ALPN. Handshakes run in their own tasks under a deadline, so a client
//! that never finishes its handshake holds no one else up.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use archon_mcp_exporter::receiver::tls::{ReceiverTls, TlsIncoming};
//! let tls = ReceiverTls::new("/etc/archon/tls.crt", "/etc/archon/tls.key").load()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4318").await?;
//! let router = axum::Router::new().route("/", axum::routing::get(|| async { "over TLS" }));
//! axum::serve(TlsIncoming::new(listener, tls), router).await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the receivers' certificate chain and private key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverTls {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use {path} for the receivers' TLS: {reason}")]
pub struct ReceiverTlsError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl ReceiverTls {
    /// The certificate chain and key files.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self { cert_file: cert_file.into(), key_file: key_file.into() }
    }

    /// Reads both files into a server configuration, failing with the file at fault.
    pub fn load(&self) -> Result<Arc<ServerConfig>, ReceiverTlsError> {
        let error = |path: &PathBuf| {
            let path = path.display().to_string();
            move |reason: String| ReceiverTlsError { path, reason }
        };
        let certs = CertificateDer::pem_file_iter(&self.cert_file)
            .map_err(|e| error(&self.cert_file)(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error(&self.cert_file)(e.to_string()))?;
        if certs.is_empty() {
            return Err(error(&self.cert_file)("no PEM certificate in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|e| error(&self.key_file)(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| error(&self.key_file)(format!("the key does not fit the certificate: {e}")))?;
        // gRPC needs h2; OTLP/HTTP clients mostly speak HTTP/1.1.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A TCP listener whose connections arrive already through their TLS handshake: an
/// [`axum::serve::Listener`] for the HTTP port and a stream of connections for tonic's
/// `serve_with_incoming`.
#[derive(Debug)]
pub struct TlsIncoming {
    local_addr: SocketAddr,
    connections: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl TlsIncoming {
    /// Starts accepting on `listener` (on the current Tokio runtime).
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> Self {
        let local_addr = listener.local_addr().expect("a bound listener has an address");
        let (ready, connections) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
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
                let (acceptor, ready) = (acceptor.clone(), ready.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self { local_addr, connections, accept_loop }
    }
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        // Closes the port with the listener.
        self.accept_loop.abort();
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsStream<TcpStream>;
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

impl futures_core::Stream for TlsIncoming {
    type Item = std::io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx).map(|connection| connection.map(|(tls, _)| Ok(tls)))
    }
}
