//! Throw-away TLS certificates for tests, made with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA and a certificate for `localhost` and `127.0.0.1` signed by it, in a temporary
/// directory removed on drop.
///
/// ```no_run
/// let certs = archon_mcp_exporter::testing::TestCertificates::generate().unwrap();
/// println!("trust {}, serve {} with {}", certs.ca.display(), certs.cert.display(), certs.key.display());
/// ```
#[derive(Debug)]
pub struct TestCertificates {
    dir: PathBuf,
    /// The CA certificate (PEM) clients trust.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server key (PEM, PKCS#8).
    pub key: PathBuf,
}

impl TestCertificates {
    /// Generates the CA and the server certificate (P-256 keys, valid for a day).
    pub fn generate() -> Result<Self, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("archon-mcp-certs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let certs = Self { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key"), dir };
        let path = |p: &Path| p.to_str().expect("temporary paths are UTF-8").to_owned();
        let (ca_key, csr, ext) = (certs.dir.join("ca.key"), certs.dir.join("server.csr"), certs.dir.join("server.ext"));
        std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
            .map_err(|e| e.to_string())?;
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &["req", "-x509", "-days", "1", "-subj", "/CN=archon-mcp test CA", "-keyout", &path(&ca_key)],
            &ec,
            &certs.ca,
        )?;
        openssl(&["req", "-subj", "/CN=localhost", "-keyout", &path(&certs.key)], &ec, &csr)?;
        let sign =
            ["x509", "-req", "-days", "1", "-in", &path(&csr), "-CA", &path(&certs.ca), "-CAkey", &path(&ca_key)];
        openssl(&sign, &["-CAcreateserial", "-extfile", &path(&ext)], &certs.cert)?;
        Ok(certs)
    }
}

fn openssl(args: &[&str], more: &[&str], out: &Path) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(args)
        .args(more)
        .arg("-out")
        .arg(out)
        .output()
        .map_err(|e| format!("the `openssl` command is needed to make test certificates: {e}"))?;
    if !output.status.success() {
        return Err(format!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr)));
    }
    Ok(())
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
