//! The listening side: one accept loop per worker thread, each serving the
//! connections it accepts on its own single-threaded runtime.
//!
//! Pingora's listening service runs one accept loop and spawns every
//! connection on a *random* worker (`pingora_runtime::current_handle`),
//! but the socket stays registered with the reactor of the thread that
//! accepted it. About half the connections then pay a cross-thread wake
//! per request: the accepting thread's reactor sees the bytes arrive and
//! must wake the worker that owns the task (an eventfd write, a second
//! thread woken). Here each worker is its own Pingora service with one
//! thread, polling its own duplicate of the listening socket, so a
//! connection lives on exactly one thread from accept to close: the
//! thread-per-core, shared-nothing shape the rest of the engine assumes.
//!
//! Each worker has its own listening socket on the same address
//! (`SO_REUSEPORT`): the kernel spreads new connections over the workers
//! by a hash of their addresses, evenly, without waking every worker for
//! every connection. (One socket shared by all workers lets whichever
//! wakes first take a whole burst of connections: 64 connections opened
//! at once ended up lopsided enough to cost a fifth of the throughput.)

use crate::app::{Front, Gateway, Role};
use crate::edge::ClientTimeout;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::listener::Listener;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::Stream;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ListenFds;
use pingora::server::ShutdownWatch;
use pingora::services::Service;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Connections waiting to be accepted, per listening socket.
const BACKLOG: i32 = 4096;

