//! The Lua scripts Redis runs. Each is one atomic step over the keys of a
//! single scope (or the node set), timed by Redis's own clock so that the
//! replicas' clocks never have to agree. Invoked by `EVALSHA`; a Redis that
//! lost its script cache (a restart) is sent the source again.
//!
//! Buckets are GCRA, as in [`crate::limits::token_bucket`]: the key holds
//! the theoretical arrival time (TAT) in microseconds of Redis time, the
//! bucket is full when the TAT is not ahead of now, and it holds one
//! minute's worth. A key expires once its bucket would be full again, so
//! idle scopes cost Redis nothing.

use redis::Script;
use std::sync::OnceLock;

/// Admit a batch of requests with the same limit entries in one scope,
/// one after the other, each against every entry, all or nothing: the
/// admissions concurrent requests make at once cost one round trip and one
/// script run. KEYS: per entry its request bucket, token bucket and lease
/// set. ARGV: lease TTL (ms), the number of requests, per entry rpm, tpm,
/// concurrency (0: no such limit), then per request its lease member and
/// tokens. Returns per request `{0}` when admitted, else `{entry
/// (1-based), kind (1 concurrency, 2 requests, 3 tokens), wait ms (-1:
/// never fits)}`.
const ADMIT_MANY: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local ttl, nreq = tonumber(ARGV[1]), tonumber(ARGV[2])
local nent = #KEYS / 3
local base = 3 + 3 * nent
local tat, dirty, card, added = {}, {}, {}, {}
local function level(k)
  if tat[k] == nil then tat[k] = tonumber(redis.call('GET', KEYS[k]) or '0') end
  return tat[k]
end
local out = {}
for r = 0, nreq - 1 do
  local member, tokens = ARGV[base + 2 * r], tonumber(ARGV[base + 2 * r + 1])
  local verdict, next_tat = nil, {}
  for i = 1, nent do
    local rpm, tpm, conc = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
    if conc > 0 then
      if card[i] == nil then
        redis.call('ZREMRANGEBYSCORE', KEYS[3 * i], '-inf', now_ms)
        card[i] = redis.call('ZCARD', KEYS[3 * i])
      end
      if card[i] >= conc then verdict = {i, 1, 1000} break end
    end
    for _, b in ipairs({{3 * i - 2, rpm, 1, 2}, {3 * i - 1, tpm, tokens, 3}}) do
      local k, rate, take, kind = b[1], b[2], b[3], b[4]
      if rate > 0 then
        if take > rate then verdict = {i, kind, -1} break end
        local nxt = math.max(next_tat[k] or level(k), now) + take * 60000000 / rate
        if nxt - now > 60000000 then
          verdict = {i, kind, math.ceil((nxt - now - 60000000) / 1000)}
          break
        end
        next_tat[k] = nxt
      end
    end
    if verdict then break end
  end
  if verdict then
    out[r + 1] = verdict
  else
    for k, v in pairs(next_tat) do tat[k] = v; dirty[k] = true end
    for i = 1, nent do
      if tonumber(ARGV[3 * i + 2]) > 0 then
        card[i] = card[i] + 1
        added[i] = added[i] or {}
        table.insert(added[i], member)
      end
    end
    out[r + 1] = {0}
  end
end
for k, _ in pairs(dirty) do
  redis.call('SET', KEYS[k], string.format('%.0f', tat[k]), 'PX', math.ceil((tat[k] - now) / 1000) + 1000)
end
for i, members in pairs(added) do
  for _, m in ipairs(members) do
    redis.call('ZADD', KEYS[3 * i], now_ms + ttl, m)
  end
  redis.call('PEXPIRE', KEYS[3 * i], ttl * 2)
end
return out
"#;

/// Move token buckets by `delta` tokens: charge (> 0) what a request used
/// beyond its estimate, even past the limit, or refund (< 0) what it did
/// not use. KEYS: token buckets. ARGV: delta, then each bucket's rate.
const ADJUST: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local delta = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + i])
  if rate > 0 then
    local tat = tonumber(redis.call('GET', key) or '0')
    local nxt
    if delta > 0 then
      nxt = math.max(tat, now) + delta * 60000000 / rate
    else
      nxt = tat + delta * 60000000 / rate
    end
    if nxt > now then
      redis.call('SET', key, string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1000)
    else
      redis.call('DEL', key)
    end
  end
end
return 0
"#;

/// Keep leases alive: push the expiry of `member` in each lease set to
/// TTL from now, if it is still there (a lease that already expired stays
/// gone). KEYS: lease sets. ARGV: member, TTL (ms). Returns how many were renewed.
const RENEW: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local renewed = 0
for _, key in ipairs(KEYS) do
  renewed = renewed + redis.call('ZADD', key, 'XX', 'CH', now_ms + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return renewed
"#;

/// Borrow from one shared bucket into a replica's pool (`pooled` mode):
/// `need` tokens at least, plus a share of what is left that shrinks as
/// the bucket empties: at most `extra`, and at most the rest divided by
/// twice the live replicas. KEYS: the bucket. ARGV: need, extra, rate,
/// replicas. Returns `{granted, 0}`, or `{0, wait ms}` (-1: never fits).
const BORROW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local need, extra, rate, replicas = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if need > rate then return {0, -1} end
local iv = 60000000 / rate
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local available = math.floor((now + 60000000 - tat) / iv)
if available < need then
  return {0, math.ceil(((need - available) * iv) / 1000)}
end
local share = math.floor((available - need) / (2 * replicas))
local grant = need + math.min(extra, share)
local nxt = tat + grant * iv
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1000)
return {grant, 0}
"#;

