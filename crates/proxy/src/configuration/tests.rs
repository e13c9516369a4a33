use std::io::Write;

use mcp_core::upstream::UpstreamKind;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A YAML file in the temp dir, removed when dropped.
struct TempYaml(std::path::PathBuf);

impl TempYaml {
    fn new(text: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mcp-settings-{}-{}.yaml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap();
        Self(path)
    }
}

impl Drop for TempYaml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn defaults_serve_the_mock_upstream_on_loopback() {
    let s = load_from(None, env(&[])).unwrap();
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    let (url, name) = s.upstream.resolve(false);
    assert_eq!(s.upstream_names(), ["mock"]);
    assert_eq!(url.as_str(), DEFAULT_MOCK_BASE_URL);
    assert_eq!(name, "mock");
    let (url, name) = s.upstream.resolve(true);
    assert_eq!(url.as_str(), OPENAI_BASE_URL);
    assert_eq!(name, "openai");
    assert!(s.models.is_empty());
}

#[test]
fn the_file_then_the_environment_override_defaults() {
    let file = TempYaml::new(
        "server:\n  listen: 0.0.0.0:9000\n  workers: 2\nmodels:\n  - id: gpt-4o-mini\n    pricing: {prompt_usd_per_million: 0.15, completion_usd_per_million: 0.6}\n",
    );
    let s = load_from(
        Some(&file.0),
        env(&[
            ("MCP__SERVER__WORKERS", "3"),
            ("MCP__UPSTREAM__BASE_URL", "http://10.0.0.1:8000/v1"),
        ]),
    )
    .unwrap();
    assert_eq!(s.server.listen.port(), 9000);
    assert_eq!(s.server.workers, 3);
    assert_eq!(s.models.len(), 1);
    assert_eq!(s.models[0].pricing.unwrap().completion_usd_per_million, 0.6);
    assert_eq!(s.upstream.resolve(false).1, "primary");
}

#[test]
fn an_unknown_key_in_the_file_is_refused_with_its_path() {
    let file = TempYaml::new("server:\n  listn: 0.0.0.0:9000\n");
    let err = load_from(Some(&file.0), env(&[])).unwrap_err().to_string();
    assert!(err.contains("server") && err.contains("listn"), "{err}");
}

