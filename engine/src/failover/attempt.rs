//! One attempt: send the request to one target with one key, and wait for
//! the first body byte (or the whole error body) within the first-byte
//! timeout. Nothing reaches the client here, so any failure is retryable.

use crate::error::GatewayError;
use crate::resilience::breaker::{Admission, BreakerConfig};
use crate::resilience::health::TargetHealth;
use crate::resilience::keypool::KeyLease;
use crate::upstream::{self, UpstreamResponse};
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use policy::ArchivedProvider;
use std::sync::atomic::Ordering::AcqRel;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Error bodies are read whole (to classify them and to relay them), up to
/// this size.
const MAX_ERROR_BODY: usize = 1 << 20;

/// A target in use by one attempt; released on drop like a [`KeyLease`].
pub struct TargetPermit {
    pub health: Arc<TargetHealth>,
    pub admission: Admission,
    reported: bool,
}

impl TargetPermit {
    pub fn new(health: Arc<TargetHealth>, admission: Admission) -> Self {
        health.in_flight.fetch_add(1, AcqRel);
        TargetPermit {
            health,
            admission,
            reported: false,
        }
    }

    pub fn succeeded(&mut self, cfg: &BreakerConfig, now: u64) {
        self.health.breaker.on_success(cfg, now, self.admission);
        self.admission = Admission::Allowed;
        self.reported = true;
    }

    pub fn failed(&mut self, cfg: &BreakerConfig, now: u64) {
        self.health.breaker.on_failure(cfg, now, self.admission);
        self.admission = Admission::Allowed;
        self.reported = true;
    }
}

impl Drop for TargetPermit {
    fn drop(&mut self) {
        self.health.in_flight.fetch_sub(1, AcqRel);
        if !self.reported && self.admission == Admission::Probe {
            self.health.breaker.release_probe();
        }
    }
}

/// Everything one attempt needs, owned, so two can run at once (hedging).
pub struct Prepared<'a> {
    pub candidate: usize,
    pub provider_index: usize,
    /// How this attempt's answer comes back (set when it is translated).
    pub mode: crate::translate::ResponseMode,
    /// Client parameters this provider could not take.
    pub dropped: Vec<String>,
    pub provider: &'a ArchivedProvider,
    pub model: &'a str,
    pub lease: KeyLease,
    pub target: TargetPermit,
}

/// A 2xx response whose first body chunk has arrived.
pub struct Committed<'a> {
    pub prepared: Prepared<'a>,
    pub response: UpstreamResponse,
    pub first: Option<Bytes>,
    pub started: Instant,
    pub time_to_first_byte: Duration,
    /// Headers the gateway adds to the client's answer (the routing
    /// decision); filled in by the pipeline.
    pub notes: Vec<(&'static str, String)>,
}

/// An answer the provider finished (non-2xx), read whole.
pub struct Buffered {
    pub header: ResponseHeader,
    pub body: Bytes,
    /// Whose wire format the body is in.
    pub kind: policy::ProviderKind,
}

pub enum AttemptEnd<'a> {
    Committed(Box<Committed<'a>>),
    Answered(Prepared<'a>, Box<Buffered>),
    Failed(Prepared<'a>, GatewayError),
    /// The request cannot be expressed for this target's provider.
    Untranslatable(Prepared<'a>, GatewayError),
}

impl AttemptEnd<'_> {
    pub fn is_committed(&self) -> bool {
        matches!(self, AttemptEnd::Committed(_))
    }
}

pub async fn execute<'a>(
    prepared: Prepared<'a>,
    request: upstream::Attempt<'_>,
    first_byte: Duration,
) -> AttemptEnd<'a> {
    let started = Instant::now();
    let provider = prepared.provider.name.as_str();
    // Pingora's timer: registered only if the answer is not already there,
    // on the worker's own wheel, without waking the runtime's driver (a
    // Tokio timer costs an eventfd write and an extra poll per request).
    let outcome = pingora_timeout::timeout(first_byte, async {
        let mut response = upstream::send(&request).await?;
        if response.header.status.is_success() {
            let first = response.read_body().await.map_err(|e| {
                let mut err = upstream::classify(provider, &e);
                if let GatewayError::UpstreamProtocol { reason, .. } = &mut err {
                    *reason = format!("stream failed before its first byte: {reason}");
                }
                err
            })?;
            Ok(Ok((response, first)))
        } else {
            let body = read_bounded(&mut response, provider).await?;
            let header = response.header.clone();
            response.release().await;
            Ok(Err(Buffered {
                header,
                body,
                kind: prepared.provider.kind.native(),
            }))
        }
    })
    .await;
    if let Ok(Ok(Ok((response, Some(first))))) = &outcome {
        if let Some(message) = opening_error(response, first) {
            // Nothing has reached the client: this is a failure to retry.
            let reason = format!("the stream opened with an error: {message}");
            return AttemptEnd::Failed(
                prepared,
                GatewayError::UpstreamProtocol {
                    provider: provider.to_string(),
                    reason,
                },
            );
        }
    }
    match outcome {
        Ok(Ok(Ok((response, first)))) => AttemptEnd::Committed(Box::new(Committed {
            prepared,
            response,
            first,
            started,
            time_to_first_byte: started.elapsed(),
            notes: Vec::new(),
        })),
        Ok(Ok(Err(buffered))) => AttemptEnd::Answered(prepared, Box::new(buffered)),
        Ok(Err(e)) => AttemptEnd::Failed(prepared, e),
        Err(_) => {
            let reason = format!("no first byte within {} ms", first_byte.as_millis());
            AttemptEnd::Failed(
                prepared,
                GatewayError::UpstreamTimeout {
                    provider: provider.to_string(),
                    reason,
                },
            )
        }
    }
}

/// The message of an error event that opens an event stream (Anthropic's
/// `event: error` after a 200, an OpenAI-style `data: {"error": …}`), if
/// the first chunk starts with one.
fn opening_error(response: &UpstreamResponse, first: &Bytes) -> Option<String> {
    let sse = response
        .header
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !sse {
        return None;
    }
    let mut parser = crate::translate::sse::SseParser::default();
    let mut events = Vec::new();
    parser.feed(first, &mut events).ok()?;
    let e = events.first()?;
    let v: serde_json::Value = serde_json::from_str(&e.data).ok()?;
    let error = v
        .get("error")
        .filter(|_| e.event == "error" || v.get("type").is_none_or(|t| t == "error"))?;
    Some(
        error
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("unknown error")
            .to_string(),
    )
}

async fn read_bounded(
    response: &mut UpstreamResponse,
    provider: &str,
) -> Result<Bytes, GatewayError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = response
        .read_body()
        .await
        .map_err(|e| upstream::classify(provider, &e))?
    {
        if body.len() + chunk.len() > MAX_ERROR_BODY {
            return Err(GatewayError::UpstreamProtocol {
                provider: provider.to_string(),
                reason: format!("error body larger than {MAX_ERROR_BODY} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
