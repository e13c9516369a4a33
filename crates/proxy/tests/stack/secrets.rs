//! Secrets stay secret, even at trace level: the gateway binary runs with every log filter
//! open (`MCP__LOG__LEVEL=trace`, `RUST_LOG=trace`, so hyper-util, actix-http and rustls
//! log too) and with every kind of secret configured: an upstream API key for each kind of
//! upstream (OpenAI's `Authorization`, Anthropic's `x-api-key`), a client key read from the
//! environment (`key_env`), one configured by its SHA-256 digest, and a metrics token. It
//! serves requests that succeed, plain and streamed, on both APIs; that fail authentication
//! (a wrong key, a prefix of a real one, a real one with more after it, none); that are rate
//! limited; that meet upstream failures (a 5xx, a stream cut short, a malformed answer, a
//! timeout, an upstream that cannot be reached: the paths that log warnings with cause
//! chains); health probes; scrapes with and without the token. Then everything
//! the processes printed (the gateway's stdout and stderr, `check-config`'s settings dump,
//! `--help`), every answer it gave (status, headers, bodies, streams) and the scrape are
//! searched for each secret, for the distinctive part of each (a masked echo such as
//! `sk-...tZ` would show), for each in hex, for the keys that were presented and refused,
//! and for the hex SHA-256 digest of each client key.
//!
//! Each search is shown able to fail: the same search finds, in each source, a string known
//! to be there (a key's configured name, a command's name).
//!
//! A panic message is one path a secret could leak by that this run cannot take: no input
//! known to the test makes the gateway panic, and it installs no panic hook, so a panic's
//! message would go to stderr through the standard library's hook. Stderr is searched like
//! stdout, and the test asserts that nothing panicked.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mcp_core::limits::keys::digest;
use serde_json::json;

use crate::bad_input::{Process, clean_command, free_port, wait_until_serving, workspace_binary};

/// The upstream keys, in the variables the settings name.
const OPENAI_KEY: &str = "sk-upstream-openai-Q7xK2mV9pL4wR8tZ";
const ANTHROPIC_KEY: &str = "sk-ant-upstream-N3bH6cJ1fD5gS0yU";
/// A client key given through `key_env`.
const ALPHA_KEY: &str = "sk-client-alpha-W2eT8rY4uI6oP1aS";
/// A client key configured by its digest, rate limited to two requests a minute.
const BETA_KEY: &str = "sk-client-beta-M5nB7vC9xZ3lK8jH";
/// The token `/metrics` requires.
const METRICS_TOKEN: &str = "metrics-token-F4gD6sA2qW9eR1tY";
/// A key no one has, presented and refused; a client's mistyped key is a secret too.
const WRONG_KEY: &str = "sk-client-wrong-E8rT2yU6iO4pA0sD";
/// The configured names: what may appear, and the searches' controls.
const ALPHA_NAME: &str = "canary-alpha";
const BETA_NAME: &str = "canary-beta";

const CHAT_MODEL: &str = "gpt-4o-mini";
const CLAUDE_MODEL: &str = "claude-sonnet-4-5";
/// Served by an upstream that cannot be reached.
const DEAD_MODEL: &str = "gpt-4o";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex SHA-256 digest of a client key, as `sha256sum` prints it and `sha256` holds it.
fn digest_hex(key: &str) -> String {
    hex(&digest(key))
}

/// Whether `haystack` holds `needle`, in any letter case: the one search every check uses,
/// controls included.
fn found(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// Every answer the test received, as text: status, headers and body, in order.
#[derive(Default)]
struct Transcript(String);

impl Transcript {
    /// Records `response` whole (a stream is read to its end); its status and body.
    async fn record(&mut self, what: &str, response: reqwest::Response) -> (u16, String) {
        let status = response.status().as_u16();
        self.0.push_str(&format!("== {what}\nHTTP {status}\n"));
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            self.0.push_str(&format!("{name}: {value}\n"));
        }
        let body = response.text().await.expect("the body is read to its end");
        self.0.push_str(&format!("\n{body}\n\n"));
        (status, body)
    }
}

