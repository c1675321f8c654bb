//! Policy for a fleet: replicas started with `--policy-from-redis` take
//! their policy from what `policyc publish` put in Redis, a sealed
//! snapshot (see [`policy::sealed`]). A watcher polls the published hash
//! every half second; a new one is fetched, opened with the key,
//! validated, built and swapped in, like a file reload. A snapshot that
//! does not open or does not validate is refused (once per hash, logged
//! and counted) and the active policy keeps serving.
//!
//! Polling, not pub/sub: a missed message would leave a replica behind
//! until the next publish; a poll cannot be missed, and two small reads a
//! second per replica cost Redis nothing.

use policy::sealed::{SealKey, PUBLISHED_KEY};
use std::time::Duration;

/// How often replicas look for a new published policy.
pub const POLL: Duration = Duration::from_millis(500);

pub struct Published {
    client: redis::Client,
    key: SealKey,
    conn: Option<redis::Connection>,
}

impl Published {
    pub fn new(url: &str, key: SealKey) -> Result<Published, String> {
        let client = redis::Client::open(url).map_err(|e| {
            format!(
                "--policy-from-redis: not a usable Redis URL ({:?})",
                e.kind()
            )
        })?;
        Ok(Published {
            client,
            key,
            conn: None,
        })
    }

    fn conn(&mut self) -> Result<&mut redis::Connection, String> {
        if self.conn.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(Duration::from_secs(2))
                .map_err(|e| format!("cannot reach Redis ({:?})", e.kind()))?;
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| format!("Redis connection ({:?})", e.kind()))?;
            self.conn = Some(c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| "cannot reach Redis".to_string())
    }

    fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, String> {
        let result = cmd
            .query(self.conn()?)
            .map_err(|e| format!("Redis ({:?})", e.kind()));
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// The published content hash and when it was published (a hash
    /// refused once may be published again, sealed right), if any.
    pub fn hash(&mut self) -> Result<Option<(String, String)>, String> {
        let (hash, at): (Option<String>, Option<String>) =
            self.query(redis::cmd("HMGET").arg(PUBLISHED_KEY).arg("hash").arg("at"))?;
        Ok(hash.map(|h| (h, at.unwrap_or_default())))
    }

    /// The published snapshot, opened with the key (not yet validated).
    pub fn snapshot(&mut self) -> Result<Vec<u8>, String> {
        let sealed: Option<Vec<u8>> =
            self.query(redis::cmd("HGET").arg(PUBLISHED_KEY).arg("sealed"))?;
        let sealed = sealed.ok_or("nothing is published yet")?;
        self.key.open(&sealed).map_err(|e| e.to_string())
    }

    /// At start: wait (at most `within`) for a published policy.
    pub fn first(&mut self, within: Duration) -> Result<Vec<u8>, String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let found = match self.hash() {
                Ok(Some(_)) => return self.snapshot(),
                Ok(None) => "nothing is published yet".to_string(),
                Err(e) => e,
            };
            if std::time::Instant::now() >= deadline {
                return Err(format!("no published policy after {within:?}: {found}"));
            }
            std::thread::sleep(POLL);
        }
    }
}
