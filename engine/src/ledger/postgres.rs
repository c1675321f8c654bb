//! Shipping the ledger to PostgreSQL (`usage.postgres`), so that a fleet's
//! usage is in one place.
//!
//! Every record is first committed to this replica's SQLite ledger, as on
//! a single node; a shipper thread of its own then copies the rows past
//! its watermark to PostgreSQL in multi-row inserts, and moves the
//! watermark once PostgreSQL has committed them. So:
//! - nothing is lost while PostgreSQL is unreachable: the SQLite ledger is
//!   the spool (on disk; the in-memory queue keeps its bounds), shipped
//!   when PostgreSQL answers again;
//! - nothing counts twice: rows are inserted by their random `record_id`
//!   with `ON CONFLICT DO NOTHING`, so a batch shipped again after a crash
//!   between PostgreSQL's commit and the watermark's is a no-op;
//! - the request path never waits for PostgreSQL, nor does the SQLite
//!   writer.
//!
//! The schema is versioned: migrations run at start-up, in order, each
//! once, under an advisory lock so replicas starting together do not race.

use super::LedgerError;
use postgres::config::SslMode;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Rows per insert (PostgreSQL allows 65 535 parameters; 29 a row).
const CHUNK: usize = 1000;

/// How often the shipper looks for new rows.
const TICK: Duration = Duration::from_millis(200);

/// The longest wait between attempts while PostgreSQL is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Versioned migrations, applied in order and recorded.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE switchyard_usage (
    record_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    request_id TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    key TEXT NOT NULL,
    "user" TEXT NOT NULL,
    team TEXT NOT NULL,
    task TEXT NOT NULL,
    inbound TEXT NOT NULL,
    alias TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    status BIGINT NOT NULL,
    error TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    cached_input_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    usage_source TEXT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    cache_hit BOOLEAN NOT NULL,
    total_us BIGINT NOT NULL,
    ttfb_us BIGINT NOT NULL,
    overhead_us BIGINT NOT NULL,
    route TEXT NOT NULL,
    route_label TEXT NOT NULL,
    route_score DOUBLE PRECISION
);
CREATE INDEX switchyard_usage_ts ON switchyard_usage (ts_ms);
"#,
)];

/// The columns shipped, in order (SQLite and PostgreSQL name them alike).
const COLUMNS: &str = "record_id, request_id, ts_ms, key, user, team, task, inbound, alias, provider, model, attempts, status, error, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, usage_source, cost_nanos, cache_hit, total_us, ttfb_us, overhead_us, route, route_label, route_score";

/// A connection with bounded waits: a PostgreSQL that hangs cannot hold
/// the shipper (or a report) for long.
pub fn connect(url: &str) -> Result<Client, LedgerError> {
    let mut cfg = Config::from_str(url).map_err(|e| {
        LedgerError::Postgres(format!("not a usable PostgreSQL URL ({})", kind(&e)))
    })?;
    cfg.connect_timeout(Duration::from_secs(3))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .tcp_user_timeout(Duration::from_secs(10))
        .options("-c statement_timeout=10000");
    let pg = |e: postgres::Error| LedgerError::Postgres(kind(&e));
    // TLS as `sslmode` says (libpq's default, `prefer`, uses it when the
    // server offers it), verified against the system's roots
    // (`SSL_CERT_FILE` names another bundle) and the URL's host.
    match (cfg.get_ssl_mode(), MakeRustlsConnect::with_native_certs()) {
        (SslMode::Disable, _) => cfg.connect(NoTls).map_err(pg),
        (_, Ok((tls, _unreadable))) => cfg.connect(tls).map_err(pg),
        (SslMode::Prefer, Err(_)) => cfg.connect(NoTls).map_err(pg),
        (_, Err(_)) => Err(LedgerError::Postgres(
            "sslmode asks for TLS, and no trusted root certificates were found (SSL_CERT_FILE)"
                .into(),
        )),
    }
}

/// An error's text without the URL (it may hold a password).
fn kind(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None if e.is_closed() => "connection closed".into(),
        None => {
            // The driver's text names the failing operation, not the URL.
            let text = e.to_string();
            text.split(" at ").next().unwrap_or("error").to_string()
        }
    }
}

