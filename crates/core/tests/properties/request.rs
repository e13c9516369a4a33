//! The request peek, which intake routes on, and the in-place model replacement, which sends a
//! deployment the request under its own name for the model.

use bytes::Bytes;
use mcp_core::openai::{RequestPeek, replace_model};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;
use serde_json::error::Category;

use crate::json::{self, Json, damage, document, interleave, optional, show};

/// The members the peek reads.
const READ: &[&str] = &["model", "stream", "stream_options"];

/// A request body's members and what the peek must read from them.
#[derive(Debug, Clone)]
struct Request {
    members: Vec<(String, Json)>,
    model: Option<String>,
    stream: bool,
    wants_usage: bool,
    has_stream_options: bool,
}

/// Requests whose `model`, `stream`, `stream_options` and `include_usage` are each absent,
/// `null` or of their type, at any place among members the peek skips.
fn request() -> impl Strategy<Value = Request> {
    let options = optional((
        json::members(&["include_usage"]),
        optional(any::<bool>()),
        json::places(),
    ));
    (
        optional(json::text()),
        optional(any::<bool>()),
        options,
        json::members(READ),
        json::places(),
    )
        .prop_map(|(model, stream, options, others, at)| {
            let mut read = Vec::new();
            if let Some(m) = &model {
                read.push(("model", m.clone().map_or(Json::Null, Json::Str)));
            }
            if let Some(s) = stream {
                read.push(("stream", s.map_or(Json::Null, Json::Bool)));
            }
            let mut wants_usage = false;
            if let Some(o) = &options {
                let value = o.clone().map_or(Json::Null, |(others, usage, at)| {
                    wants_usage = usage == Some(Some(true));
                    let read: Vec<_> = usage
                        .map(|u| ("include_usage", u.map_or(Json::Null, Json::Bool)))
                        .into_iter()
                        .collect();
                    Json::Object(interleave(others, read, &at))
                });
                read.push(("stream_options", value));
            }
            Request {
                members: interleave(others, read, &at),
                model: model.flatten(),
                stream: stream == Some(Some(true)),
                wants_usage,
                has_stream_options: matches!(options, Some(Some(_))),
            }
        })
}

/// A `model` to replace: mostly a string, but the replacement takes whatever value is there.
fn present_model() -> impl Strategy<Value = Json> {
    prop_oneof![
        3 => json::text().prop_map(Json::Str),
        1 => json::value().prop_filter("null is no model", |v| *v != Json::Null),
    ]
}

/// Where the JSON parser reads a body as an object, what the peek must read from it.
fn peek_per_parser(body: &[u8]) -> Option<(Option<String>, bool, bool)> {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let is_true = |v: Option<&Value>| v == Some(&Value::Bool(true));
    let usage = o
        .get("stream_options")
        .and_then(|s| json::field(s, "include_usage", 0));
    Some((
        o.get("model").and_then(Value::as_str).map(String::from),
        is_true(o.get("stream")),
        is_true(usage),
    ))
}

