//! Phases 5 and 7: request and response translation, pure functions over
//! bytes. Only the OpenAI wire format exists so far; other providers answer
//! 501 until their translators land.

pub mod openai;
