use std::io::Write;

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
