//! The load generator: thread-per-core, each thread its own monoio runtime
//! (io_uring where the kernel allows, else epoll) driving its share of the
//! keep-alive connections. Closed loop (each connection sends as soon as
//! its previous answer ends) or open loop at a fixed rate with
//! coordinated-omission correction: latency is measured from when a
//! request was *due*, not when a backed-up connection got round to it.

use hdrhistogram::Histogram;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// `connections` clients, each sending back to back.
    Closed { connections: usize },
    /// `rate` requests per second spread over `connections` clients.
    Open { rate: f64, connections: usize },
}

#[derive(Debug, Clone)]
pub struct Run {
    pub mode: Mode,
    /// Stop after this long ...
    pub duration: Duration,
    /// ... or this many requests, whichever comes first.
    pub max_requests: u64,
    pub threads: usize,
}

/// Latencies in nanoseconds.
pub struct Outcome {
    pub latency: Histogram<u64>,
    /// Until the first byte of the body (time to first token for streams).
    pub first_byte: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome::empty()
    }
}

impl Outcome {
    /// Add another run's counts and latencies (sequential runs: the
    /// elapsed times add up).
    pub fn absorb(&mut self, other: Outcome) {
        let _ = self.latency.add(&other.latency);
        let _ = self.first_byte.add(&other.first_byte);
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
    }

    fn empty() -> Outcome {
        Outcome {
            latency: histogram(),
            first_byte: histogram(),
            ok: 0,
            errors: 0,
            elapsed: Duration::ZERO,
        }
    }

    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, other: Outcome) {
        let _ = self.latency.add(&other.latency);
        let _ = self.first_byte.add(&other.first_byte);
        self.ok += other.ok;
        self.errors += other.errors;
        self.elapsed = self.elapsed.max(other.elapsed);
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid bounds")
}

/// Send `request` (a whole HTTP/1.1 request) to `addr` as `run` says.
pub fn drive(addr: SocketAddr, request: &[u8], run: &Run) -> Outcome {
    let (connections, rate) = match run.mode {
        Mode::Closed { connections } => (connections.max(1), None),
        Mode::Open { rate, connections } => (connections.max(1), Some(rate)),
    };
    let threads = run.threads.clamp(1, connections);
    let start = Instant::now() + Duration::from_millis(20);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let request = request.to_vec();
            let run = run.clone();
            // Connections and requests split evenly over threads.
            let mine = (t..connections).step_by(threads).count();
            let budget = run.max_requests / threads as u64
                + u64::from((t as u64) < run.max_requests % threads as u64);
            std::thread::spawn(move || {
                let mut rt = match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(_) => return Outcome::empty(),
                };
                rt.block_on(thread_load(
                    addr,
                    request,
                    run,
                    mine,
                    rate.map(|r| r / connections as f64),
                    budget,
                    start,
                ))
            })
        })
        .collect();
    let mut total = Outcome::empty();
    for h in handles {
        if let Ok(o) = h.join() {
            total.merge(o);
        }
    }
    total
}

async fn thread_load(
    addr: SocketAddr,
    request: Vec<u8>,
    run: Run,
    connections: usize,
    per_connection_rate: Option<f64>,
    budget: u64,
    start: Instant,
) -> Outcome {
    let deadline = start + run.duration;
    let request: std::rc::Rc<[u8]> = request.into();
    let shared = std::rc::Rc::new(std::cell::Cell::new(budget));
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let request = request.clone();
            let shared = shared.clone();
            // Stagger open-loop connections across one interval.
            let offset = per_connection_rate
                .map(|r| Duration::from_secs_f64(c as f64 / connections as f64 / r))
                .unwrap_or_default();
            monoio::spawn(async move {
                connection_load(
                    addr,
                    &request,
                    start + offset,
                    deadline,
                    per_connection_rate,
                    &shared,
                )
                .await
            })
        })
        .collect();
    let mut total = Outcome::empty();
    for t in tasks {
        total.merge(t.await);
    }
    total.elapsed = start
        .elapsed()
        .min(run.duration.max(Duration::from_millis(1)) + Duration::from_secs(60));
    total
}