/// Bring the schema up to date.
pub fn migrate(client: &mut Client) -> Result<(), LedgerError> {
    let pg = |e: postgres::Error| LedgerError::Postgres(kind(&e));
    let mut tx = client.transaction().map_err(pg)?;
    // One replica at a time; the lock goes with the transaction.
    tx.query("SELECT pg_advisory_xact_lock(5921034112)", &[])
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS switchyard_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .map_err(pg)?;
    let have: Option<i32> = tx
        .query_one("SELECT max(version) FROM switchyard_migrations", &[])
        .map_err(pg)?
        .get(0);
    let have = have.unwrap_or(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > have) {
        tx.batch_execute(sql).map_err(pg)?;
        tx.execute(
            "INSERT INTO switchyard_migrations (version) VALUES ($1)",
            &[version],
        )
        .map_err(pg)?;
        tracing::info!(version, "usage: PostgreSQL schema migrated");
    }
    tx.commit().map_err(pg)
}

/// What `/metrics` shows of shipping.
#[derive(Default)]
pub struct ShipStats {
    pub shipped: AtomicU64,
    /// Rows committed locally and not yet in PostgreSQL.
    pub spooled: AtomicU64,
    pub errors: AtomicU64,
    pub connected: AtomicBool,
}

pub struct Shipper {
    pub stats: Arc<ShipStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Shipper {
    pub fn start(ledger: &Path, url: &str, node: &str) -> std::io::Result<Shipper> {
        let stats = Arc::new(ShipStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            ledger: ledger.to_path_buf(),
            url: url.to_string(),
            node: node.to_string(),
            client: None,
            sqlite: None,
            stats: stats.clone(),
            backoff: TICK,
            next_try: Instant::now(),
            logged_down: false,
        };
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("switchyard-ship".into())
            .spawn(move || {
                while !s.load(Ordering::Acquire) {
                    worker.tick();
                    std::thread::sleep(TICK);
                }
                // A last round for what the ledger committed at shutdown.
                let until = Instant::now() + Duration::from_secs(5);
                while Instant::now() < until && worker.tick() > 0 {}
                worker.tick();
            })?;
        Ok(Shipper {
            stats,
            stop,
            thread: Some(thread),
        })
    }

    /// Ship what is left (a few seconds at most) and stop.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.finish();
    }
}

struct Worker {
    ledger: PathBuf,
    url: String,
    node: String,
    client: Option<Client>,
    sqlite: Option<Connection>,
    stats: Arc<ShipStats>,
    backoff: Duration,
    next_try: Instant,
    logged_down: bool,
}

impl Worker {
    /// One round: ship every row past the watermark, a chunk at a time.
    /// Returns the rows shipped.
    fn tick(&mut self) -> u64 {
        if Instant::now() < self.next_try {
            return 0;
        }
        match self.ship_all() {
            Ok(n) => {
                self.backoff = TICK;
                if self.logged_down {
                    tracing::info!("usage: PostgreSQL reachable again; the spool is shipped");
                    self.logged_down = false;
                }
                n
            }
            Err(e) => {
                self.client = None;
                self.stats.connected.store(false, Ordering::Relaxed);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                if !self.logged_down {
                    tracing::warn!(error = %e, "usage: cannot ship to PostgreSQL; records stay in the local ledger until it answers");
                    self.logged_down = true;
                }
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                0
            }
        }
    }

    fn ship_all(&mut self) -> Result<u64, LedgerError> {
        if self.sqlite.is_none() {
            self.sqlite = Some(open_spool(&self.ledger)?);
        }
        let Some(sqlite) = self.sqlite.as_ref() else {
            return Ok(0);
        };
        let through = watermark(sqlite, &self.ledger)?;
        let mut spooled = count_after(sqlite, &self.ledger, through)?;
        self.stats.spooled.store(spooled, Ordering::Relaxed);
        if spooled == 0 {
            return Ok(0);
        }
        if self.client.is_none() {
            let mut c = connect(&self.url)?;
            migrate(&mut c)?;
            self.client = Some(c);
            self.stats.connected.store(true, Ordering::Relaxed);
        }
        let mut shipped = 0;
        let mut through = through;
        loop {
            let (rows, last) = read_after(sqlite, &self.ledger, through, CHUNK)?;
            if rows.is_empty() {
                break;
            }
            if let Some(client) = self.client.as_mut() {
                insert(client, &self.node, &rows)?;
            }
            set_watermark(sqlite, &self.ledger, last)?;
            through = last;
            shipped += rows.len() as u64;
            self.stats
                .shipped
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            spooled = spooled.saturating_sub(rows.len() as u64);
            self.stats.spooled.store(spooled, Ordering::Relaxed);
        }
        Ok(shipped)
    }
}

