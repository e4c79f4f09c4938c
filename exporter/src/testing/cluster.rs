//! A throw-away PostgreSQL cluster.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::INSTALL_HINT;

/// A throw-away PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1.
///
/// Stopped and deleted on drop, and by a watchdog when this process dies without dropping it
/// (a static, a panic, Ctrl-C).
#[derive(Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    watchdog: Option<Child>,
}

impl LocalCluster {
    /// Starts a cluster (blocking, a few seconds). The error says what to install.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin_dir().ok_or_else(|| INSTALL_HINT.to_owned())?;
        let dir =
            std::env::temp_dir().join(format!("archon-pg-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("find a free port: {e}"))?
            .port();
        let mut cluster = Self { dir, port, bin, watchdog: None };
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&cluster.dir))?;
        }
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        let data = cluster.dir.join("data");
        run(cluster.pg_command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]))?;
        cluster.start_server()?;
        Ok(cluster)
    }

    /// The directory holding the cluster (removed when it stops).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection string for a database of this cluster, as user `postgres`.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!("host=127.0.0.1 port={} user=postgres dbname={dbname}", self.port)
    }

    /// The same as a `postgres://` URL.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Stops the server (fast shutdown: connections are cut), keeping its data.
    pub fn stop(&self) -> Result<(), String> {
        run(self.pg_command("pg_ctl").arg("-D").arg(self.dir.join("data")).args(["-m", "fast", "-w", "stop"]))
    }

    /// Starts the server (again, after [`stop`](Self::stop)), on the same port.
    pub fn start_server(&self) -> Result<(), String> {
        run(self.pg_command("pg_ctl").arg("-D").arg(self.dir.join("data")).arg("-l").arg(self.dir.join("log")).args([
            "-w",
            "-t",
            "60",
            "-o",
            &format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.display()),
            "start",
        ]))
    }

    /// Leaves the cluster running after this process ends; returns the shell command that
    /// stops and removes it.
    pub fn keep(mut self) -> String {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let as_postgres = if is_root() { "runuser -u postgres -- " } else { "" };
        let stop = format!(
            "{as_postgres}'{}/pg_ctl' -D '{}/data' stop && rm -rf '{}'",
            self.bin.display(),
            self.dir.display(),
            self.dir.display()
        );
        std::mem::forget(self);
        stop
    }

    fn pg_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// A detached shell that stops the cluster and deletes its directory once this process is
    /// gone, however it ends.
    fn spawn_watchdog(&self) -> Result<Child, String> {
        let as_postgres = if is_root() { "runuser -u postgres -- " } else { "" };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {as_postgres}'{bin}/pg_ctl' -D '{dir}/data' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            bin = self.bin.display(),
            dir = self.dir.display(),
        );
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start the cluster watchdog: {e}"))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        // Newest major version last; numeric order so 9 < 10.
        versions.sort_by_key(|p| version_of(p));
        versions.pop()
    })
}

fn version_of(bin: &Path) -> u32 {
    bin.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let output = cmd.output().map_err(|e| format!("run {cmd:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
