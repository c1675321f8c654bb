//! The SQLite ledger: one table, WAL, one transaction per batch.

use super::{LedgerError, UsageSink};
use crate::meter::record::UsageRecord;
use rusqlite::{params, Connection, OpenFlags};
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    key TEXT NOT NULL,
    user TEXT NOT NULL,
    team TEXT NOT NULL,
    task TEXT NOT NULL,
    inbound TEXT NOT NULL,
    alias TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    usage_source TEXT NOT NULL,
    cost_nanos INTEGER NOT NULL,
    cache_hit INTEGER NOT NULL,
    total_us INTEGER NOT NULL,
    ttfb_us INTEGER NOT NULL,
    overhead_us INTEGER NOT NULL,
    route TEXT NOT NULL DEFAULT '',
    route_label TEXT NOT NULL DEFAULT '',
    route_score REAL,
    record_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS usage_ts ON usage (ts_ms);
-- How far the rows have been shipped to PostgreSQL (usage.postgres).
CREATE TABLE IF NOT EXISTS shipped (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    through INTEGER NOT NULL
);
";

/// Columns added after the first schema, for ledgers created before them.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("route", "TEXT NOT NULL DEFAULT ''"),
    ("route_label", "TEXT NOT NULL DEFAULT ''"),
    ("route_score", "REAL"),
    ("record_id", "TEXT NOT NULL DEFAULT ''"),
];

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('usage')")?;
    let have: Vec<String> = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, decl) in ADDED_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE usage ADD COLUMN {name} {decl}"))?;
        }
    }
    // Rows from before record ids get one, so they can be shipped once.
    conn.execute_batch(
        "UPDATE usage SET record_id = lower(hex(randomblob(16))) WHERE record_id = ''",
    )?;
    Ok(())
}

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

pub struct SqliteSink {
    pub(crate) conn: Connection,
    path: std::path::PathBuf,
}

/// A record's id: random, so that it stays unique across replicas, ledger
/// files and replays (shipping is idempotent by it).
fn record_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl SqliteSink {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn open(path: &Path) -> Result<SqliteSink, LedgerError> {
        create_private(path)?;
        let conn = Connection::open(path).map_err(err(path))?;
        // WAL + NORMAL: a committed transaction survives the process dying;
        // only an OS crash can take the last ones.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err(path))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err(path))?;
        conn.execute_batch(SCHEMA).map_err(err(path))?;
        add_missing_columns(&conn).map_err(err(path))?;
        Ok(SqliteSink {
            conn,
            path: path.to_path_buf(),
        })
    }
}

impl UsageSink for SqliteSink {
    fn write(&mut self, batch: &[UsageRecord]) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let e = err(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO usage (request_id, ts_ms, key, user, team, task, inbound, alias, provider, model, attempts, status, error, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, usage_source, cost_nanos, cache_hit, total_us, ttfb_us, overhead_us, route, route_label, route_score, record_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
                )
                .map_err(&e)?;
            for r in batch {
                let u = &r.usage;
                insert
                    .execute(params![
                        r.request_id,
                        r.ts_ms,
                        r.key,
                        r.user,
                        r.team,
                        r.task,
                        r.inbound,
                        r.alias,
                        r.provider,
                        r.model,
                        r.attempts,
                        r.status,
                        r.error,
                        u.input as i64,
                        u.cached_input as i64,
                        u.cache_write as i64,
                        u.output as i64,
                        u.reasoning as i64,
                        r.usage_source.as_str(),
                        r.cost_nanos as i64,
                        r.cache_hit,
                        r.total_us as i64,
                        r.ttfb_us as i64,
                        r.overhead_us as i64,
                        r.route,
                        r.route_label,
                        r.route_score,
                        record_id(),
                    ])
                    .map_err(&e)?;
            }
        }
        tx.commit().map_err(&e)
    }
}

/// A read-only connection, for start-up and reports (WAL lets readers
/// run beside the writer).
/// Create the ledger file 0600 when it is new: it names every key, user,
/// team and task and what they spent. SQLite gives its `-wal` and `-shm`
/// files the database's own mode.
fn create_private(path: &Path) -> Result<(), LedgerError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(LedgerError::Invalid(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

pub fn open_read(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err(path))?;
    Ok(conn)
}

/// Spend and tokens of one caller on one model since some time.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRow {
    pub key: String,
    pub user: String,
    pub team: String,
    pub alias: String,
    pub cost_nanos: u64,
    pub tokens: u64,
    pub requests: u64,
}

/// Sums by (key, user, team, alias) of records with `ts_ms >= since`.
pub fn spend_since(conn: &Connection, since_ms: i64) -> Result<Vec<SpendRow>, LedgerError> {
    let path = conn.path().unwrap_or("?").to_string();
    let e = |source| LedgerError::Sqlite {
        path: path.clone(),
        source,
    };
    let mut q = conn
        .prepare(
            "SELECT key, user, team, alias, SUM(cost_nanos), SUM(input_tokens + output_tokens), COUNT(*) \
             FROM usage WHERE ts_ms >= ?1 GROUP BY key, user, team, alias",
        )
        .map_err(&e)?;
    let rows = q
        .query_map([since_ms], |r| {
            Ok(SpendRow {
                key: r.get(0)?,
                user: r.get(1)?,
                team: r.get(2)?,
                alias: r.get(3)?,
                cost_nanos: r.get::<_, i64>(4)?.max(0) as u64,
                tokens: r.get::<_, i64>(5)?.max(0) as u64,
                requests: r.get::<_, i64>(6)?.max(0) as u64,
            })
        })
        .map_err(&e)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(&e)
}
