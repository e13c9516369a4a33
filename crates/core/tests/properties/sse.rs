//! SSE framing: the splitter that turns upstream chunks into whole events, the `data` field,
//! and the two together on the relay's path to the chunk summary.

use bytes::Bytes;
use mcp_core::openai::summarize_chunk;
use mcp_core::sse::{self, DONE, EventSplitter};
use proptest::prelude::*;
use proptest::sample::{Index, select};

use crate::json::{self, document, show};
use crate::oracle::first_event_end;
use crate::response::chunk;

/// What feeding a stream to the splitter gave.
#[derive(Debug, PartialEq)]
struct Fed {
    events: Vec<Bytes>,
    pending: Vec<u8>,
}

/// Feeds `stream` to a splitter in chunks ending at `cuts` (sorted, repeats give empty chunks)
/// and at the end. After every chunk it checks that the bytes handed back and the bytes
/// pending are exactly the bytes fed so far, that every event handed back is one whole event,
/// and that no whole event is left pending.
fn feed(stream: &[u8], cuts: &[usize]) -> Result<Fed, TestCaseError> {
    let mut splitter = EventSplitter::new();
    let mut handed_back = Vec::new();
    let mut events = Vec::new();
    let mut from = 0;
    for &to in cuts.iter().chain([stream.len()].iter()) {
        if let Some(run) = splitter.push(Bytes::copy_from_slice(&stream[from..to])) {
            prop_assert!(!run.is_empty(), "an empty run");
            let walked: Vec<Bytes> = sse::events(&run).collect();
            prop_assert_eq!(show(&walked.concat()), show(&run), "a run is whole events");
            for event in &walked {
                prop_assert_eq!(first_event_end(event), Some(event.len()), "{}", show(event));
            }
            handed_back.extend_from_slice(&run);
            events.extend(walked);
        }
        from = to;
        let pending = splitter.pending();
        prop_assert_eq!(
            show(&[&handed_back[..], pending].concat()),
            show(&stream[..to])
        );
        prop_assert_eq!(
            first_event_end(pending),
            None,
            "held back: {}",
            show(pending)
        );
    }
    Ok(Fed {
        events,
        pending: splitter.pending().to_vec(),
    })
}

