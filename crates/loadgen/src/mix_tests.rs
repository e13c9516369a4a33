//! Unit tests of the request mix: weights, stream shares and the bodies drawn.

use std::collections::HashMap;

use super::*;

const DRAWS: usize = 20_000;

fn draw_many(mix: &mut RequestMix, count: usize) -> Vec<PlannedRequest> {
    (0..count).map(|_| mix.draw()).collect()
}

fn json_of(request: &PlannedRequest) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

#[test]
fn the_default_weights_make_one_and_a_half_percent_client_errors() {
    let weights = Weights::DEFAULT;
    assert_eq!(weights.total(), 1000);
    let client_errors: f64 = RequestKind::ALL
        .iter()
        .filter(|kind| kind.is_client_error())
        .map(|kind| weights.share(*kind))
        .sum();
    assert!((client_errors - 0.015).abs() < 1e-9, "{client_errors}");
    assert_eq!(weights.share(RequestKind::ChatSmall), 0.325);
    assert_eq!(weights.share(RequestKind::WrongKey), 0.005);
    assert_eq!(weights.share(RequestKind::Responses), 0.11);
    assert_eq!(weights.share(RequestKind::Messages), 0.12);
}

/// Checks the share of each kind among `DRAWS` draws against `expected`.
fn assert_shares(mut mix: RequestMix, expected: impl Fn(RequestKind) -> f64) {
    let mut seen: HashMap<RequestKind, usize> = HashMap::new();
    for request in draw_many(&mut mix, DRAWS) {
        *seen.entry(request.kind).or_default() += 1;
        assert_eq!(request.endpoint, request.kind.endpoint());
    }
    for kind in RequestKind::ALL {
        let share = seen.get(&kind).copied().unwrap_or(0) as f64 / DRAWS as f64;
        let expected = expected(kind);
        // Four standard deviations of a binomial share at this many draws.
        let tolerance = 4.0 * (expected * (1.0 - expected) / DRAWS as f64).sqrt();
        assert!(
            (share - expected).abs() <= tolerance,
            "{kind:?}: drew {share}, expected {expected}"
        );
    }
}

#[test]
fn draws_follow_the_weights_when_keys_are_configured() {
    let mix = RequestMix::new(Weights::DEFAULT, 0.3, Some(11)).with_keys(2);
    assert_shares(mix, |kind| Weights::DEFAULT.share(kind));
}

#[test]
fn without_keys_the_wrong_key_share_is_sent_as_small_chat() {
    let mix = RequestMix::new(Weights::DEFAULT, 0.3, Some(11));
    assert_shares(mix, |kind| match kind {
        RequestKind::WrongKey => 0.0,
        RequestKind::ChatSmall => 0.33,
        _ => Weights::DEFAULT.share(kind),
    });
}

#[test]
fn wrong_key_requests_present_the_wrong_key_and_the_rest_take_the_keys_in_turn() {
    let mut mix = RequestMix::new(Weights::DEFAULT, 0.3, Some(8)).with_keys(2);
    let requests = draw_many(&mut mix, DRAWS);
    let mut per_key = [0_usize; 2];
    let mut wrong = 0;
    for request in &requests {
        match (request.kind, request.credential) {
            (RequestKind::WrongKey, Credential::Wrong) => wrong += 1,
            (RequestKind::WrongKey, other) => panic!("a wrong-key request presented {other:?}"),
            (kind, Credential::Key(index)) => {
                assert!(index < 2, "{kind:?} presented key {index}");
                per_key[index] += 1;
            }
            (kind, other) => panic!("{kind:?} presented {other:?}"),
        }
    }
    assert!(wrong > 0);
    // In turn: an even split, to the request.
    assert!(per_key[0].abs_diff(per_key[1]) <= 1, "{per_key:?}");
    let wrong_key = RequestMix::new(Weights::only(RequestKind::WrongKey), 1.0, Some(2))
        .with_keys(1)
        .draw();
    assert!(!wrong_key.stream);
    assert_eq!(json_of(&wrong_key)["model"], CHAT_SMALL_MODEL);
}

#[test]
fn without_keys_no_request_presents_one() {
    let mut mix = RequestMix::new(Weights::only(RequestKind::WrongKey), 0.3, Some(8));
    for request in draw_many(&mut mix, 500) {
        assert_eq!(request.kind, RequestKind::ChatSmall);
        assert_eq!(request.credential, Credential::None);
    }
}

#[test]
fn the_stream_share_applies_to_chat_and_completions_only() {
    let mut mix = RequestMix::new(Weights::DEFAULT, 0.3, Some(5));
    let requests = draw_many(&mut mix, DRAWS);
    let streamable: Vec<_> = requests.iter().filter(|r| r.kind.streamable()).collect();
    let streamed = streamable.iter().filter(|r| r.stream).count() as f64;
    let share = streamed / streamable.len() as f64;
    assert!((share - 0.3).abs() < 0.015, "streamed share {share}");
    for request in requests.iter().filter(|r| !r.kind.streamable()) {
        assert!(!request.stream, "{:?} was streamed", request.kind);
    }
    for request in requests
        .iter()
        .filter(|r| r.kind != RequestKind::MalformedBody)
    {
        assert_eq!(json_of(request).get("stream").is_some(), request.stream);
    }
}

