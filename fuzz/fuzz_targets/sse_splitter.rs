//! The SSE splitter on any stream cut anywhere: no panic; after every chunk, the bytes handed
//! back and the bytes pending are exactly the bytes fed, every event handed back is one whole
//! event, and no whole event is left pending; and the events are those of the stream fed in
//! one piece. Each event's `data` and its chunk summary are read too, for panics.
//!
//! Input: a byte `n`, then `n % 32` chunk lengths (one byte each, 0 for an empty chunk), then
//! the stream. The lengths are used in turn; what they leave is the last chunk.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcp_core::openai::summarize_chunk;
use mcp_core::sse::{self, EventSplitter};
use mcp_fuzz::first_event_end;

fn feed(stream: &[u8], lengths: &[u8]) -> (Vec<Bytes>, Vec<u8>) {
    let mut splitter = EventSplitter::new();
    let mut handed_back = Vec::new();
    let mut events = Vec::new();
    let mut from = 0;
    let ends = lengths.iter().map(|n| usize::from(*n));
    for len in ends.chain([stream.len()]) {
        let to = (from + len).min(stream.len());
        if let Some(run) = splitter.push(Bytes::copy_from_slice(&stream[from..to])) {
            assert!(!run.is_empty());
            let walked: Vec<Bytes> = sse::events(&run).collect();
            assert_eq!(walked.concat(), run.to_vec(), "a run is whole events");
            for event in &walked {
                assert_eq!(first_event_end(event), Some(event.len()));
            }
            handed_back.extend_from_slice(&run);
            events.extend(walked);
        }
        from = to;
        let pending = splitter.pending();
        assert_eq!([&handed_back[..], pending].concat(), &stream[..to]);
        assert_eq!(first_event_end(pending), None, "a whole event is held back");
    }
    (events, splitter.pending().to_vec())
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (lengths, stream) = rest.split_at(usize::from(n % 32).min(rest.len()));
    let cut = feed(stream, lengths);
    assert_eq!(cut, feed(stream, &[]));
    for event in &cut.0 {
        if let Some(data) = sse::data(event) {
            let _ = summarize_chunk(&data);
        }
    }
});
