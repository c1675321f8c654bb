//! Phases 5 and 7: request and response translation, pure functions over
//! bytes. The client speaks OpenAI Chat Completions; each provider kind has
//! a translator for requests, whole responses, streams and errors. When the
//! provider speaks the client's format, bytes pass through untouched.

pub mod anthropic;
pub mod cohere;
pub mod compat;
#[cfg(test)]
mod corpus_sweep;
pub mod driver;
pub mod gemini;
pub mod openai;
pub mod params;
pub mod sse;

use crate::error::GatewayError;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use openai::ChatRequest;
use policy::{ArchivedProvider, ProviderKind};
use serde_json::{Map, Value};

/// One attempt's request to a provider.
pub struct Outbound {
    pub path: String,
    /// Authentication and API-version headers for this provider.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// How to bring the answer back.
    pub response: ResponseMode,
    /// OpenAI parameters this provider cannot take and that were dropped.
    pub dropped: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Same wire format: relay bytes as they are.
    PassThrough,
    /// A JSON body to translate whole.
    Json,
    /// An event stream to translate event by event.
    Stream,
}

/// Turns a provider's event stream into the client's, chunk by chunk.
pub trait StreamTranslator: Send {
    /// Bytes for the client from the next chunk of provider bytes.
    fn push(&mut self, bytes: &[u8]) -> Vec<u8>;
    /// The provider's stream ended; bytes to close the client's.
    fn finish(&mut self) -> Vec<u8>;
    /// The provider reported an error inside the stream (or it broke).
    fn failed(&self) -> bool;
    /// Usage so far, in OpenAI's shape.
    fn usage(&self) -> Option<Value>;
}

fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), GatewayError> {
    let value = HeaderValue::from_str(value)
        .map_err(|_| GatewayError::Internal(format!("invalid value for {name}")))?;
    Ok((HeaderName::from_static(name), value))
}

fn mode(stream: bool) -> ResponseMode {
    if stream {
        ResponseMode::Stream
    } else {
        ResponseMode::Json
    }
}

fn encode(v: &Value) -> Result<Bytes, GatewayError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| GatewayError::Internal(e.to_string()))
}

/// The wire format the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFormat {
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
}

/// The client's request, and its OpenAI (hub) form for providers that do
/// not speak the client's format, made on first need and kept.
pub struct ClientRequest<'c> {
    pub format: ClientFormat,
    pub body: &'c Bytes,
    pub chat: &'c ChatRequest<'c>,
    hub: std::sync::OnceLock<Result<Bytes, GatewayError>>,
}

impl<'c> ClientRequest<'c> {
    pub fn new(format: ClientFormat, body: &'c Bytes, chat: &'c ChatRequest<'c>) -> Self {
        ClientRequest {
            format,
            body,
            chat,
            hub: std::sync::OnceLock::new(),
        }
    }

