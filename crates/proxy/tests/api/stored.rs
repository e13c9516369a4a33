//! Stored responses live with the upstream that created them: a continuation
//! (`previous_response_id`) and a retrieval must reach that upstream, pinned by the
//! `x-mcp-upstream` header the creating answer carried, or found by asking each upstream in
//! turn. Two mocks here stand for two provider accounts: each only knows its own responses.

use serde_json::{Value, json};

use crate::helpers::*;

const MODEL: &str = "gpt-4o-mini";

fn two_accounts() -> Spawn {
    let mut options = Spawn::default();
    // Unseeded: two mocks with one seed would give their responses the same ids.
    options.mock.seed = None;
    options.upstreams = vec!["primary", "secondary"];
    options.settings.models = vec![model(
        MODEL,
        vec![deployment("primary", 1), deployment("secondary", 1)],
        &[],
    )];
    options
}

/// Creates a response; returns its id and the upstream that holds it.
async fn create(app: &TestApp) -> (String, String) {
    let response = app
        .post_json(
            "/v1/responses",
            &json!({"model": MODEL, "input": "remember this"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let upstream = header(&response, "x-mcp-upstream");
    let body: Value = response.json().await.unwrap();
    (body["id"].as_str().unwrap().to_owned(), upstream)
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_continuation_reaches_the_upstream_that_holds_its_response_whichever_is_picked_first() {
    let app = spawn(two_accounts()).await;
    let mut searched = 0;
    for _ in 0..8 {
        let (id, holder) = create(&app).await;
        let body = json!({"model": MODEL, "input": "and now?", "previous_response_id": id});
        let response = app.post_json("/v1/responses", &body).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        assert_eq!(header(&response, "x-mcp-upstream"), holder);
        let attempts: u32 = header(&response, "x-mcp-attempts").parse().unwrap();
        assert!((1..=2).contains(&attempts), "{attempts}");
        searched += attempts - 1;
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["previous_response_id"], id.as_str());
    }
    let m = app.scrape().await;
    // A miss is neither a failure nor a retry: no retry counted, no breaker fed with it.
    assert_eq!(m.get("mcp_server_upstream_retries_total", &[]), 0.0);
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("outcome", "client_error")]
        ),
        f64::from(searched)
    );
}

#[tokio::test]
async fn the_x_mcp_upstream_header_pins_a_continuation_and_a_wrong_one_is_refused() {
    let app = spawn(two_accounts()).await;
    for _ in 0..4 {
        let (id, holder) = create(&app).await;
        let body = json!({"model": MODEL, "input": "next", "previous_response_id": id});
        let response = app
            .post_with("/v1/responses", &[("x-mcp-upstream", &holder)], &body)
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-mcp-attempts"), "1");
    }
    let body = json!({"model": MODEL, "input": "x", "previous_response_id": "resp_1"});
    let response = app
        .post_with("/v1/responses", &[("x-mcp-upstream", "nowhere")], &body)
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_request");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-mcp-upstream")
    );
}

#[tokio::test]
async fn a_continuation_of_a_response_no_upstream_holds_gets_the_providers_own_404() {
    let app = spawn(two_accounts()).await;
    let body = json!({"model": MODEL, "input": "x", "previous_response_id": "resp_unknown"});
    let response = app.post_json("/v1/responses", &body).await;
    assert_eq!(response.status(), 400);
    assert_eq!(header(&response, "x-mcp-attempts"), "2", "both were asked");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "previous_response_not_found");
}

