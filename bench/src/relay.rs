//! The floor under any proxy on this machine: a byte relay in the
//! gateway's own shape (one single-threaded Tokio runtime per worker,
//! epoll, one listening socket each from the engine's own binder) that
//! copies bytes between the client and the mock and does no HTTP at all.
//! What it adds over going direct is the cost of the two extra loopback
//! hops and the thread wake-ups they take; what the gateway adds over the
//! relay is the gateway's own work.

use std::net::SocketAddr;

/// Starts the relay on `workers` threads in front of `upstream`; they run
/// until the process exits.
pub fn start(workers: usize, upstream: SocketAddr) -> std::io::Result<SocketAddr> {
    let sockets = engine::listen::bind("127.0.0.1:0", workers)?;
    let addr = sockets[0].local_addr()?;
    for socket in sockets {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || runtime.block_on(accept_loop(socket, upstream)))?;
    }
    Ok(addr)
}

async fn accept_loop(socket: std::net::TcpListener, upstream: SocketAddr) {
    let Ok(listener) = tokio::net::TcpListener::from_std(socket) else {
        return;
    };
    while let Ok((mut client, _)) = listener.accept().await {
        tokio::spawn(async move {
            let Ok(mut provider) = tokio::net::TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = provider.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut provider).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::fastmock::{self, Behaviour};

    #[test]
    fn relays_requests_and_answers_unchanged() {
        let mock = fastmock::start(
            1,
            Behaviour {
                stream_chunks: 3,
                fail: false,
            },
        )
        .unwrap();
        let relay = super::start(2, mock).unwrap();
        let mut via = crate::http::Connection::open(&relay.to_string()).unwrap();
        let mut direct = crate::http::Connection::open(&mock.to_string()).unwrap();
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        for _ in 0..3 {
            let a = via.post("/v1/chat/completions", &[], body).unwrap();
            let b = direct.post("/v1/chat/completions", &[], body).unwrap();
            assert_eq!(a.status, 200);
            assert_eq!(a.body, b.body);
        }
    }
}