    fn hub(&self) -> Result<&Bytes, GatewayError> {
        self.hub
            .get_or_init(|| {
                let fields = parse_object(self.body)?;
                encode(&Value::Object(anthropic::inbound::to_openai_request(
                    &fields,
                )?))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Build the request one attempt sends to `provider` for `model`.
pub fn outbound(
    provider: &ArchivedProvider,
    api_key: &str,
    model: &str,
    req: &ClientRequest<'_>,
) -> Result<Outbound, GatewayError> {
    match (req.format, provider.kind.native()) {
        (ClientFormat::OpenAi, _) => outbound_openai(provider, api_key, model, req.chat, req.body),
        // Same format: the client's bytes, with the target's model name.
        (ClientFormat::Anthropic, ProviderKind::Anthropic) => Ok(Outbound {
            path: format!("{}/v1/messages", provider.path_prefix),
            headers: vec![
                header("x-api-key", api_key)?,
                header("anthropic-version", anthropic::API_VERSION)?,
            ],
            body: openai::to_upstream(req.body, req.chat, model)?,
            response: ResponseMode::PassThrough,
            dropped: Vec::new(),
        }),
        (ClientFormat::Anthropic, _) => {
            let hub = req.hub()?;
            let chat = openai::parse_chat(hub)?;
            let mut out = outbound_openai(provider, api_key, model, &chat, hub)?;
            // The answer is OpenAI-shaped at best: it always needs converting.
            if out.response == ResponseMode::PassThrough {
                out.response = mode(chat.stream);
            }
            Ok(out)
        }
    }
}

/// Two stream translators in a row (provider → OpenAI → client).
struct Chain {
    first: Option<Box<dyn StreamTranslator>>,
    second: Box<dyn StreamTranslator>,
}

impl StreamTranslator for Chain {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        match &mut self.first {
            Some(f) => {
                let mid = f.push(bytes);
                self.second.push(&mid)
            }
            None => self.second.push(bytes),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = match &mut self.first {
            Some(f) => {
                let mid = f.finish();
                self.second.push(&mid)
            }
            None => Vec::new(),
        };
        out.extend(self.second.finish());
        out
    }

    fn failed(&self) -> bool {
        self.first.as_ref().is_some_and(|f| f.failed()) || self.second.failed()
    }

    fn usage(&self) -> Option<Value> {
        self.first
            .as_ref()
            .and_then(|f| f.usage())
            .or_else(|| self.second.usage())
    }
}

/// Whether requests can be translated for this provider kind.
pub fn has_translator(_kind: ProviderKind) -> bool {
    true
}

/// The request for `provider` when the client speaks OpenAI's format.
fn outbound_openai(
    provider: &ArchivedProvider,
    api_key: &str,
    model: &str,
    req: &ChatRequest<'_>,
    body: &Bytes,
) -> Result<Outbound, GatewayError> {
    let prefix = provider.path_prefix.as_str();
    match provider.kind.native() {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            let (body, dropped) = compat::request(body, req, model, &provider.compat)?;
            Ok(Outbound {
                path: format!("{prefix}/chat/completions"),
                headers: vec![header("authorization", &format!("Bearer {api_key}"))?],
                body,
                response: if provider.compat.changes_answers()
                    || compat::needs_usage_chunk(req, &provider.compat)
                {
                    mode(req.stream)
                } else {
                    ResponseMode::PassThrough
                },
                dropped,
            })
        }
        ProviderKind::Anthropic => {
            let (translated, dropped) =
                anthropic::request::from_openai(&parse_object(body)?, model)?;
            Ok(Outbound {
                path: format!("{prefix}/v1/messages"),
                headers: vec![
                    header("x-api-key", api_key)?,
                    header("anthropic-version", anthropic::API_VERSION)?,
                ],
                body: encode(&translated)?,
                response: mode(req.stream),
                dropped,
            })
        }
        ProviderKind::Gemini => {
            let (translated, dropped) = gemini::request::from_openai(&parse_object(body)?)?;
            Ok(Outbound {
                path: gemini::request::path(prefix, model, req.stream),
                headers: vec![header("x-goog-api-key", api_key)?],
                body: encode(&translated)?,
                response: mode(req.stream),
                dropped,
            })
        }
        ProviderKind::Cohere => {
            let (translated, dropped) = cohere::request(&parse_object(body)?, model)?;
            Ok(Outbound {
                path: format!("{prefix}/v2/chat"),
                headers: vec![header("authorization", &format!("Bearer {api_key}"))?],
                body: encode(&translated)?,
                response: mode(req.stream),
                dropped,
            })
        }
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::BadRequest(format!("could not parse the JSON body: {e}")))
}

/// Translate a whole (2xx) JSON response into the client's format.
pub fn response_json(
    provider: &ArchivedProvider,
    model: &str,
    body: &[u8],
    created: u64,
    client: ClientFormat,
) -> Result<Vec<u8>, GatewayError> {
    let openai = openai_json(provider, body, created, model)?;
    if client == ClientFormat::OpenAi {
        return Ok(openai);
    }
    let v: Value =
        serde_json::from_slice(&openai).map_err(|e| GatewayError::Internal(e.to_string()))?;
    Ok(encode(&anthropic::inbound::to_anthropic_message(&v))?.to_vec())
}

fn openai_json(
    provider: &ArchivedProvider,
    body: &[u8],
    created: u64,
    model: &str,
) -> Result<Vec<u8>, GatewayError> {
    let v = match provider.kind.native() {
        ProviderKind::Anthropic => anthropic::response::to_openai(body, created)?,
        ProviderKind::Gemini => gemini::response::to_openai(body, created)?,
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            return compat::answer(body, &compat::AnswerRules::new(&provider.compat))
        }
        ProviderKind::Cohere => cohere::response(body, created, model)?,
    };
    Ok(encode(&v)?.to_vec())
}

/// A translator for a provider's event stream, into the client's format.
pub fn stream_translator(
    provider: &ArchivedProvider,
    model: &str,
    include_usage: bool,
    created: u64,
    client: ClientFormat,
) -> Option<Box<dyn StreamTranslator>> {
    let to_openai = openai_stream(
        provider,
        include_usage || client == ClientFormat::Anthropic,
        created,
        model,
    );
    match client {
        ClientFormat::OpenAi => to_openai,
        ClientFormat::Anthropic => Some(Box::new(Chain {
            first: to_openai,
            second: Box::new(anthropic::inbound::OpenAiToAnthropic::new()),
        })),
    }
}

fn openai_stream(
    provider: &ArchivedProvider,
    include_usage: bool,
    created: u64,
    model: &str,
) -> Option<Box<dyn StreamTranslator>> {
    match provider.kind.native() {
        ProviderKind::Anthropic => Some(Box::new(anthropic::stream::AnthropicToOpenAi::new(
            include_usage,
            created,
        ))),
        ProviderKind::Gemini => Some(Box::new(gemini::stream::GeminiToOpenAi::new(
            include_usage,
            created,
        ))),
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            Some(Box::new(compat::CompatStream::new(
                compat::AnswerRules::new(&provider.compat).hiding_usage(!include_usage),
            )))
        }
        ProviderKind::Cohere => Some(Box::new(cohere::CohereToOpenAi::new(
            include_usage,
            created,
            model,
        ))),
    }
}

/// A provider's error answer in the client's (OpenAI's) shape, keeping the
/// provider's message. Status codes OpenAI clients do not know become the
/// nearest standard one (Anthropic's 529 → 503, which SDKs retry).
pub fn error_response(
    kind: ProviderKind,
    status: u16,
    body: &[u8],
    client: ClientFormat,
) -> (u16, Vec<u8>) {
    match (client, kind) {
        (ClientFormat::OpenAi, _) => openai_error_response(kind, status, body),
        // Same format: the provider's own error, status included.
        (ClientFormat::Anthropic, ProviderKind::Anthropic) => (status, body.to_vec()),
        (ClientFormat::Anthropic, _) => {
            let (status, openai) = openai_error_response(kind, status, body);
            (status, anthropic::inbound::error_body(status, &openai))
        }
    }
}

fn openai_error_response(kind: ProviderKind, status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let status = if status == 529 { 503 } else { status };
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    // Gemini without alt=sse wraps errors in an array.
    let parsed = match parsed {
        Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
        other => other,
    };
    let error = || {
        parsed
            .get("error")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"message": String::from_utf8_lossy(body)}))
    };
    let v = match kind {
        ProviderKind::Anthropic => anthropic::response::openai_error(&error()),
        ProviderKind::Gemini => gemini::response::openai_error(&error()),
        ProviderKind::Cohere => cohere::openai_error(body),
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => return (status, body.to_vec()),
    };
    (status, v.to_string().into_bytes())
}

/// `s` as one URL path segment: everything but RFC 3986's unreserved
/// characters is percent-encoded, `/`, `:`, `?`, `#` and `%` included, and
/// a segment of dots cannot climb the path.
pub fn path_segment(s: &str) -> std::borrow::Cow<'_, str> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    if s.bytes().all(|b| b == b'.') {
        return s.replace('.', "%2E").into();
    }
    utf8_percent_encode(s, SEGMENT).into()
}