fn settings(openai_port: u16, anthropic_port: u16, dead_port: u16) -> String {
    format!(
        "server:
  metrics_token_env: SECRETS_TEST_METRICS_TOKEN
  drain_delay_secs: 0
  shutdown_timeout_secs: 2
upstream:
  # Probes (GET /models, with the key) run during the test too, and fail on `dead`.
  health_check_interval_secs: 1
upstreams:
  - name: primary
    base_url: http://127.0.0.1:{openai_port}/v1
    api_key_env: SECRETS_TEST_OPENAI_KEY
    request_timeout_secs: 1
  - name: claude
    kind: anthropic
    base_url: http://127.0.0.1:{anthropic_port}/v1
    api_key_env: SECRETS_TEST_ANTHROPIC_KEY
  # Nothing listens there: connection failures, with their cause chains in the log.
  - name: dead
    base_url: http://127.0.0.1:{dead_port}/v1
    api_key_env: SECRETS_TEST_OPENAI_KEY
models:
  - id: {CHAT_MODEL}
    deployments: [{{ upstream: primary }}]
  - id: {DEAD_MODEL}
    deployments: [{{ upstream: dead }}]
  - id: {CLAUDE_MODEL}
    deployments: [{{ upstream: claude }}]
routing:
  backoff_base_ms: 1
  backoff_max_ms: 10
  # The failures below stay failures of their own: no breaker opens on them.
  breaker: {{ consecutive_failures: 0 }}
keys:
  - name: {ALPHA_NAME}
    key_env: SECRETS_TEST_CLIENT_KEY
  - name: {BETA_NAME}
    sha256: {}
    limits: {{ requests_per_minute: 2 }}
",
        digest_hex(BETA_KEY)
    )
}

