//! The request peek on any bytes: no panic, and on a JSON object it reads what a JSON parser
//! reads there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_core::openai::RequestPeek;
use mcp_fuzz::field;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let Ok(peek) = serde_json::from_slice::<RequestPeek<'_>>(body) else {
        return;
    };
    // Intake refuses a body that is not an object before it looks at the peek.
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let is_true = |v: Option<&Value>| v == Some(&Value::Bool(true));
    let options = o.get("stream_options").filter(|v| !v.is_null());
    assert_eq!(
        peek.model.as_deref(),
        o.get("model").and_then(Value::as_str)
    );
    assert_eq!(peek.is_stream(), is_true(o.get("stream")));
    assert_eq!(peek.stream_options.is_some(), options.is_some());
    let usage = options.and_then(|s| field(s, "include_usage", 0));
    assert_eq!(peek.wants_stream_usage(), is_true(usage));
});