fn sq(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

fn open_spool(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open(path).map_err(sq(path))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(sq(path))?;
    Ok(conn)
}

fn watermark(conn: &Connection, path: &Path) -> Result<i64, LedgerError> {
    conn.query_row("SELECT COALESCE(MAX(through), 0) FROM shipped", [], |r| {
        r.get(0)
    })
    .map_err(sq(path))
}

fn set_watermark(conn: &Connection, path: &Path, through: i64) -> Result<(), LedgerError> {
    conn.execute(
        "INSERT INTO shipped (id, through) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET through = excluded.through",
        [through],
    )
    .map(|_| ())
    .map_err(sq(path))
}

fn count_after(conn: &Connection, path: &Path, through: i64) -> Result<u64, LedgerError> {
    conn.query_row("SELECT COUNT(*) FROM usage WHERE id > ?1", [through], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n.max(0) as u64)
    .map_err(sq(path))
}

/// One row as shipped.
struct Shipped {
    text: [String; 14],
    ints: [i64; 12],
    cache_hit: bool,
    route_score: Option<f64>,
}

/// Up to `limit` rows after `through`, and the id of the last.
fn read_after(
    conn: &Connection,
    path: &Path,
    through: i64,
    limit: usize,
) -> Result<(Vec<Shipped>, i64), LedgerError> {
    let mut q = conn
        .prepare_cached(&format!(
            "SELECT id, {COLUMNS} FROM usage WHERE id > ?1 ORDER BY id LIMIT ?2"
        ))
        .map_err(sq(path))?;
    let mut last = through;
    let rows = q
        .query_map([through, limit as i64], |r| {
            let t = |i: usize| r.get::<_, String>(i);
            let n = |i: usize| r.get::<_, i64>(i);
            Ok((
                n(0)?,
                Shipped {
                    // record_id .. model, then error, usage_source, route, route_label
                    text: [
                        t(1)?,
                        t(2)?,
                        t(4)?,
                        t(5)?,
                        t(6)?,
                        t(7)?,
                        t(8)?,
                        t(9)?,
                        t(10)?,
                        t(11)?,
                        t(14)?,
                        t(20)?,
                        t(26)?,
                        t(27)?,
                    ],
                    // ts_ms, attempts, status, tokens x5, cost, total, ttfb, overhead
                    ints: [
                        n(3)?,
                        n(12)?,
                        n(13)?,
                        n(15)?,
                        n(16)?,
                        n(17)?,
                        n(18)?,
                        n(19)?,
                        n(21)?,
                        n(23)?,
                        n(24)?,
                        n(25)?,
                    ],
                    cache_hit: n(22)? != 0,
                    route_score: r.get::<_, Option<f64>>(28)?,
                },
            ))
        })
        .map_err(sq(path))?;
    let mut out = Vec::new();
    for row in rows {
        let (id, s) = row.map_err(sq(path))?;
        last = last.max(id);
        out.push(s);
    }
    Ok((out, last))
}

fn insert(client: &mut Client, node: &str, rows: &[Shipped]) -> Result<(), LedgerError> {
    let pg = |e: postgres::Error| LedgerError::Postgres(kind(&e));
    let mut sql = String::from(
        "INSERT INTO switchyard_usage (record_id, request_id, key, \"user\", team, task, inbound, alias, provider, model, error, usage_source, route, route_label, node, ts_ms, attempts, status, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_nanos, total_us, ttfb_us, overhead_us, cache_hit, route_score) VALUES ",
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(rows.len() * 29);
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for j in 0..29 {
            if j > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", i * 29 + j + 1));
        }
        sql.push(')');
        for t in &r.text {
            params.push(t);
        }
        params.push(&node);
        for n in &r.ints {
            params.push(n);
        }
        params.push(&r.cache_hit);
        params.push(&r.route_score);
    }
    sql.push_str(" ON CONFLICT (record_id) DO NOTHING");
    let mut tx = client.transaction().map_err(pg)?;
    tx.execute(sql.as_str(), &params).map_err(pg)?;
    tx.commit().map_err(pg)
}