async fn connection_load(
    addr: SocketAddr,
    request: &[u8],
    start: Instant,
    deadline: Instant,
    rate: Option<f64>,
    budget: &std::cell::Cell<u64>,
) -> Outcome {
    let mut out = Outcome::empty();
    let now = Instant::now();
    if start > now {
        monoio::time::sleep(start - now).await;
    }
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(64 * 1024);
    let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r));
    let mut due = start;
    while budget.get() > 0 {
        budget.set(budget.get() - 1);
        if interval.is_some() {
            let now = Instant::now();
            if due > now {
                monoio::time::sleep(due - now).await;
            }
        }
        let sent_at = match interval {
            Some(_) => due,
            None => Instant::now(),
        };
        if sent_at >= deadline {
            break;
        }
        if conn.is_none() {
            conn = match TcpStream::connect_addr(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    Some(s)
                }
                Err(_) => {
                    out.errors += 1;
                    monoio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
        }
        let Some(stream) = conn.as_mut() else {
            continue;
        };
        match exchange(stream, request, &mut buf).await {
            Ok((status, first_byte)) => {
                let done = Instant::now();
                let _ = out.latency.record(nanos(done - sent_at));
                let _ = out.first_byte.record(nanos(first_byte - sent_at));
                if (200..300).contains(&status) {
                    out.ok += 1;
                } else {
                    out.errors += 1;
                }
            }
            Err(_) => {
                out.errors += 1;
                conn = None;
            }
        }
        if let Some(i) = interval {
            due += i;
        }
    }
    out.elapsed = start.elapsed();
    out
}

fn nanos(d: Duration) -> u64 {
    (d.as_nanos() as u64).clamp(1_000, 60_000_000_000)
}

/// One request and its whole answer: the status and when the first body
/// byte arrived.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, Instant)> {
    let (r, _) = stream.write_all(request.to_vec()).await;
    r?;
    buf.clear();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut head: Option<(usize, u16, Framing)> = None;
    let mut first_byte = None;
    loop {
        let (r, c) = stream.read(chunk).await;
        chunk = c;
        let n = r?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none() {
            head = parse_head(buf)?;
        }
        if let Some((body_at, status, framing)) = head {
            if buf.len() > body_at && first_byte.is_none() {
                first_byte = Some(Instant::now());
            }
            if framing.complete(&buf[body_at..]) {
                return Ok((status, first_byte.unwrap_or_else(Instant::now)));
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
}

impl Framing {
    fn complete(&self, body: &[u8]) -> bool {
        match self {
            Framing::Length(n) => body.len() >= *n,
            // The last chunk: "0\r\n\r\n" at the end of what was read.
            Framing::Chunked => body.ends_with(b"0\r\n\r\n"),
        }
    }
}

fn parse_head(buf: &[u8]) -> std::io::Result<Option<(usize, u16, Framing)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mut framing = Framing::Length(0);
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("content-length") {
            framing = Framing::Length(v.trim().parse().map_err(|_| bad())?);
        } else if k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
            framing = Framing::Chunked;
        }
    }
    Ok(Some((end + 4, status, framing)))
}

fn bad() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "bad HTTP response")
}

/// A POST with a JSON body, as bytes.
pub fn post(host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_framing() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel";
        let (at, status, framing) = parse_head(r).unwrap().unwrap();
        assert_eq!((status, framing), (200, Framing::Length(5)));
        assert!(!framing.complete(&r[at..]));
        assert!(framing.complete(b"hello"));
        let r = b"HTTP/1.1 503 x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let (at, status, framing) = parse_head(r).unwrap().unwrap();
        assert_eq!((status, framing), (503, Framing::Chunked));
        assert!(framing.complete(&r[at..]));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
