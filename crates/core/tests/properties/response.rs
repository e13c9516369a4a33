//! The usage reader, which counts a plain answer's tokens, and the chunk summary, which counts a
//! stream's.

use mcp_core::openai::{ChunkSummary, Usage, read_usage, summarize_chunk};
use proptest::prelude::*;
use serde_json::Value;

use crate::json::{self, Json, damage, document, interleave, optional, show};
use crate::oracle::{summary_per_parser, usage_per_parser};

/// Token counts of any size a `u64` holds, small ones more often.
fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0..10_000u64, any::<u64>()]
}

/// A `usage` member as upstreams write it, and what it says: absent, `null`, or an object
/// whose counts are each absent, `null` or a number, among other members (`total_tokens`,
/// the details objects, ...).
fn usage() -> impl Strategy<Value = (Option<Json>, Option<Usage>)> {
    let counts = (
        optional(count()),
        optional(count()),
        json::members(&["prompt_tokens", "completion_tokens"]),
        json::places(),
    );
    optional(counts).prop_map(|usage| match usage {
        None => (None, None),
        Some(None) => (Some(Json::Null), None),
        Some(Some((prompt, completion, others, at))) => {
            let mut read = Vec::new();
            for (name, count) in [("prompt_tokens", prompt), ("completion_tokens", completion)] {
                if let Some(c) = count {
                    read.push((name, c.map_or(Json::Null, |c| Json::Number(c.to_string()))));
                }
            }
            let usage = Usage {
                input: prompt.flatten(),
                output: completion.flatten(),
                ..Usage::default()
            };
            (
                Some(Json::Object(interleave(others, read, &at))),
                Some(usage),
            )
        }
    })
}

/// A plain answer's members and the usage it reports.
fn answer() -> impl Strategy<Value = (Vec<(String, Json)>, Option<Usage>)> {
    (usage(), json::members(&["usage"]), json::places()).prop_map(
        |((member, usage), others, at)| {
            let read = member.map(|m| ("usage", m)).into_iter().collect();
            (interleave(others, read, &at), usage)
        },
    )
}

/// A streamed chunk's members and the summary they must give.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub members: Vec<(String, Json)>,
    pub summary: ChunkSummary,
}

/// Text that is often empty: an empty `content` is no content.
fn maybe_empty() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), json::text()]
}

