//! Finding and starting rotel (`pip install rotel`), the OpenTelemetry Collector of the
//! end-to-end tests and benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The `rotel-agent` binary: `ROTEL_AGENT`, else on `PATH`, else inside the `rotel` Python package.
pub fn rotel_agent() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROTEL_AGENT") {
        return Some(path.into());
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("rotel-agent")).find(|p| p.is_file()));
    on_path.or_else(|| {
        let output = std::process::Command::new("python3")
            .args(["-c", "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))"])
            .output()
            .ok()?;
        let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
        path.is_file().then_some(path)
    })
}

/// A running rotel forwarding OTLP/gRPC to `forward_to`, with retries that do not give up;
/// killed when dropped.
#[derive(Debug)]
pub struct Rotel {
    /// Where it receives OTLP/gRPC.
    pub grpc: SocketAddr,
    /// Its log (stderr), for when a test needs to know what it did.
    pub log: PathBuf,
    child: tokio::process::Child,
}

impl Rotel {
    /// Starts rotel and waits until it listens.
    pub async fn start(agent: PathBuf, forward_to: SocketAddr) -> std::io::Result<Self> {
        Self::spawn(agent, &format!("http://{forward_to}"), &[]).await
    }

    /// Starts rotel forwarding over TLS to `forward_to`, sending `Authorization: Bearer <token>`.
    ///
    /// The receiver's certificate is not verified: rotel 0.0.1-alpha10 refuses to start with
    /// any CA or client-certificate option ("Either both or neither of cert and key must be
    /// provided", even given both), so only `--otlp-exporter-tls-skip-verify` works. The
    /// exporter's own tests verify the certificate with a rustls client.
    pub async fn start_tls(agent: PathBuf, forward_to: SocketAddr, token: &str) -> std::io::Result<Self> {
        let header = format!("authorization=Bearer {token}");
        let tls = ["--otlp-exporter-tls-skip-verify", "--otlp-exporter-custom-headers", &header];
        Self::spawn(agent, &format!("https://{forward_to}"), &tls.map(std::ffi::OsStr::new)).await
    }

    async fn spawn(agent: PathBuf, endpoint: &str, extra: &[&std::ffi::OsStr]) -> std::io::Result<Self> {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        let grpc = free()?;
        let http = free()?;
        let pid_file = std::env::temp_dir().join(format!("rotel-{}-{}.pid", std::process::id(), grpc.port()));
        let log = pid_file.with_extension("log");
        let child = tokio::process::Command::new(agent)
            .args(["start", "--otlp-grpc-endpoint", &grpc.to_string(), "--otlp-http-endpoint", &http.to_string()])
            .args(["--exporter", "otlp", "--otlp-exporter-protocol", "grpc"])
            .args(["--otlp-exporter-endpoint", endpoint])
            .args(extra)
            .args(["--otlp-exporter-retry-max-elapsed-time", "30m", "--otlp-exporter-retry-max-backoff", "2s"])
            .args(["--batch-timeout", "200ms", "--pid-file"])
            .arg(pid_file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(grpc).await.is_ok() {
                return Ok(Self { grpc, log, child });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(std::io::Error::other(format!("rotel-agent did not listen on {grpc}")))
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
