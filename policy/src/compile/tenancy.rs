//! Tenancy: users, teams, limits, budgets, prices, the ledger and admin keys.

use super::Checker;
use crate::keys;
use crate::model::*;
use crate::spec::*;
use std::collections::BTreeMap;

/// Names of users and teams, for keys to refer to.
pub(super) struct Directory {
    pub users: BTreeMap<String, u32>,
    pub teams: BTreeMap<String, u32>,
    pub user_team: Vec<Option<u32>>,
}

impl Checker<'_> {
    pub(super) fn tenancy(
        &mut self,
        t: TenancySpec,
        users: BTreeMap<String, PrincipalSpec>,
        teams: BTreeMap<String, PrincipalSpec>,
        prices: BTreeMap<String, PriceSpec>,
        usage: UsageSpec,
        admin_keys: Vec<AdminKeySpec>,
    ) -> (Tenancy, Directory) {
        let timezone = t.timezone.unwrap_or_else(|| "UTC".into());
        if jiff::tz::TimeZone::get(&timezone).is_err() {
            self.error(
                "tenancy.timezone",
                format!("unknown time zone {timezone:?}: expected an IANA name such as `UTC` or `Europe/Berlin`"),
            );
        }
        let trusted_proxies = t
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.cidr(&format!("tenancy.trusted_proxies[{i}]"), c))
            .collect();
        let team_index: BTreeMap<String, u32> = teams
            .keys()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        let teams: Vec<Principal> = teams
            .into_iter()
            .map(|(name, p)| {
                let at = format!("teams.{name}");
                if p.team.is_some() {
                    self.error(&format!("{at}.team"), "a team cannot belong to a team");
                }
                self.principal(&at, name, None, p)
            })
            .collect();
        let mut user_team = Vec::new();
        let users: Vec<Principal> = users
            .into_iter()
            .map(|(name, p)| {
                let at = format!("users.{name}");
                let team = p
                    .team
                    .as_deref()
                    .and_then(|t| self.lookup(&format!("{at}.team"), "team", t, &team_index));
                user_team.push(team);
                self.principal(&at, name, team, p)
            })
            .collect();
        let user_index = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i as u32))
            .collect();
        let prices = prices
            .into_iter()
            .map(|(model, p)| self.price(model, p))
            .collect();
        let ledger = self.ledger(usage);
        let admin_keys = self.admin_keys(admin_keys);
        let tenancy = Tenancy {
            timezone,
            trusted_proxies,
            users,
            teams,
            prices,
            ledger,
            admin_keys,
        };
        let dir = Directory {
            users: user_index,
            teams: team_index,
            user_team,
        };
        (tenancy, dir)
    }

    pub(super) fn lookup(
        &mut self,
        at: &str,
        what: &str,
        name: &str,
        index: &BTreeMap<String, u32>,
    ) -> Option<u32> {
        let found = index.get(name).copied();
        if found.is_none() {
            let known: Vec<&str> = index.keys().map(String::as_str).collect();
            self.error(
                at,
                format!("unknown {what} {name:?}: declare it under `{what}s:` (known: {known:?})"),
            );
        }
        found
    }

    pub(super) fn cidr(&mut self, at: &str, text: &str) -> Option<Cidr> {
        match Cidr::parse(text) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(at, e);
                None
            }
        }
    }

    fn principal(
        &mut self,
        at: &str,
        name: String,
        team: Option<u32>,
        p: PrincipalSpec,
    ) -> Principal {
        Principal {
            limits: self.limits(&format!("{at}.limits"), p.limits),
            budgets: self.budgets(&format!("{at}.budgets"), p.budgets),
            name,
            team,
        }
    }

    pub(super) fn limits(&mut self, at: &str, l: LimitsSpec) -> Limits {
        let rpm = self.positive(&format!("{at}.rpm"), l.rpm);
        let tpm = self.positive(&format!("{at}.tpm"), l.tpm);
        let concurrency =
            self.positive(&format!("{at}.concurrency"), l.concurrency.map(u64::from)) as u32;
        let per_model = l
            .per_model
            .into_iter()
            .map(|(pattern, m)| {
                let mat = format!("{at}.per_model.{pattern}");
                if m.rpm.is_none() && m.tpm.is_none() && m.concurrency.is_none() {
                    self.error(&mat, "set at least one of `rpm`, `tpm` or `concurrency`");
                }
                ModelLimits {
                    rpm: self.positive(&format!("{mat}.rpm"), m.rpm),
                    tpm: self.positive(&format!("{mat}.tpm"), m.tpm),
                    concurrency: self
                        .positive(&format!("{mat}.concurrency"), m.concurrency.map(u64::from))
                        as u32,
                    pattern,
                }
            })
            .collect();
        Limits {
            rpm,
            tpm,
            concurrency,
            per_model,
        }
    }

    fn positive(&mut self, at: &str, v: Option<u64>) -> u64 {
        match v {
            Some(0) => {
                self.error(at, "must be at least 1 (leave it out for no limit)");
                0
            }
            Some(n) => n,
            None => 0,
        }
    }

    pub(super) fn budgets(&mut self, at: &str, b: BudgetsSpec) -> Budgets {
        let per_model = b
            .per_model
            .into_iter()
            .map(|(pattern, c)| {
                let mat = format!("{at}.per_model.{pattern}");
                if c.daily.is_none() && c.monthly.is_none() {
                    self.error(&mat, "set `daily`, `monthly` or both");
                }
                ModelBudget {
                    daily: self.money(&format!("{mat}.daily"), c.daily),
                    monthly: self.money(&format!("{mat}.monthly"), c.monthly),
                    pattern,
                }
            })
            .collect();
        Budgets {
            daily: self.money(&format!("{at}.daily"), b.daily),
            monthly: self.money(&format!("{at}.monthly"), b.monthly),
            per_model,
        }
    }

    /// An amount of currency → nano-units.
    fn money(&mut self, at: &str, v: Option<f64>) -> Option<u64> {
        let v = v?;
        if !v.is_finite() || !(0.0..=1e9).contains(&v) {
            self.error(at, "expected an amount between 0 and 1 000 000 000");
            return None;
        }
        Some((v * 1e9).round() as u64)
    }

    /// Currency per million tokens → pico-units per token, exactly.
    fn per_token(&mut self, at: &str, v: f64) -> u64 {
        if !v.is_finite() || !(0.0..=1e6).contains(&v) {
            self.error(
                at,
                "expected a price per million tokens between 0 and 1 000 000",
            );
            return 0;
        }
        let pico = v * 1e6;
        if (pico - pico.round()).abs() > 1e-3 {
            self.error(
                at,
                "prices are exact to 6 decimal places (per million tokens)",
            );
        }
        pico.round() as u64
    }

    fn price(&mut self, model: String, p: PriceSpec) -> Price {
        let at = format!("prices.{model}");
        let input = self.per_token(&format!("{at}.input"), p.input);
        let output = self.per_token(&format!("{at}.output"), p.output);
        let mut opt = |field: &str, v: Option<f64>, default: u64| match v {
            Some(v) => self.per_token(&format!("{at}.{field}"), v),
            None => default,
        };
        Price {
            cached_input: opt("cached_input", p.cached_input, input),
            cache_write: opt("cache_write", p.cache_write, input),
            reasoning: opt("reasoning", p.reasoning, output),
            input,
            output,
            max_output_tokens: p.max_output_tokens.unwrap_or(0),
            model,
        }
    }

    fn ledger(&mut self, u: UsageSpec) -> Ledger {
        let path = self.expand("usage.ledger", &u.ledger).unwrap_or_default();
        if u.flush_interval_ms == 0 || u.flush_interval_ms > 60_000 {
            self.error("usage.flush_interval_ms", "expected 1..=60000 milliseconds");
        }
        if u.queue_capacity < 16 {
            self.error("usage.queue_capacity", "expected at least 16 records");
        }
        let postgres = match &u.postgres {
            Some(raw) => self.expand("usage.postgres", raw).unwrap_or_default(),
            None => String::new(),
        };
        if u.postgres.is_some() {
            let scheme = postgres.split("://").next().unwrap_or("");
            if !postgres.contains("://") || !matches!(scheme, "postgres" | "postgresql") {
                self.error(
                    "usage.postgres",
                    "expected a postgres://user:password@host:port/database URL",
                );
            }
            if path.is_empty() {
                self.error(
                    "usage.postgres",
                    "needs usage.ledger: the local ledger is the spool while PostgreSQL is unreachable",
                );
            }
        }
        Ledger {
            path,
            flush_interval_ms: u.flush_interval_ms,
            queue_capacity: u.queue_capacity,
            postgres,
        }
    }

    fn admin_keys(&mut self, specs: Vec<AdminKeySpec>) -> Vec<AdminKey> {
        let mut out: Vec<AdminKey> = Vec::new();
        for (i, k) in specs.into_iter().enumerate() {
            let at = format!("admin_keys[{i}]");
            if let Some(sha256) = self.key_hash(&at, k.key.as_deref(), k.key_sha256.as_deref()) {
                if out.iter().any(|o| o.sha256 == sha256) {
                    self.error(&at, "the same admin key is listed twice");
                    continue;
                }
                out.push(AdminKey {
                    name: k.name,
                    sha256,
                });
            }
        }
        out.sort_by_key(|k| k.sha256);
        out
    }

    /// The SHA-256 of a key given as `key` (hashed here) or `key_sha256`.
    pub(super) fn key_hash(
        &mut self,
        at: &str,
        key: Option<&str>,
        key_sha256: Option<&str>,
    ) -> Option<[u8; 32]> {
        match (key, key_sha256) {
            (Some(raw), None) => {
                let kp = format!("{at}.key");
                match self.expand(&kp, raw) {
                    Some(key) if key.len() >= 16 => Some(keys::sha256(&key)),
                    Some(_) => {
                        self.error(&kp, "keys must be at least 16 characters (mint one with `policyc mint-key`)");
                        None
                    }
                    None => None,
                }
            }
            (None, Some(hex)) => match keys::parse_sha256_hex(hex) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.error(&format!("{at}.key_sha256"), e);
                    None
                }
            },
            _ => {
                self.error(at, "set exactly one of `key` or `key_sha256`");
                None
            }
        }
    }

    /// RFC 3339 → Unix seconds.
    pub(super) fn timestamp(&mut self, at: &str, text: &str) -> Option<u64> {
        match text.trim().parse::<jiff::Timestamp>() {
            Ok(t) => Some(t.as_second().max(0) as u64),
            Err(e) => {
                self.error(
                    at,
                    format!("{text:?} is not an RFC 3339 time such as 2026-12-31T23:59:59Z: {e}"),
                );
                None
            }
        }
    }
}
