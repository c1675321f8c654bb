//! The engine's one error type, and its single mapping to the client's API
//! format (OpenAI's `{"error": {message, type, param, code}}`).
//!
//! Every variant says whose fault it is: `gateway_*` codes are Switchyard's
//! own decisions, `upstream_*` codes are the provider's failures.

use http::StatusCode;
use serde_json::json;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("missing API key: send `Authorization: Bearer <your Switchyard key>`")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("unknown request URL: {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("request body is {size} bytes; the limit is {limit} bytes")]
    BodyTooLarge { size: u64, limit: u64 },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("invalid request body: {0}")]
    BadRequest(String),
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
            MissingKey | InvalidKey => StatusCode::UNAUTHORIZED,
            NotFound { .. } | UnknownModel(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRead(_) | BadRequest(_) | UnsupportedParameter { .. } => StatusCode::BAD_REQUEST,
            NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            NoUpstreamKey(_) => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamConnect { .. } | UpstreamProtocol { .. } => StatusCode::BAD_GATEWAY,
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
            NotFound { .. } => ("invalid_request_error", "unknown_url"),
            MethodNotAllowed { .. } => ("invalid_request_error", "method_not_allowed"),
            BodyTooLarge { .. } => ("invalid_request_error", "request_too_large"),
            BodyRead(_) | BadRequest(_) => ("invalid_request_error", "invalid_request"),
            UnsupportedParameter { .. } => ("invalid_request_error", "unsupported_parameter"),
            UnknownModel(_) => ("invalid_request_error", "model_not_found"),
            NotImplemented(_) => ("invalid_request_error", "gateway_not_implemented"),
            NoUpstreamKey(_) => ("gateway_error", "gateway_no_upstream_key"),
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
            GatewayError::UnknownModel(_) => Some("model"),
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
            GatewayError::UpstreamUnavailable { .. } => Some(1),
            _ => None,
        }
    }

    /// Short label for metrics and logs.
    pub fn code(&self) -> &'static str {
        self.kind_and_code().1
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
