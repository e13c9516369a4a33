//! The responses the mock generated, kept for `GET`/`DELETE /v1/responses/{id}`,
//! `GET /v1/responses/{id}/input_items` and `previous_response_id`; bounded, the oldest
//! forgotten first.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value, json};

/// Stored responses kept at most.
const STORE_CAPACITY: usize = 1024;

/// Generated responses, for retrieval and for `previous_response_id`.
#[derive(Debug, Default)]
pub(crate) struct ResponseStore {
    responses: Mutex<VecDeque<Stored>>,
}

#[derive(Debug)]
struct Stored {
    id: String,
    body: Value,
    items: Vec<Value>,
}

impl ResponseStore {
    pub(crate) fn insert(&self, body: &Value, items: &[Value]) {
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let items = items
            .iter()
            .map(|item| {
                let mut item = item.clone();
                if item.get("id").is_none() {
                    item["id"] =
                        json!(format!("msg_{id}_{}", item.as_object().map_or(0, Map::len)));
                }
                item
            })
            .collect();
        let mut responses = self
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if responses.len() >= STORE_CAPACITY {
            responses.pop_front();
        }
        responses.push_back(Stored {
            id,
            body: body.clone(),
            items,
        });
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&Stored) -> T) -> Option<T> {
        let responses = self
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        responses.iter().find(|s| s.id == id).map(f)
    }

    /// The tokens a continuation of `id` carries over: its input and output.
    pub(crate) fn tokens(&self, id: &str) -> Option<u64> {
        self.with(id, |s| {
            s.body["usage"]["total_tokens"].as_u64().unwrap_or(0)
        })
    }

    pub(crate) fn get(&self, id: &str) -> Option<Value> {
        self.with(id, |s| s.body.clone())
    }

    pub(crate) fn input_items(&self, id: &str) -> Option<Value> {
        self.with(id, |s| {
            json!({
                "object": "list",
                "data": s.items,
                "first_id": s.items.first().map(|i| i["id"].clone()),
                "last_id": s.items.last().map(|i| i["id"].clone()),
                "has_more": false,
            })
        })
    }

    pub(crate) fn delete(&self, id: &str) -> bool {
        let mut responses = self
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let before = responses.len();
        responses.retain(|s| s.id != id);
        responses.len() < before
    }
}
