//! The engine's one error type, and its single mapping to the client's API
//! format (OpenAI's `{"error": {message, type, param, code}}`).
//!
//! Every variant says whose fault it is: `gateway_*` codes are Switchyard's
//! own decisions, `upstream_*` codes are the provider's failures.

use http::StatusCode;
use serde_json::json;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("missing API key: send `Authorization: Bearer <your Switchyard key>`")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("this API key ({0}) is suspended")]
    KeySuspended(String),
    #[error("this API key ({0}) expired at {1}")]
    KeyExpired(String, String),
    #[error("this API key may not be used from {0}")]
    SourceNotAllowed(String),
    #[error("this API key may not use the model `{0}`")]
    ModelNotAllowed(String),
    #[error("this endpoint needs an admin key")]
    AdminOnly,
    #[error("this key has a spend budget and `{0}` has no price, so its cost could not be bounded; ask the gateway's operator to price it")]
    Unpriced(String),
    #[error("{0}")]
    RateLimited(Box<LimitHit>),
    #[error("{0}")]
    BudgetExceeded(Box<BudgetHit>),
    #[error("unknown request URL: {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("request body is {size} bytes; the limit is {limit} bytes")]
    BodyTooLarge { size: u64, limit: u64 },
    #[error("the request body holds more than {limit} JSON values")]
    TooManyJsonValues { limit: u64 },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("the {what} did not arrive within {limit_ms} ms")]
    RequestTimeout { what: &'static str, limit_ms: u64 },
    #[error("the gateway is at its limit of {0}; retry shortly")]
    Overloaded(&'static str),
    #[error("limits are shared through Redis, which is unavailable, and the policy says to refuse until it returns")]
    ClusterUnavailable,
    #[error("invalid request body: {0}")]
    BadRequest(String),
    #[error("{0}")]
    InvalidModelName(&'static str),
    #[error("invalid `{header}` header: {reason}")]
    BadHeader {
        header: &'static str,
        reason: &'static str,
    },
    #[error("`{param}` is not supported when the model is served by a provider of kind `{kind}`: {reason}")]
    UnsupportedParameter {
        param: String,
        kind: &'static str,
        reason: String,
    },
    #[error("the model `{0}` does not exist or this key may not use it")]
    UnknownModel(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("provider `{0}` has no upstream API key configured")]
    NoUpstreamKey(String),
    /// The provider refused the gateway's own credentials. Its answer is
    /// never relayed: it can quote a fragment of the gateway's key.
    #[error("provider `{0}` refused the gateway's upstream credentials; the gateway's operator must fix them")]
    UpstreamAuth(String),
    #[error("provider `{provider}` is unreachable: {reason}")]
    UpstreamConnect { provider: String, reason: String },
    #[error("provider `{provider}` did not answer in time: {reason}")]
    UpstreamTimeout { provider: String, reason: String },
    #[error("provider `{provider}` sent an invalid response: {reason}")]
    UpstreamProtocol { provider: String, reason: String },
    #[error("every upstream key for `{provider}` is rate limited by the provider; retry in {retry_after_secs}s")]
    UpstreamRateLimited {
        provider: String,
        retry_after_secs: u64,
    },
    #[error("no upstream can take this request now: {reason}")]
    UpstreamUnavailable { reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            MissingKey | InvalidKey | KeyExpired(..) => StatusCode::UNAUTHORIZED,
            KeySuspended(_) | SourceNotAllowed(_) | ModelNotAllowed(_) | AdminOnly
            | Unpriced(_) => StatusCode::FORBIDDEN,
            RateLimited(_) | BudgetExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            NotFound { .. } | UnknownModel(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            BodyTooLarge { .. } | TooManyJsonValues { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Overloaded(_) | ClusterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            BodyRead(_)
            | BadRequest(_)
            | UnsupportedParameter { .. }
            | InvalidModelName(_)
            | BadHeader { .. } => StatusCode::BAD_REQUEST,
            NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            NoUpstreamKey(_) => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamConnect { .. } | UpstreamProtocol { .. } | UpstreamAuth(_) => {
                StatusCode::BAD_GATEWAY
            }
            UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamRateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            UpstreamUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` and `code` for this error.
    fn kind_and_code(&self) -> (&'static str, &'static str) {
        use GatewayError::*;
        match self {
            MissingKey => ("invalid_request_error", "missing_api_key"),
            InvalidKey => ("invalid_request_error", "invalid_api_key"),
            KeySuspended(_) => ("invalid_request_error", "key_suspended"),
            KeyExpired(..) => ("invalid_request_error", "key_expired"),
            SourceNotAllowed(_) => ("permission_error", "ip_not_allowed"),
            ModelNotAllowed(_) => ("permission_error", "model_not_allowed"),
            AdminOnly => ("permission_error", "admin_key_required"),
            Unpriced(_) => ("permission_error", "gateway_model_unpriced"),
            RateLimited(hit) => ("gateway_rate_limit", hit.kind.code()),
            BudgetExceeded(_) => ("insufficient_quota", "gateway_budget_exceeded"),
            NotFound { .. } => ("invalid_request_error", "unknown_url"),
            MethodNotAllowed { .. } => ("invalid_request_error", "method_not_allowed"),
            BodyTooLarge { .. } | TooManyJsonValues { .. } => {
                ("invalid_request_error", "request_too_large")
            }
            RequestTimeout { .. } => ("invalid_request_error", "request_timeout"),
            Overloaded(_) => ("gateway_error", "gateway_overloaded"),
            ClusterUnavailable => ("gateway_error", "gateway_cluster_unavailable"),
            BodyRead(_) | BadRequest(_) => ("invalid_request_error", "invalid_request"),
            InvalidModelName(_) => ("invalid_request_error", "invalid_model_name"),
            BadHeader { .. } => ("invalid_request_error", "invalid_header"),
            UnsupportedParameter { .. } => ("invalid_request_error", "unsupported_parameter"),
            UnknownModel(_) => ("invalid_request_error", "model_not_found"),
            NotImplemented(_) => ("invalid_request_error", "gateway_not_implemented"),
            NoUpstreamKey(_) => ("gateway_error", "gateway_no_upstream_key"),
            UpstreamAuth(_) => ("gateway_error", "gateway_upstream_auth_failed"),
            UpstreamConnect { .. } => ("upstream_error", "upstream_unreachable"),
            UpstreamTimeout { .. } => ("upstream_error", "upstream_timeout"),
            UpstreamProtocol { .. } => ("upstream_error", "upstream_invalid_response"),
            UpstreamRateLimited { .. } => ("upstream_error", "upstream_keys_cooling_down"),
            UpstreamUnavailable { .. } => ("upstream_error", "upstream_unavailable"),
            Internal(_) => ("gateway_error", "gateway_internal_error"),
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            GatewayError::UnknownModel(_)
            | GatewayError::ModelNotAllowed(_)
            | GatewayError::InvalidModelName(_) => Some("model"),
            GatewayError::UnsupportedParameter { param, .. } => Some(param),
            _ => None,
        }
    }

    /// The body a client sees, in OpenAI's error shape.
    pub fn openai_body(&self) -> Vec<u8> {
        let (kind, code) = self.kind_and_code();
        json!({"error": {
            "message": self.to_string(),
            "type": kind,
            "param": self.param(),
            "code": code,
        }})
        .to_string()
        .into_bytes()
    }

    /// Seconds for a `retry-after` header, when the error implies one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::UpstreamRateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            GatewayError::UpstreamUnavailable { .. }
            | GatewayError::Overloaded(_)
            | GatewayError::ClusterUnavailable => Some(1),
            GatewayError::RateLimited(hit) => {
                hit.retry_after.map(|d| d.as_millis().div_ceil(1000) as u64)
            }
            GatewayError::BudgetExceeded(hit) => {
                Some(hit.resets_in.as_millis().div_ceil(1000) as u64)
            }
            _ => None,
        }
    }

    /// Headers that explain a gateway limit (OpenAI's `x-ratelimit-*`).
    pub fn limit_headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self {
            GatewayError::RateLimited(hit) => {
                let what = hit.kind.header_suffix();
                out.push((format!("x-ratelimit-limit-{what}"), hit.limit.to_string()));
                out.push((format!("x-ratelimit-remaining-{what}"), "0".into()));
                if let Some(d) = hit.retry_after {
                    out.push((
                        format!("x-ratelimit-reset-{what}"),
                        format!("{:.3}s", d.as_secs_f64()),
                    ));
                    out.push(("retry-after-ms".into(), d.as_millis().to_string()));
                }
                out.push(("x-switchyard-limit".into(), hit.label()));
            }
            GatewayError::BudgetExceeded(hit) => {
                out.push(("x-switchyard-limit".into(), hit.label()));
            }
            _ => {}
        }
        out
    }

    /// Short label for metrics and logs.
    pub fn code(&self) -> &'static str {
        self.kind_and_code().1
    }
}

/// Which gateway limit refused a request.
#[derive(Debug, Clone)]
pub struct LimitHit {
    /// `key`, `user` or `team`.
    pub scope: &'static str,
    pub name: String,
    /// The per-model pattern, when the limit is one.
    pub model: Option<String>,
    pub kind: LimitKind,
    pub limit: u64,
    /// Tokens the request was estimated at.
    pub requested: u64,
    /// None: the request can never fit.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Requests,
    Tokens,
    Concurrency,
}

impl LimitKind {
    fn code(self) -> &'static str {
        match self {
            LimitKind::Requests => "gateway_rate_limit_requests",
            LimitKind::Tokens => "gateway_rate_limit_tokens",
            LimitKind::Concurrency => "gateway_concurrency_limit",
        }
    }

    fn header_suffix(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::Tokens => "tokens",
            LimitKind::Concurrency => "concurrency",
        }
    }
}

impl LimitHit {
    /// `key:ci:requests` or `team:research:gpt-*:tokens`.
    pub fn label(&self) -> String {
        match &self.model {
            Some(m) => format!(
                "{}:{}:{m}:{}",
                self.scope,
                self.name,
                self.kind.header_suffix()
            ),
            None => format!("{}:{}:{}", self.scope, self.name, self.kind.header_suffix()),
        }
    }
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Switchyard rate limit for {} `{}`",
            self.scope, self.name
        )?;
        if let Some(m) = &self.model {
            write!(f, " on models `{m}`")?;
        }
        match self.kind {
            LimitKind::Requests => write!(f, ": {} requests per minute", self.limit)?,
            LimitKind::Tokens if self.retry_after.is_none() => {
                return write!(
                    f,
                    ": {} tokens per minute, and this request alone is estimated at {} tokens (lower max_tokens or split the prompt)",
                    self.limit, self.requested
                )
            }
            LimitKind::Tokens => write!(
                f,
                ": {} tokens per minute (this request is estimated at {})",
                self.limit, self.requested
            )?,
            LimitKind::Concurrency => write!(f, ": {} requests in flight at once", self.limit)?,
        }
        match self.retry_after {
            Some(d) => write!(f, "; retry in {:.1}s", d.as_secs_f64()),
            None => Ok(()),
        }
    }
}

/// Which spend cap refused a request.
#[derive(Debug, Clone)]
pub struct BudgetHit {
    pub scope: &'static str,
    pub name: String,
    pub model: Option<String>,
    /// `daily` or `monthly`.
    pub period: &'static str,
    /// Nano-units, like the two below.
    pub cap: u64,
    pub committed: u64,
    pub needed: u64,
    pub resets_in: Duration,
}

impl BudgetHit {
    pub fn label(&self) -> String {
        match &self.model {
            Some(m) => format!("{}:{}:{m}:{}_budget", self.scope, self.name, self.period),
            None => format!("{}:{}:{}_budget", self.scope, self.name, self.period),
        }
    }
}

fn money(nanos: u64) -> String {
    format!("{:.6}", nanos as f64 / 1e9)
}

impl std::fmt::Display for BudgetHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Switchyard budget exhausted for {} `{}`",
            self.scope, self.name
        )?;
        if let Some(m) = &self.model {
            write!(f, " on models `{m}`")?;
        }
        write!(
            f,
            ": the {} budget is {}, {} is spent or reserved, and this request may cost up to {}; it resets in {}s",
            self.period,
            money(self.cap),
            money(self.committed),
            money(self.needed),
            self.resets_in.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_render_in_openai_shape() {
        let e = GatewayError::BodyTooLarge { size: 10, limit: 5 };
        assert_eq!(e.status(), 413);
        let v: serde_json::Value = serde_json::from_slice(&e.openai_body()).unwrap();
        assert_eq!(v["error"]["code"], "request_too_large");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["param"].is_null());
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit is 5 bytes"));
        let v: serde_json::Value =
            serde_json::from_slice(&GatewayError::UnknownModel("x".into()).openai_body()).unwrap();
        assert_eq!(v["error"]["param"], "model");
    }
}
