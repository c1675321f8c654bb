//! The part every SSE stream translator shares: parse the provider's bytes
//! into events, hand each to a provider-specific [`EventHandler`], stop at
//! the first error, and finish cleanly or with an error event.

use super::sse::{SseEvent, SseParser};
use super::StreamTranslator;
use serde_json::{json, Value};

/// Where a stream stands: still going, finished, or failed (a failure also
/// finishes it; later events are not honoured).
#[derive(Default)]
pub struct Flow {
    done: bool,
    failed: bool,
}

impl Flow {
    pub fn finish(&mut self) {
        self.done = true;
    }

    pub fn fail(&mut self) {
        self.failed = true;
        self.done = true;
    }

    pub fn done(&self) -> bool {
        self.done
    }
}

/// What one provider's stream events mean in the client's format.
pub trait EventHandler: Send {
    fn event(&mut self, e: SseEvent, out: &mut Vec<u8>, flow: &mut Flow);
    /// The provider's stream ended on its own; close the client's (with
    /// `[DONE]`, or with an error if the provider stopped too early).
    fn end(&mut self, out: &mut Vec<u8>, flow: &mut Flow);
    fn usage(&self) -> Option<Value>;
}

pub struct SseDriven<H> {
    parser: SseParser,
    flow: Flow,
    pub handler: H,
}

impl<H> SseDriven<H> {
    pub fn new(handler: H) -> Self {
        SseDriven {
            parser: SseParser::default(),
            flow: Flow::default(),
            handler,
        }
    }
}

/// One OpenAI `data:` frame.
pub fn data(v: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// An OpenAI-shaped error event for failures of the gateway's own making
/// (unparseable or truncated provider streams).
pub fn error_event(message: &str, code: &str, out: &mut Vec<u8>) {
    data(
        &json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": code}}),
        out,
    );
}

impl<H: EventHandler> StreamTranslator for SseDriven<H> {
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut events = Vec::new();
        let mut out = Vec::new();
        if let Err(e) = self.parser.feed(bytes, &mut events) {
            self.flow.fail();
            error_event(&e, "upstream_invalid_response", &mut out);
            return out;
        }
        for e in events {
            if self.flow.done {
                break;
            }
            self.handler.event(e, &mut out, &mut self.flow);
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut events = Vec::new();
        self.parser.finish(&mut events);
        let mut out = Vec::new();
        for e in events {
            if !self.flow.done {
                self.handler.event(e, &mut out, &mut self.flow);
            }
        }
        if !self.flow.done {
            self.handler.end(&mut out, &mut self.flow);
        }
        out
    }

    fn failed(&self) -> bool {
        self.flow.failed
    }

    fn usage(&self) -> Option<Value> {
        self.handler.usage()
    }
}
