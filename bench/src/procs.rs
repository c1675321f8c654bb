//! Processes the load harnesses start and watch: the gateway, and what
//! `/proc` says of a process's CPU and memory.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A gateway child process, stopped on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Gateway {
    /// `switchyard serve` (the release binary beside this one) on
    /// `policy`, with `threads` workers, on a free port.
    pub fn start(
        name: &str,
        policy: &str,
        models: &str,
        threads: usize,
    ) -> Result<Gateway, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("sy-loadbench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let policy_path = dir.join("policy.yaml");
        std::fs::write(&policy_path, policy)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let binary = std::env::current_exe()?.with_file_name("switchyard");
        let mut cmd = Command::new(binary);
        cmd.args(["serve", "--policy"])
            .arg(&policy_path)
            .args([
                "--listen",
                &addr.to_string(),
                "--threads",
                &threads.to_string(),
                "--grace-seconds",
                "0",
                "--ledger",
            ])
            .arg(dir.join("usage.db"))
            .env("SWITCHYARD_MODEL_DIR", models)
            // Pingora logs every unusable pooled upstream connection at ERROR.
            .env("RUST_LOG", "error,pingora_core::connectors=off")
            .stdout(Stdio::null());
        // LOADBENCH_LOG=<file>: the gateway's full error log, for diagnosis.
        if let Some(path) = std::env::var_os("LOADBENCH_LOG") {
            cmd.env("RUST_LOG", "error")
                .stderr(std::fs::File::create(path)?);
        }
        let gw = Gateway {
            child: cmd.spawn()?,
            addr,
            dir,
        };
        crate::http::wait_ready(&addr.to_string(), "/healthz", Duration::from_secs(30))?;
        Ok(gw)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (at most 10 s) until process `pid` has gone quiet: a slow peer
/// still working through requests its client gave up on would otherwise
/// take CPU from the next side's round.
pub fn wait_idle(pid: u32) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = cpu_seconds(pid);
    while std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        let now = cpu_seconds(pid);
        // At most one clock tick (10 ms) over the last 100 ms.
        if now - last < 0.015 {
            return;
        }
        last = now;
    }
}

/// utime + stime of a process, in seconds.
/// User plus system CPU seconds of `pid`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

pub fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    serde_json::json!({"cpu": cpu, "cores": cores})
}
