//! The load generator: thread-per-core, each thread its own monoio runtime
//! (io_uring where the kernel allows, else epoll) driving its share of the
//! keep-alive connections. Closed loop (each connection sends as soon as
//! its previous answer ends) or open loop at a fixed rate with
//! coordinated-omission correction: a request that is due while its
//! connection still waits on the previous answer is measured from when it
//! was *due*, not from when the backed-up connection got round to it.
//!
//! A request whose connection was idle is measured from when it was sent:
//! monoio's timers tick in whole milliseconds, so a sleeping connection
//! wakes up to 1 ms after its due time, and charging that to the server
//! would bury a 100 µs difference under the generator's own lateness.
//!
//! Open-loop runs stop at their deadline even when the server fell behind;
//! the requests that were due but never sent are counted as `unsent`, so a
//! saturated server shows as such instead of stretching the run.

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
    /// Open loop: requests due before the deadline that were never sent
    /// because the server had not answered the previous ones.
    pub unsent: u64,
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
        self.unsent += other.unsent;
        self.elapsed += other.elapsed;
    }

    fn empty() -> Outcome {
        Outcome {
            latency: histogram(),
            first_byte: histogram(),
            ok: 0,
            errors: 0,
            unsent: 0,
            elapsed: Duration::ZERO,
        }
    }

    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether an open-loop run left more than 1% of its requests unsent:
    /// the server could not keep the rate, and its latencies are those of
    /// a queue that kept growing.
    pub fn saturated(&self) -> bool {
        self.unsent * 100 > self.ok + self.errors + self.unsent
    }

    /// Add a run that ran at the same time (the elapsed time is the
    /// longer of the two).
    pub fn merge(&mut self, other: Outcome) {
        let _ = self.latency.add(&other.latency);
        let _ = self.first_byte.add(&other.first_byte);
        self.ok += other.ok;
        self.errors += other.errors;
        self.unsent += other.unsent;
        self.elapsed = self.elapsed.max(other.elapsed);
    }
}

/// How long one request may take before it counts as an error and its
/// connection is dropped.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

pub fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid bounds")
}

/// Builds the bytes of request number `n` (distinct per request of a run,
/// for loads that must not hit a cache).
pub type RequestMaker = std::sync::Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// The same request every time.
pub fn fixed(request: Vec<u8>) -> RequestMaker {
    std::sync::Arc::new(move |_| request.clone())
}

/// [`drive`] several servers at once, the load split evenly among them
/// (connections, rate and client threads), each sent what `make` builds for
/// it.
pub fn drive_split(
    addrs: &[SocketAddr],
    make: impl Fn(SocketAddr) -> RequestMaker,
    run: &Run,
) -> Outcome {
    let n = addrs.len().max(1);
    let mode = match run.mode {
        Mode::Closed { connections } => Mode::Closed {
            connections: (connections / n).max(1),
        },
        Mode::Open { rate, connections } => Mode::Open {
            rate: rate / n as f64,
            connections: (connections / n).max(1),
        },
    };
    let part = Run {
        mode,
        duration: run.duration,
        max_requests: run.max_requests / n as u64,
        threads: (run.threads / n).max(1),
    };
    let handles: Vec<_> = addrs
        .iter()
        .map(|a| {
            let (a, m, r) = (*a, make(*a), part.clone());
            std::thread::spawn(move || drive(a, &m, &r))
        })
        .collect();
    let mut out = Outcome::empty();
    for h in handles {
        if let Ok(o) = h.join() {
            out.merge(o);
        }
    }
    out
}

