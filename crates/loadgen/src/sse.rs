//! Reading a streamed answer to its end. The loadgen does not need the tokens, only whether
//! the stream ended properly, as its API ends one: chat and completions with `data: [DONE]`,
//! the Responses API with `event: response.completed` (or `response.incomplete`), the
//! Messages API with `event: message_stop`; and no error event on the way (the gateway ends a
//! broken stream with a `stream_interrupted` error event in the API's shape; a cut connection
//! ends it without its last event).

use crate::mix::Endpoint;

/// Why a stream did not end properly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// An event carried an `error` object.
    ErrorEvent,
    /// The body ended without `[DONE]`.
    NoDone,
    /// Reading the body failed (reset, timeout).
    ReadFailed,
}

/// Watches a Server-Sent Events body chunk by chunk, keeping only the unfinished last line.
#[derive(Debug, Default)]
pub struct StreamWatch {
    partial: Vec<u8>,
    events: u64,
    /// The typed events of the Responses and Messages APIs, named by `event:` lines.
    typed: bool,
    done: bool,
    error_event: bool,
}

impl StreamWatch {
    /// A watch for a stream of `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            typed: matches!(endpoint, Endpoint::Responses | Endpoint::Messages),
            ..Self::default()
        }
    }

    /// Feeds the next chunk of the body, as it arrived.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.partial.extend_from_slice(chunk);
        let mut consumed = 0;
        while let Some(newline) = self.partial[consumed..].iter().position(|&b| b == b'\n') {
            let line = &self.partial[consumed..consumed + newline];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(name) = line.strip_prefix(b"event:").filter(|_| self.typed) {
                match name.trim_ascii() {
                    b"response.completed" | b"response.incomplete" | b"message_stop" => {
                        self.done = true;
                    }
                    b"error" | b"response.failed" => self.error_event = true,
                    _ => {}
                }
            } else if self.typed && line.starts_with(b"data:") {
                self.events += 1;
            } else if let Some(data) = line.strip_prefix(b"data:") {
                let data = data.strip_prefix(b" ").unwrap_or(data);
                self.events += 1;
                if data == b"[DONE]" {
                    self.done = true;
                } else if is_error_event(data) {
                    self.error_event = true;
                }
            }
            consumed += newline + 1;
        }
        self.partial.drain(..consumed);
    }

    /// How many `data:` lines were seen.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// How the stream ended, once the body is exhausted.
    pub fn finish(self) -> Result<u64, StreamFault> {
        if self.error_event {
            Err(StreamFault::ErrorEvent)
        } else if self.done {
            Ok(self.events)
        } else {
            Err(StreamFault::NoDone)
        }
    }
}

fn is_error_event(data: &[u8]) -> bool {
    // A cheap test first: content chunks never start with `{"error"`, and most events are
    // content chunks that need no parsing at all.
    if !data.windows(7).any(|window| window == b"\"error\"") {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(data)
        .is_ok_and(|event| event.get("error").is_some_and(|error| !error.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = r#"data: {"id":"c1","choices":[{"delta":{"content":"hi"}}]}"#;

    fn watch(chunks: &[&[u8]]) -> Result<u64, StreamFault> {
        let mut watch = StreamWatch::default();
        for chunk in chunks {
            watch.feed(chunk);
        }
        watch.finish()
    }

    #[test]
    fn a_stream_ending_with_done_is_complete() {
        let body = format!("{CHUNK}\n\n{CHUNK}\n\ndata: [DONE]\n\n");
        assert_eq!(watch(&[body.as_bytes()]), Ok(3));
    }

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let body = format!("{CHUNK}\r\n\r\ndata: [DONE]\r\n\r\n");
        let bytes = body.as_bytes();
        let pieces: Vec<&[u8]> = bytes.chunks(5).collect();
        assert_eq!(watch(&pieces), Ok(2));
    }

    #[test]
    fn a_stream_cut_before_done_is_broken() {
        let body = format!("{CHUNK}\n\n{CHUNK}\n\n");
        assert_eq!(watch(&[body.as_bytes()]), Err(StreamFault::NoDone));
        // A `[DONE]` without its line end has not arrived yet.
        assert_eq!(watch(&[b"data: [DONE]"]), Err(StreamFault::NoDone));
    }

    #[test]
    fn an_error_event_breaks_the_stream_even_before_done() {
        let error = r#"data: {"error":{"message":"upstream stream broke","type":"upstream_error","param":null,"code":"stream_interrupted"}}"#;
        let body = format!("{CHUNK}\n\n{error}\n\ndata: [DONE]\n\n");
        assert_eq!(watch(&[body.as_bytes()]), Err(StreamFault::ErrorEvent));
    }

    #[test]
    fn typed_streams_end_with_their_apis_last_event_and_break_on_error_events() {
        let typed = |endpoint: Endpoint, body: &str| {
            let mut watch = StreamWatch::new(endpoint);
            watch.feed(body.as_bytes());
            watch.finish()
        };
        let delta = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\"}\n\n";
        let completed = "event: response.completed\ndata: {\"type\":\"response.completed\"}\n\n";
        assert_eq!(
            typed(Endpoint::Responses, &format!("{delta}{completed}")),
            Ok(2)
        );
        assert_eq!(typed(Endpoint::Responses, delta), Err(StreamFault::NoDone));
        let error = "event: error\ndata: {\"type\":\"error\"}\n\n";
        assert_eq!(
            typed(
                Endpoint::Messages,
                &format!("{error}event: message_stop\ndata: {{}}\n\n")
            ),
            Err(StreamFault::ErrorEvent)
        );
        assert_eq!(
            typed(
                Endpoint::Messages,
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
            ),
            Ok(1)
        );
    }

    #[test]
    fn content_that_mentions_error_is_not_an_error_event() {
        let chunk =
            r#"data: {"choices":[{"delta":{"content":"\"error\" is a word"}}],"error":null}"#;
        let body = format!("{chunk}\n\ndata: [DONE]\n\n");
        assert_eq!(watch(&[body.as_bytes()]), Ok(2));
    }
}