#[tokio::test]
async fn a_stored_response_is_read_listed_and_deleted_where_it_lives() {
    let app = spawn(two_accounts()).await;
    let (id, holder) = create(&app).await;
    let got = app.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(got.status(), 200);
    assert_eq!(header(&got, "x-mcp-upstream"), holder);
    let body: Value = got.json().await.unwrap();
    assert_eq!(body["id"], id.as_str());
    let items = app
        .get(&format!(
            "/v1/responses/{id}/input_items?limit=20&order=asc"
        ))
        .await;
    assert_eq!(items.status(), 200);
    let items: Value = items.json().await.unwrap();
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["content"][0]["text"], "remember this");
    // Pinned to the other account, it is not there.
    let other = if holder == "primary" {
        "secondary"
    } else {
        "primary"
    };
    let pinned = app
        .client
        .get(app.url(&format!("/v1/responses/{id}")))
        .header("x-mcp-upstream", other)
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), 404);
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/responses/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let deleted: Value = deleted.json().await.unwrap();
    assert_eq!(deleted["deleted"], true);
    let gone = app.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(gone.status(), 404);
    let gone: Value = gone.json().await.unwrap();
    assert!(gone["error"]["message"].as_str().unwrap().contains(&id));
    let m = app.scrape().await;
    let requests = |endpoint: &str, method: &str| {
        m.get(
            "mcp_server_requests_total",
            &[("endpoint", endpoint), ("method", method)],
        )
    };
    assert_eq!(requests("/v1/responses/{id}", "GET"), 3.0);
    assert_eq!(requests("/v1/responses/{id}", "DELETE"), 1.0);
    assert_eq!(requests("/v1/responses/{id}/input_items", "GET"), 1.0);
    // Retrievals count no tokens: only the creation's are there.
    let created = m.get("mcp_server_token_usage_total", &[("type", "prompt")]);
    assert!(created > 0.0);
    assert_eq!(
        m.get("mcp_server_token_usage_total", &[("model", "other")]),
        0.0
    );
    assert!(m.get("mcp_server_upstream_requests_total", &[("model", "other")]) >= 5.0);
}

#[tokio::test]
async fn a_response_id_that_could_reach_another_path_is_refused() {
    let app = spawn(two_accounts()).await;
    for id in ["..%2Fmodels", "resp_1%3Fx", "a%20b"] {
        let response = app.get(&format!("/v1/responses/{id}")).await;
        assert_eq!(response.status(), 400, "{id}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["param"], "response_id");
    }
    let m = app.scrape().await;
    assert_eq!(m.get("mcp_server_upstream_requests_total", &[]), 0.0);
}

#[tokio::test]
async fn a_streamed_retrieval_is_relayed_event_by_event_and_counts_no_tokens() {
    let events = concat!(
        "event: response.output_text.delta\n",
        r#"data: {"type":"response.output_text.delta","delta":"Hi","sequence_number":7}"#,
        "\n\n",
        "event: response.completed\n",
        r#"data: {"type":"response.completed","sequence_number":8,"response":{"id":"resp_1","usage":{"input_tokens":5,"output_tokens":1}}}"#,
        "\n\n"
    );
    let mut options = Spawn::default();
    options.upstream =
        Some(raw_upstream("text/event-stream", vec![events.as_bytes().to_vec()]).await);
    let app = spawn(options).await;
    let response = app
        .get("/v1/responses/resp_1?stream=true&starting_after=6")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.text().await.unwrap(), events);
    let m = app.scrape().await;
    assert_eq!(m.get("mcp_server_token_usage_total", &[]), 0.0);
    assert_eq!(
        m.get(
            "mcp_server_upstream_requests_total",
            &[("model", "other"), ("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "mcp_server_overhead_seconds_count",
            &[("endpoint", "/v1/responses/{id}"), ("stream", "true")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_request_in_a_stored_conversation_is_pinned_like_a_continuation() {
    let app = spawn(two_accounts()).await;
    for pinned in ["secondary", "primary", "secondary", "primary"] {
        let body = json!({"model": MODEL, "input": "hi", "conversation": {"id": "conv_1"}});
        let response = app
            .post_with("/v1/responses", &[("x-mcp-upstream", pinned)], &body)
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-mcp-upstream"), pinned);
    }
}
