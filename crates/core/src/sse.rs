//! Server-Sent Events framing for the streaming relay.
//!
//! Upstream chunks do not line up with events: one chunk may hold several events, or part of
//! one. [`EventSplitter`] turns the chunk sequence into complete events without copying the
//! bytes it can slice, so that each event is relayed unchanged and as soon as it is whole.
//! Lines end in `\n` or `\r\n` (what every OpenAI-compatible server sends).

use bytes::{Bytes, BytesMut};

/// The payload that ends an OpenAI stream.
pub const DONE: &[u8] = b"[DONE]";

/// Accumulates upstream chunks and hands back complete events.
#[derive(Debug, Default)]
pub struct EventSplitter {
    pending: BytesMut,
}

impl EventSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk; returns the complete events it finishes, as one contiguous run of bytes
    /// (use [`events`] to walk them), or `None` when no event is complete yet.
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        if self.pending.is_empty() {
            // The common case: slice the chunk itself and keep only an incomplete tail.
            let end = last_event_end(&chunk);
            if end < chunk.len() {
                self.pending.extend_from_slice(&chunk[end..]);
            }
            return (end > 0).then(|| chunk.slice(..end));
        }
        // The boundary may straddle the old tail and the new chunk, so rescan from a little
        // before the join.
        let rescan_from = self.pending.len().saturating_sub(3);
        self.pending.extend_from_slice(&chunk);
        let found = last_event_end(&self.pending[rescan_from..]);
        (found > 0).then(|| self.pending.split_to(rescan_from + found).freeze())
    }

    /// Bytes of an event that has started but not ended.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }
}

/// Offset just past the last blank line in `buf`, or 0 if there is none.
fn last_event_end(buf: &[u8]) -> usize {
    let mut end = 0;
    let mut from = 0;
    while let Some(e) = next_event_end(buf, from) {
        end = e;
        from = e;
    }
    end
}

/// Offset just past the first blank line at or after `from`.
fn next_event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = memchr::memchr(b'\n', &buf[at..]) {
        let nl = at + i;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => at = nl + 1,
        }
    }
    None
}

/// Walks the complete events in a run returned by [`EventSplitter::push`]; each item is one
/// event's bytes including its terminating blank line.
pub fn events(run: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let end = next_event_end(run, from)?;
        let event = run.slice(from..end);
        from = end;
        Some(event)
    })
}

/// The event's `data` field: its `data:` lines joined by `\n` (borrowed when there is one
/// line, as in every OpenAI stream). `None` for events without data (comments, keep-alives).
pub fn data(event: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let mut found: Option<std::borrow::Cow<'_, [u8]>> = None;
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(value) = line.strip_prefix(b"data:") else {
            continue;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        found = Some(match found {
            None => std::borrow::Cow::Borrowed(value),
            Some(prev) => {
                let mut joined = prev.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(value);
                std::borrow::Cow::Owned(joined)
            }
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(splitter: &mut EventSplitter, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for c in chunks {
            if let Some(run) = splitter.push(Bytes::copy_from_slice(c)) {
                out.extend(events(&run).map(|e| e.to_vec()));
            }
        }
        out
    }

    #[test]
    fn several_events_in_one_chunk_come_out_whole_and_unchanged() {
        let mut s = EventSplitter::new();
        let got = collect(
            &mut s,
            &[b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DO"],
        );
        assert_eq!(
            got,
            vec![
                b"data: {\"a\":1}\n\n".to_vec(),
                b"data: {\"b\":2}\n\n".to_vec()
            ]
        );
        assert_eq!(s.pending(), b"data: [DO");
        let got = collect(&mut s, &[b"NE]\n\n"]);
        assert_eq!(got, vec![b"data: [DONE]\n\n".to_vec()]);
        assert!(s.pending().is_empty());
    }

    #[test]
    fn a_boundary_split_across_chunks_is_found() {
        for split in [b"data: x\n".as_slice(), b"data: x", b"data: x\r\n\r"] {
            let whole: &[u8] = b"data: x\r\n\r\ndata: y\n\n";
            let (a, b) = whole.split_at(split.len());
            let mut s = EventSplitter::new();
            let got = collect(&mut s, &[a, b]);
            assert_eq!(got.concat(), whole, "split after {:?}", split);
            assert_eq!(got.len(), 2);
        }
    }

    #[test]
    fn byte_by_byte_feeding_yields_the_same_events() {
        let whole: &[u8] = b": keep-alive\n\ndata: {\"x\":\"a\\nb\"}\n\ndata: [DONE]\n\n";
        let chunks: Vec<&[u8]> = whole.chunks(1).collect();
        let mut s = EventSplitter::new();
        let got = collect(&mut s, &chunks);
        assert_eq!(got.len(), 3);
        assert_eq!(got.concat(), whole);
    }

    #[test]
    fn data_joins_multiple_lines_and_ignores_other_fields() {
        assert_eq!(
            data(b"event: x\ndata: a\ndata:b\n\n").unwrap().as_ref(),
            b"a\nb"
        );
        assert_eq!(data(b"data: [DONE]\r\n\r\n").unwrap().as_ref(), DONE);
        assert!(data(b": comment\n\n").is_none());
    }
}
