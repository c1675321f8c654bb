//! Compiled tenancy: users, teams, limits, budgets, prices and the ledger.
//! Money is integral: prices in pico-units per token, budgets in nano-units,
//! so that sums are exact and never drift.

use rkyv::{Archive, Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Tenancy {
    /// IANA name; budgets' days and months follow it.
    pub timezone: String,
    pub trusted_proxies: Vec<Cidr>,
    /// Sorted by name.
    pub users: Vec<Principal>,
    /// Sorted by name.
    pub teams: Vec<Principal>,
    /// Sorted by `model` (`provider/model` or a bare model name).
    pub prices: Vec<Price>,
    pub ledger: Ledger,
    /// Sorted by hash.
    pub admin_keys: Vec<AdminKey>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Principal {
    pub name: String,
    /// Users: index into `teams`.
    pub team: Option<u32>,
    pub limits: Limits,
    pub budgets: Budgets,
}

/// Absent (0) = unlimited.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Limits {
    pub rpm: u64,
    pub tpm: u64,
    pub concurrency: u32,
    pub per_model: Vec<ModelLimits>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ModelLimits {
    /// Exact name or `prefix*`.
    pub pattern: String,
    pub rpm: u64,
    pub tpm: u64,
    pub concurrency: u32,
}

impl ArchivedLimits {
    pub fn is_empty(&self) -> bool {
        self.rpm == 0 && self.tpm == 0 && self.concurrency == 0 && self.per_model.is_empty()
    }
}

/// Spend caps in nano-units of the currency.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Budgets {
    pub daily: Option<u64>,
    pub monthly: Option<u64>,
    pub per_model: Vec<ModelBudget>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ModelBudget {
    pub pattern: String,
    pub daily: Option<u64>,
    pub monthly: Option<u64>,
}

impl ArchivedBudgets {
    pub fn is_empty(&self) -> bool {
        self.daily.is_none() && self.monthly.is_none() && self.per_model.is_empty()
    }
}

/// Pico-units of currency per token (1 per million tokens = 1 000 000).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Price {
    pub model: String,
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub reasoning: u64,
    /// 0 = not set.
    pub max_output_tokens: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Ledger {
    /// Empty = no durable ledger.
    pub path: String,
    pub flush_interval_ms: u64,
    pub queue_capacity: u32,
    /// Empty = no shipping. Holds a password when the URL has one.
    pub postgres: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AdminKey {
    pub name: String,
    pub sha256: [u8; 32],
}

/// An IPv4 or IPv6 network; IPv4 is held as IPv4-mapped IPv6.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: [u8; 16],
    /// Prefix length over the 128-bit form.
    pub prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (one host).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (ip, len) = match text.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (text, None),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR"))?;
        let (max, offset) = match ip {
            IpAddr::V4(_) => (32u8, 96u8),
            IpAddr::V6(_) => (128, 0),
        };
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0..={max}"))?,
            None => max,
        };
        let prefix = len + offset;
        let addr = mapped(ip);
        if masked(addr, prefix) != addr {
            return Err(format!(
                "{text:?} has host bits set; did you mean {}/{len}?",
                display_prefix(masked(addr, prefix), ip.is_ipv4())
            ));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl ArchivedCidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        masked(mapped(ip), self.prefix) == self.addr
    }
}

fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(v6.octets(), |v4| {
            // `::ffff:a.b.c.d` from a dual-stack socket is the IPv4 client.
            v4.to_ipv6_mapped().octets()
        }),
    }
}

fn masked(addr: [u8; 16], prefix: u8) -> [u8; 16] {
    let bits = u128::from_be_bytes(addr);
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    };
    (bits & mask).to_be_bytes()
}

fn display_prefix(addr: [u8; 16], v4: bool) -> String {
    let v6 = std::net::Ipv6Addr::from(addr);
    match (v4, v6.to_ipv4_mapped()) {
        (true, Some(v4)) => v4.to_string(),
        _ => v6.to_string(),
    }
}

impl ArchivedTenancy {
    pub fn user(&self, index: u32) -> Option<&ArchivedPrincipal> {
        self.users.get(index as usize)
    }

    pub fn team(&self, index: u32) -> Option<&ArchivedPrincipal> {
        self.teams.get(index as usize)
    }

    /// `provider/model` first, then the bare model name.
    pub fn price(&self, provider: &str, model: &str) -> Option<&ArchivedPrice> {
        let find = |key: &str| {
            self.prices
                .binary_search_by(|p| p.model.as_str().cmp(key))
                .ok()
                .and_then(|i| self.prices.get(i))
        };
        find(&format!("{provider}/{model}")).or_else(|| find(model))
    }

    pub fn admin_key(&self, sha256: &[u8; 32]) -> Option<&ArchivedAdminKey> {
        use subtle::ConstantTimeEq;
        let i = self
            .admin_keys
            .binary_search_by(|k| k.sha256.cmp(sha256))
            .ok()?;
        let key = self.admin_keys.get(i)?;
        bool::from(key.sha256.ct_eq(sha256)).then_some(key)
    }

    pub fn trusts_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archived(c: Cidr) -> bool {
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&c).unwrap();
        let a = rkyv::access::<ArchivedCidr, rkyv::rancor::Error>(&bytes).unwrap();
        a.contains("10.1.2.3".parse().unwrap())
    }

    #[test]
    fn cidrs_match_v4_v6_and_mapped_addresses() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(archived(net));
        assert!(!archived(Cidr::parse("192.168.0.0/16").unwrap()));
        assert!(archived(Cidr::parse("10.1.2.3").unwrap()));
        assert!(archived(Cidr::parse("0.0.0.0/0").unwrap()));
        let six = Cidr::parse("2001:db8::/32").unwrap();
        let b = rkyv::to_bytes::<rkyv::rancor::Error>(&six).unwrap();
        let a = rkyv::access::<ArchivedCidr, rkyv::rancor::Error>(&b).unwrap();
        assert!(a.contains("2001:db8::1".parse().unwrap()));
        assert!(!a.contains("2001:db9::1".parse().unwrap()));
        assert!(!a.contains("10.1.2.3".parse().unwrap()));
        let v4 = Cidr::parse("127.0.0.1").unwrap();
        let b = rkyv::to_bytes::<rkyv::rancor::Error>(&v4).unwrap();
        let a = rkyv::access::<ArchivedCidr, rkyv::rancor::Error>(&b).unwrap();
        assert!(a.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!a.contains("::1".parse().unwrap()));
    }

    #[test]
    fn bad_cidrs_say_why() {
        assert!(Cidr::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("10.0.0.0/8"));
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0..=32"));
        assert!(Cidr::parse("nope").unwrap_err().contains("not an IP"));
    }
}
