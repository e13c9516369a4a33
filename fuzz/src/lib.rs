//! What the fuzz targets check their function against: the property tests' oracle, the same
//! rules read off a `serde_json::Value` (one file, so that both check the same thing).

#[path = "../../crates/core/tests/properties/oracle.rs"]
mod oracle;

pub use oracle::{field, first_event_end, summary_per_parser, usage_per_parser};