proptest! {
    #[test]
    fn the_peek_reads_model_and_stream_options_whatever_surrounds_and_spells_them(
        req in request(),
        layout in json::layout(),
    ) {
        let (body, _) = document(&req.members, &layout);
        let peek = serde_json::from_slice::<RequestPeek<'_>>(&body);
        let peek = peek.map_err(|e| TestCaseError::fail(format!("{e} in {}", show(&body))))?;
        prop_assert_eq!(peek.model.as_deref(), req.model.as_deref(), "{}", show(&body));
        prop_assert_eq!(peek.is_stream(), req.stream, "{}", show(&body));
        prop_assert_eq!(peek.wants_stream_usage(), req.wants_usage, "{}", show(&body));
        prop_assert_eq!(peek.stream_options.is_some(), req.has_stream_options);
    }

    // Intake names the member in its answer for a data error, and says the body is not JSON
    // for the others.
    #[test]
    fn a_model_or_stream_of_the_wrong_type_is_a_data_error(
        (member, wrong) in select(vec!["model", "stream"]).prop_flat_map(|member| {
            let wrong = json::value().prop_filter("a value of the right type", move |v| {
                !matches!(
                    (member, v),
                    (_, Json::Null) | ("model", Json::Str(_)) | ("stream", Json::Bool(_))
                )
            });
            (Just(member), wrong)
        }),
        others in json::members(READ),
        at in json::places(),
        layout in json::layout(),
    ) {
        let (body, _) = document(&interleave(others, vec![(member, wrong)], &at), &layout);
        match serde_json::from_slice::<RequestPeek<'_>>(&body) {
            Ok(_) => prop_assert!(false, "{} was accepted", show(&body)),
            Err(e) => prop_assert_eq!(e.classify(), Category::Data, "{}: {}", e, show(&body)),
        }
    }

    #[test]
    fn a_cut_off_body_is_a_syntax_error_not_a_wrong_member(
        req in request(),
        layout in json::layout(),
        cut in any::<prop::sample::Index>(),
    ) {
        let (body, _) = document(&req.members, &layout);
        let close = body.iter().rposition(|b| *b == b'}').unwrap();
        let cut = &body[..cut.index(close + 1)];
        match serde_json::from_slice::<RequestPeek<'_>>(cut) {
            Ok(_) => prop_assert!(false, "{} was accepted", show(cut)),
            Err(e) => prop_assert_ne!(e.classify(), Category::Data, "{}: {}", e, show(cut)),
        }
    }

    #[test]
    fn the_peek_agrees_with_a_json_parser_on_damaged_bodies(
        req in request(),
        layout in json::layout(),
        edits in json::edits(),
    ) {
        let body = damage(&document(&req.members, &layout).0, &edits);
        let peek = serde_json::from_slice::<RequestPeek<'_>>(&body);
        if let (Ok(peek), Some(expected)) = (peek, peek_per_parser(&body)) {
            let (stream, wants_usage) = (peek.is_stream(), peek.wants_stream_usage());
            let read = (peek.model.map(String::from), stream, wants_usage);
            prop_assert_eq!(read, expected, "{}", show(&body));
        }
    }

    #[test]
    fn replacing_the_model_changes_its_value_and_not_one_other_byte(
        model in present_model(),
        others in json::members(&["model"]),
        at in json::places(),
        new in json::text(),
        layout in json::layout(),
    ) {
        let members = interleave(others, vec![("model", model)], &at);
        let (body, spans) = document(&members, &layout);
        let span = spans[members.iter().position(|(name, _)| name == "model").unwrap()].clone();
        let out = replace_model(&Bytes::from(body.clone()), &new).unwrap();
        let out = out.ok_or_else(|| TestCaseError::fail("no model found"))?;
        let encoded = serde_json::to_string(&new).unwrap();
        let expected = [&body[..span.start], encoded.as_bytes(), &body[span.end..]].concat();
        prop_assert_eq!(show(&out), show(&expected));
        // The same, read by a JSON parser rather than compared byte by byte.
        let Value::Object(mut before) = serde_json::from_slice(&body).unwrap() else {
            unreachable!("a document is an object")
        };
        let Value::Object(mut after) = serde_json::from_slice(&out).unwrap() else {
            unreachable!("the replacement keeps the object")
        };
        prop_assert_eq!(after.remove("model"), Some(Value::String(new)));
        before.remove("model");
        prop_assert_eq!(before, after);
    }

    #[test]
    fn a_body_without_a_model_or_with_a_null_one_is_left_alone(
        null in any::<bool>(),
        others in json::members(&["model"]),
        at in json::places(),
        new in json::text(),
        layout in json::layout(),
    ) {
        let read = if null { vec![("model", Json::Null)] } else { Vec::new() };
        let (body, _) = document(&interleave(others, read, &at), &layout);
        prop_assert_eq!(replace_model(&Bytes::from(body), &new).unwrap(), None);
    }

    #[test]
    fn a_replacement_in_a_damaged_body_still_keeps_every_other_member(
        model in present_model(),
        others in json::members(&["model"]),
        at in json::places(),
        new in json::text(),
        layout in json::layout(),
        edits in json::edits(),
    ) {
        let members = interleave(others, vec![("model", model)], &at);
        let body = damage(&document(&members, &layout).0, &edits);
        let replaced = replace_model(&Bytes::from(body.clone()), &new);
        let parsed = serde_json::from_slice::<Value>(&body);
        if let (Ok(Some(out)), Ok(Value::Object(mut before))) = (replaced, parsed) {
            let after = serde_json::from_slice::<Value>(&out);
            let Ok(Value::Object(mut after)) = after else {
                return Err(TestCaseError::fail(format!("{} became {}", show(&body), show(&out))));
            };
            prop_assert_eq!(after.remove("model"), Some(Value::String(new)));
            before.remove("model");
            prop_assert_eq!(before, after);
        }
    }
}
