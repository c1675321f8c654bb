//! What a client can hold before it has proven anything: connections (over
//! all workers and per source address) and request bodies in memory. Each
//! is an atomic count with a permit that gives it back on drop, so no path
//! (an error, a panic, a client gone) can leak one. Refusals and client
//! timeouts are counted for `/metrics`.

use dashmap::DashMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Why the gateway stopped waiting for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTimeout {
    /// The request head did not arrive in time (slow or silent client).
    Header,
    /// The request body did not arrive in time.
    Body,
    /// A kept-alive connection sent no new request.
    Idle,
    /// The client stopped taking the response.
    Write,
}

/// Why a connection or request was refused at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Connections,
    ConnectionsPerIp,
    InFlight,
    BufferedBytes,
}

#[derive(Default)]
pub struct Edge {
    open: AtomicU64,
    per_ip: DashMap<IpAddr, u64>,
    buffered: AtomicU64,
    refused: [AtomicU64; 4],
    timeouts: [AtomicU64; 4],
}

/// One open client connection; dropping it closes the account.
pub struct ConnectionPermit {
    edge: Arc<Edge>,
    ip: Option<IpAddr>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.edge.open.fetch_sub(1, Relaxed);
        if let Some(ip) = self.ip {
            // Remove the entry with its last connection: the map holds
            // only addresses that are connected now.
            let gone = match self.edge.per_ip.get_mut(&ip) {
                Some(mut n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => false,
            };
            if gone {
                self.edge.per_ip.remove_if(&ip, |_, n| *n == 0);
            }
        }
    }
}

/// Request-body bytes held in memory; dropping it gives them back.
pub struct BodyReservation {
    edge: Arc<Edge>,
    bytes: u64,
}

impl BodyReservation {
    /// Hold `more` bytes too, within `max` for the whole gateway.
    pub fn grow(&mut self, more: u64, max: u64) -> Result<(), Refusal> {
        self.edge.take_buffered(more, max)?;
        self.bytes = self.bytes.saturating_add(more);
        Ok(())
    }
}

impl Drop for BodyReservation {
    fn drop(&mut self) {
        self.edge.buffered.fetch_sub(self.bytes, Relaxed);
    }
}

impl Edge {
    /// Admit a new connection from `ip` within `max` open connections
    /// and `max_per_ip` from one address.
    pub fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        max: u64,
        max_per_ip: u64,
    ) -> Result<ConnectionPermit, Refusal> {
        if self.open.fetch_add(1, Relaxed) >= max {
            self.open.fetch_sub(1, Relaxed);
            return Err(self.refuse(Refusal::Connections));
        }
        if let Some(ip) = ip {
            let mut n = self.per_ip.entry(ip).or_insert(0);
            if *n >= max_per_ip {
                drop(n);
                self.open.fetch_sub(1, Relaxed);
                return Err(self.refuse(Refusal::ConnectionsPerIp));
            }
            *n += 1;
        }
        Ok(ConnectionPermit {
            edge: self.clone(),
            ip,
        })
    }

    /// An empty body reservation, to [`BodyReservation::grow`] as bytes
    /// arrive.
    pub fn body(self: &Arc<Self>) -> BodyReservation {
        BodyReservation {
            edge: self.clone(),
            bytes: 0,
        }
    }

    fn take_buffered(&self, n: u64, max: u64) -> Result<(), Refusal> {
        let before = self.buffered.fetch_add(n, Relaxed);
        if before.saturating_add(n) > max {
            self.buffered.fetch_sub(n, Relaxed);
            return Err(self.refuse(Refusal::BufferedBytes));
        }
        Ok(())
    }

    /// Count a refusal and hand it back.
    pub fn refuse(&self, why: Refusal) -> Refusal {
        self.refused[why as usize].fetch_add(1, Relaxed);
        why
    }

    pub fn timed_out(&self, phase: ClientTimeout) {
        self.timeouts[phase as usize].fetch_add(1, Relaxed);
    }

    pub fn open_connections(&self) -> u64 {
        self.open.load(Relaxed)
    }

    pub fn buffered_bytes(&self) -> u64 {
        self.buffered.load(Relaxed)
    }

    /// Prometheus families for connections, refusals and timeouts.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP switchyard_client_connections Open client connections.\n# TYPE switchyard_client_connections gauge\nswitchyard_client_connections {}",
            self.open_connections()
        );
        let _ = writeln!(
            out,
            "# HELP switchyard_buffered_body_bytes Request-body bytes held in memory now.\n# TYPE switchyard_buffered_body_bytes gauge\nswitchyard_buffered_body_bytes {}",
            self.buffered_bytes()
        );
        let _ = writeln!(out, "# HELP switchyard_edge_refusals_total Connections and requests refused at the edge, by the bound that refused them.\n# TYPE switchyard_edge_refusals_total counter");
        for (i, reason) in [
            "max_connections",
            "max_connections_per_ip",
            "max_in_flight",
            "max_buffered_bytes",
        ]
        .iter()
        .enumerate()
        {
            let n = self.refused[i].load(Relaxed);
            let _ = writeln!(
                out,
                "switchyard_edge_refusals_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP switchyard_client_timeouts_total Client connections cut off, by what the client was too slow at.\n# TYPE switchyard_client_timeouts_total counter");
        for (i, phase) in ["header", "body", "idle", "write"].iter().enumerate() {
            let n = self.timeouts[i].load(Relaxed);
            let _ = writeln!(
                out,
                "switchyard_client_timeouts_total{{phase=\"{phase}\"}} {n}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_overall_and_per_address_and_given_back() {
        let edge = Arc::new(Edge::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = edge.admit(Some(a), 3, 2).unwrap();
        let second = edge.admit(Some(a), 3, 2).unwrap();
        assert_eq!(
            edge.admit(Some(a), 3, 2).err(),
            Some(Refusal::ConnectionsPerIp)
        );
        let third = edge.admit(Some(b), 3, 2).unwrap();
        assert_eq!(edge.admit(Some(b), 3, 2).err(), Some(Refusal::Connections));
        assert_eq!(edge.open_connections(), 3);
        drop((first, second, third));
        assert_eq!(edge.open_connections(), 0);
        assert!(
            edge.per_ip.is_empty(),
            "addresses without connections are forgotten"
        );
        let mut text = String::new();
        edge.render(&mut text);
        assert!(
            text.contains("switchyard_edge_refusals_total{reason=\"max_connections_per_ip\"} 1")
        );
        assert!(text.contains("switchyard_edge_refusals_total{reason=\"max_connections\"} 1"));
    }

    #[test]
    fn body_bytes_are_bounded_across_requests_and_returned_on_drop() {
        let edge = Arc::new(Edge::default());
        let mut one = edge.body();
        one.grow(600, 1000).unwrap();
        let mut two = edge.body();
        assert_eq!(two.grow(600, 1000), Err(Refusal::BufferedBytes));
        two.grow(400, 1000).unwrap();
        assert_eq!(edge.buffered_bytes(), 1000);
        drop(one);
        two.grow(600, 1000).unwrap();
        drop(two);
        assert_eq!(edge.buffered_bytes(), 0);
    }
}