/// The gateway's environment: the secrets in the variables the settings name, and every
/// log filter open.
fn with_secrets(command: &mut Command) -> &mut Command {
    command
        .env("SECRETS_TEST_OPENAI_KEY", OPENAI_KEY)
        .env("SECRETS_TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
        .env("SECRETS_TEST_CLIENT_KEY", ALPHA_KEY)
        .env("SECRETS_TEST_METRICS_TOKEN", METRICS_TOKEN)
        .env("MCP__LOG__LEVEL", "trace")
        .env("RUST_LOG", "trace")
}

fn run_to_end(command: &mut Command) -> String {
    let output = command.output().expect("the binary runs");
    assert!(output.status.success(), "exit status {}", output.status);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_an_answer_or_the_scrape_even_at_trace_level() {
    let (openai_port, anthropic_port, dead_port, port) =
        (free_port(), free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("mcp-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("settings.yaml");
    std::fs::write(&file, settings(openai_port, anthropic_port, dead_port))
        .expect("settings written");

    // Each mock requires its key: an answer of 200 proves the gateway sent it.
    let mock = |port: u16, key: &str, instance: &str| {
        let mut command = clean_command(&workspace_binary("mcp-mock-upstream"));
        command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--api-key", key, "--instance", instance]);
        Process::spawn(command)
    };
    let openai = mock(openai_port, OPENAI_KEY, "openai");
    let anthropic = mock(anthropic_port, ANTHROPIC_KEY, "anthropic");
    let gateway_binary = Path::new(env!("CARGO_BIN_EXE_mcp-proxy"));
    let mut command = clean_command(gateway_binary);
    with_secrets(&mut command)
        .arg("--config")
        .arg(&file)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    let gateway = Process::spawn(command);

    let root = format!("http://127.0.0.1:{port}");
    let openai_root = format!("http://127.0.0.1:{openai_port}");
    let client = reqwest::Client::new();
    wait_until_serving(&client, &format!("{openai_root}/health")).await;
    wait_until_serving(
        &client,
        &format!("http://127.0.0.1:{anthropic_port}/health"),
    )
    .await;
    wait_until_serving(&client, &format!("{root}/health")).await;

    let mut answers = Transcript::default();
    let chat_to = |model: &str, key: Option<&str>, stream: bool| {
        let mut request = client
            .post(format!("{root}/v1/chat/completions"))
            .json(&json!({
                "model": model,
                "stream": stream,
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}]
            }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let chat = |key: Option<&str>, stream: bool| chat_to(CHAT_MODEL, key, stream);
    // Anthropic's clients send their key as `x-api-key`.
    let message = |key: &str, stream: bool| {
        client
            .post(format!("{root}/v1/messages"))
            .header("x-api-key", key)
            .json(&json!({
                "model": CLAUDE_MODEL,
                "stream": stream,
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}]
            }))
            .send()
    };

    // Successes, plain and streamed, on both APIs.
    let (status, _) = answers
        .record(
            "chat",
            chat(Some(ALPHA_KEY), false).await.expect("an answer"),
        )
        .await;
    assert_eq!(status, 200, "the client key and the upstream key work");
    let (status, body) = answers
        .record(
            "chat stream",
            chat(Some(ALPHA_KEY), true).await.expect("an answer"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("data: [DONE]"), "{body}");
    let (status, _) = answers
        .record(
            "message",
            message(ALPHA_KEY, false).await.expect("an answer"),
        )
        .await;
    assert_eq!(status, 200, "the Anthropic upstream's key works");
    let (status, body) = answers
        .record(
            "message stream",
            message(ALPHA_KEY, true).await.expect("an answer"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("message_stop"), "{body}");

    // Refused keys: none is echoed, not even in part.
    let alpha_prefix = &ALPHA_KEY[..ALPHA_KEY.len() - 4];
    let alpha_longer = format!("{ALPHA_KEY}0");
    for (what, key) in [
        ("a wrong key", WRONG_KEY),
        ("a prefix of a real key", alpha_prefix),
        ("a real key with more after it", alpha_longer.as_str()),
    ] {
        let (status, body) = answers
            .record(what, chat(Some(key), false).await.expect("an answer"))
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body.contains("invalid_api_key"), "{what}: {body}");
        let (status, body) = answers
            .record(what, message(key, false).await.expect("an answer"))
            .await;
        assert_eq!(status, 401, "{what} as x-api-key: {body}");
    }
    let (status, _) = answers
        .record("no key", chat(None, false).await.expect("an answer"))
        .await;
    assert_eq!(status, 401);

    // The key configured by its digest works, until its two requests a minute are spent.
    let mut limited = None;
    for attempt in 0..5 {
        let (status, body) = answers
            .record(
                "beta",
                chat(Some(BETA_KEY), false).await.expect("an answer"),
            )
            .await;
        match status {
            200 => assert!(attempt < 2, "more than two requests a minute were allowed"),
            429 => {
                limited = Some(body);
                break;
            }
            other => panic!("status {other} for the beta key: {body}"),
        }
    }
    let limited = limited.expect("the third request a minute is rate limited");
    assert!(limited.contains("rate_limit_exceeded"), "{limited}");

    // Upstream failures of each kind, each with its warning in the log: a 5xx, a stream cut
    // short, a 2xx that is not JSON, no answer in time, and an upstream that cannot be
    // reached.
    let faults = format!("{openai_root}/admin/faults");
    let failures = [
        (
            "a 5xx",
            json!({"error_rate": 1.0, "error_status": 500}),
            false,
            502,
            "upstream_server_error",
        ),
        (
            "a cut stream",
            json!({"stream_cut_rate": 1.0}),
            true,
            200,
            "stream_interrupted",
        ),
        (
            "a malformed answer",
            json!({"malformed_rate": 1.0}),
            false,
            502,
            "upstream_malformed",
        ),
        (
            "no answer in time",
            json!({"hang_rate": 1.0}),
            false,
            504,
            "upstream_timeout",
        ),
    ];
    for (what, profile, stream, expected, error_type) in failures {
        let put = client
            .put(&faults)
            .json(&profile)
            .send()
            .await
            .expect("the mock answers");
        assert!(put.status().is_success(), "{what}: the faults were not set");
        let (status, body) = answers
            .record(
                what,
                chat(Some(ALPHA_KEY), stream).await.expect("an answer"),
            )
            .await;
        assert_eq!(status, expected, "{what}: {body}");
        assert!(body.contains(error_type), "{what}: {body}");
        let cleared = client
            .delete(&faults)
            .send()
            .await
            .expect("the mock answers");
        assert!(cleared.status().is_success());
    }
    let (status, body) = answers
        .record(
            "an unreachable upstream",
            chat_to(DEAD_MODEL, Some(ALPHA_KEY), false)
                .await
                .expect("an answer"),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_unavailable"), "{body}");

    // The scrape: refused without the token or with a prefix of it, served with it.
    let (status, _) = answers
        .record(
            "scrape without a token",
            client
                .get(format!("{root}/metrics"))
                .send()
                .await
                .expect("an answer"),
        )
        .await;
    assert_eq!(status, 401);
    let token_prefix = &METRICS_TOKEN[..METRICS_TOKEN.len() - 4];
    let (status, _) = answers
        .record(
            "scrape with a prefix of the token",
            client
                .get(format!("{root}/metrics"))
                .bearer_auth(token_prefix)
                .send()
                .await
                .expect("an answer"),
        )
        .await;
    assert_eq!(status, 401);
    let scraped = client
        .get(format!("{root}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("an answer");
    assert_eq!(scraped.status(), 200, "the metrics token works");
    let scrape = scraped.text().await.expect("a text scrape");

    // A graceful stop writes out every queued log line.
    let gateway = gateway.terminate(Duration::from_secs(10)).await;
    drop(openai.kill());
    drop(anthropic.kill());
    let gateway_output = format!("{}{}", gateway.stdout, gateway.stderr);

    let mut check_config = clean_command(gateway_binary);
    with_secrets(&mut check_config)
        .arg("check-config")
        .arg("--config")
        .arg(&file);
    let check_config = run_to_end(&mut check_config);
    let mut help = clean_command(gateway_binary);
    with_secrets(&mut help).arg("--help");
    let help = run_to_end(&mut help);
    let _ = std::fs::remove_dir_all(&dir);

    // Trace level really was on (the HTTP libraries' own trace lines are there), the
    // failures were logged, and nothing panicked, so a panic's message cannot have gone
    // unseen.
    for line in [
        "TRACE actix_http",
        "TRACE hyper_util",
        "upstream attempt failed",
        "upstream stream interrupted",
    ] {
        assert!(
            gateway_output.contains(line),
            "no {line:?} in the gateway's output"
        );
    }
    assert!(
        !found(&gateway_output, "panicked"),
        "the gateway panicked:\n{gateway_output}"
    );

    let sources = [
        (
            "the gateway's stdout and stderr",
            gateway_output.as_str(),
            ALPHA_NAME,
        ),
        ("check-config's output", check_config.as_str(), ALPHA_NAME),
        ("--help", help.as_str(), "check-config"),
        ("the answers", answers.0.as_str(), BETA_NAME),
        ("the scrape", scrape.as_str(), ALPHA_NAME),
    ];
    // SHA-256 itself, as `sha256sum` computes it (FIPS 180-2's test vector for "abc").
    assert_eq!(
        digest_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let alpha_digest = digest_hex(ALPHA_KEY);
    let beta_digest = digest_hex(BETA_KEY);
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (what, secret) in [
        ("the OpenAI upstream's key", OPENAI_KEY),
        ("the Anthropic upstream's key", ANTHROPIC_KEY),
        ("the client key from key_env", ALPHA_KEY),
        ("the client key configured by digest", BETA_KEY),
        ("the metrics token", METRICS_TOKEN),
        ("the wrong key presented", WRONG_KEY),
    ] {
        secrets.push((what.to_owned(), secret.to_owned()));
        // The random part alone: a masked or cut echo (`sk-...tZ`) would still hold it.
        let tail = secret.rsplit('-').next().expect("a dash in each secret");
        secrets.push((format!("{what}, its distinctive part"), tail.to_owned()));
        secrets.push((format!("{what}, in hex"), hex(secret.as_bytes())));
    }
    secrets.push(("the prefix of a key presented".into(), alpha_prefix.into()));
    secrets.push((
        "the prefix of the metrics token presented".into(),
        token_prefix.into(),
    ));
    secrets.push((
        "the digest of the client key from key_env".into(),
        alpha_digest.clone(),
    ));

    let mut leaks = Vec::new();
    for (source, text, control) in sources {
        assert!(
            found(text, control),
            "the control {control:?} is missing from {source}: the search cannot be trusted"
        );
        for (what, secret) in &secrets {
            if found(text, secret) {
                leaks.push(format!("{what} ({secret}) is in {source}"));
            }
        }
        // check-config prints the settings, which hold the configured digest: expected there
        // (it is the setting, not the key), and nowhere else.
        let digest_expected = source == "check-config's output";
        if found(text, &beta_digest) != digest_expected {
            leaks.push(format!(
                "the digest of the client key configured by digest ({beta_digest}) is {} {source}",
                if digest_expected {
                    "missing from"
                } else {
                    "in"
                }
            ));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
