//! A fast mock upstream for load runs: canned OpenAI and Anthropic answers
//! (JSON, or SSE streams of a chosen length) on keep-alive connections,
//! served by monoio threads. Unlike `tools::mock` it checks nothing and
//! records nothing: its only job is to cost as little as possible.

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Content chunks in a streamed answer.
    pub stream_chunks: usize,
    /// Answer every request with 503 (a failing target).
    pub fail: bool,
}

/// Starts `threads` server threads on a free loopback port; they live as
/// long as the process.
pub fn start(threads: usize, behaviour: Behaviour) -> std::io::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = std_listener.local_addr()?;
    for _ in 0..threads.max(1) {
        let l = std_listener.try_clone()?;
        std::thread::spawn(move || {
            let Ok(mut rt) = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().build() else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = TcpListener::from_std(l) else {
                    return;
                };
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(serve(stream, behaviour));
                }
            });
        });
    }
    Ok(addr)
}

async fn serve(mut stream: TcpStream, b: Behaviour) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // One request: head, then content-length bytes of body.
        let (head_end, body_len) = loop {
            if let Some(found) = request_head(&buf) {
                break found;
            }
            let (r, c) = stream.read(chunk).await;
            chunk = c;
            match r {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < head_end + body_len {
            let (r, c) = stream.read(chunk).await;
            chunk = c;
            match r {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let request = &buf[..head_end + body_len];
        let anthropic = request.starts_with(b"POST /v1/messages");
        let streamed = contains(&request[head_end..], b"\"stream\":true");
        let reply = if b.fail {
            fixed(
                503,
                br#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            )
        } else {
            match (anthropic, streamed) {
                (false, false) => fixed(200, OPENAI_JSON.as_bytes()),
                (true, false) => fixed(200, ANTHROPIC_JSON.as_bytes()),
                (false, true) => openai_stream(b.stream_chunks),
                (true, true) => anthropic_stream(b.stream_chunks),
            }
        };
        buf.drain(..head_end + body_len);
        let (r, _) = stream.write_all(reply).await;
        if r.is_err() {
            return;
        }
    }
}

fn request_head(buf: &[u8]) -> Option<(usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let len = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Some((end, len))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

const OPENAI_JSON: &str = r#"{"id":"chatcmpl-load","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"The answer is 42."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}"#;
const ANTHROPIC_JSON: &str = r#"{"id":"msg_load","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"The answer is 42."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":6}}"#;

fn fixed(status: u16, body: &[u8]) -> Vec<u8> {
    let reason = if status == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn sse(events: &[String]) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for e in events {
        out.extend_from_slice(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes());
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn openai_stream(chunks: usize) -> Vec<u8> {
    let head = r#"{"id":"chatcmpl-load","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":"#;
    let mut events = vec![format!(
        "data: {head}{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"
    )];
    for i in 0..chunks {
        events.push(format!(
            "data: {head}{{\"content\":\"w{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    events.push(format!(
        "data: {head}{{}},\"finish_reason\":\"stop\"}}]}}\n\n"
    ));
    events.push(format!(
        "data: {{\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\n",
        chunks + 12
    ));
    events.push("data: [DONE]\n\n".to_string());
    sse(&events)
}

fn anthropic_stream(chunks: usize) -> Vec<u8> {
    let mut events = vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_load\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n".to_string(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_string(),
    ];
    for i in 0..chunks {
        events.push(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"w{i} \"}}}}\n\n"));
    }
    events.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_string(),
    );
    events.push(format!("event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{chunks}}}}}\n\n"));
    events.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string());
    sse(&events)
}