/// Send requests from `make` (whole HTTP/1.1 requests) to `addr` as `run`
/// says.
pub fn drive(addr: SocketAddr, make: &RequestMaker, run: &Run) -> Outcome {
    let (connections, rate) = match run.mode {
        Mode::Closed { connections } => (connections.max(1), None),
        Mode::Open { rate, connections } => (connections.max(1), Some(rate)),
    };
    let threads = run.threads.clamp(1, connections);
    let start = Instant::now() + Duration::from_millis(20);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let job = ThreadJob {
                addr,
                make: make.clone(),
                deadline: start + run.duration,
                start,
                // Connections and requests split evenly over threads.
                connections: (t..connections).step_by(threads).count(),
                per_connection_rate: rate.map(|r| r / connections as f64),
                budget: run.max_requests / threads as u64
                    + u64::from((t as u64) < run.max_requests % threads as u64),
                thread: t,
            };
            std::thread::spawn(move || {
                match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()
                {
                    Ok(mut rt) => rt.block_on(job.run()),
                    Err(_) => Outcome::empty(),
                }
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

struct ThreadJob {
    addr: SocketAddr,
    make: RequestMaker,
    start: Instant,
    deadline: Instant,
    connections: usize,
    per_connection_rate: Option<f64>,
    budget: u64,
    thread: usize,
}

impl ThreadJob {
    async fn run(self) -> Outcome {
        let budget = std::rc::Rc::new(std::cell::Cell::new(self.budget));
        let n = self.connections;
        let tasks: Vec<_> = (0..n)
            .map(|c| {
                let conn = Connection {
                    addr: self.addr,
                    make: self.make.clone(),
                    // Distinct request numbers per thread and connection.
                    first: ((self.thread as u64) << 40) | ((c as u64) << 24),
                    // Stagger open-loop connections across one interval.
                    start: self.start
                        + self
                            .per_connection_rate
                            .map(|r| Duration::from_secs_f64(c as f64 / n as f64 / r))
                            .unwrap_or_default(),
                    deadline: self.deadline,
                    interval: self
                        .per_connection_rate
                        .map(|r| Duration::from_secs_f64(1.0 / r)),
                    budget: budget.clone(),
                };
                monoio::spawn(conn.run())
            })
            .collect();
        let mut total = Outcome::empty();
        for t in tasks {
            total.merge(t.await);
        }
        total.elapsed = self.start.elapsed();
        total
    }
}

struct Connection {
    addr: SocketAddr,
    make: RequestMaker,
    first: u64,
    start: Instant,
    deadline: Instant,
    interval: Option<Duration>,
    budget: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Connection {
    async fn run(self) -> Outcome {
        let mut out = Outcome::empty();
        sleep_until(self.start).await;
        let mut conn: Option<TcpStream> = None;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut due = self.start;
        while self.budget.get() > 0 {
            self.budget.set(self.budget.get() - 1);
            if due >= self.deadline {
                break;
            }
            let sent_at = match self.interval {
                Some(interval) => {
                    let now = Instant::now();
                    if now >= self.deadline {
                        // Fell behind: what was still due is not sent.
                        let behind = (self.deadline - due).as_secs_f64();
                        out.unsent += (behind / interval.as_secs_f64()).ceil() as u64;
                        break;
                    }
                    if now > due {
                        // Still busy with the previous answer when this one
                        // was due: the server's delay, measured from `due`.
                        due
                    } else {
                        sleep_until(due).await;
                        Instant::now()
                    }
                }
                None => {
                    let now = Instant::now();
                    if now >= self.deadline {
                        break;
                    }
                    now
                }
            };
            if conn.is_none() {
                match TcpStream::connect_addr(self.addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        conn = Some(s);
                    }
                    Err(_) => {
                        out.errors += 1;
                        monoio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
            let Some(stream) = conn.as_mut() else {
                continue;
            };
            let request = (self.make)(self.first + out.ok + out.errors);
            // A stuck server must not hang the run.
            let answer =
                monoio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, request, &mut buf))
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
            match answer {
                Ok((status, first_byte)) => {
                    let _ = out.latency.record(nanos(Instant::now() - sent_at));
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
            if let Some(i) = self.interval {
                due += i;
            }
        }
        out.elapsed = self.start.elapsed();
        out
    }
}

async fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        monoio::time::sleep(at - now).await;
    }
}

fn nanos(d: Duration) -> u64 {
    (d.as_nanos() as u64).clamp(1_000, 60_000_000_000)
}

/// One request and its whole answer: the status and when the first body
/// byte arrived.
async fn exchange(
    stream: &mut TcpStream,
    request: Vec<u8>,
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, Instant)> {
    let (r, _) = stream.write_all(request).await;
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
