//! Reading the provider's body for the relay: within the idle and total
//! limits, and in bursts.
//!
//! A provider that sends several events at once (or a fast local model)
//! would otherwise cost one write, one flush and one wake-up of the client
//! per event. [`Pull::next`] waits for the next chunk as the limits allow,
//! then takes every further chunk that has *already* arrived, so the client
//! gets them in one write. Nothing waits longer for it: what is not here
//! yet is not waited for.

use crate::failover::attempt::Committed;
use bytes::{Bytes, BytesMut};
use std::future::Future;
use std::time::{Duration, Instant};

/// Most bytes gathered into one write.
const BURST_MAX: usize = 64 << 10;

/// The provider's body, chunk by chunk or burst by burst.
pub(super) struct Pull {
    idle: Duration,
    deadline: Instant,
    /// What the provider said after the last burst: its end, or an error.
    /// Held back so the burst before it goes out first.
    held: Option<Result<Option<Bytes>, String>>,
    /// The attempt's first chunk has not gone out yet.
    first: bool,
}

impl Pull {
    /// `first`: the chunk the attempt already read.
    pub(super) fn new(first: Option<Bytes>, idle: Duration, deadline: Instant) -> Pull {
        Pull {
            idle,
            deadline,
            held: Some(Ok(first)),
            first: true,
        }
    }

    /// The next chunk and whatever else is already here; `None` at the end.
    /// The attempt's first chunk goes out alone: it is the time to first
    /// token, and nothing behind it may delay it.
    pub(super) async fn next(&mut self, c: &mut Committed<'_>) -> Result<Option<Bytes>, String> {
        if self.first {
            self.first = false;
            if let Some(held) = self.held.take() {
                return held;
            }
        }
        let first = match self.held.take() {
            Some(held) => held?,
            None => next_chunk(c, self.idle, self.deadline).await?,
        };
        let Some(first) = first else {
            return Ok(None);
        };
        let mut burst: Option<BytesMut> = None;
        while burst.as_ref().map_or(first.len(), |b| b.len()) < BURST_MAX {
            let more = match ready_now(c.response.read_body()) {
                None => break,
                Some(Ok(Some(more))) => more,
                Some(other) => {
                    self.held = Some(other.map_err(|e| e.etype().as_str().to_string()));
                    break;
                }
            };
            burst
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&more);
        }
        Ok(Some(burst.map_or(first, BytesMut::freeze)))
    }
}

/// The future's output if it is ready on its first poll. Pingora's body
/// reads keep their state in the session, not in the future, so dropping
/// one that is still pending loses nothing.
fn ready_now<F: Future>(f: F) -> Option<F::Output> {
    let f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// The provider's next body chunk within the idle and total limits.
async fn next_chunk(
    c: &mut Committed<'_>,
    idle: Duration,
    deadline: Instant,
) -> Result<Option<Bytes>, String> {
    let total_left = deadline.saturating_duration_since(Instant::now());
    // Pingora's lazy timer: a chunk that is already buffered arms none. It
    // ticks by 10 ms and may fire a little early, so which limit ran out
    // is decided by which one was shorter, not by the clock afterwards.
    match pingora_timeout::timeout(idle.min(total_left), c.response.read_body()).await {
        Ok(Ok(chunk)) => Ok(chunk),
        Ok(Err(e)) => Err(e.etype().as_str().to_string()),
        Err(_) if total_left <= idle => Err("the attempt's total time limit was reached".into()),
        Err(_) => Err(format!(
            "no data from the provider for {} ms",
            idle.as_millis()
        )),
    }
}
