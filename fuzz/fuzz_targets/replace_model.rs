//! The model replacement on any body and any model name: no panic, and where a JSON parser
//! reads the body as an object, the result is JSON with the new model and every other member
//! unchanged.
//!
//! Input: the body, then optionally a NUL byte and the new model's name (lossily UTF-8).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcp_core::openai::replace_model;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (body, model) = match data.iter().position(|b| *b == 0) {
        Some(nul) => (&data[..nul], String::from_utf8_lossy(&data[nul + 1..])),
        None => (data, "gpt-4o-mini-2024-07-18".into()),
    };
    let Ok(Some(out)) = replace_model(&Bytes::copy_from_slice(body), &model) else {
        return;
    };
    let Ok(Value::Object(mut before)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Ok(Value::Object(mut after)) = serde_json::from_slice::<Value>(&out) else {
        panic!("the replacement is not a JSON object");
    };
    assert_eq!(
        after.remove("model"),
        Some(Value::String(model.into_owned()))
    );
    before.remove("model");
    assert_eq!(before, after);
});
