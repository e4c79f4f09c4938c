//! TLS for the receivers (rustls): one certificate and key for both ports, HTTP/2 and
//! HTTP/1.1 offered by ALPN. The handshakes themselves run in
//! [`Incoming::tls`](super::incoming::Incoming::tls), each under [`HANDSHAKE_TIMEOUT`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a client has to finish its handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the receivers' certificate chain and private key are (PEM files).
///
/// ```no_run
/// use archon_mcp_exporter::{ReceiverTls, ServeConfig, Server};
/// # async fn run() -> anyhow::Result<()> {
/// let mut config = ServeConfig::new("postgres://postgres@127.0.0.1/archon");
/// config.tls = Some(ReceiverTls::new("/etc/archon/tls.crt", "/etc/archon/tls.key"));
/// Server::bind(config).await?.run(std::future::pending()).await?;
/// # Ok(()) }
/// ```
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
