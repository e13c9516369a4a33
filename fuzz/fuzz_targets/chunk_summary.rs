//! The chunk summary on any bytes: no panic, and on a JSON object it says what a JSON parser
//! reads there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_core::openai::summarize_chunk;
use mcp_fuzz::summary_per_parser;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(summary) = summarize_chunk(data) else {
        return;
    };
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(data) {
        assert_eq!(summary, summary_per_parser(&o));
    }
});
