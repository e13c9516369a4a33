//! The usage reader on any bytes: no panic, and on a JSON object it reads the usage a JSON
//! parser reads there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_core::openai::read_usage;
use mcp_fuzz::usage_per_parser;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let Ok(usage) = read_usage(body) else {
        return;
    };
    if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) {
        assert_eq!(usage, usage_per_parser(o.get("usage")));
    }
});