/// `member` as a `(name, value)` pair when present, and whether it is a non-null value.
fn present(
    name: &'static str,
    member: Option<Option<Json>>,
) -> (Option<(&'static str, Json)>, bool) {
    let set = matches!(member, Some(Some(_)));
    (member.map(|m| (name, m.unwrap_or(Json::Null))), set)
}

/// One of `choices`: a `delta` (chat) or a `text` (completions), and whether it carries content.
fn choice() -> impl Strategy<Value = (Json, bool)> {
    let non_null = || json::value().prop_filter("null is absent", |v| *v != Json::Null);
    let delta = (
        optional(maybe_empty()),
        optional(maybe_empty()),
        optional(non_null()),
        optional(non_null()),
        json::members(&["content", "refusal", "tool_calls", "function_call"]),
        json::places(),
    )
        .prop_map(
            |(content, refusal, tool_calls, function_call, others, at)| {
                let text =
                    |t: &Option<Option<String>>| t.clone().flatten().is_some_and(|t| !t.is_empty());
                let has = text(&content) || text(&refusal);
                let str_member =
                    |name, t: Option<Option<String>>| present(name, t.map(|t| t.map(Json::Str)));
                let (content, _) = str_member("content", content);
                let (refusal, _) = str_member("refusal", refusal);
                let (tool_calls, tools) = present("tool_calls", tool_calls);
                let (function_call, function) = present("function_call", function_call);
                let read = [content, refusal, tool_calls, function_call]
                    .into_iter()
                    .flatten()
                    .collect();
                (
                    Json::Object(interleave(others, read, &at)),
                    has || tools || function,
                )
            },
        );
    (
        optional(delta),
        optional(maybe_empty()),
        json::members(&["delta", "text"]),
        json::places(),
    )
        .prop_map(|(delta, text, others, at)| {
            let text_has = text.clone().flatten().is_some_and(|t| !t.is_empty());
            let delta_has = matches!(delta, Some(Some((_, true))));
            let (delta, _) = present("delta", delta.map(|d| d.map(|(d, _)| d)));
            let (text, _) = present("text", text.map(|t| t.map(Json::Str)));
            let read = [delta, text].into_iter().flatten().collect();
            (
                Json::Object(interleave(others, read, &at)),
                text_has || delta_has,
            )
        })
}

/// Chunks with `choices` absent, `null`, empty (a usage-only chunk) or a few choices; with or
/// without `usage`; some with an `error`.
pub fn chunk() -> impl Strategy<Value = Chunk> {
    let error = json::value().prop_filter("null is no error", |v| *v != Json::Null);
    (
        optional(prop::collection::vec(choice(), 0..3)),
        usage(),
        prop_oneof![4 => Just(None), 1 => optional(error)],
        json::members(&["choices", "usage", "error"]),
        json::places(),
    )
        .prop_map(|(choices, (usage_member, usage), error, others, at)| {
            let has_content = choices.iter().flatten().flatten().any(|(_, has)| *has);
            let no_choices = matches!(&choices, Some(Some(c)) if c.is_empty());
            let choices =
                choices.map(|c| c.map(|c| Json::Array(c.into_iter().map(|(c, _)| c).collect())));
            let (choices, _) = present("choices", choices);
            let (error, is_error) = present("error", error);
            let usage_member = usage_member.map(|u| ("usage", u));
            let read = [choices, usage_member, error]
                .into_iter()
                .flatten()
                .collect();
            Chunk {
                members: interleave(others, read, &at),
                summary: ChunkSummary {
                    has_content,
                    no_choices,
                    usage,
                    is_error,
                },
            }
        })
}

proptest! {
    #[test]
    fn read_usage_returns_exactly_the_top_level_usage(
        (members, usage) in answer(),
        layout in json::layout(),
    ) {
        let (body, _) = document(&members, &layout);
        let read = read_usage(&body).map_err(|e| TestCaseError::fail(format!("{e}: {}", show(&body))))?;
        prop_assert_eq!(read, usage, "{}", show(&body));
    }

    // The gateway answers 502 for an answer it cannot read: an answer cut off anywhere must
    // not pass for a complete one.
    #[test]
    fn a_cut_off_answer_is_an_error(
        (members, _) in answer(),
        layout in json::layout(),
        cut in any::<prop::sample::Index>(),
    ) {
        let (body, _) = document(&members, &layout);
        let close = body.iter().rposition(|b| *b == b'}').unwrap();
        let cut = &body[..cut.index(close + 1)];
        prop_assert!(read_usage(cut).is_err(), "{} was accepted", show(cut));
    }

    #[test]
    fn read_usage_agrees_with_a_json_parser_on_damaged_answers(
        (members, _) in answer(),
        layout in json::layout(),
        edits in json::edits(),
    ) {
        let body = damage(&document(&members, &layout).0, &edits);
        if let (Ok(read), Ok(Value::Object(o))) = (read_usage(&body), serde_json::from_slice(&body)) {
            prop_assert_eq!(read, usage_per_parser(o.get("usage")), "{}", show(&body));
        }
    }

    #[test]
    fn a_chunk_summary_says_what_the_chunk_says(chunk in chunk(), layout in json::layout()) {
        let (data, _) = document(&chunk.members, &layout);
        let summary = summarize_chunk(&data);
        let summary = summary.map_err(|e| TestCaseError::fail(format!("{e}: {}", show(&data))))?;
        prop_assert_eq!(summary, chunk.summary, "{}", show(&data));
    }

    #[test]
    fn a_chunk_summary_agrees_with_a_json_parser_on_damaged_chunks(
        chunk in chunk(),
        layout in json::layout(),
        edits in json::edits(),
    ) {
        let data = damage(&document(&chunk.members, &layout).0, &edits);
        if let (Ok(summary), Ok(Value::Object(o))) = (summarize_chunk(&data), serde_json::from_slice(&data)) {
            prop_assert_eq!(summary, summary_per_parser(&o), "{}", show(&data));
        }
    }
}
