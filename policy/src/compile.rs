//! YAML → [`CompiledPolicy`]: parse, interpolate, validate, build. Pure: the
//! environment comes in through [`EnvLookup`], nothing touches the network.

use crate::error::{Diagnostic, Error};
use crate::interpolate;
use crate::model::*;
use crate::spec::*;
use crate::yaml_index::YamlIndex;
use std::collections::{BTreeMap, HashMap};

mod cluster;
mod listener;
mod routing;
mod tenancy;
use tenancy::Directory;

/// Where `${VAR}` values come from.
pub trait EnvLookup {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl EnvLookup for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvLookup for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A compiled policy and the findings that did not stop it.
#[derive(Debug)]
pub struct Compiled {
    pub policy: CompiledPolicy,
    pub warnings: Vec<Diagnostic>,
}

pub fn compile_yaml(text: &str, file: &str, env: &dyn EnvLookup) -> Result<Compiled, Error> {
    let spec: PolicySpec = serde_yaml_ng::from_str(text)
        .map_err(|e| Error::Invalid(vec![yaml_diagnostic(file, &e)]))?;
    let mut cx = Checker {
        file,
        index: YamlIndex::build(text),
        env,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let policy = cx.build(spec, file);
    if cx.errors.is_empty() {
        Ok(Compiled {
            policy,
            warnings: cx.warnings,
        })
    } else {
        Err(Error::Invalid(cx.errors))
    }
}

fn yaml_diagnostic(file: &str, e: &serde_yaml_ng::Error) -> Diagnostic {
    let mut message = e.to_string();
    let (line, column) = match e.location() {
        Some(loc) => {
            // The library appends its own "at line L column C"; we print the
            // position in front, compiler-style, instead.
            if let Some(cut) = message.rfind(" at line ") {
                message.truncate(cut);
            }
            (loc.line(), loc.column())
        }
        None => (0, 0),
    };
    // serde_yaml_ng prefixes the field path as "a.b.c: message".
    let (path, message) = match message.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
        _ => (String::new(), message),
    };
    Diagnostic {
        file: file.to_string(),
        line,
        column,
        path,
        message,
    }
}

struct Checker<'a> {
    file: &'a str,
    index: YamlIndex,
    env: &'a dyn EnvLookup,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn diag(&self, path: &str, message: String) -> Diagnostic {
        let (line, column) = self.index.locate(path);
        Diagnostic {
            file: self.file.to_string(),
            line,
            column,
            path: path.to_string(),
            message,
        }
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.errors.push(d);
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        let d = self.diag(path, message.into());
        self.warnings.push(d);
    }

    fn expand(&mut self, path: &str, raw: &str) -> Option<String> {
        let env = self.env;
        match interpolate::expand(raw, &|n| env.var(n)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(path, e);
                None
            }
        }
    }

    fn build(&mut self, spec: PolicySpec, file: &str) -> CompiledPolicy {
        if spec.version != 1 {
            self.error(
                "version",
                format!("unsupported policy version {}: expected 1", spec.version),
            );
        }
        let listener = self.listener(spec.listener);
        let providers = self.providers(spec.providers);
        let names: BTreeMap<&str, u32> = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i as u32))
            .collect();
        let aliases = self.aliases(spec.models, &names);
        let (tenancy, dir) = self.tenancy(
            spec.tenancy,
            spec.users,
            spec.teams,
            spec.prices,
            spec.usage,
            spec.admin_keys,
        );
        let client_keys = self.client_keys(spec.client_keys, &dir);
        let retry_budget = self.retry_budget(spec.retry_budget);
        let routing = self.routing(spec.classifier, spec.routers, &aliases);
        let cluster = spec.cluster.map(|c| self.cluster(c));
        let policy = CompiledPolicy {
            source: file.to_string(),
            listener,
            providers,
            aliases,
            client_keys,
            retry_budget,
            tenancy,
            routing,
            cluster,
        };
        self.check_prices(&policy);
        policy
    }

    fn retry_budget(&mut self, b: RetryBudgetSpec) -> RetryBudget {
        if !(0.0..=10.0).contains(&b.ratio) {
            self.error(
                "retry_budget.ratio",
                "expected a fraction of traffic between 0 and 10 (0.2 = retries may add 20%)",
            );
        }
        RetryBudget {
            ratio_milli: (b.ratio.clamp(0.0, 10.0) * 1000.0).round() as u32,
            min_per_second: b.min_per_second,
        }
    }

    fn providers(&mut self, specs: BTreeMap<String, ProviderSpec>) -> Vec<Provider> {
        if specs.is_empty() {
            self.error("providers", "at least one provider is required");
        }
        // BTreeMap iteration keeps the output sorted by name.
        specs
            .into_iter()
            .map(|(name, p)| self.provider(name, p))
            .collect()
    }

    fn provider(&mut self, name: String, p: ProviderSpec) -> Provider {
        let at = format!("providers.{name}");
        if !is_plain_name(&name) {
            self.error(
                &at,
                "provider names use letters, digits, `-`, `_` and `.` only (a `/` would clash with `<provider>/<model>` addressing)",
            );
        }
        let url_path = format!("{at}.base_url");
        let base_url = self.expand(&url_path, &p.base_url).unwrap_or_default();
        let endpoint = match parse_base_url(&base_url) {
            Ok(e) => {
                if !e.tls && !is_loopback_host(&e.host) {
                    self.warn(
                        &url_path,
                        format!("{base_url:?} is plain http:// to a host that is not loopback: prompts, answers and the provider key cross the network unencrypted"),
                    );
                }
                e
            }
            Err(msg) => {
                if !base_url.is_empty() || p.base_url.is_empty() {
                    self.error(&url_path, msg);
                }
                Endpoint::default()
            }
        };
        let mut keys = Vec::new();
        for (i, k) in p.keys.into_iter().enumerate() {
            let kp = format!("{at}.keys[{i}].key");
            let Some(secret) = self.expand(&kp, &k.key) else {
                continue;
            };
            if secret.trim().is_empty() {
                self.warn(&kp, "resolves to an empty key; it is left out of the pool");
                continue;
            }
            if k.max_concurrency == Some(0) {
                self.error(
                    &format!("{at}.keys[{i}].max_concurrency"),
                    "must be at least 1 (leave it out for no cap)",
                );
            }
            keys.push(UpstreamKey {
                name: k.name.unwrap_or_else(|| format!("{name}#{i}")),
                secret,
                tier: k.tier,
                max_concurrency: k.max_concurrency.unwrap_or(0),
            });
        }
        // Stable: keys of one tier keep their order from the file.
        keys.sort_by_key(|k| k.tier);
        if keys.is_empty() {
            self.warn(
                &at,
                "has no usable upstream key; requests routed to it will fail with 503 until one is set",
            );
        }
        let t = &p.timeouts;
        if [t.connect_ms, t.first_byte_ms, t.idle_ms, t.total_ms].contains(&0) {
            self.error(
                &format!("{at}.timeouts"),
                "timeouts must be greater than 0 ms",
            );
        }
        if t.first_byte_ms > t.total_ms {
            self.error(
                &format!("{at}.timeouts.first_byte_ms"),
                "cannot be longer than total_ms",
            );
        }
        if p.default_cooldown_ms == 0 {
            self.error(
                &format!("{at}.default_cooldown_ms"),
                "must be greater than 0",
            );
        }
        let breaker = self.breaker(&format!("{at}.breaker"), &p.breaker);
        let compat = self.compat(&format!("{at}.compat"), p.compat.as_ref(), p.kind);
        Provider {
            kind: match p.kind {
                ProviderKindSpec::Openai => ProviderKind::OpenAi,
                ProviderKindSpec::OpenaiCompatible => ProviderKind::OpenAiCompatible,
                ProviderKindSpec::Anthropic => ProviderKind::Anthropic,
                ProviderKindSpec::Gemini => ProviderKind::Gemini,
                ProviderKindSpec::Cohere => ProviderKind::Cohere,
            },
            name,
            base_url,
            tls: endpoint.tls,
            host: endpoint.host,
            port: endpoint.port,
            path_prefix: endpoint.path_prefix,
            allow_direct: p.allow_direct,
            keys,
            timeouts: Timeouts {
                connect_ms: t.connect_ms,
                first_byte_ms: t.first_byte_ms,
                idle_ms: t.idle_ms,
                total_ms: t.total_ms,
            },
            cross_tier_failover: p.cross_tier_failover,
            default_cooldown_ms: p.default_cooldown_ms,
            breaker,
            compat,
        }
    }

    fn compat(&mut self, at: &str, spec: Option<&CompatSpec>, kind: ProviderKindSpec) -> Compat {
        let Some(spec) = spec else {
            return Compat::default();
        };
        if !matches!(
            kind,
            ProviderKindSpec::Openai | ProviderKindSpec::OpenaiCompatible
        ) {
            self.error(
                at,
                "`compat` applies to `openai` and `openai_compatible` providers only",
            );
            return Compat::default();
        }
        let mut c = Compat::default();
        if let Some(name) = &spec.preset {
            match crate::compat::preset(name) {
                Some(&(_, max, drop, rename, reasoning, strip)) => {
                    c.max_tokens_field = max.to_string();
                    c.drop_params = drop.iter().map(|s| s.to_string()).collect();
                    c.rename_params = rename
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                    c.reasoning_field = reasoning.to_string();
                    c.strip_fields = strip.iter().map(|s| s.to_string()).collect();
                }
                None => {
                    let known: Vec<&str> = crate::compat::PRESETS.iter().map(|p| p.0).collect();
                    self.error(
                        &format!("{at}.preset"),
                        format!(
                            "unknown preset {name:?}: expected one of {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        if let Some(f) = &spec.max_tokens_field {
            if !matches!(f.as_str(), "max_tokens" | "max_completion_tokens") {
                self.error(
                    &format!("{at}.max_tokens_field"),
                    "expected `max_tokens` or `max_completion_tokens`",
                );
            }
            c.max_tokens_field = f.clone();
        }
        if let Some(d) = &spec.drop_params {
            c.drop_params = d.clone();
        }
        if let Some(r) = &spec.rename_params {
            c.rename_params = r.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
        }
        if let Some(r) = &spec.reasoning_field {
            c.reasoning_field = r.clone();
        }
        if let Some(s) = &spec.strip_fields {
            c.strip_fields = s.clone();
        }
        if ["choices", "model", "id", "object", "usage"]
            .iter()
            .any(|f| c.strip_fields.iter().any(|s| s == f))
        {
            self.error(
                &format!("{at}.strip_fields"),
                "cannot strip a standard field (choices, model, id, object, usage)",
            );
        }
        c
    }

    fn breaker(&mut self, at: &str, b: &BreakerSpec) -> Breaker {
        if b.consecutive_failures == 0 {
            self.error(&format!("{at}.consecutive_failures"), "must be at least 1");
        }
        if !(b.error_ratio > 0.0 && b.error_ratio <= 1.0) {
            self.error(
                &format!("{at}.error_ratio"),
                "expected a fraction in (0, 1]",
            );
        }
        if b.window_ms == 0 || b.open_ms == 0 {
            self.error(at, "window_ms and open_ms must be greater than 0");
        }
        if b.max_open_ms < b.open_ms {
            self.error(
                &format!("{at}.max_open_ms"),
                "cannot be shorter than open_ms",
            );
        }
        Breaker {
            consecutive_failures: b.consecutive_failures,
            error_ratio_milli: (b.error_ratio.clamp(0.0, 1.0) * 1000.0).round() as u32,
            min_calls: b.min_calls,
            window_ms: b.window_ms,
            open_ms: b.open_ms,
            max_open_ms: b.max_open_ms,
        }
    }

    fn aliases(
        &mut self,
        specs: BTreeMap<String, AliasSpec>,
        providers: &BTreeMap<&str, u32>,
    ) -> Vec<Alias> {
        let mut out = Vec::with_capacity(specs.len());
        for (name, a) in specs {
            let at = format!("models.{name}");
            if name.trim().is_empty() {
                self.error(&at, "model names must not be empty");
            }
            if a.targets.is_empty() {
                self.error(&format!("{at}.targets"), "at least one target is required");
            }
            let mut targets = Vec::with_capacity(a.targets.len());
            for (i, t) in a.targets.into_iter().enumerate() {
                let tp = format!("{at}.targets[{i}]");
                match providers.get(t.provider.as_str()) {
                    Some(&provider) => {
                        if t.model.trim().is_empty() {
                            self.error(&format!("{tp}.model"), "must not be empty");
                        }
                        if t.weight == 0 {
                            self.error(
                                &format!("{tp}.weight"),
                                "must be at least 1 (remove the target to disable it)",
                            );
                        }
                        targets.push(Target {
                            provider,
                            model: t.model,
                            priority: t.priority.unwrap_or(i as u32),
                            weight: t.weight,
                        });
                    }
                    None => {
                        let known: Vec<&str> = providers.keys().copied().collect();
                        self.error(
                            &format!("{tp}.provider"),
                            format!(
                                "unknown provider {:?}: expected one of {}",
                                t.provider,
                                known.join(", ")
                            ),
                        );
                    }
                }
            }
            // Stable: equal priorities keep their list order.
            targets.sort_by_key(|t| t.priority);
            let retry = self.retry(&format!("{at}.retry"), &a.retry);
            let hedge = a
                .hedge
                .as_ref()
                .and_then(|h| self.hedge(&format!("{at}.hedge"), h, targets.len()));
            out.push(Alias {
                name,
                targets,
                balance: match a.balance {
                    BalanceSpec::RoundRobin => Balance::RoundRobin,
                    BalanceSpec::Weighted => Balance::Weighted,
                    BalanceSpec::LeastLatency => Balance::LeastLatency,
                },
                retry,
                hedge,
            });
        }
        out
    }

    fn retry(&mut self, at: &str, r: &RetrySpec) -> Retry {
        if !(1..=20).contains(&r.max_attempts) {
            self.error(
                &format!("{at}.max_attempts"),
                "expected 1 to 20 (the first attempt counts)",
            );
        }
        if r.deadline_ms == 0 {
            self.error(&format!("{at}.deadline_ms"), "must be greater than 0");
        }
        if r.max_backoff_ms < r.backoff_ms {
            self.error(
                &format!("{at}.max_backoff_ms"),
                "cannot be shorter than backoff_ms",
            );
        }
        Retry {
            max_attempts: r.max_attempts,
            deadline_ms: r.deadline_ms,
            backoff_ms: r.backoff_ms,
            max_backoff_ms: r.max_backoff_ms,
        }
    }

    fn hedge(&mut self, at: &str, h: &HedgeSpec, targets: usize) -> Option<Hedge> {
        if targets < 2 {
            self.error(at, "hedging needs at least two targets");
            return None;
        }
        if h.after_ms.is_none() && h.percentile.is_none() {
            self.error(
                at,
                "set `after_ms`, `percentile` (of observed time to first byte), or both",
            );
            return None;
        }
        if h.after_ms == Some(0) {
            self.error(&format!("{at}.after_ms"), "must be greater than 0");
        }
        if let Some(p) = h.percentile {
            if !(p > 0.0 && p < 100.0) {
                self.error(
                    &format!("{at}.percentile"),
                    "expected a percentile between 0 and 100, e.g. 95",
                );
            }
        }
        Some(Hedge {
            after_ms: h.after_ms.unwrap_or(0),
            percentile_milli: h
                .percentile
                .map(|p| (p.clamp(0.0, 100.0) * 10.0).round() as u32)
                .unwrap_or(0),
        })
    }

    fn client_keys(&mut self, specs: Vec<ClientKeySpec>, dir: &Directory) -> Vec<ClientKey> {
        let mut out: Vec<ClientKey> = Vec::with_capacity(specs.len());
        let mut names = BTreeMap::new();
        for (i, k) in specs.into_iter().enumerate() {
            let at = format!("client_keys[{i}]");
            if let Some(first) = names.insert(k.name.clone(), i) {
                self.error(
                    &format!("{at}.name"),
                    format!(
                        "duplicate key name {:?} (also client_keys[{first}])",
                        k.name
                    ),
                );
            }
            let sha256 = self.key_hash(&at, k.key.as_deref(), k.key_sha256.as_deref());
            if k.models.is_empty() {
                self.error(
                    &format!("{at}.models"),
                    "list at least one model pattern (`*` for all)",
                );
            }
            let user = k
                .user
                .as_deref()
                .and_then(|u| self.lookup(&format!("{at}.user"), "user", u, &dir.users));
            let users_team = user.and_then(|u| dir.user_team.get(u as usize).copied().flatten());
            let team = match k.team.as_deref() {
                Some(t) => {
                    let team = self.lookup(&format!("{at}.team"), "team", t, &dir.teams);
                    if users_team.is_some() && team.is_some() && users_team != team {
                        self.error(
                            &format!("{at}.team"),
                            "differs from the team of the key's user; leave it out to use the user's",
                        );
                    }
                    team
                }
                None => users_team,
            };
            let expires_at = k
                .expires_at
                .as_deref()
                .and_then(|t| self.timestamp(&format!("{at}.expires_at"), t));
            let source_ips = k
                .source_ips
                .iter()
                .enumerate()
                .filter_map(|(j, c)| self.cidr(&format!("{at}.source_ips[{j}]"), c))
                .collect();
            let limits = self.limits(&format!("{at}.limits"), k.limits);
            let budgets = self.budgets(&format!("{at}.budgets"), k.budgets);
            let Some(sha256) = sha256 else { continue };
            if let Some(dup) = out.iter().find(|c| c.sha256 == sha256) {
                self.error(
                    &at,
                    format!("the same key is already used by client key {:?}", dup.name),
                );
                continue;
            }
            out.push(ClientKey {
                name: k.name,
                sha256,
                models: k.models,
                user,
                team,
                suspended: k.status == KeyStatusSpec::Suspended,
                expires_at,
                source_ips,
                tier: k.tier.unwrap_or_default(),
                metadata: k.metadata.into_iter().collect(),
                limits,
                budgets,
            });
        }
        out.sort_by_key(|k| k.sha256);
        out
    }

    /// Budgets are kept in money: a budgeted caller reaching an unpriced
    /// model would spend without bound. Every alias target a budgeted key
    /// can reach (by name or through a router) must have a price; direct
    /// `<provider>/<model>` calls without one are refused at run time.
    fn check_prices(&mut self, p: &CompiledPolicy) {
        let budgeted_keys: Vec<&ClientKey> = p
            .client_keys
            .iter()
            .filter(|k| {
                let principal = |i: Option<u32>, list: &[Principal]| {
                    i.and_then(|i| list.get(i as usize))
                        .is_some_and(|u| u.budgets != Budgets::default())
                };
                k.budgets != Budgets::default()
                    || principal(k.user, &p.tenancy.users)
                    || principal(k.team, &p.tenancy.teams)
            })
            .collect();
        if budgeted_keys.is_empty() {
            return;
        }
        let priced = |provider: &str, model: &str| {
            p.tenancy
                .prices
                .iter()
                .any(|x| x.model == model || x.model == format!("{provider}/{model}"))
        };
        let allows = |k: &ClientKey, name: &str| k.models.iter().any(|m| pattern_matches(m, name));
        for (ai, a) in p.aliases.iter().enumerate() {
            let via_router = |k: &ClientKey| {
                p.routing.routers.iter().any(|r| {
                    allows(k, &r.name)
                        && (r.default_alias as usize == ai
                            || r.rules.iter().any(|rule| rule.alias as usize == ai))
                })
            };
            let Some(key) = budgeted_keys
                .iter()
                .find(|k| allows(k, &a.name) || via_router(k))
            else {
                continue;
            };
            for t in &a.targets {
                let provider = p
                    .providers
                    .get(t.provider as usize)
                    .map(|x| x.name.as_str())
                    .unwrap_or("?");
                if !priced(provider, &t.model) {
                    self.error(
                        &format!("models.{}", a.name),
                        format!("`{provider}/{}` has no entry under `prices`, and key `{}` has a budget and can reach it: its calls would never be charged", t.model, key.name),
                    );
                }
            }
        }
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[derive(Default)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    path_prefix: String,
}

/// `localhost`, `127.0.0.0/8` or `::1`: traffic that never leaves the host.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_base_url(url: &str) -> Result<Endpoint, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url:?}: expected an http:// or https:// URL")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{url:?}: the URL has no host"))?;
    if uri.query().is_some() {
        return Err(format!("{url:?}: a base URL cannot carry a query string"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "{url:?}: put credentials in `keys`, not in the URL"
        ));
    }
    Ok(Endpoint {
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        path_prefix: uri.path().trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests;
