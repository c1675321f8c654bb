//! Incremental Server-Sent Events parsing (WHATWG rules): feed bytes as
//! they arrive, get complete events out. Lines may end in LF, CRLF or CR
//! (Gemini sends CRLF); `data:` lines of one event are joined with `\n`;
//! comment lines (`:`) and unknown fields are ignored; a chunk boundary may
//! fall anywhere, even inside a line ending.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, empty when absent.
    pub event: String,
    pub data: String,
}

#[derive(Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    /// The previous byte was CR: a following LF belongs to it.
    after_cr: bool,
    /// The event's `data:` lines passed [`MAX_EVENT`].
    oversized: bool,
}

/// Longest line accepted; a provider that never ends a line cannot make
/// the gateway buffer without bound.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Largest event (its `data:` lines joined): many short lines cannot add
/// up to an unbounded event either.
pub const MAX_EVENT: usize = 16 * 1024 * 1024;

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out);
                    if self.oversized {
                        return Err(format!("an SSE event larger than {MAX_EVENT} bytes"));
                    }
                }
                _ => {
                    if self.line.len() >= MAX_LINE {
                        return Err(format!("an SSE line longer than {MAX_LINE} bytes"));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// End of stream: an event not followed by a blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            self.end_line(out);
        }
        self.dispatch(out);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.oversized || self.data.len() + value.len() + 1 > MAX_EVENT {
                    self.oversized = true;
                    self.data = String::new();
                    return;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.oversized {
            // Never delivered: `feed` has already failed the stream.
            self.event.clear();
            self.data.clear();
        } else if self.has_data {
            out.push(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        } else {
            self.event.clear();
        }
        self.has_data = false;
    }
}

/// One SSE frame: `event: …` (when given) and `data: …`, blank-line ended.
pub fn frame(event: Option<&str>, data: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + 32);
    if let Some(e) = event {
        f.extend_from_slice(b"event: ");
        f.extend_from_slice(e.as_bytes());
        f.push(b'\n');
    }
    for line in data.split('\n') {
        f.extend_from_slice(b"data: ");
        f.extend_from_slice(line.as_bytes());
        f.push(b'\n');
    }
    f.push(b'\n');
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(bytes: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            p.feed(chunk, &mut out).unwrap();
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn splits_anywhere_and_handles_all_line_endings() {
        let text = b"event: a\r\ndata: 1\r\n\r\n: comment\n\ndata: x\ndata: y\n\nevent: b\rdata: 2\r\rdata: last";
        for piece in [1, 2, 3, 7, 1000] {
            let ev = parse_in_pieces(text, piece);
            assert_eq!(ev.len(), 4, "piece {piece}");
            assert_eq!(
                ev[0],
                SseEvent {
                    event: "a".into(),
                    data: "1".into()
                }
            );
            assert_eq!(ev[1].data, "x\ny");
            assert_eq!(
                ev[2],
                SseEvent {
                    event: "b".into(),
                    data: "2".into()
                }
            );
            assert_eq!(ev[3].data, "last", "no trailing blank line");
        }
    }

    #[test]
    fn an_endless_event_of_short_lines_is_an_error_not_unbounded_memory() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        let piece =
            b"data: 0123456789012345678901234567890123456789012345678901234567890\n".repeat(1024);
        let mut fed = 0;
        let err = loop {
            match p.feed(&piece, &mut out) {
                Ok(()) => fed += piece.len(),
                Err(e) => break e,
            }
            assert!(fed <= 2 * MAX_EVENT, "still accepting after {fed} bytes");
        };
        assert!(err.contains("event larger"), "{err}");
        assert!(out.is_empty());
    }

    #[test]
    fn recorded_streams_parse_to_their_events() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");
        let Ok(anthropic) = std::fs::read(format!("{dir}/anthropic/stream_tool_use.sse")) else {
            return;
        };
        let ev = parse_in_pieces(&anthropic, 5);
        assert_eq!(ev[0].event, "message_start");
        assert!(ev.iter().any(|e| e.event == "ping"));
        assert_eq!(ev.last().unwrap().event, "message_stop");
        for e in &ev {
            serde_json::from_str::<serde_json::Value>(&e.data)
                .unwrap_or_else(|err| panic!("{err}: {}", e.data));
        }
        let gemini = std::fs::read(format!("{dir}/gemini/stream_text.sse")).unwrap();
        assert!(
            gemini.windows(4).any(|w| w == b"\r\n\r\n"),
            "the corpus sample is CRLF"
        );
        let ev = parse_in_pieces(&gemini, 3);
        assert!(ev.len() >= 2);
        for e in &ev {
            assert!(e.event.is_empty());
            serde_json::from_str::<serde_json::Value>(&e.data).unwrap();
        }
    }

    #[test]
    fn frames_round_trip() {
        let f = frame(Some("message_start"), "{\"a\":1}\nsecond");
        let ev = parse_in_pieces(&f, 4);
        assert_eq!(
            ev,
            [SseEvent {
                event: "message_start".into(),
                data: "{\"a\":1}\nsecond".into()
            }]
        );
    }
}