/// Cut points within a stream of `len` bytes, in order.
fn cuts(at: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = at.iter().map(|ix| ix.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// Bytes dense in what framing turns on: `\n`, `\r`, `data:`, blank lines.
fn raw_stream() -> impl Strategy<Value = Bytes> {
    let piece = prop_oneof![
        3 => select(vec![&b"\n"[..], b"\r\n", b"\n\n", b"\r", b"data: ", b":", b"x"])
            .prop_map(<[u8]>::to_vec),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..64).prop_map(|pieces| Bytes::from(pieces.concat()))
}

/// A line ending: `\n` or `\r\n`.
fn newline() -> impl Strategy<Value = &'static [u8]> {
    select(vec![&b"\n"[..], b"\r\n"])
}

/// One event as an upstream frames it: non-empty lines, each ended by `\n` or `\r\n`, then a
/// blank line. A line starts with neither `\n` nor `\r`, so that only the last one is blank.
fn event() -> impl Strategy<Value = Bytes> {
    let byte = prop_oneof![3 => select(b"data: {}\"x\r\t".to_vec()), 1 => any::<u8>()];
    let content = prop::collection::vec(byte, 1..24).prop_map(|mut line| {
        line.retain(|b| *b != b'\n');
        if line.first().is_none_or(|b| *b == b'\r') {
            line.insert(0, b'x');
        }
        line
    });
    (prop::collection::vec((content, newline()), 1..4), newline()).prop_map(|(lines, blank)| {
        let mut event: Vec<u8> = lines
            .into_iter()
            .flat_map(|(l, nl)| [l, nl.to_vec()].concat())
            .collect();
        event.extend_from_slice(blank);
        Bytes::from(event)
    })
}

/// A line of an event: a `data` field (its value and whether a space follows the colon), or
/// another field or a comment, which `data` must ignore.
#[derive(Debug, Clone)]
enum Line {
    Data(Bytes, bool),
    Other(&'static str),
}

fn line() -> impl Strategy<Value = Line> {
    // A value holds no `\n` and does not end in `\r` (which would read as a `\r\n` ending).
    let value = prop::collection::vec(any::<u8>(), 0..16).prop_map(|mut v| {
        v.retain(|b| *b != b'\n');
        if v.last() == Some(&b'\r') {
            v.push(b'x');
        }
        v
    });
    let other = select(vec![
        "event: message",
        "id: 7",
        "retry: 1000",
        ": data: a comment",
        ":",
        "Data: x",
        "datum: x",
        " data: x",
    ]);
    prop_oneof![
        2 => (value, any::<bool>()).prop_map(|(v, spaced)| Line::Data(Bytes::from(v), spaced)),
        1 => other.prop_map(Line::Other),
    ]
}

proptest! {
    #[test]
    fn however_a_stream_is_cut_the_splitter_yields_the_same_events(
        stream in raw_stream(),
        at in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let whole = feed(&stream, &[])?;
        let cut = feed(&stream, &cuts(&at, stream.len()))?;
        prop_assert_eq!(cut, whole);
    }

    #[test]
    fn a_stream_of_whole_events_yields_exactly_those_events_and_keeps_the_rest(
        events in prop::collection::vec(event(), 0..6),
        (tail, end) in (event(), any::<Index>()),
        at in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let tail = &tail[..end.index(tail.len())];
        let stream = [events.concat(), tail.to_vec()].concat();
        let fed = feed(&stream, &cuts(&at, stream.len()))?;
        let got: Vec<String> = fed.events.iter().map(|e| show(e)).collect();
        let sent: Vec<String> = events.iter().map(|e| show(e)).collect();
        prop_assert_eq!(got, sent);
        prop_assert_eq!(show(&fed.pending), show(tail));
    }

    #[test]
    fn data_is_the_data_lines_joined_by_newlines_and_nothing_else(
        lines in prop::collection::vec((line(), newline()), 0..6),
        blank in newline(),
    ) {
        let mut event = Vec::new();
        let mut data: Option<Vec<u8>> = None;
        for (line, nl) in &lines {
            match line {
                Line::Data(value, spaced) => {
                    // One space after the colon is not part of the value, so a value that
                    // starts with a space is written after one.
                    let spaced = *spaced || value.first() == Some(&b' ');
                    event.extend_from_slice(if spaced { b"data: " } else { b"data:" });
                    event.extend_from_slice(value);
                    data = Some(match data {
                        None => value.to_vec(),
                        Some(prev) => [prev, b"\n".to_vec(), value.to_vec()].concat(),
                    });
                }
                Line::Other(other) => event.extend_from_slice(other.as_bytes()),
            }
            event.extend_from_slice(nl);
        }
        event.extend_from_slice(blank);
        let got = sse::data(&event).map(|d| show(&d));
        prop_assert_eq!(got, data.map(|d| show(&d)), "{}", show(&event));
    }

    // What the relay does with each upstream chunk: split into events, take the data, read the
    // chunk. A chunk's JSON may span several data lines, which `data` joins with the newlines
    // that JSON reads as whitespace.
    #[test]
    fn the_relay_reads_every_chunk_of_a_stream_however_it_is_cut(
        chunks in prop::collection::vec((chunk(), json::layout(), any::<bool>()), 0..4),
        nl in newline(),
        at in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for (chunk, layout, keep_alive) in &chunks {
            if *keep_alive {
                stream.extend_from_slice(&[b": keep-alive", nl, nl].concat());
            }
            let (json, _) = document(&chunk.members, layout);
            for line in json.split(|b| *b == b'\n') {
                stream.extend_from_slice(&[b"data: ", line, nl].concat());
            }
            stream.extend_from_slice(nl);
        }
        stream.extend_from_slice(&[b"data: [DONE]", nl, nl].concat());

        let fed = feed(&stream, &cuts(&at, stream.len()))?;
        prop_assert!(fed.pending.is_empty());
        let mut summaries = Vec::new();
        let mut done = false;
        for event in &fed.events {
            match sse::data(event) {
                None => {}
                Some(data) if data.as_ref() == DONE => done = true,
                Some(data) => summaries.push(summarize_chunk(&data).map_err(|e| {
                    TestCaseError::fail(format!("{e}: {}", show(&data)))
                })?),
            }
        }
        let sent: Vec<_> = chunks.iter().map(|(c, ..)| c.summary).collect();
        prop_assert_eq!(summaries, sent, "{}", show(&stream));
        prop_assert!(done);
    }
}