/// Binds one listening socket per worker, all on the same address:
/// non-blocking, `SO_REUSEADDR` (a restart does not wait out TIME_WAIT),
/// `SO_REUSEPORT`, a deep backlog. Registered with no runtime yet; each
/// worker registers its own. A port another process listens on is
/// refused, even one that set `SO_REUSEPORT` too.
pub fn bind(addr: &str, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        // `SO_REUSEPORT` would let a second gateway (same user) join the
        // port and quietly take half the connections. A plain socket
        // cannot share it with anyone: if it binds, the port is ours. It
        // also resolves port 0 to the port every worker then joins.
        let actual = match std::net::TcpListener::bind(a).and_then(|p| p.local_addr()) {
            Ok(actual) => actual,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        return (0..workers.max(1)).map(|_| bind_one(actual)).collect();
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One worker: one thread, one runtime, one accept loop.
pub struct WorkerService {
    name: String,
    front: Arc<Front>,
    socket: Option<std::net::TcpListener>,
    /// HTTPS: every connection's TLS handshake.
    tls: Option<Arc<Acceptor>>,
}

impl WorkerService {
    /// One worker per listening socket, all serving `role`.
    pub fn for_sockets(
        sockets: Vec<std::net::TcpListener>,
        gateway: &Arc<Gateway>,
        role: Role,
        tls: Option<Arc<Acceptor>>,
    ) -> Vec<WorkerService> {
        let front = Arc::new(Front::new(gateway.clone(), role));
        let prefix = match role {
            Role::Client => "w",
            Role::Admin => "admin",
        };
        sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| WorkerService {
                name: format!("switchyard-{prefix}{i}"),
                front: front.clone(),
                socket: Some(socket),
                tls: tls.clone(),
            })
            .collect()
    }
}

#[async_trait]
impl Service for WorkerService {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(socket) {
            Ok(l) => Listener::from(l),
            Err(e) => {
                tracing::error!(worker = %self.name, error = %e, "cannot poll the listening socket");
                return;
            }
        };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                changed = shutdown.changed() => match changed {
                    // The first change may be the initial value.
                    Ok(()) if !*shutdown.borrow() => continue,
                    _ => break,
                },
            };
            match accepted {
                Ok(mut stream) => {
                    let gw = &self.front.gateway;
                    let limits = ConnLimits::now(gw);
                    let ip = stream
                        .get_socket_digest()
                        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
                    // Over a cap: close at once. The client learns nothing
                    // it could not learn from a full backlog, and the
                    // descriptor is back before anything was spent on it.
                    let Ok(permit) = gw.edge.admit(ip, limits.max, limits.per_ip) else {
                        continue;
                    };
                    if let Err(e) = stream.set_nodelay() {
                        tracing::debug!(error = %e, "TCP_NODELAY not set");
                    }
                    let (front, tls) = (self.front.clone(), self.tls.clone());
                    let shutdown = shutdown.clone();
                    // This worker's runtime has one thread: the connection
                    // stays here.
                    tokio::spawn(async move {
                        serve(front, tls, stream, limits, &shutdown).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::error!(worker = %self.name, error = %e, "accept failed");
                    // Out of descriptors: give others time to close theirs
                    // rather than spin on the same error.
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        tracing::debug!(worker = %self.name, "stopped accepting");
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}

/// The listener's bounds a new connection gets, from the policy in force
/// when it was accepted.
struct ConnLimits {
    max: u64,
    per_ip: u64,
    write_timeout: Duration,
    header_timeout: Duration,
}

impl ConnLimits {
    fn now(gw: &Gateway) -> ConnLimits {
        let active = gw.store.current();
        let l = &active.snapshot.policy().listener.limits;
        ConnLimits {
            max: u64::from(l.max_connections.to_native()),
            per_ip: u64::from(l.max_connections_per_ip.to_native()),
            write_timeout: Duration::from_millis(l.write_timeout_ms.to_native()),
            header_timeout: Duration::from_millis(l.header_timeout_ms.to_native()),
        }
    }
}

/// One accepted connection, to its end: the bounded [`Downstream`], TLS
/// when the listener has it, then Pingora's HTTP loop.
async fn serve(
    front: Arc<Front>,
    tls: Option<Arc<Acceptor>>,
    stream: L4Stream,
    limits: ConnLimits,
    shutdown: &ShutdownWatch,
) {
    let edge = front.gateway.edge.clone();
    let downstream = Downstream::new(stream, limits.write_timeout);
    let timed_out = downstream.write_timed_out.clone();
    // TLS runs over the bounded, buffered connection, so its records obey
    // the write timeout too; the handshake is part of the head's time.
    let stream: Stream = match tls {
        None => Box::new(downstream),
        Some(acceptor) => {
            let handshake = acceptor.tls_handshake(downstream);
            match pingora_timeout::timeout(limits.header_timeout, handshake).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    edge.timed_out(ClientTimeout::Header);
                    return;
                }
            }
        }
    };
    // HTTP/1 keep-alive is looped inside `process_new`.
    let _ = front.process_new(stream, shutdown).await;
    if timed_out.load(Ordering::Relaxed) {
        edge.timed_out(ClientTimeout::Write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_listens_on_the_one_port_chosen() {
        let sockets = bind("127.0.0.1:0", 3).unwrap();
        assert_eq!(sockets.len(), 3);
        let port = sockets[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        for s in &sockets {
            assert_eq!(s.local_addr().unwrap().port(), port);
        }
        // Each accepts connections: the kernel spreads them, so connect
        // until every socket has one (bounded: the hash is per 4-tuple).
        let mut seen = [false; 3];
        for _ in 0..200 {
            let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_millis(1));
            for (i, s) in sockets.iter().enumerate() {
                if s.accept().is_ok() {
                    seen[i] = true;
                }
            }
            if seen.iter().all(|s| *s) {
                return;
            }
        }
        panic!("not every socket got a connection: {seen:?}");
    }

    #[test]
    fn a_held_flush_sends_nothing_until_the_next_one() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut server_side, _) = listener.accept().await.unwrap();
            let mut d = Downstream::new(L4Stream::from(client), Duration::from_secs(5));
            d.write_all(b"head;").await.unwrap();
            d.hold_flush.store(true, Ordering::Relaxed);
            d.flush().await.unwrap();
            let mut buf = [0u8; 64];
            let early =
                tokio::time::timeout(Duration::from_millis(50), server_side.read(&mut buf)).await;
            assert!(early.is_err(), "the held flush sent something");
            d.write_all(b"first event").await.unwrap();
            d.flush().await.unwrap();
            let mut got = Vec::new();
            while got.len() < 16 {
                let n = server_side.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"head;first event");
        });
    }

    #[test]
    fn a_second_gateway_on_the_same_port_is_refused() {
        let first = bind("127.0.0.1:0", 2).unwrap();
        let addr = first[0].local_addr().unwrap().to_string();
        let err = bind(&addr, 2).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        // Once the first one is gone, the port is free again.
        drop(first);
        assert_eq!(bind(&addr, 2).unwrap().len(), 2);
    }

    #[test]
    fn a_port_in_use_by_a_plain_listener_is_refused() {
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = plain.local_addr().unwrap().to_string();
        let err = bind(&addr, 2).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    }
}

