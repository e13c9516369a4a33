//! Generated JSON: a value tree, and a writer that spells it in any of the ways JSON allows
//! (whitespace between tokens, characters of strings and member names raw or escaped), so
//! that a property holds whatever the spelling, and a failure shrinks towards the most
//! compact spelling that still fails.

use std::ops::Range;

use proptest::prelude::*;
use proptest::sample::{Index, select};

/// A JSON value. Objects are member lists, not maps: the order of members and a repeated name
/// are part of the text under test.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number as it is written, e.g. `-0.5e-3`.
    Number(String),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Member names that the functions under test look for. They turn up as names of nested
/// members too, where they must be ignored.
pub const NAMES: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "include_usage",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "choices",
    "delta",
    "content",
    "refusal",
    "text",
    "tool_calls",
    "function_call",
    "error",
];

/// Strings that look like what the functions under test read, as decoys inside values.
const DECOY_TEXT: &[&str] = &[
    r#""model":"decoy""#,
    r#","usage":{"prompt_tokens":99}}"#,
    "data: {}\n\n",
    "[DONE]",
];

/// Text rich in what JSON must or may escape: quotes, backslashes, control characters, `/`,
/// characters outside the BMP (escaped as surrogate pairs), line separators, a BOM.
pub fn text() -> impl Strategy<Value = String> {
    let tricky = select(vec![
        '"', '\\', '/', '\n', '\r', '\u{0}', '\u{1f}', '\u{7f}', 'é', '\u{2028}', '\u{feff}', '😀',
    ]);
    let chars = prop::collection::vec(
        prop_oneof![
            2 => any::<char>(),
            2 => tricky,
            1 => proptest::char::range('a', 'z'),
        ],
        0..12,
    )
    .prop_map(String::from_iter);
    prop_oneof![
        6 => chars,
        1 => select(DECOY_TEXT).prop_map(String::from),
    ]
}

/// A member name: often one of [`NAMES`], otherwise any text.
pub fn name() -> impl Strategy<Value = String> {
    prop_oneof![select(NAMES).prop_map(String::from), text()]
}

/// Numbers as upstreams write them: integers of any size that fits 64 bits, decimals and
/// exponents (kept within what an `f64` holds, so that a JSON parser reads them all).
pub fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "-?(0|[1-9][0-9]{0,8})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,2})?",
    ]
}

/// Any JSON value, nested a few levels deep.
pub fn value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        number().prop_map(Json::Number),
        text().prop_map(Json::Str),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::vec((name(), inner), 0..4).prop_map(Json::Object),
        ]
    })
}

/// Members a reader must skip: any name but the `read` ones it looks for, any value.
pub fn members(read: &'static [&'static str]) -> impl Strategy<Value = Vec<(String, Json)>> {
    let skipped = name().prop_filter("a name the reader looks for", move |n| {
        !read.contains(&n.as_str())
    });
    prop::collection::vec((skipped, value()), 0..5)
}

/// Where [`interleave`] puts the members a reader looks for.
pub fn places() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 4)
}

/// `others` with each of `read` inserted at the place `at` gives it.
pub fn interleave(
    mut others: Vec<(String, Json)>,
    read: Vec<(&str, Json)>,
    at: &[Index],
) -> Vec<(String, Json)> {
    for (i, (name, value)) in read.into_iter().enumerate() {
        let place = at.get(i).map_or(0, |ix| ix.index(others.len() + 1));
        others.insert(place, (name.to_owned(), value));
    }
    others
}

/// Spelling choices for a [`Writer`]; empty is the compact spelling.
pub fn layout() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

/// Absent (`None`), `null` (`Some(None)`) or a value: the three states of an optional member.
pub fn optional<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<Option<T>>> {
    prop::option::of(prop::option::of(value))
}

/// Writes `Json` with the spelling choices of a layout, taken in turn and cyclically.
#[derive(Debug)]
pub struct Writer<'a> {
    out: Vec<u8>,
    layout: &'a [u8],
    next: usize,
}

