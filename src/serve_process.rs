//! `archon-mcp-exporter serve` as its own process, for benchmarks and soak runs that measure it
//! apart from the load they put on it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

/// The `archon-mcp-exporter` binary built beside the running test, bench or example (the same
/// profile: build it with `cargo build [--release] -p archon-mcp-exporter`).
pub fn exporter_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the path of this program");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("a cargo target directory").to_path_buf();
    let bin = dir.join("archon-mcp-exporter");
    assert!(
        bin.is_file(),
        "{} is missing: build it with the same profile first (`cargo build [--release] -p archon-mcp-exporter`, \
         or run the tests with `cargo test --workspace`)",
        bin.display()
    );
    bin
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:`), 0 when unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// `serve` on free local ports, killed when dropped.
#[derive(Debug)]
pub struct ServeProcess {
    /// The process.
    pub child: tokio::process::Child,
    /// Its OTLP/gRPC address.
    pub grpc: SocketAddr,
    /// Its OTLP/HTTP address.
    pub http: SocketAddr,
}

impl ServeProcess {
    /// Starts `serve --database-url <database_url> <extra…>` (quiet).
    pub fn spawn(database_url: &str, extra: &[&str]) -> std::io::Result<Self> {
        let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        let (grpc, http) = (free()?, free()?);
        let child = tokio::process::Command::new(exporter_binary())
            .args(["serve", "--database-url", database_url])
            .args(["--grpc-listen", &grpc.to_string(), "--http-listen", &http.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self { child, grpc, http })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("a running child has a pid")
    }
}