/// Reserve `cost` in every budget cap of one scope, all or nothing, and
/// mark the hold (so that a reservation whose answer was lost can be taken
/// back exactly once). A spent budget stays spent, even for a free
/// request; a zero cap admits nothing. KEYS: the caps' counters
/// (nano-units), then the hold's marker. ARGV: cost, the marker's TTL
/// (ms), then per cap its limit and when its key may expire (unix ms).
/// Returns `{0, committed after, ...}`, or `{cap (1-based), committed}`.
const RESERVE: &str = r#"
local cost = tonumber(ARGV[1])
local n = #KEYS - 1
for i = 1, n do
  local cap = tonumber(ARGV[1 + 2 * i])
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  if cap == 0 or c + cost > cap or c >= cap then return {i, c} end
end
local out = {0}
for i = 1, n do
  out[#out + 1] = redis.call('INCRBY', KEYS[i], cost)
  redis.call('PEXPIREAT', KEYS[i], ARGV[2 + 2 * i])
end
redis.call('SET', KEYS[n + 1], cost, 'PX', ARGV[2])
return out
"#;

/// Add `delta` to budget counters (never below zero), exactly once, so
/// that a write retried after a lost answer cannot count twice. KEYS:
/// counters, then a token. ARGV: delta, mode, token TTL (ms), then per
/// counter its expiry. Mode `settle`: the token is a hold's marker and
/// must still be there (it goes); mode `once`: the token must not be there
/// yet (it stays, for its TTL). Returns 1 if applied, 0 if it already was.
const SPEND: &str = r#"
local delta, mode = tonumber(ARGV[1]), ARGV[2]
local n = #KEYS - 1
local token = KEYS[n + 1]
if mode == 'settle' then
  if redis.call('DEL', token) == 0 then return 0 end
else
  if not redis.call('SET', token, 1, 'NX', 'PX', ARGV[3]) then return 0 end
end
for i = 1, n do
  if redis.call('INCRBY', KEYS[i], delta) < 0 then redis.call('SET', KEYS[i], 0) end
  redis.call('PEXPIREAT', KEYS[i], ARGV[i + 3])
end
return 1
"#;

/// Take back a reservation whose answer never came, if it was made: the
/// marker says how much, and goes with it. KEYS: counters, then the
/// marker. ARGV: per counter its expiry.
const UNRESERVE: &str = r#"
local n = #KEYS - 1
local cost = redis.call('GET', KEYS[n + 1])
if not cost then return 0 end
for i = 1, n do
  if redis.call('INCRBY', KEYS[i], -tonumber(cost)) < 0 then redis.call('SET', KEYS[i], 0) end
  redis.call('PEXPIREAT', KEYS[i], ARGV[i])
end
redis.call('DEL', KEYS[n + 1])
return 1
"#;

/// A key's cool-down or refusal, seen by one replica: kept (as an expiry in
/// Redis time, for replicas that connect later) and published to the
/// others. KEYS: the key-health hash. ARGV: key id, pause ms, refusal ms,
/// channel, message.
const KEY_HEALTH: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, suffix in ipairs({'c', 'r'}) do
  local ms = tonumber(ARGV[1 + i])
  if ms > 0 then
    local field = ARGV[1] .. '|' .. suffix
    local old = tonumber(redis.call('HGET', KEYS[1], field) or '0')
    if now_ms + ms > old then redis.call('HSET', KEYS[1], field, now_ms + ms) end
  end
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 0
"#;

/// Cool-downs and refusals still running, as `{field, ms left, ...}`;
/// the ones that ran out are removed. KEYS: the key-health hash.
const KEY_HEALTH_NOW: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local left = tonumber(all[i + 1]) - now_ms
  if left > 0 then
    out[#out + 1] = all[i]
    out[#out + 1] = left
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
"#;

/// Release a lease: take `member` out of each lease set. KEYS: lease sets.
/// ARGV: member.
const UNLEASE: &str = r#"
for _, key in ipairs(KEYS) do
  redis.call('ZREM', key, ARGV[1])
end
return 0
"#;

/// Say this replica is alive for `ttl` ms, forget silent ones, and count
/// the live. KEYS: the node set. ARGV: node id, TTL (ms).
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
return redis.call('ZCARD', KEYS[1])
"#;

pub struct Scripts {
    pub admit_many: Script,
    pub adjust: Script,
    pub renew: Script,
    pub unlease: Script,
    pub borrow: Script,
    pub reserve: Script,
    pub spend: Script,
    pub unreserve: Script,
    pub key_health: Script,
    pub key_health_now: Script,
    pub heartbeat: Script,
}

pub fn scripts() -> &'static Scripts {
    static S: OnceLock<Scripts> = OnceLock::new();
    S.get_or_init(|| Scripts {
        admit_many: Script::new(ADMIT_MANY),
        adjust: Script::new(ADJUST),
        renew: Script::new(RENEW),
        unlease: Script::new(UNLEASE),
        borrow: Script::new(BORROW),
        reserve: Script::new(RESERVE),
        spend: Script::new(SPEND),
        unreserve: Script::new(UNRESERVE),
        key_health: Script::new(KEY_HEALTH),
        key_health_now: Script::new(KEY_HEALTH_NOW),
        heartbeat: Script::new(HEARTBEAT),
    })
}
