//! Checks of the Kubernetes manifests under `deploy/kubernetes`. The base and every overlay
//! render with `kubectl kustomize`; every object they render is valid against the Kubernetes
//! and Prometheus Operator schemas (`deploy/kubernetes/tools/validate.py`, offline); and they
//! pass what a reviewer would check: pinned images, probes and resources, a restricted security
//! context, secrets only by reference, a grace period that covers the drain, settings the
//! gateway accepts with upstreams that resolve, objects that select what they are meant to, and
//! generated files (settings, rules, dashboards) that match their sources.
//! `scripts/install-k8s-tools.sh` installs kubectl and the validators (`make test` does).
//!
//! Each policy check is a function from the rendered objects to the problems it finds. The
//! real manifests must give none; `every_check_catches_what_it_is_for` breaks copies of them
//! and expects each check to complain, so that none can pass by finding nothing to look at.

use crate::compose::is_pinned;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

const KUBERNETES: &str = "deploy/kubernetes";
/// The settings file the compose stack mounts, which the base's ConfigMap holds.
const SETTINGS: &str = "deploy/mcp-server.yaml";
/// The job label that the alerts (`up{job="mcp-server"}`) and recording rules expect.
const JOB: &str = "mcp-server";
/// What the grace period must leave after preStop, drain and shutdown timeout: the process
/// still stops its server and exits after the timeout, which the kubelet's SIGKILL at the end
/// of the grace period would cut short.
const GRACE_MARGIN_SECS: u64 = 5;
/// The largest object that client-side `kubectl apply` can keep in its last-applied annotation
/// (annotations are limited to 256 KiB in all).
const LAST_APPLIED_LIMIT: usize = 256 * 1024;
/// The label the Grafana sidecar of kube-prometheus-stack loads dashboards from.
const DASHBOARD_LABEL: (&str, &str) = ("grafana_dashboard", "1");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// The interpreter of `.venv`, where `scripts/install-k8s-tools.sh` puts the validators.
fn python() -> Result<PathBuf> {
    let python = repo_root().join(".venv/bin/python");
    ensure!(
        python.exists(),
        "{} is missing: run scripts/install-k8s-tools.sh (`make deps`; `make test` does)",
        python.display()
    );
    Ok(python)
}

