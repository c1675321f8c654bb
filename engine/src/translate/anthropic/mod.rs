//! Anthropic Messages API as an outbound provider: OpenAI Chat requests
//! become Messages requests; responses, streams and errors come back in
//! OpenAI's shapes. Mapping rules: `shared/conformance/README.md`.

pub mod inbound;
pub mod request;
pub mod response;
pub mod stream;

/// The API version header every request carries.
pub const API_VERSION: &str = "2023-06-01";