impl<'a> Writer<'a> {
    pub fn new(layout: &'a [u8]) -> Self {
        Self {
            out: Vec::new(),
            layout,
            next: 0,
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    fn choice(&mut self) -> u8 {
        if self.layout.is_empty() {
            return 0;
        }
        let c = self.layout[self.next % self.layout.len()];
        self.next += 1;
        c
    }

    /// Whitespace between tokens: mostly none, otherwise each kind JSON allows.
    fn space(&mut self) {
        let ws: &[u8] = match self.choice() % 8 {
            4 => b" ",
            5 => b"\n  ",
            6 => b"\t",
            7 => b"\r\n",
            _ => b"",
        };
        self.out.extend_from_slice(ws);
    }

    pub fn string(&mut self, s: &str) {
        self.out.push(b'"');
        for c in s.chars() {
            let choice = self.choice();
            let short: Option<&[u8]> = match c {
                '"' => Some(br#"\""#),
                '\\' => Some(br"\\"),
                '/' => Some(br"\/"),
                '\n' => Some(br"\n"),
                '\r' => Some(br"\r"),
                '\t' => Some(br"\t"),
                '\u{8}' => Some(br"\b"),
                '\u{c}' => Some(br"\f"),
                _ => None,
            };
            // JSON must escape quotes, backslashes and control characters, and may escape
            // anything: a quarter of the characters are, `/` sometimes as `\/`.
            let must_escape = c == '"' || c == '\\' || c < ' ';
            if choice % 4 == 3 || (must_escape && short.is_none()) {
                self.unicode_escape(c, choice);
            } else if let Some(escape) = short.filter(|_| must_escape || choice % 4 == 1) {
                self.out.extend_from_slice(escape);
            } else {
                let mut utf8 = [0; 4];
                self.out
                    .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
        self.out.push(b'"');
    }

    /// `\uXXXX`, one per UTF-16 unit (a surrogate pair outside the BMP), in either case.
    fn unicode_escape(&mut self, c: char, choice: u8) {
        let mut units = [0; 2];
        for unit in c.encode_utf16(&mut units) {
            let escape = if choice & 0x10 == 0 {
                format!("\\u{unit:04x}")
            } else {
                format!("\\u{unit:04X}")
            };
            self.out.extend_from_slice(escape.as_bytes());
        }
    }

    pub fn value(&mut self, v: &Json) {
        match v {
            Json::Null => self.out.extend_from_slice(b"null"),
            Json::Bool(true) => self.out.extend_from_slice(b"true"),
            Json::Bool(false) => self.out.extend_from_slice(b"false"),
            Json::Number(n) => self.out.extend_from_slice(n.as_bytes()),
            Json::Str(s) => self.string(s),
            Json::Array(items) => {
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    self.space();
                    if i > 0 {
                        self.out.push(b',');
                        self.space();
                    }
                    self.value(item);
                }
                self.space();
                self.out.push(b']');
            }
            Json::Object(members) => {
                self.object(members);
            }
        }
    }

    /// Writes an object; returns where each member's value is in the output, in the order of
    /// `members`.
    pub fn object(&mut self, members: &[(String, Json)]) -> Vec<Range<usize>> {
        let mut spans = Vec::with_capacity(members.len());
        self.out.push(b'{');
        for (i, (name, value)) in members.iter().enumerate() {
            self.space();
            if i > 0 {
                self.out.push(b',');
                self.space();
            }
            self.string(name);
            self.space();
            self.out.push(b':');
            self.space();
            let start = self.out.len();
            self.value(value);
            spans.push(start..self.out.len());
        }
        self.space();
        self.out.push(b'}');
        spans
    }
}

/// A whole body: the object of `members` with whitespace around it, and where each member's
/// value is in it.
pub fn document(members: &[(String, Json)], layout: &[u8]) -> (Vec<u8>, Vec<Range<usize>>) {
    let mut w = Writer::new(layout);
    w.space();
    let spans = w.object(members);
    w.space();
    (w.into_bytes(), spans)
}

/// One change to a byte string, at a place given relative to its length.
#[derive(Debug, Clone)]
pub enum Edit {
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
}

/// A few edits, biased towards bytes that mean something in JSON, so that the damaged text is
/// often still JSON, and a different one.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let byte = prop_oneof![
        2 => select(b"{}[]\",:\\/ 019.eE-+tfnul\n".to_vec()),
        1 => any::<u8>(),
    ];
    let edit = prop_oneof![
        (any::<Index>(), byte.clone()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<Index>(), byte).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<Index>().prop_map(Edit::Remove),
    ];
    prop::collection::vec(edit, 1..4)
}

/// `bytes` with `edits` applied in turn.
pub fn damage(bytes: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for edit in edits {
        match edit {
            Edit::Set(at, b) if !out.is_empty() => {
                let at = at.index(out.len());
                out[at] = *b;
            }
            Edit::Insert(at, b) => out.insert(at.index(out.len() + 1), *b),
            Edit::Remove(at) if !out.is_empty() => {
                out.remove(at.index(out.len()));
            }
            Edit::Set(..) | Edit::Remove(_) => {}
        }
    }
    out
}

pub use crate::oracle::field;

/// Bytes as text in a failure message.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