/// A client connection with a write buffer.
///
/// Pingora's own listener gives each connection a small write buffer
/// (`set_buffer`, crate-private), so a response's head and a short body
/// leave in one packet; a bare `Stream` writes each straight through, and
/// the client wakes for the head and again for the body. Pingora's HTTP
/// session flushes wherever a response must go out, as it must with its
/// own buffer.
///
/// It also bounds every write: a write (or flush) the client does not take
/// within `write_timeout` fails, as if the client had gone. A client that
/// stops reading then releases everything its request holds (the
/// upstream connection, the key's concurrency slot, rate-limit permits,
/// the budget reservation) instead of holding them for ever.
#[derive(Debug)]
pub struct Downstream {
    io: tokio::io::BufWriter<L4Stream>,
    /// Skip the next flush: see [`hold_header_flush`].
    hold_flush: AtomicBool,
    write_timeout: Duration,
    /// Armed while a write waits on the client; `None` when writes flow.
    blocked: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set when a write timed out, for the connection's owner to count.
    pub write_timed_out: Arc<AtomicBool>,
}

/// Keeps a streamed response's head in the buffer until the first chunk
/// is written behind it.
///
/// Pingora flushes the head of every response without a length on its own
/// (a live stream's client should see it early). The relay writes the head
/// only once the provider's first chunk is in hand and writes that chunk
/// right after, so the separate packet is one more send and one more
/// wake-up of the client before its first token, for nothing. Call it only
/// for a head without a length (one Pingora flushes) and when a body write
/// follows at once: that write's own flush sends both.
pub fn hold_header_flush(session: &ServerSession) {
    if let Some(d) = session
        .stream()
        .and_then(|s| (**s).as_any().downcast_ref::<Downstream>())
    {
        d.hold_flush.store(true, Ordering::Relaxed);
    }
}

/// One Ethernet-sized segment, as Pingora's own default.
const WRITE_BUFFER: usize = 1460;

impl Downstream {
    fn new(stream: L4Stream, write_timeout: Duration) -> Self {
        Downstream {
            io: tokio::io::BufWriter::with_capacity(WRITE_BUFFER, stream),
            hold_flush: AtomicBool::new(false),
            write_timeout,
            blocked: None,
            write_timed_out: Arc::default(),
        }
    }

    /// Pass a write's result through, failing it once the client has not
    /// taken anything for `write_timeout`.
    fn bound<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.blocked = None;
            return polled;
        }
        let timeout = self.write_timeout;
        let sleep = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.blocked = None;
                self.write_timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client took no response bytes within the write timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncRead for Downstream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Downstream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.bound(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.bound(cx, polled)
    }

    // A chunk's size line, data and CRLF then go out in one writev.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.hold_flush.swap(false, Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.bound(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Downstream {
    async fn shutdown(&mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.io.shutdown().await;
    }
}

impl UniqueID for Downstream {
    fn id(&self) -> UniqueIDType {
        self.io.get_ref().id()
    }
}

impl Ssl for Downstream {}

impl GetTimingDigest for Downstream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.io.get_ref().get_timing_digest()
    }
}

impl GetProxyDigest for Downstream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.io.get_ref().get_proxy_digest()
    }
}

impl GetSocketDigest for Downstream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.io.get_ref().get_socket_digest()
    }
}

#[async_trait]
impl Peek for Downstream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.io.get_mut().try_peek(buf).await
    }
}
