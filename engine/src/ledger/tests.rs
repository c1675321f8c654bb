use super::*;
use crate::meter::tap::UsageSource;
use crate::meter::usage::Usage;

pub fn record(i: u64, key: &str, cost: u64) -> UsageRecord {
    UsageRecord {
        request_id: format!("r{i}"),
        ts_ms: 1_800_000_000_000 + i as i64,
        key: key.into(),
        user: "u".into(),
        team: "t".into(),
        task: String::new(),
        inbound: "openai",
        alias: "m".into(),
        provider: "p".into(),
        model: "x".into(),
        attempts: 1,
        status: 200,
        error: String::new(),
        usage: Usage {
            input: 10,
            output: 5,
            ..Usage::default()
        },
        usage_source: UsageSource::Provider,
        cost_nanos: cost,
        cache_hit: false,
        total_us: 1,
        ttfb_us: 1,
        overhead_us: 1,
        route: String::new(),
        route_label: String::new(),
        route_score: None,
    }
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-ledger-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("usage.db")
}

#[test]
fn every_record_is_committed_by_close_and_reads_back_exactly() {
    let path = temp_db("close");
    let sink = sqlite::SqliteSink::open(&path).unwrap();
    let ledger = UsageLedger::start(Box::new(sink), 10_000, Duration::from_millis(50)).unwrap();
    for i in 0..2500 {
        ledger.record(record(i, if i % 2 == 0 { "a" } else { "b" }, 1_000_000_001));
    }
    ledger.close();
    assert_eq!(ledger.stats.written.load(Ordering::Relaxed), 2500);
    assert_eq!(ledger.stats.dropped.load(Ordering::Relaxed), 0);
    let conn = sqlite::open_read(&path).unwrap();
    let rep = report::summarise(&conn, 0, i64::MAX, report::GroupBy::Key).unwrap();
    assert_eq!(rep.rows.len(), 2);
    assert_eq!(rep.total.requests, 2500);
    assert_eq!(rep.total.cost_nanos, 2500 * 1_000_000_001, "sums are exact");
    assert_eq!(rep.total.input_tokens, 25_000);
    let table = rep.table();
    assert!(table.contains("2500.000002"), "{table}");
    let spend = sqlite::spend_since(&conn, 1_800_000_000_000 + 2000).unwrap();
    assert_eq!(spend.iter().map(|r| r.requests).sum::<u64>(), 500);
}

/// A sink whose first write blocks until the test releases it, and says
/// when it has started blocking: the ledger's writer is then known to be
/// stuck, and only the queue can hold what comes next.
struct Stalled {
    entered: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

impl UsageSink for Stalled {
    fn write(&mut self, _batch: &[UsageRecord]) -> Result<(), LedgerError> {
        let _ = self.entered.send(());
        let _ = self.release.recv();
        Ok(())
    }
}

/// A ledger whose writer is stuck in its first write, and the handle that
/// frees it (drop it before the ledger: closing joins the writer).
fn stalled_ledger(capacity: usize) -> (UsageLedger, std::sync::mpsc::Sender<()>) {
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let sink = Stalled {
        entered: entered_tx,
        release: release_rx,
    };
    let ledger = UsageLedger::start(Box::new(sink), capacity, Duration::from_millis(1)).unwrap();
    ledger.record(record(0, "a", 1));
    entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the writer reached the sink");
    (ledger, release)
}

#[test]
fn a_stalled_sink_drops_and_counts_instead_of_growing() {
    let (ledger, release) = stalled_ledger(16);
    for i in 1..1000 {
        ledger.record(record(i, "a", 1));
    }
    let dropped = ledger.stats.dropped.load(Ordering::Relaxed);
    // The writer holds the first record and the queue at most 16: the
    // rest cannot wait anywhere.
    assert_eq!(dropped, 999 - 16);
    drop(release);
    ledger.close();
    let s = &ledger.stats;
    assert_eq!(
        s.written.load(Ordering::Relaxed) + s.dropped.load(Ordering::Relaxed),
        1000,
        "every record is either written or counted as dropped"
    );
}

#[test]
fn the_queue_is_bounded_by_bytes_as_well_as_count() {
    // Room for a million records by count; 1 MiB records fill the byte
    // bound long before.
    let (ledger, release) = stalled_ledger(1 << 20);
    let big = MAX_QUEUED_BYTES / (1 << 20) + 10;
    for i in 1..=big {
        let mut r = record(i, "a", 1);
        r.alias = "m".repeat(1 << 20);
        ledger.record(r);
    }
    let s = &ledger.stats;
    // 63 records of a little over 1 MiB fit in 64 MiB; the other 11 not.
    assert_eq!(s.dropped.load(Ordering::Relaxed), big - 63);
    assert!(s.queued_bytes.load(Ordering::Relaxed) <= MAX_QUEUED_BYTES);
    drop(release);
    ledger.close();
    assert_eq!(
        s.written.load(Ordering::Relaxed) + s.dropped.load(Ordering::Relaxed),
        big + 1
    );
    assert_eq!(s.queued_bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn a_new_ledger_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let path = temp_db("private");
    let _ = std::fs::remove_file(&path);
    let sink = sqlite::SqliteSink::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    drop(sink);
    let _ = std::fs::remove_file(&path);
}
