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
/// What every `chat.completion.chunk` of one translated stream repeats;
/// each stream translator into OpenAI's format keeps one and writes its
/// chunks through it.
#[derive(Default)]
pub struct ChunkHead {
    /// Learnt from the provider's first event.
    pub id: String,
    pub created: u64,
    pub model: String,
    /// The client asked for usage: every chunk carries `"usage": null`
    /// until the last.
    pub include_usage: bool,
}

impl ChunkHead {
    pub fn new(include_usage: bool, created: u64) -> ChunkHead {
        ChunkHead {
            include_usage,
            created,
            ..ChunkHead::default()
        }
    }

    /// One chunk event, written straight out.
    ///
    /// The bytes are exactly those of the `json!` object serialised (keys
    /// in serde_json's sorted order), without building a map per event:
    /// this runs once per token.
    pub fn chunk(&self, delta: &Value, finish: Option<&str>, out: &mut Vec<u8>) {
        // Writing JSON values into a Vec cannot fail.
        out.extend_from_slice(b"data: {\"choices\":[{\"delta\":");
        let _ = serde_json::to_writer(&mut *out, delta);
        out.extend_from_slice(b",\"finish_reason\":");
        let _ = serde_json::to_writer(&mut *out, &finish);
        out.extend_from_slice(b",\"index\":0,\"logprobs\":null}],\"created\":");
        out.extend_from_slice(self.created.to_string().as_bytes());
        out.extend_from_slice(b",\"id\":");
        let _ = serde_json::to_writer(&mut *out, &self.id);
        out.extend_from_slice(b",\"model\":");
        let _ = serde_json::to_writer(&mut *out, &self.model);
        out.extend_from_slice(b",\"object\":\"chat.completion.chunk\"");
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":null");
        }
        out.extend_from_slice(b"}\n\n");
    }

    /// The closing chunk that carries the usage (no choices), when the
    /// client asked for it.
    pub fn usage_chunk(&self, usage: Value, out: &mut Vec<u8>) {
        if self.include_usage {
            let c = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage,
            });
            data(&c, out);
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: the object every translator used to build per event.
    fn via_map(head: &ChunkHead, delta: &Value, finish: Option<&str>) -> Vec<u8> {
        let mut c = json!({
            "id": head.id, "object": "chat.completion.chunk", "created": head.created, "model": head.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if head.include_usage {
            c["usage"] = Value::Null;
        }
        let mut out = Vec::new();
        data(&c, &mut out);
        out
    }

    #[test]
    fn chunks_are_byte_for_byte_what_the_map_gave() {
        let deltas = [
            json!({"content": "a \"quoted\" word, \u{e9}t\u{e9} \u{1f600}\n"}),
            json!({}),
            json!({"role": "assistant", "content": ""}),
            json!({"tool_calls": [{"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
        ];
        for include_usage in [false, true] {
            let head = ChunkHead {
                id: "msg_01\"x\u{2028}".into(),
                created: 1_700_000_000,
                model: "claude-haiku-4-5".into(),
                include_usage,
            };
            for delta in &deltas {
                for finish in [None, Some("stop"), Some("tool_calls")] {
                    let mut out = Vec::new();
                    head.chunk(delta, finish, &mut out);
                    assert_eq!(
                        String::from_utf8_lossy(&out),
                        String::from_utf8_lossy(&via_map(&head, delta, finish))
                    );
                }
            }
        }
    }
}