/// Runs a program in the repository root with `input` on its standard input; its standard
/// output, or an error with its standard error.
fn run(program: &Path, args: &[&str], input: Option<Vec<u8>>) -> Result<Vec<u8>> {
    let mut child = match Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{}` is not installed: run scripts/install-k8s-tools.sh (`make deps`; `make test` does)",
            program.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("running {}", program.display())),
    };
    let mut stdin = child.stdin.take().context("no stdin")?;
    // Written from a thread: the program may fill its output pipe before it has read all
    // of its input.
    let writer = std::thread::spawn(move || stdin.write_all(&input.unwrap_or_default()));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    ensure!(
        output.status.success(),
        "{} {} failed:\n{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

/// A YAML document as a JSON value, read by PyYAML (`validate.py to-json`).
fn yaml_document(text: &str) -> Result<Value> {
    let validate = format!("{KUBERNETES}/tools/validate.py");
    let input = Some(text.as_bytes().to_vec());
    let json = run(&python()?, &[&validate, "to-json", "-"], input)?;
    let documents: Vec<Value> = serde_json::from_slice(&json)?;
    match <[Value; 1]>::try_from(documents) {
        Ok([document]) => Ok(document),
        Err(documents) => bail!("expected one YAML document, found {}", documents.len()),
    }
}

/// One kustomization, rendered.
#[derive(Debug)]
struct Rendered {
    /// `base`, or the overlay's folder name.
    name: String,
    objects: Vec<Value>,
}

/// The base and every folder of `overlays/` (each with a kustomization).
fn kustomizations() -> Result<Vec<(String, PathBuf)>> {
    let root = repo_root().join(KUBERNETES);
    let mut found = vec![("base".to_owned(), root.join("base"))];
    let mut overlays = Vec::new();
    for entry in std::fs::read_dir(root.join("overlays"))? {
        let path = entry?.path();
        if path.join("kustomization.yaml").is_file() {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            overlays.push((name.into_owned(), path));
        }
    }
    overlays.sort();
    found.extend(overlays);
    Ok(found)
}

/// `kubectl kustomize DIR`, each object checked against its schema by `validate.py`, which
/// fails (naming every error) when one does not match or has no schema.
fn render(dir: &Path) -> Result<Vec<Value>> {
    let dir = dir.to_string_lossy();
    let yaml = run(Path::new("kubectl"), &["kustomize", &dir], None)?;
    let validate = format!("{KUBERNETES}/tools/validate.py");
    let json = run(&python()?, &[&validate, "validate"], Some(yaml))
        .with_context(|| format!("validating what `kubectl kustomize {dir}` renders"))?;
    Ok(serde_json::from_slice(&json)?)
}

/// Every kustomization, rendered and validated once for all the tests. A failure is kept
/// too, so that each test reports it at once rather than rendering everything again.
fn rendered() -> &'static [Rendered] {
    static RENDERED: OnceLock<Result<Vec<Rendered>, String>> = OnceLock::new();
    let rendered = RENDERED.get_or_init(|| {
        let kustomizations = kustomizations().map_err(|e| format!("{e:#}"))?;
        // Side by side: each is a kubectl and a Python process, mostly start-up time.
        std::thread::scope(|scope| {
            let renders: Vec<_> = kustomizations
                .into_iter()
                .map(|(name, dir)| (name, scope.spawn(move || render(&dir))))
                .collect();
            renders
                .into_iter()
                .map(|(name, render)| match render.join() {
                    Ok(Ok(objects)) => Ok(Rendered { name, objects }),
                    Ok(Err(e)) => Err(format!("{name}: {e:#}")),
                    Err(_) => Err(format!("{name}: rendering panicked")),
                })
                .collect()
        })
    });
    match rendered {
        Ok(rendered) => rendered,
        Err(e) => panic!("{e}"),
    }
}

fn overlay(name: &str) -> &'static [Value] {
    let found = rendered().iter().find(|r| r.name == name);
    &found
        .unwrap_or_else(|| panic!("no kustomization {name}"))
        .objects
}

/// Asserts that `check` finds nothing wrong in any kustomization.
fn assert_clean(check: fn(&[Value]) -> Vec<String>) {
    let mut problems = Vec::new();
    for Rendered { name, objects } in rendered() {
        problems.extend(check(objects).into_iter().map(|p| format!("{name}: {p}")));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Reading objects.

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn describe(object: &Value) -> String {
    format!("{}/{}", kind(object), name(object))
}

fn of_kind<'a>(objects: &'a [Value], wanted: &'a str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| kind(o) == wanted)
}

fn find<'a>(objects: &'a [Value], wanted: &str, named: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| kind(o) == wanted && name(o) == named)
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// The pod templates of the workloads, each with its workload's description.
fn templates(objects: &[Value]) -> Vec<(String, &Value)> {
    let mut found = Vec::new();
    for object in objects {
        let template = match kind(object) {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                &object["spec"]["template"]
            }
            "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"],
            _ => continue,
        };
        found.push((describe(object), template));
    }
    found
}

fn containers(template: &Value) -> impl Iterator<Item = &Value> {
    list(&template["spec"]["initContainers"])
        .iter()
        .chain(list(&template["spec"]["containers"]))
}

/// The container's env entry called `var`.
fn env<'a>(container: &'a Value, var: &str) -> Option<&'a Value> {
    list(&container["env"])
        .iter()
        .find(|e| e["name"].as_str() == Some(var))
}

/// The literal value of the container's variable `var`.
fn env_value<'a>(container: &'a Value, var: &str) -> Option<&'a str> {
    env(container, var)?["value"].as_str()
}

/// True when the container runs `binary` (its command, or its arguments to the image's
/// entry point).
fn runs(container: &Value, binary: &str) -> bool {
    let first = list(&container["command"])
        .first()
        .or_else(|| list(&container["args"]).first());
    first
        .and_then(Value::as_str)
        .is_some_and(|c| c.rsplit('/').next() == Some(binary))
}

/// The gateway: every workload with a container that runs `mcp-proxy`.
fn gateways(objects: &[Value]) -> Vec<(String, &Value, &Value)> {
    let mut found = Vec::new();
    for (owner, template) in templates(objects) {
        for container in containers(template) {
            if runs(container, "mcp-proxy") {
                found.push((owner.clone(), template, container));
            }
        }
    }
    found
}

/// True when `selector` (a `matchLabels` map, or a Service's plain selector) selects
/// `labels`. An empty or missing selector selects nothing here: none of ours means "all".
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object().filter(|s| !s.is_empty()) else {
        return false;
    };
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The `matchLabels` of a label selector; a problem when it uses `matchExpressions`, which
/// these checks do not evaluate.
fn match_labels<'a>(selector: &'a Value, problems: &mut Vec<String>, at: &str) -> &'a Value {
    if selector.get("matchExpressions").is_some() {
        problems.push(format!(
            "{at}: matchExpressions are not checked here: use matchLabels"
        ));
    }
    &selector["matchLabels"]
}

// ---------------------------------------------------------------------------------------------
// The checks. Each returns what it finds wrong, one line per problem.

fn unpinned_images(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for (owner, template) in templates(objects) {
        for container in containers(template) {
            let image = container["image"].as_str().unwrap_or_default();
            if !is_pinned(image) {
                problems.push(format!(
                    "{owner}: image {image:?} is not pinned to a version"
                ));
            }
        }
    }
    problems
}

/// CPU in millicores: `250m`, `2`, `0.5`.
fn cpu_millis(quantity: &str) -> Option<f64> {
    match quantity.strip_suffix('m') {
        Some(millis) => millis.parse().ok(),
        None => quantity.parse::<f64>().ok().map(|cores| cores * 1000.0),
    }
}

/// Memory in bytes: `256Mi`, `1Gi`, `500M`, `1048576`.
fn memory_bytes(quantity: &str) -> Option<f64> {
    const UNITS: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (suffix, factor) in UNITS {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    quantity.parse().ok()
}

/// Every container is probed for liveness and readiness and says what it needs (requests)
/// and what it may take (limits) of CPU and memory, requests within limits.
fn missing_probes_and_resources(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for (owner, template) in templates(objects) {
        for container in list(&template["spec"]["containers"]) {
            let at = format!("{owner} container {}", container["name"]);
            for probe in ["livenessProbe", "readinessProbe"] {
                if !container[probe].is_object() {
                    problems.push(format!("{at}: no {probe}"));
                }
            }
            let resources = &container["resources"];
            for (resource, parse) in [
                ("cpu", cpu_millis as fn(&str) -> Option<f64>),
                ("memory", memory_bytes),
            ] {
                let request = resources["requests"][resource].as_str();
                let limit = resources["limits"][resource].as_str();
                match (request.map(parse), limit.map(parse)) {
                    (Some(Some(request)), Some(Some(limit))) if request <= limit => {}
                    (Some(Some(_)), Some(Some(_))) => problems.push(format!(
                        "{at}: the {resource} request {request:?} exceeds its limit {limit:?}"
                    )),
                    _ => problems.push(format!(
                        "{at}: {resource} needs a request and a limit (requests {request:?}, limits {limit:?})"
                    )),
                }
            }
        }
    }
    problems
}

/// Every pod meets Pod Security's "restricted" profile and more: not root, no privilege
/// escalation, every capability dropped, the runtime's seccomp profile, a read-only root
/// file system, nothing of the host's, and no service account token it does not need.
fn unrestricted_pods(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for (owner, template) in templates(objects) {
        let pod = &template["spec"];
        let pod_security = &pod["securityContext"];
        for host in ["hostNetwork", "hostPID", "hostIPC"] {
            if pod[host].as_bool() == Some(true) {
                problems.push(format!("{owner}: {host} is on"));
            }
        }
        if pod["automountServiceAccountToken"].as_bool() != Some(false) {
            problems.push(format!(
                "{owner}: mounts a service account token (automountServiceAccountToken: false)"
            ));
        }
        for container in containers(template) {
            let at = format!("{owner} container {}", container["name"]);
            let security = &container["securityContext"];
            // A container's setting wins over the pod's.
            let effective = |key: &str| {
                let own = &security[key];
                if own.is_null() {
                    &pod_security[key]
                } else {
                    own
                }
            };
            if effective("runAsNonRoot").as_bool() != Some(true) {
                problems.push(format!("{at}: runAsNonRoot is not true"));
            }
            if effective("runAsUser").as_u64() == Some(0) {
                problems.push(format!("{at}: runs as user 0"));
            }
            let seccomp = effective("seccompProfile")["type"].as_str();
            if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
                problems.push(format!(
                    "{at}: seccomp profile {seccomp:?}, not RuntimeDefault"
                ));
            }
            if security["readOnlyRootFilesystem"].as_bool() != Some(true) {
                problems.push(format!("{at}: readOnlyRootFilesystem is not true"));
            }
            if security["allowPrivilegeEscalation"].as_bool() != Some(false) {
                problems.push(format!("{at}: allowPrivilegeEscalation is not false"));
            }
            if security["privileged"].as_bool() == Some(true) {
                problems.push(format!("{at}: privileged"));
            }
            let drops = list(&security["capabilities"]["drop"]);
            if !drops.iter().any(|c| c.as_str() == Some("ALL")) {
                problems.push(format!("{at}: does not drop ALL capabilities"));
            }
            if !list(&security["capabilities"]["add"]).is_empty() {
                problems.push(format!("{at}: adds capabilities"));
            }
        }
    }
    problems
}

/// The seconds a preStop hook waits: `sleep N` as an exec hook, or the `sleep` action.
fn pre_stop_secs(container: &Value) -> Option<u64> {
    let hook = &container["lifecycle"]["preStop"];
    if let Some(seconds) = hook["sleep"]["seconds"].as_u64() {
        return Some(seconds);
    }
    match list(&hook["exec"]["command"]) {
        [sleep, seconds] if sleep.as_str()?.rsplit('/').next() == Some("sleep") => {
            seconds.as_str()?.parse().ok()
        }
        _ => None,
    }
}

/// A gateway pod's grace period covers its stop: the preStop delay, then (after SIGTERM)
/// `server.drain_delay_secs` and `server.shutdown_timeout_secs`, both set explicitly, with
/// `GRACE_MARGIN_SECS` to spare. A shorter grace period SIGKILLs streams that the shutdown
/// timeout promised to let finish.
fn short_grace_periods(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let gateways = gateways(objects);
    if gateways.is_empty() {
        problems.push("no workload runs mcp-proxy".to_owned());
    }
    for (owner, template, container) in gateways {
        let secs = |var: &str| {
            env_value(container, var)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{owner}: {var} is not set to a number of seconds"))
        };
        let drain = secs("MCP__SERVER__DRAIN_DELAY_SECS");
        let shutdown = secs("MCP__SERVER__SHUTDOWN_TIMEOUT_SECS");
        let pre_stop = pre_stop_secs(container)
            .ok_or_else(|| format!("{owner}: no preStop delay (`sleep N`)"));
        let (drain, shutdown, pre_stop) = match (drain, shutdown, pre_stop) {
            (Ok(d), Ok(s), Ok(p)) => (d, s, p),
            (d, s, p) => {
                problems.extend([d.err(), s.err(), p.err()].into_iter().flatten());
                continue;
            }
        };
        // Kubernetes's default when unset.
        let grace = template["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        let needed = pre_stop + drain + shutdown + GRACE_MARGIN_SECS;
        if grace < needed {
            problems.push(format!(
                "{owner}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain \
                 {drain} + shutdown {shutdown} + margin {GRACE_MARGIN_SECS} = {needed}"
            ));
        }
    }
    problems
}

/// An OpenAI- or Anthropic-style key (`sk-...`, `sk-ant-...`) or a private key in `text`.
fn key_material(text: &str) -> Option<String> {
    let key = text.match_indices("sk-").find(|(i, _)| {
        text[..*i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric())
    });
    if let Some((i, _)) = key {
        let end = text[i..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .map_or(text.len(), |n| i + n);
        return Some(text[i..end].to_owned());
    }
    text.contains("PRIVATE KEY-----")
        .then(|| "a PEM private key".to_owned())
}

/// The gateway's settings as it will read them: the file `MCP_CONFIG` names, from the
/// ConfigMap mounted there, and its container's literal `MCP__*` variables.
fn gateway_settings(objects: &[Value]) -> Result<(String, BTreeMap<String, String>)> {
    let gateways = gateways(objects);
    let [(owner, template, container)] = gateways.as_slice() else {
        bail!(
            "expected one workload running mcp-proxy, found {}",
            gateways.len()
        );
    };
    let config = env_value(container, "MCP_CONFIG")
        .with_context(|| format!("{owner}: MCP_CONFIG is not set"))?;
    let (dir, file) = config
        .rsplit_once('/')
        .with_context(|| format!("MCP_CONFIG={config} is not a path"))?;
    let mount = list(&container["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(dir))
        .with_context(|| format!("{owner}: nothing is mounted at {dir}"))?;
    let volume = list(&template["spec"]["volumes"])
        .iter()
        .find(|v| v["name"] == mount["name"])
        .with_context(|| format!("{owner}: no volume {}", mount["name"]))?;
    let map_name = volume["configMap"]["name"]
        .as_str()
        .with_context(|| format!("{owner}: {dir} is not a ConfigMap"))?;
    let key = list(&volume["configMap"]["items"])
        .iter()
        .find(|item| item["path"].as_str() == Some(file))
        .and_then(|item| item["key"].as_str())
        .unwrap_or(file);
    let map = find(objects, "ConfigMap", map_name)
        .with_context(|| format!("{owner} mounts ConfigMap {map_name}, which is not rendered"))?;
    let text = map["data"][key]
        .as_str()
        .with_context(|| format!("ConfigMap {map_name} has no {key}"))?;
    let vars = list(&container["env"])
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .filter(|(k, _)| k.starts_with("MCP__"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok((text.to_owned(), vars))
}

/// The settings loaded by the gateway's own code, from the rendered ConfigMap and variables.
///
/// The `state` section (MCP__STATE__*, the shared Redis state of the production overlay) is
/// read only by gateways built with the shared-state backend; it is left out here, so that
/// the rest is checked with any build, and the production test checks those variables.
fn load_settings(objects: &[Value]) -> Result<mcp_proxy::configuration::Settings> {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let (text, vars) = gateway_settings(objects)?;
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "kubernetes-settings-{}-{}.yaml",
        std::process::id(),
        FILES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text)?;
    let vars = vars
        .into_iter()
        .filter(|(k, _)| !k.starts_with("MCP__STATE__"))
        .collect();
    let settings = mcp_proxy::configuration::load_from(Some(&path), Some(vars));
    let _ = std::fs::remove_file(&path);
    Ok(settings?)
}

/// The variables that hold secrets because the settings name them: `api_key_env` (with the
/// `upstream` section's, which entries without their own inherit), `key_env`,
/// `metrics_token_env`, and the Redis URL's `url_env`.
fn secret_vars(
    settings: &mcp_proxy::configuration::Settings,
    vars: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    names.insert(settings.upstream.api_key_env.clone());
    names.extend(
        settings
            .upstreams
            .iter()
            .filter_map(|u| u.api_key_env.clone()),
    );
    names.extend(settings.keys.iter().filter_map(|k| k.key_env.clone()));
    names.extend(settings.server.metrics_token_env.clone());
    if let Some(url_env) = vars.get("MCP__STATE__REDIS__URL_ENV") {
        names.insert(url_env.clone());
    }
    names
}

/// A variable whose name says it holds a secret, whatever the settings name.
fn secret_name(var: &str) -> bool {
    ["_KEY", "_TOKEN", "_SECRET", "_PASSWORD"]
        .iter()
        .any(|suffix| var.ends_with(suffix))
}

/// Secrets are referenced, never written: no Secret objects (they are created apart from the
/// manifests), no key material in ConfigMaps or environment values, and every variable that
/// holds a secret set from a Secret. The variables the gateway's settings name must all be
/// set, or the gateway starts without the key.
fn secrets_in_the_open(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for secret in of_kind(objects, "Secret") {
        problems.push(format!(
            "{}: Secrets are not kept with the manifests",
            describe(secret)
        ));
    }
    for map in of_kind(objects, "ConfigMap") {
        for field in ["data", "binaryData"] {
            for (key, value) in map[field].as_object().into_iter().flatten() {
                if let Some(found) = value.as_str().and_then(key_material) {
                    problems.push(format!("{} {key}: holds {found:?}", describe(map)));
                }
            }
        }
    }
    let mut named = BTreeSet::new();
    match load_settings(objects).and_then(|s| Ok((s, gateway_settings(objects)?.1))) {
        Ok((settings, vars)) => named = secret_vars(&settings, &vars),
        Err(e) => problems.push(format!("the gateway's settings: {e:#}")),
    }
    for (owner, template) in templates(objects) {
        for container in containers(template) {
            let at = format!("{owner} container {}", container["name"]);
            let gateway = runs(container, "mcp-proxy");
            for entry in list(&container["env"]) {
                let var = entry["name"].as_str().unwrap_or_default();
                if let Some(found) = entry["value"].as_str().and_then(key_material) {
                    problems.push(format!("{at}: {var} holds {found:?}"));
                }
                let is_secret = secret_name(var) || (gateway && named.contains(var));
                if is_secret && entry["valueFrom"]["secretKeyRef"].is_null() {
                    problems.push(format!(
                        "{at}: {var} holds a secret but is not from a Secret"
                    ));
                }
            }
            if gateway {
                for var in &named {
                    if env(container, var).is_none() {
                        problems.push(format!("{at}: {var}, named by the settings, is not set"));
                    }
                }
            }
        }
    }
    problems
}

/// The gateway accepts its settings, and each upstream whose host is a cluster name (no dot,
/// or a `.svc` name) is a Service of the same kustomization with the URL's port: a renamed
/// Service or a changed port would leave the gateway calling nothing.
fn unreachable_upstreams(objects: &[Value]) -> Vec<String> {
    let settings = match load_settings(objects) {
        Ok(settings) => settings,
        Err(e) => return vec![format!("the gateway refuses its settings: {e:#}")],
    };
    let mut urls: Vec<(String, url::Url)> = settings
        .upstreams
        .iter()
        .map(|u| (u.name.clone(), u.base_url.clone()))
        .collect();
    if urls.is_empty() {
        urls.extend(
            settings
                .upstream
                .base_url
                .clone()
                .map(|u| ("upstream".into(), u)),
        );
    }
    let mut problems = Vec::new();
    for (upstream, url) in urls {
        let host = url.host_str().unwrap_or_default();
        let cluster_local = !host.contains('.') || host.contains(".svc");
        if !cluster_local || host == "localhost" {
            continue;
        }
        let service_name = host.split('.').next().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or_default();
        let service = find(objects, "Service", service_name);
        let ports: Vec<u64> = service
            .map(|s| list(&s["spec"]["ports"]))
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p["port"].as_u64())
            .collect();
        if !ports.contains(&u64::from(port)) {
            problems.push(format!(
                "upstream {upstream} ({url}): no Service {service_name} with port {port} (found ports {ports:?})"
            ));
        }
    }
    problems
}

/// Selectors select what they are meant to: each Deployment its own pods; each Service some
/// pods, on a port they have; each ServiceMonitor a Service, on a named port of it, at
/// /metrics, with the job label the alerts match.
fn broken_selections(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let templates = templates(objects);
    for deployment in of_kind(objects, "Deployment") {
        let at = describe(deployment);
        let selector = match_labels(&deployment["spec"]["selector"], &mut problems, &at);
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        if !selects(selector, labels) {
            problems.push(format!("{at}: its selector does not select its own pods"));
        }
    }
    for service in of_kind(objects, "Service") {
        let at = describe(service);
        let selected: Vec<&Value> = templates
            .iter()
            .filter(|(_, t)| selects(&service["spec"]["selector"], &t["metadata"]["labels"]))
            .map(|(_, t)| *t)
            .collect();
        if selected.is_empty() {
            problems.push(format!("{at}: selects no pods"));
        }
        for port in list(&service["spec"]["ports"]) {
            let target = if port["targetPort"].is_null() {
                &port["port"]
            } else {
                &port["targetPort"]
            };
            let served = selected.iter().flat_map(|t| containers(t)).any(|c| {
                list(&c["ports"])
                    .iter()
                    .any(|p| &p["name"] == target || &p["containerPort"] == target)
            });
            if !served {
                problems.push(format!("{at}: no selected container has port {target}"));
            }
        }
    }
    for monitor in of_kind(objects, "ServiceMonitor") {
        let at = describe(monitor);
        let selector = match_labels(&monitor["spec"]["selector"], &mut problems, &at);
        let services: Vec<&Value> = of_kind(objects, "Service")
            .filter(|s| selects(selector, &s["metadata"]["labels"]))
            .collect();
        if services.is_empty() {
            problems.push(format!("{at}: selects no Service"));
        }
        let endpoints = list(&monitor["spec"]["endpoints"]);
        if endpoints.is_empty() {
            problems.push(format!("{at}: no endpoints"));
        }
        for endpoint in endpoints {
            let port = &endpoint["port"];
            for service in &services {
                if !list(&service["spec"]["ports"])
                    .iter()
                    .any(|p| &p["name"] == port)
                {
                    problems.push(format!(
                        "{at}: {} has no port named {port}",
                        describe(service)
                    ));
                }
                // The operator names the job after the Service unless a relabeling sets it.
                let relabeled = list(&endpoint["relabelings"]).iter().find(|r| {
                    r["targetLabel"].as_str() == Some("job")
                        && r["action"].as_str().unwrap_or("replace") == "replace"
                });
                let job = match relabeled {
                    Some(rule) => rule["replacement"].as_str().unwrap_or_default(),
                    None => name(service),
                };
                if job != JOB {
                    problems.push(format!(
                        "{at}: scrapes {} as job {job:?}; the alerts and rules expect {JOB:?}",
                        describe(service)
                    ));
                }
            }
            if endpoint["path"].as_str() != Some("/metrics") {
                problems.push(format!(
                    "{at}: scrapes {} instead of /metrics",
                    endpoint["path"]
                ));
            }
        }
    }
    problems
}

/// `/metrics` stays off the port clients reach: the gateway has an admin listener on a port
/// its container declares; every ServiceMonitor scrapes that port; and only Services a
/// ServiceMonitor selects expose it.
fn metrics_on_the_api_port(objects: &[Value]) -> Vec<String> {
    let settings = match load_settings(objects) {
        Ok(settings) => settings,
        Err(e) => return vec![format!("the gateway's settings: {e:#}")],
    };
    let Some(admin) = settings.server.admin_listen else {
        return vec![
            "the gateway serves /metrics on its API port: server.admin_listen is unset".to_owned(),
        ];
    };
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for (owner, _, container) in gateways(objects) {
        let declared = list(&container["ports"])
            .iter()
            .find(|p| p["containerPort"].as_u64() == Some(u64::from(admin.port())));
        match declared.and_then(|p| p["name"].as_str()) {
            Some(name) => {
                names.insert(name.to_owned());
            }
            None => problems.push(format!(
                "{owner}: no named container port {} for server.admin_listen {admin}",
                admin.port()
            )),
        }
    }
    let targets_admin = |port: &Value| {
        let target = if port["targetPort"].is_null() {
            &port["port"]
        } else {
            &port["targetPort"]
        };
        target.as_u64() == Some(u64::from(admin.port()))
            || target.as_str().is_some_and(|name| names.contains(name))
    };
    let mut monitored = BTreeSet::new();
    for monitor in of_kind(objects, "ServiceMonitor") {
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        for service in
            of_kind(objects, "Service").filter(|s| selects(selector, &s["metadata"]["labels"]))
        {
            monitored.insert(name(service));
            for endpoint in list(&monitor["spec"]["endpoints"]) {
                let scraped = list(&service["spec"]["ports"])
                    .iter()
                    .find(|p| p["name"] == endpoint["port"]);
                if !scraped.is_some_and(&targets_admin) {
                    problems.push(format!(
                        "{}: scrapes port {} of {}, not the admin listener ({admin})",
                        describe(monitor),
                        endpoint["port"],
                        describe(service)
                    ));
                }
            }
        }
    }
    for service in of_kind(objects, "Service") {
        if !monitored.contains(name(service))
            && list(&service["spec"]["ports"]).iter().any(targets_admin)
        {
            problems.push(format!(
                "{}: exposes the admin listener ({admin}) to whoever reaches it",
                describe(service)
            ));
        }
    }
    problems
}

/// The gateway stays available through disruptions: an autoscaler (autoscaling/v2) keeps two
/// replicas at least and owns the count (the Deployment sets none, or every apply would reset
/// it); a PodDisruptionBudget covers its pods; and its pods spread over nodes, with
/// constraints that count its own pods.
fn availability_gaps(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let gateways = gateways(objects);
    if gateways.is_empty() {
        problems.push("no workload runs mcp-proxy".to_owned());
    }
    for (owner, template, _) in gateways {
        let (workload_kind, workload_name) = owner.split_once('/').unwrap_or_default();
        let labels = &template["metadata"]["labels"];
        let workload = find(objects, workload_kind, workload_name);
        if workload.is_some_and(|w| !w["spec"]["replicas"].is_null()) {
            problems.push(format!("{owner}: sets replicas, which the autoscaler owns"));
        }
        let autoscalers: Vec<&Value> = of_kind(objects, "HorizontalPodAutoscaler")
            .filter(|h| {
                let target = &h["spec"]["scaleTargetRef"];
                target["kind"].as_str() == Some(workload_kind)
                    && target["name"].as_str() == Some(workload_name)
            })
            .collect();
        match autoscalers.as_slice() {
            [hpa] => {
                if hpa["apiVersion"].as_str() != Some("autoscaling/v2") {
                    problems.push(format!("{}: not autoscaling/v2", describe(hpa)));
                }
                if hpa["spec"]["minReplicas"].as_u64().unwrap_or(1) < 2 {
                    problems.push(format!("{}: minReplicas below 2", describe(hpa)));
                }
            }
            found => problems.push(format!(
                "{owner}: {} autoscalers target it, not one",
                found.len()
            )),
        }
        let budgeted = of_kind(objects, "PodDisruptionBudget").any(|pdb| {
            let mut ignored = Vec::new();
            selects(
                match_labels(&pdb["spec"]["selector"], &mut ignored, ""),
                labels,
            )
        });
        if !budgeted {
            problems.push(format!("{owner}: no PodDisruptionBudget selects its pods"));
        }
        let constraints = list(&template["spec"]["topologySpreadConstraints"]);
        if !constraints
            .iter()
            .any(|c| c["topologyKey"].as_str() == Some("kubernetes.io/hostname"))
        {
            problems.push(format!("{owner}: its pods are not spread over nodes"));
        }
        for constraint in constraints {
            let at = format!("{owner} spread over {}", constraint["topologyKey"]);
            if !selects(
                match_labels(&constraint["labelSelector"], &mut problems, &at),
                labels,
            ) {
                problems.push(format!("{at}: counts other pods than its own"));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The manifests as they are.

#[test]
fn every_kustomization_renders_and_matches_the_kubernetes_and_prometheus_operator_schemas() {
    let names: Vec<&str> = rendered().iter().map(|r| r.name.as_str()).collect();
    for expected in ["base", "demo", "production"] {
        assert!(names.contains(&expected), "no {expected} among {names:?}");
    }
    for Rendered { name, objects } in rendered() {
        let kinds: BTreeSet<&str> = objects.iter().map(kind).collect();
        for expected in [
            "Deployment",
            "Service",
            "ConfigMap",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "ServiceMonitor",
            "PrometheusRule",
        ] {
            assert!(kinds.contains(expected), "{name} renders no {expected}");
        }
    }
}

#[test]
fn every_image_is_pinned_to_a_version() {
    assert_clean(unpinned_images);
}

#[test]
fn every_container_has_probes_and_resource_requests_and_limits() {
    assert_clean(missing_probes_and_resources);
}

#[test]
fn every_pod_runs_as_non_root_on_a_read_only_file_system_with_nothing_extra() {
    assert_clean(unrestricted_pods);
}

#[test]
fn the_gateway_grace_period_covers_the_pre_stop_delay_the_drain_and_the_shutdown_timeout() {
    assert_clean(short_grace_periods);
}

#[test]
fn secrets_are_only_referenced_never_written_into_configmaps_or_the_environment() {
    assert_clean(secrets_in_the_open);
}

#[test]
fn the_gateway_accepts_its_settings_and_every_in_cluster_upstream_is_a_service() {
    assert_clean(unreachable_upstreams);
}

#[test]
fn services_monitors_and_deployments_select_what_they_are_meant_to() {
    assert_clean(broken_selections);
}

#[test]
fn metrics_are_served_and_scraped_on_the_admin_listener_not_on_the_api_port() {
    assert_clean(metrics_on_the_api_port);
}

#[test]
fn the_gateway_is_autoscaled_budgeted_for_disruptions_and_spread_over_nodes() {
    assert_clean(availability_gaps);
}

#[test]
fn every_configmap_fits_in_the_last_applied_annotation_of_kubectl_apply() {
    for Rendered { name, objects } in rendered() {
        for map in of_kind(objects, "ConfigMap") {
            let size = serde_json::to_string(map).unwrap().len();
            assert!(
                size < LAST_APPLIED_LIMIT,
                "{name}: {} is {size} bytes, too large for `kubectl apply` (split it or apply with --server-side)",
                describe(map)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The generated files against their sources.

#[test]
fn the_generated_files_are_what_make_kube_generate_writes() {
    let output = Command::new("python3")
        .args([&format!("{KUBERNETES}/tools/generate.py"), "--check"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "deploy/kubernetes/base/generated is stale:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_settings_configmap_of_the_base_and_the_demo_is_deploy_mcp_server_yaml() {
    let source = std::fs::read_to_string(repo_root().join(SETTINGS)).unwrap();
    let expected = yaml_document(&source).unwrap();
    for overlay_name in ["base", "demo"] {
        let (text, _) = gateway_settings(overlay(overlay_name)).unwrap();
        let found = yaml_document(&text).unwrap();
        assert!(
            found == expected,
            "{overlay_name}: the settings ConfigMap differs from {SETTINGS}: run `make kube-generate`"
        );
    }
}

#[test]
fn the_prometheus_rules_are_the_rule_files_of_prometheus_rules() {
    let root = repo_root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("prometheus/rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let expected: BTreeMap<String, (PathBuf, Value)> = files
        .into_iter()
        .map(|file| {
            let stem = file.file_stem().unwrap().to_string_lossy();
            let groups = yaml_document(&std::fs::read_to_string(&file).unwrap()).unwrap();
            (format!("mcp-server-{stem}"), (file, groups))
        })
        .collect();
    for Rendered {
        name: overlay_name,
        objects,
    } in rendered()
    {
        let release = &find(objects, "ServiceMonitor", "mcp-server")
            .expect("the gateway's ServiceMonitor")["metadata"]["labels"]["release"];
        for (rule_name, (file, groups)) in &expected {
            let rule = find(objects, "PrometheusRule", rule_name)
                .unwrap_or_else(|| panic!("{overlay_name}: no PrometheusRule {rule_name}"));
            assert!(
                &rule["spec"] == groups,
                "{overlay_name}: PrometheusRule {rule_name} differs from {}: run `make kube-generate`",
                file.display()
            );
            // The Prometheus that scrapes the gateway must load its rules too.
            assert!(
                release.is_string() && &rule["metadata"]["labels"]["release"] == release,
                "{overlay_name}: {rule_name} lacks the ServiceMonitor's release label {release}"
            );
        }
        let found: BTreeSet<&str> = of_kind(objects, "PrometheusRule").map(name).collect();
        let wanted: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
        assert_eq!(found, wanted, "{overlay_name}: PrometheusRules");
    }
}

#[test]
fn every_dashboard_is_a_configmap_for_the_grafana_sidecar() {
    let root = repo_root();
    let mut dashboards: Vec<PathBuf> = std::fs::read_dir(root.join("grafana/dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    dashboards.sort();
    assert!(!dashboards.is_empty());
    for Rendered {
        name: overlay_name,
        objects,
    } in rendered()
    {
        for dashboard in &dashboards {
            let file = dashboard.file_name().unwrap().to_string_lossy();
            let stem = dashboard.file_stem().unwrap().to_string_lossy();
            // No hash suffix: the sidecar would load the previous ConfigMap, left behind by
            // `kubectl apply`, beside the new one.
            let map_name = format!("grafana-dashboard-{stem}");
            let map = find(objects, "ConfigMap", &map_name)
                .unwrap_or_else(|| panic!("{overlay_name}: no ConfigMap {map_name}"));
            assert_eq!(
                map["metadata"]["labels"][DASHBOARD_LABEL.0], DASHBOARD_LABEL.1,
                "{overlay_name}: {map_name} lacks the sidecar's label"
            );
            let expected = std::fs::read_to_string(dashboard).unwrap();
            assert!(
                map["data"][file.as_ref()].as_str() == Some(expected.as_str()),
                "{overlay_name}: {map_name} differs from {}: run `make kube-generate`",
                dashboard.display()
            );
        }
        let labelled = of_kind(objects, "ConfigMap")
            .filter(|m| m["metadata"]["labels"][DASHBOARD_LABEL.0] == DASHBOARD_LABEL.1)
            .count();
        assert_eq!(
            labelled,
            dashboards.len(),
            "{overlay_name}: dashboard ConfigMaps"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What each overlay is for.

#[test]
fn the_demo_sends_every_upstream_to_the_mock_services_as_compose_does() {
    let objects = overlay("demo");
    let (_, vars) = gateway_settings(objects).unwrap();
    // The values of docker-compose.yml, where the services have the same names.
    for (var, url) in [
        (
            "MCP__UPSTREAMS__PRIMARY__BASE_URL",
            "http://mock-upstream:8081/v1",
        ),
        (
            "MCP__UPSTREAMS__SECONDARY__BASE_URL",
            "http://mock-secondary:8082/v1",
        ),
        (
            "MCP__UPSTREAMS__ANTHROPIC__BASE_URL",
            "http://mock-secondary:8082/v1",
        ),
    ] {
        assert_eq!(vars.get(var).map(String::as_str), Some(url), "{var}");
    }
    // Every upstream is inside the cluster (unreachable_upstreams checks that it resolves).
    let settings = load_settings(objects).unwrap();
    assert_eq!(settings.upstreams.len(), 3);
    for upstream in &settings.upstreams {
        let host = upstream.base_url.host_str().unwrap_or_default();
        assert!(!host.contains('.'), "{} goes to {host}", upstream.name);
    }
    // Each mock listens on the port its container declares.
    let mut mocks = 0;
    for (owner, template) in templates(objects) {
        for container in containers(template).filter(|c| runs(c, "mcp-mock-upstream")) {
            mocks += 1;
            let listen = env_value(container, "MOCK_LISTEN").unwrap_or_default();
            let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
            assert!(
                listen.starts_with("0.0.0.0:"),
                "{owner}: MOCK_LISTEN={listen}"
            );
            assert_eq!(container["ports"][0]["containerPort"], port, "{owner}");
        }
    }
    assert_eq!(mocks, 2, "the primary and the secondary mock");
}

#[test]
fn production_reads_every_key_from_a_required_secret_and_shares_state_through_redis() {
    let objects = overlay("production");
    let gateways = gateways(objects);
    let (_, _, gateway) = gateways[0];
    let (_, vars) = gateway_settings(objects).unwrap();
    let settings = load_settings(objects).unwrap();
    // Limits and budgets shared by every replica.
    assert_eq!(
        vars.get("MCP__STATE__BACKEND").map(String::as_str),
        Some("redis")
    );
    let url_env = vars
        .get("MCP__STATE__REDIS__URL_ENV")
        .expect("the Redis URL's variable");
    let url = env(gateway, url_env).expect("the Redis URL is set");
    assert!(
        !url["valueFrom"]["secretKeyRef"].is_null(),
        "{url_env} comes from a Secret"
    );
    // Client keys by variable only, no digests of demo keys.
    assert!(!settings.keys.is_empty(), "production has client keys");
    for key in &settings.keys {
        assert!(
            key.sha256.is_none(),
            "{}: a digest in the settings",
            key.name
        );
        assert!(key.key_env.is_some(), "{}: no key_env", key.name);
    }
    // Real providers, over TLS.
    for upstream in &settings.upstreams {
        assert_eq!(upstream.base_url.scheme(), "https", "{}", upstream.name);
    }
    // Every secret the settings name is required: a missing Secret stops the rollout instead
    // of starting gateways without keys.
    for var in secret_vars(&settings, &vars) {
        let entry = env(gateway, &var).unwrap_or_else(|| panic!("{var} is not set"));
        let reference = &entry["valueFrom"]["secretKeyRef"];
        assert!(reference.is_object(), "{var} is not from a Secret");
        assert_ne!(reference["optional"], true, "{var} is optional");
    }
}

// ---------------------------------------------------------------------------------------------
// The checks can fail.

/// The object `kind`/`name` of `objects`, to break.
fn object_mut<'a>(objects: &'a mut [Value], wanted: &str, named: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| kind(o) == wanted && name(o) == named)
        .unwrap_or_else(|| panic!("no {wanted}/{named}"))
}

/// The gateway's container in the demo's objects.
fn gateway_mut(objects: &mut [Value]) -> &mut Value {
    &mut object_mut(objects, "Deployment", "mcp-server")["spec"]["template"]["spec"]["containers"]
        [0]
}

/// Sets (or with None, removes) the container's variable `var` to the env entry `entry`.
fn set_env(container: &mut Value, var: &str, entry: Option<Value>) {
    let entries = container["env"]
        .as_array_mut()
        .expect("the container has env");
    entries.retain(|e| e["name"] != var);
    if let Some(mut entry) = entry {
        entry["name"] = json!(var);
        entries.push(entry);
    }
}

type Breakage = (
    &'static str,
    fn(&[Value]) -> Vec<String>,
    fn(&mut Vec<Value>),
);

#[test]
fn every_check_catches_what_it_is_for() {
    let breakages: &[Breakage] = &[
        ("an image tagged latest", unpinned_images, |o| {
            gateway_mut(o)["image"] = json!("mcp-server:latest");
        }),
        ("an image without a tag", unpinned_images, |o| {
            gateway_mut(o)["image"] = json!("mcp-server");
        }),
        ("no readiness probe", missing_probes_and_resources, |o| {
            gateway_mut(o)
                .as_object_mut()
                .unwrap()
                .remove("readinessProbe");
        }),
        (
            "no liveness probe on a mock",
            missing_probes_and_resources,
            |o| {
                let mock = &mut object_mut(o, "Deployment", "mock-upstream")["spec"]["template"]["spec"]
                    ["containers"][0];
                mock.as_object_mut().unwrap().remove("livenessProbe");
            },
        ),
        ("no limits", missing_probes_and_resources, |o| {
            gateway_mut(o)["resources"]
                .as_object_mut()
                .unwrap()
                .remove("limits");
        }),
        (
            "a request above its limit",
            missing_probes_and_resources,
            |o| {
                gateway_mut(o)["resources"]["requests"]["memory"] = json!("2Gi");
            },
        ),
        ("root allowed", unrestricted_pods, |o| {
            let pod = &mut object_mut(o, "Deployment", "mcp-server")["spec"]["template"]["spec"];
            pod["securityContext"]["runAsNonRoot"] = json!(false);
        }),
        ("a writable root file system", unrestricted_pods, |o| {
            gateway_mut(o)["securityContext"]["readOnlyRootFilesystem"] = json!(false);
        }),
        ("privilege escalation", unrestricted_pods, |o| {
            let security = gateway_mut(o)["securityContext"].as_object_mut().unwrap();
            security.remove("allowPrivilegeEscalation");
        }),
        ("capabilities kept", unrestricted_pods, |o| {
            gateway_mut(o)["securityContext"]["capabilities"] = json!({"drop": ["NET_RAW"]});
        }),
        ("no seccomp profile", unrestricted_pods, |o| {
            let pod =
                &mut object_mut(o, "Deployment", "mock-secondary")["spec"]["template"]["spec"];
            pod["securityContext"]
                .as_object_mut()
                .unwrap()
                .remove("seccompProfile");
        }),
        ("the default grace period", short_grace_periods, |o| {
            let pod = &mut object_mut(o, "Deployment", "mcp-server")["spec"]["template"]["spec"];
            pod.as_object_mut()
                .unwrap()
                .remove("terminationGracePeriodSeconds");
        }),
        (
            "a longer shutdown timeout than the grace period covers",
            short_grace_periods,
            |o| {
                set_env(
                    gateway_mut(o),
                    "MCP__SERVER__SHUTDOWN_TIMEOUT_SECS",
                    Some(json!({"value": "45"})),
                );
            },
        ),
        (
            "the drain delay left to its default",
            short_grace_periods,
            |o| {
                set_env(gateway_mut(o), "MCP__SERVER__DRAIN_DELAY_SECS", None);
            },
        ),
        ("no preStop delay", short_grace_periods, |o| {
            gateway_mut(o).as_object_mut().unwrap().remove("lifecycle");
        }),
        ("a key in a ConfigMap", secrets_in_the_open, |o| {
            let map = o
                .iter_mut()
                .find(|m| name(m).starts_with("mcp-server-settings"))
                .unwrap();
            let text = map["data"]["mcp-server.yaml"].as_str().unwrap().to_owned();
            map["data"]["mcp-server.yaml"] = json!(format!("{text}# sk-proj-abc123\n"));
        }),
        ("a Secret with the manifests", secrets_in_the_open, |o| {
            o.push(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"},
                "stringData": {"openai-api-key": "x"}}),
            );
        }),
        (
            "an upstream key written into the environment",
            secrets_in_the_open,
            |o| {
                set_env(
                    gateway_mut(o),
                    "OPENAI_API_KEY",
                    Some(json!({"value": "not-a-reference"})),
                );
            },
        ),
        (
            "a key the settings name left unset",
            secrets_in_the_open,
            |o| {
                set_env(gateway_mut(o), "ANTHROPIC_API_KEY", None);
            },
        ),
        (
            "an upstream on a Service that is not there",
            unreachable_upstreams,
            |o| {
                let url = json!({"value": "http://mock-tertiary:8081/v1"});
                set_env(
                    gateway_mut(o),
                    "MCP__UPSTREAMS__PRIMARY__BASE_URL",
                    Some(url),
                );
            },
        ),
        (
            "an upstream on the wrong port",
            unreachable_upstreams,
            |o| {
                let url = json!({"value": "http://mock-upstream:8082/v1"});
                set_env(
                    gateway_mut(o),
                    "MCP__UPSTREAMS__SECONDARY__BASE_URL",
                    Some(url),
                );
            },
        ),
        (
            "a setting the gateway refuses",
            unreachable_upstreams,
            |o| {
                set_env(
                    gateway_mut(o),
                    "MCP__UPSTREAMS__TERTIARY__BASE_URL",
                    Some(json!({"value": "http://x/v1"})),
                );
            },
        ),
        ("a Service selecting nothing", broken_selections, |o| {
            let service = object_mut(o, "Service", "mcp-server");
            service["spec"]["selector"]["app.kubernetes.io/component"] = json!("gatewy");
        }),
        (
            "a Service on a port no container has",
            broken_selections,
            |o| {
                object_mut(o, "Service", "mock-upstream")["spec"]["ports"][0]["targetPort"] =
                    json!(9999);
            },
        ),
        (
            "a ServiceMonitor on a port the Service lacks",
            broken_selections,
            |o| {
                object_mut(o, "ServiceMonitor", "mcp-server")["spec"]["endpoints"][0]["port"] =
                    json!("http");
            },
        ),
        (
            "a job label the alerts do not match",
            broken_selections,
            |o| {
                let endpoint =
                    &mut object_mut(o, "ServiceMonitor", "mcp-server")["spec"]["endpoints"][0];
                endpoint.as_object_mut().unwrap().remove("relabelings");
                object_mut(o, "Service", "mcp-server")["metadata"]["name"] =
                    json!("demo-mcp-server");
            },
        ),
        (
            "the replica count in the Deployment",
            availability_gaps,
            |o| {
                object_mut(o, "Deployment", "mcp-server")["spec"]["replicas"] = json!(3);
            },
        ),
        ("an autoscaler aimed elsewhere", availability_gaps, |o| {
            object_mut(o, "HorizontalPodAutoscaler", "mcp-server")["spec"]["scaleTargetRef"]["name"] =
                json!("mcp");
        }),
        ("/metrics on the API port", metrics_on_the_api_port, |o| {
            set_env(gateway_mut(o), "MCP__SERVER__ADMIN_LISTEN", None);
        }),
        (
            "an admin listener on a port the container does not declare",
            metrics_on_the_api_port,
            |o| {
                let entry = json!({"name": "MCP__SERVER__ADMIN_LISTEN", "value": "0.0.0.0:9465"});
                set_env(gateway_mut(o), "MCP__SERVER__ADMIN_LISTEN", Some(entry));
            },
        ),
        (
            "a ServiceMonitor scraping the API port",
            metrics_on_the_api_port,
            |o| {
                let ports = &mut object_mut(o, "Service", "mcp-server-metrics")["spec"]["ports"];
                ports[0]["targetPort"] = json!("http");
            },
        ),
        (
            "the admin listener on the clients' Service",
            metrics_on_the_api_port,
            |o| {
                let ports = object_mut(o, "Service", "mcp-server")["spec"]["ports"]
                    .as_array_mut()
                    .unwrap();
                ports.push(json!({"name": "admin", "port": 9464, "targetPort": "metrics"}));
            },
        ),
        ("a single replica", availability_gaps, |o| {
            object_mut(o, "HorizontalPodAutoscaler", "mcp-server")["spec"]["minReplicas"] =
                json!(1);
        }),
        ("a budget for other pods", availability_gaps, |o| {
            let pdb = object_mut(o, "PodDisruptionBudget", "mcp-server");
            pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = json!("mcp");
        }),
        ("no spread over nodes", availability_gaps, |o| {
            let pod = &mut object_mut(o, "Deployment", "mcp-server")["spec"]["template"]["spec"];
            pod.as_object_mut()
                .unwrap()
                .remove("topologySpreadConstraints");
        }),
    ];
    let demo = overlay("demo");
    for (what, check, breakage) in breakages {
        let mut broken = demo.to_vec();
        breakage(&mut broken);
        assert!(
            !check(&broken).is_empty(),
            "{what}: the check found nothing wrong"
        );
    }
}

#[test]
fn the_checks_recognise_pinned_images_keys_and_quantities() {
    for pinned in [
        "mcp-server:0.1.0",
        "registry.example.com:5000/mcp-server:v1.2",
        "x@sha256:00",
    ] {
        assert!(is_pinned(pinned), "{pinned}");
    }
    for floating in [
        "mcp-server",
        "mcp-server:latest",
        "registry:5000/mcp-server",
        "x:main",
    ] {
        assert!(!is_pinned(floating), "{floating}");
    }
    assert_eq!(
        key_material("key: sk-ant-api03-x y").as_deref(),
        Some("sk-ant-api03-x")
    );
    assert_eq!(key_material("\"sk-proj-1\"").as_deref(), Some("sk-proj-1"));
    assert_eq!(key_material("disk-usage task-queue"), None);
    assert!(key_material("-----BEGIN RSA PRIVATE KEY-----").is_some());
    assert_eq!(cpu_millis("250m"), Some(250.0));
    assert_eq!(cpu_millis("2"), Some(2000.0));
    assert_eq!(memory_bytes("256Mi"), Some(256.0 * 1024.0 * 1024.0));
    assert_eq!(memory_bytes("1G"), Some(1e9));
}