#[test]
fn no_request_is_streamed_with_a_zero_share() {
    let mut mix = RequestMix::new(Weights::DEFAULT, 0.0, Some(5));
    assert!(draw_many(&mut mix, 10_000).iter().all(|r| !r.stream));
}

#[test]
fn about_half_of_the_streamed_chats_ask_for_usage() {
    let mut mix = RequestMix::new(Weights::only(RequestKind::ChatSmall), 1.0, Some(3));
    let requests = draw_many(&mut mix, 10_000);
    let with_usage = requests
        .iter()
        .filter(|r| json_of(r)["stream_options"]["include_usage"] == Value::Bool(true))
        .count();
    assert!((4_500..=5_500).contains(&with_usage), "{with_usage}");

    let mut completions = RequestMix::new(Weights::only(RequestKind::Completion), 1.0, Some(3));
    for request in draw_many(&mut completions, 1_000) {
        assert!(request.stream);
        assert!(json_of(&request).get("stream_options").is_none());
    }
}

#[test]
fn each_kind_names_its_model_and_shape() {
    let cases = [
        (RequestKind::ChatSmall, CHAT_SMALL_MODEL, "messages"),
        (RequestKind::ChatLarge, CHAT_LARGE_MODEL, "messages"),
        (RequestKind::Completion, COMPLETION_MODEL, "prompt"),
        (RequestKind::Embedding, EMBEDDING_MODEL, "input"),
        (RequestKind::UnknownModel, UNKNOWN_MODEL, "messages"),
        (RequestKind::Responses, CHAT_SMALL_MODEL, "input"),
        (RequestKind::Messages, ANTHROPIC_MODEL, "messages"),
    ];
    for (kind, model, field) in cases {
        let mut mix = RequestMix::new(Weights::only(kind), 0.5, Some(1));
        for request in draw_many(&mut mix, 50) {
            let body = json_of(&request);
            assert_eq!(body["model"], model, "{kind:?}");
            assert!(body.get(field).is_some(), "{kind:?} lacks {field}");
            let cap = match kind {
                RequestKind::Embedding => {
                    assert!(body.get("max_tokens").is_none());
                    continue;
                }
                RequestKind::Responses => &body["max_output_tokens"],
                _ => &body["max_tokens"],
            };
            assert!(cap.as_u64().is_some_and(|cap| cap > 0), "{kind:?}");
        }
    }
}

#[test]
fn some_responses_and_messages_share_a_cacheable_system_prompt_and_ask_for_reasoning() {
    let mut mix = RequestMix::new(Weights::only(RequestKind::Responses), 0.5, Some(4));
    let bodies: Vec<Value> = draw_many(&mut mix, 400).iter().map(json_of).collect();
    let shared: Vec<&Value> = bodies
        .iter()
        .filter(|b| b.get("instructions").is_some())
        .collect();
    assert!((100..=220).contains(&shared.len()), "{}", shared.len());
    // Long enough for a provider to cache: past 4096 characters (1024 tokens).
    assert!(shared[0]["instructions"].as_str().unwrap().len() > 4096);
    assert!(bodies.iter().any(|b| b["reasoning"]["effort"] == "low"));
    let mut mix = RequestMix::new(Weights::only(RequestKind::Messages), 0.5, Some(4));
    let marked = draw_many(&mut mix, 400)
        .iter()
        .map(json_of)
        .filter(|b| b["system"][0]["cache_control"]["type"] == "ephemeral")
        .count();
    assert!((100..=220).contains(&marked), "{marked}");
}

#[test]
fn a_malformed_body_is_not_json_but_names_a_model() {
    let mut mix = RequestMix::new(Weights::only(RequestKind::MalformedBody), 1.0, None);
    let request = mix.draw();
    assert_eq!(request.endpoint, Endpoint::ChatCompletions);
    assert!(!request.stream);
    assert!(serde_json::from_slice::<Value>(&request.body).is_err());
    assert!(String::from_utf8_lossy(&request.body).contains("\"model\""));
}

#[test]
fn prompt_lengths_and_caps_vary() {
    let mut mix = RequestMix::new(Weights::only(RequestKind::Completion), 0.0, Some(9));
    let requests = draw_many(&mut mix, 2_000);
    let words: Vec<usize> = requests
        .iter()
        .map(|r| json_of(r)["prompt"].as_str().unwrap().split(' ').count())
        .collect();
    assert!(words.iter().any(|&w| w <= 20));
    assert!(words.iter().any(|&w| (40..=200).contains(&w)));
    assert!(words.iter().any(|&w| w >= 400));
    let mut caps: Vec<u64> = requests
        .iter()
        .map(|r| json_of(r)["max_tokens"].as_u64().unwrap())
        .collect();
    caps.sort_unstable();
    caps.dedup();
    assert_eq!(caps, [16, 32, 64, 128, 256, 512]);
}

#[test]
fn the_same_seed_draws_the_same_requests() {
    let mut first = RequestMix::new(Weights::DEFAULT, 0.3, Some(42));
    let mut second = RequestMix::new(Weights::DEFAULT, 0.3, Some(42));
    assert_eq!(draw_many(&mut first, 200), draw_many(&mut second, 200));
    let mut other = RequestMix::new(Weights::DEFAULT, 0.3, Some(43));
    assert_ne!(draw_many(&mut first, 200), draw_many(&mut other, 200));
}
