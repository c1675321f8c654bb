//! Real Redis and PostgreSQL servers for cluster tests, from the Debian
//! packages `scripts/setup.sh` installs: each on a free loopback port, in
//! its own temporary directory, stopped by PID when dropped.

use super::{free_port, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
    /// Serve TLS only, with these PEM files (CA, certificate, key).
    tls: Option<[std::path::PathBuf; 3]>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = TempDir::new();
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            dir,
            tls: None,
        };
        r.restart();
        r
    }

    /// A Redis that speaks TLS only, with a certificate for `localhost`
    /// signed by `ca_pem`.
    pub fn start_tls(ca_pem: &str, cert_pem: &str, key_pem: &str) -> RedisServer {
        let dir = TempDir::new();
        let files = ["ca.pem", "cert.pem", "key.pem"].map(|n| dir.0.join(n));
        for (f, text) in files.iter().zip([ca_pem, cert_pem, key_pem]) {
            std::fs::write(f, text).unwrap();
        }
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            dir,
            tls: Some(files),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Start (again) on the same port, with the data it had written to
    /// its append-only file.
    pub fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            Some([ca, cert, key]) => {
                cmd.args([
                    "--port",
                    "0",
                    "--tls-port",
                    &self.port.to_string(),
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-ca-cert-file")
                .arg(ca)
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key);
            }
            None => {
                cmd.args(["--port", &self.port.to_string()]);
            }
        }
        let child = cmd
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                // Budgets live here: a crash keeps every acknowledged write.
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
                "--dir",
            ])
            .arg(&self.dir.0)
            .stdout(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.0.join("redis.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; run scripts/setup.sh)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let up = match self.tls {
                // Listening is as much as a plain client can tell.
                Some(_) => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
                None => self
                    .command(&["PING"])
                    .is_some_and(|r| r.starts_with("+PONG")),
            };
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.0.join("redis.log")).unwrap_or_default();
        panic!("redis-server did not answer on port {}: {log}", self.port);
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// One command in RESP; the raw reply (None if Redis is unreachable).
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// An integer reply (`:n`), e.g. of `ZCARD`.
    pub fn integer(&self, args: &[&str]) -> i64 {
        let r = self.command(args).unwrap_or_default();
        r.trim()
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{args:?}: expected an integer, got {r:?}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server of the Debian package, in a temporary data
/// directory, run as the `postgres` user when the tests run as root (it
/// refuses root). Trust authentication on loopback only.
pub struct PgServer {
    pub port: u16,
    dir: TempDir,
    bin: std::path::PathBuf,
    running: bool,
    /// Serving TLS with a certificate and key in the data directory.
    tls: bool,
}

impl PgServer {
    pub fn start() -> PgServer {
        Self::start_with(None)
    }

    /// A PostgreSQL that offers TLS, with a certificate for `localhost` and
    /// 127.0.0.1 (signed by the caller's CA).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> PgServer {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> PgServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .find(|p| p.join("postgres").exists())
            })
            .expect("PostgreSQL server binaries (Debian package postgresql; run scripts/setup.sh)");
        let dir = TempDir::new();
        let pg = PgServer {
            port: free_port(),
            dir,
            bin,
            running: false,
            tls: tls.is_some(),
        };
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir.0)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the PostgreSQL directory to postgres");
        }
        let data = pg.data();
        let out = pg
            .as_postgres(&pg.bin.join("initdb"))
            .args(["-A", "trust", "-U", "switchyard", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            for (name, text) in [("server.crt", cert), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, text).unwrap();
                // PostgreSQL refuses a key others can read.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
                if is_root() {
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&path)
                        .status()
                        .unwrap();
                }
            }
        }
        let mut pg = pg;
        pg.resume();
        pg
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.0.join("data")
    }

    fn as_postgres(&self, program: &std::path::Path) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://switchyard@127.0.0.1:{}/postgres", self.port)
    }

    /// Start (again) on the same port and data.
    pub fn resume(&mut self) {
        let data = self.data();
        let mut opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.0.display()
        );
        if self.tls {
            opts.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                data.join("server.crt").display(),
                data.join("server.key").display()
            ));
        }
        let out = self
            .as_postgres(&self.bin.join("pg_ctl"))
            .args(["-w", "-t", "30", "-o", &opts, "-l"])
            .arg(self.dir.0.join("server.log"))
            .arg("-D")
            .arg(&data)
            .arg("start")
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.0.join("server.log")).unwrap_or_default()
        );
        self.running = true;
    }

    /// Stop at once (as a crash would): SIGQUIT to the postmaster, by the
    /// PID it wrote, and wait until it is gone.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::trim).map(str::to_string));
        let Some(pid) = pid else { return };
        let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `psql -tA -c sql`: the result's text.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-tA",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "switchyard",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