#[test]
fn an_unknown_environment_override_is_refused() {
    let err = load_from(None, env(&[("MCP__UPSTREAM__TIMEOUT", "5")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstream") && err.contains("timeout"), "{err}");
}

#[test]
fn a_bad_value_names_its_key() {
    let err = load_from(None, env(&[("MCP__SERVER__LISTEN", "not-an-address")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.listen"), "{err}");
    let err = load_from(None, env(&[("MCP__UPSTREAM__REQUEST_TIMEOUT_SECS", "0")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstream.request_timeout_secs"), "{err}");
    let err = load_from(None, env(&[("MCP__LOG__FORMAT", "xml")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("log.format"), "{err}");
}

#[test]
fn credentials_in_the_base_url_are_refused() {
    let err = load_from(
        None,
        env(&[(
            "MCP__UPSTREAM__BASE_URL",
            "https://user:sk-secret@example.com/v1",
        )]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("upstream.base_url"), "{err}");
    assert!(
        !err.contains("sk-secret"),
        "the error must not echo the secret: {err}"
    );
}

#[test]
fn duplicate_models_are_refused() {
    let file = TempYaml::new("models:\n  - id: a\n  - id: a\n");
    let err = load_from(Some(&file.0), env(&[])).unwrap_err().to_string();
    assert!(err.contains("models") && err.contains("twice"), "{err}");
}

#[test]
fn a_missing_file_is_an_error() {
    let err = load_from(Some(Path::new("/nonexistent/mcp.yaml")), env(&[]));
    assert!(err.is_err());
}

const TWO_UPSTREAMS: &str = "
upstream:
  request_timeout_secs: 30
  max_in_flight: 8
upstreams:
  - name: primary
    base_url: http://127.0.0.1:8081/v1
    api_key_env: PRIMARY_KEY
  - name: secondary-eu
    base_url: http://127.0.0.1:8082/v1
    request_timeout_secs: 5
    queue: {size: 3, timeout_ms: 100}
models:
  - id: a
    deployments: [{upstream: primary}, {upstream: secondary-eu, model: a-2024, weight: 3}]
    fallbacks: [b]
  - id: b
    deployments: [{upstream: secondary-eu}]
";

#[test]
fn list_entries_take_what_they_leave_out_from_the_upstream_section() {
    let file = TempYaml::new(TWO_UPSTREAMS);
    let s = load_from(Some(&file.0), env(&[])).unwrap();
    let plans = s.upstream_plans(|_| false);
    assert_eq!(s.upstream_names(), ["primary", "secondary-eu"]);
    assert_eq!(plans[0].api_key_env, "PRIMARY_KEY");
    assert_eq!(plans[1].api_key_env, "OPENAI_API_KEY");
    assert_eq!(plans[0].request_timeout, Duration::from_secs(30));
    assert_eq!(plans[1].request_timeout, Duration::from_secs(5));
    assert_eq!(plans[0].concurrency.max_in_flight, 8);
    assert_eq!(plans[1].concurrency.queue, 3);
    assert_eq!(
        plans[1].concurrency.queue_timeout,
        Duration::from_millis(100)
    );
    let table = s.routing_table().unwrap();
    assert_eq!(table.deployments().len(), 3);
}

#[test]
fn an_entry_is_overridden_from_the_environment_by_its_name() {
    let file = TempYaml::new(TWO_UPSTREAMS);
    let s = load_from(
        Some(&file.0),
        env(&[
            (
                "MCP__UPSTREAMS__SECONDARY_EU__BASE_URL",
                "https://eu.example.com/v1",
            ),
            ("MCP__UPSTREAMS__PRIMARY__MAX_IN_FLIGHT", "2"),
            ("MCP__SERVER__WORKERS", "3"),
        ]),
    )
    .unwrap();
    let plans = s.upstream_plans(|_| false);
    assert_eq!(plans[1].base_url.as_str(), "https://eu.example.com/v1");
    assert_eq!(plans[0].concurrency.max_in_flight, 2);
    assert_eq!(s.server.workers, 3);
    let err = load_from(
        Some(&file.0),
        env(&[("MCP__UPSTREAMS__TERTIARY__BASE_URL", "http://x/v1")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("MCP__UPSTREAMS__TERTIARY__BASE_URL"), "{err}");
    let err = load_from(
        Some(&file.0),
        env(&[("MCP__UPSTREAMS__PRIMARY__BASE_URL", "ftp://x/v1")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("upstreams[0].base_url"), "{err}");
}

#[test]
fn routing_mistakes_are_refused_with_the_key_they_are_about() {
    let cases = [
        (
            TWO_UPSTREAMS.replace("{upstream: primary}", "{upstream: nowhere}"),
            "invalid setting `models[0].deployments[0].upstream`: no upstream is named `nowhere`",
        ),
        (
            TWO_UPSTREAMS.replace("fallbacks: [b]", "fallbacks: [c]"),
            "invalid setting `models[0].fallbacks[0]`: no model is named `c`",
        ),
        (
            TWO_UPSTREAMS.replace(
                "deployments: [{upstream: secondary-eu}]",
                "deployments: [{upstream: secondary-eu}]\n    fallbacks: [a]",
            ),
            "invalid setting `models[0].fallbacks`: a cycle of fallbacks: a -> b -> a",
        ),
        (
            TWO_UPSTREAMS.replace("name: secondary-eu", "name: primary"),
            "invalid setting `upstreams[1].name`: `primary` is used by an earlier upstream",
        ),
        (
            TWO_UPSTREAMS.replace("http://127.0.0.1:8082/v1", "mailto:ops@example.com"),
            "invalid setting `upstreams[1].base_url`: must be an http or https URL",
        ),
        (
            TWO_UPSTREAMS.replace("  max_in_flight: 8", "  base_url: http://127.0.0.1:9/v1"),
            "invalid setting `upstream.base_url`: not used when an `upstreams` list is configured",
        ),
        (
            format!("{TWO_UPSTREAMS}routing:\n  retry_on: [404]\n"),
            "invalid setting `routing.retry_on[0]`: a status to retry must be 429 or a 5xx",
        ),
        (
            TWO_UPSTREAMS.replace(
                "- id: b\n    deployments: [{upstream: secondary-eu}]",
                "- id: b",
            ),
            "invalid setting `models[1].deployments`: required when more than one upstream is configured",
        ),
    ];
    for (yaml, expected) in cases {
        let file = TempYaml::new(&yaml);
        let err = load_from(Some(&file.0), env(&[])).unwrap_err().to_string();
        assert!(
            err.starts_with(expected),
            "expected `{expected}`, got `{err}`"
        );
    }
}

#[test]
fn the_shipped_settings_route_over_both_mocks_and_serve_claude_from_an_anthropic_upstream() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mcp-server.yaml");
    let s = load_from(Some(&file), env(&[])).unwrap();
    assert_eq!(s.upstream_names(), ["primary", "secondary", "anthropic"]);
    let kinds: Vec<UpstreamKind> = s.upstream_plans(|_| false).iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            UpstreamKind::OpenAi,
            UpstreamKind::OpenAi,
            UpstreamKind::Anthropic
        ]
    );
    let claude = s.routing_table().unwrap();
    let id = claude.catalog().resolve("claude-sonnet-4-5").unwrap();
    assert!(claude.serves(id, UpstreamKind::Anthropic));
    assert!(!claude.serves(id, UpstreamKind::OpenAi));
    let table = s.routing_table().unwrap();
    let catalog = table.catalog();
    let plan: Vec<&str> = table
        .route(catalog.resolve("gpt-4o").unwrap())
        .plan
        .iter()
        .map(|m| catalog.label(*m))
        .collect();
    assert_eq!(plan, ["gpt-4o", "gpt-4o-mini"]);
    assert_eq!(
        catalog.resolve("gpt-4o-mini-2024-07-18"),
        catalog.resolve("gpt-4o-mini")
    );
}

#[test]
fn an_upstreams_kind_and_anthropic_version_come_from_the_entry_the_defaults_or_the_environment() {
    let file = TempYaml::new(
        "upstream:\n  anthropic_version: 2023-01-01\nupstreams:\n  - {name: oa, base_url: \"http://a/v1\"}\n  - {name: claude, kind: anthropic, base_url: \"http://b/v1\"}\n",
    );
    let s = load_from(Some(&file.0), env(&[])).unwrap();
    let plans = s.upstream_plans(|_| false);
    assert_eq!(plans[0].kind, UpstreamKind::OpenAi);
    assert_eq!(plans[1].kind, UpstreamKind::Anthropic);
    assert_eq!(plans[1].anthropic_version, "2023-01-01");
    let s = load_from(
        Some(&file.0),
        env(&[
            ("MCP__UPSTREAMS__OA__KIND", "anthropic"),
            ("MCP__UPSTREAMS__CLAUDE__ANTHROPIC_VERSION", "2023-06-01"),
        ]),
    )
    .unwrap();
    let plans = s.upstream_plans(|_| false);
    assert_eq!(plans[0].kind, UpstreamKind::Anthropic);
    assert_eq!(plans[1].anthropic_version, "2023-06-01");
    let err = load_from(
        Some(&file.0),
        env(&[("MCP__UPSTREAMS__OA__KIND", "gemini")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("MCP__UPSTREAMS__OA__KIND") && err.contains("anthropic"),
        "{err}"
    );
    let bad = TempYaml::new(
        "upstreams:\n  - {name: c, kind: anthropic, anthropic_version: \"2023 06\", base_url: \"http://b/v1\"}\n",
    );
    let err = load_from(Some(&bad.0), env(&[])).unwrap_err().to_string();
    assert!(err.contains("upstreams[0].anthropic_version"), "{err}");
    let unknown = TempYaml::new("upstream:\n  kind: gemini\n");
    let err = load_from(Some(&unknown.0), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("upstream.kind"), "{err}");
}

#[test]
fn a_single_anthropic_upstream_with_a_key_defaults_to_anthropics_api() {
    let s = load_from(None, env(&[("MCP__UPSTREAM__KIND", "anthropic")])).unwrap();
    let (url, name) = s.upstream.resolve(true);
    assert_eq!(url.as_str(), ANTHROPIC_BASE_URL);
    assert_eq!(name, "anthropic");
}
