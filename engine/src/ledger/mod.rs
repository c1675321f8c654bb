//! The durable usage ledger, off the request path.
//!
//! Requests hand their [`UsageRecord`] to a bounded queue
//! ([`UsageLedger::record`] never blocks); one writer thread commits them
//! in batches to a [`UsageSink`] (SQLite). With `usage.postgres`, a
//! shipper copies what is committed to PostgreSQL ([`postgres`]).
//!
//! - A record waits at most `flush_interval_ms` before its batch is
//!   committed, so a crash (even SIGKILL) loses at most the records of
//!   the last flush interval plus the batch being committed. SQLite runs
//!   in WAL mode: a committed batch survives the process dying.
//! - The queue is bounded by count and by bytes ([`MAX_QUEUED_BYTES`]).
//!   When it is full (the sink cannot keep up), new records are
//!   dropped, logged and counted (`switchyard_usage_dropped_total`):
//!   memory stays bounded and no loss is silent. Budgets and limits are
//!   enforced in memory and do not depend on the ledger keeping up.
//! - On shutdown the queue is drained before the process exits.

pub mod postgres;
pub mod report;
pub mod restore;
pub mod sqlite;

use crate::meter::record::UsageRecord;
use arc_swap::ArcSwapOption;
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most record bytes (strings included) that may wait in the queue.
pub const MAX_QUEUED_BYTES: u64 = 64 << 20;

/// Most records written in one transaction.
const MAX_BATCH: usize = 4096;

/// How often the writer drains the queue while it gathers a batch.
const GATHER_TICK: Duration = Duration::from_millis(10);

/// Adds queued records to `batch` until `deadline` or [`MAX_BATCH`];
/// returns whether every sender is gone.
///
/// It sleeps and drains by [`GATHER_TICK`] rather than blocking in
/// `recv`: a writer blocked in `recv` is woken by every record, a
/// cross-thread wake-up (and a CPU taken from the workers) per request.
/// Ticking wakes it at most every 10 ms, and the bounded queue holds what
/// arrives in between (65 536 by default, 6.5 M req/s for one tick).
fn gather(rx: &Receiver<UsageRecord>, batch: &mut Vec<UsageRecord>, deadline: Instant) -> bool {
    loop {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        let now = Instant::now();
        if batch.len() >= MAX_BATCH || now >= deadline {
            return false;
        }
        std::thread::sleep(GATHER_TICK.min(deadline - now));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("usage ledger {path}: {source}")]
    Sqlite {
        path: String,
        source: rusqlite::Error,
    },
    #[error("usage ledger: {0}")]
    Invalid(String),
    #[error("usage ledger (PostgreSQL): {0}")]
    Postgres(String),
}

/// Where committed usage goes.
pub trait UsageSink: Send {
    fn write(&mut self, batch: &[UsageRecord]) -> Result<(), LedgerError>;
}

#[derive(Default)]
pub struct LedgerStats {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub write_errors: AtomicU64,
    pub queued: AtomicU64,
    pub queued_bytes: AtomicU64,
}

pub struct UsageLedger {
    // Swapped out (lock-free) on close; requests only load it.
    tx: ArcSwapOption<Sender<UsageRecord>>,
    pub stats: Arc<LedgerStats>,
    // Touched only at start and shutdown, never by requests.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Ships committed records to PostgreSQL (`usage.postgres`).
    shipper: Mutex<Option<postgres::Shipper>>,
    ship_stats: Option<Arc<postgres::ShipStats>>,
}

impl UsageLedger {
    /// A ledger that keeps nothing (no path configured): records are
    /// metered and counted, not stored.
    pub fn disabled() -> UsageLedger {
        UsageLedger {
            tx: ArcSwapOption::empty(),
            stats: Arc::default(),
            writer: Mutex::new(None),
            shipper: Mutex::new(None),
            ship_stats: None,
        }
    }

    /// Ship what this ledger commits with `shipper` (before the ledger is
    /// shared).
    pub fn ship_with(&mut self, shipper: postgres::Shipper) {
        self.ship_stats = Some(shipper.stats.clone());
        self.shipper = Mutex::new(Some(shipper));
    }

    pub fn ship_stats(&self) -> Option<&postgres::ShipStats> {
        self.ship_stats.as_deref()
    }

    pub fn start(
        mut sink: Box<dyn UsageSink>,
        capacity: usize,
        flush_interval: Duration,
    ) -> std::io::Result<UsageLedger> {
        let (tx, rx) = bounded::<UsageRecord>(capacity.max(1));
        let stats = Arc::new(LedgerStats::default());
        let s = stats.clone();
        let writer = std::thread::Builder::new()
            .name("switchyard-ledger".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                loop {
                    // Wait for a first record, then gather for at most one
                    // flush interval.
                    match rx.recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => return,
                    }
                    let closed = gather(&rx, &mut batch, Instant::now() + flush_interval);
                    s.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
                    let bytes: u64 = batch.iter().map(UsageRecord::size).sum();
                    s.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                    commit(sink.as_mut(), &batch, &s);
                    batch.clear();
                    if closed {
                        return;
                    }
                }
            })?;
        Ok(UsageLedger {
            tx: ArcSwapOption::from_pointee(tx),
            stats,
            writer: Mutex::new(Some(writer)),
            shipper: Mutex::new(None),
            ship_stats: None,
        })
    }

    /// Queue a record; never blocks.
    pub fn record(&self, r: UsageRecord) {
        let tx = self.tx.load();
        let Some(tx) = tx.as_ref() else { return };
        let size = r.size();
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        let before = self.stats.queued_bytes.fetch_add(size, Ordering::Relaxed);
        let sent = if before.saturating_add(size) > MAX_QUEUED_BYTES {
            Err(TrySendError::Full(r))
        } else {
            tx.try_send(r)
        };
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(r)) | Err(TrySendError::Disconnected(r)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.queued_bytes.fetch_sub(size, Ordering::Relaxed);
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::error!(
                        request_id = %r.request_id,
                        dropped = n,
                        "usage ledger queue is full: usage record dropped"
                    );
                }
            }
        }
    }

    /// Close the queue and wait until every queued record is committed.
    pub fn close(&self) {
        self.tx.store(None);
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        // Everything is committed locally: ship what is left.
        let shipper = self.shipper.lock().ok().and_then(|mut s| s.take());
        if let Some(mut s) = shipper {
            s.finish();
        }
    }
}

impl Drop for UsageLedger {
    fn drop(&mut self) {
        self.close();
    }
}

/// A failed batch is retried a few times; then it is counted as dropped
/// (memory stays bounded even when the disk is gone).
fn commit(sink: &mut dyn UsageSink, batch: &[UsageRecord], stats: &LedgerStats) {
    let mut wait = Duration::from_millis(50);
    for attempt in 1..=5 {
        match sink.write(batch) {
            Ok(()) => {
                stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, attempt, records = batch.len(), "usage ledger write failed");
                std::thread::sleep(wait);
                wait *= 2;
            }
        }
    }
    stats
        .dropped
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests;
