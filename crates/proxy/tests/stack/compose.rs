//! Static checks of the container files: `docker-compose.yml` (alone, with the replicas
//! override and with the loopback override) as `docker-compose config` normalises them, and
//! every Dockerfile under `deploy/` through `hadolint`. The tools are real;
//! `scripts/install-deps.sh` installs them (`make test` does).
//!
//! Compose v1 (Debian's 1.29) prints its normalised file only as YAML, so `ComposeYaml` reads
//! the block YAML it writes; Compose v2 prints JSON. `Service` hides the differences between
//! the two (short and long forms of ports and volumes).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Map, Value};

const COMPOSE_FILE: &str = "docker-compose.yml";
const LOOPBACK_OVERRIDE: &str = "deploy/compose.loopback.yml";
const REPLICAS_OVERRIDE: &str = "docker-compose.replicas.yml";

/// The stack alone, and with its second gateway replica: what the README documents running.
const STACKS: &[&[&str]] = &[&[COMPOSE_FILE], &[COMPOSE_FILE, REPLICAS_OVERRIDE]];

/// The services of the stack, each with the host port it publishes (None: it serves nothing;
/// Redis is reached from the stack's network only).
const SERVICES: &[(&str, Option<u16>)] = &[
    ("mock-upstream", Some(8081)),
    ("mock-secondary", Some(8082)),
    ("proxy", Some(8080)),
    ("redis", None),
    ("loadgen", None),
    ("prometheus", Some(9090)),
    ("alertmanager", Some(9093)),
    ("grafana", Some(3000)),
];

/// What the replicas override adds: the second gateway replica and its port.
const REPLICA_SERVICES: &[(&str, Option<u16>)] = &[("proxy-2", Some(8083))];

/// Who waits for whom to be healthy: the order the stack starts in.
const DEPENDENCIES: &[(&str, &[&str])] = &[
    ("mock-upstream", &[]),
    ("mock-secondary", &[]),
    ("proxy", &["mock-secondary", "mock-upstream", "redis"]),
    ("redis", &[]),
    ("loadgen", &["proxy"]),
    ("prometheus", &["alertmanager", "proxy"]),
    ("alertmanager", &["mock-upstream"]),
    ("grafana", &["prometheus"]),
];

/// The same with the replicas override: everything that waits for the gateway waits for both
/// replicas.
const REPLICA_DEPENDENCIES: &[(&str, &[&str])] = &[
    ("proxy", &["mock-secondary", "mock-upstream", "redis"]),
    ("proxy-2", &["mock-secondary", "mock-upstream", "redis"]),
    ("redis", &[]),
    ("loadgen", &["proxy", "proxy-2"]),
    ("prometheus", &["alertmanager", "proxy", "proxy-2"]),
];

/// The services and ports of a stack of `STACKS`.
fn expected_services(files: &[&str]) -> Vec<(&'static str, Option<u16>)> {
    let mut expected = SERVICES.to_vec();
    if files.contains(&REPLICAS_OVERRIDE) {
        expected.extend_from_slice(REPLICA_SERVICES);
    }
    expected
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Runs a tool installed by `scripts/install-deps.sh`, failing clearly when it is missing.
fn run(tool: &str, args: &[&str]) -> Result<Output> {
    let output = Command::new(tool)
        .args(args)
        .current_dir(repo_root())
        // Values from the developer's shell must not leak into failure messages, nor change
        // what is checked: the defaults written in the file are what is under test.
        .env_remove("OPENAI_API_KEY")
        .env_remove("PRIMARY_BASE_URL")
        .env_remove("GRAFANA_ADMIN_PASSWORD")
        .env_remove("LOADGEN_RATE")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("MCP_REVISION")
        .output();
    match output {
        Ok(output) => Ok(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{tool}` is not installed: run scripts/install-deps.sh (`make deps`; `make test` does)"
        ),
        Err(e) => Err(e).with_context(|| format!("running {tool}")),
    }
}

/// `docker-compose -f FILE... config ARGS`, which must succeed; its standard output.
fn compose(files: &[&str], args: &[&str]) -> Result<String> {
    let mut all = Vec::new();
    for file in files {
        all.extend(["-f", file]);
    }
    all.push("config");
    all.extend(args);
    let output = run("docker-compose", &all)?;
    ensure!(
        output.status.success(),
        "docker-compose {} failed:\n{}",
        all.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The major version of the installed docker-compose (1 for Debian's 1.29, 2 for v2).
fn compose_major_version() -> Result<u32> {
    let output = run("docker-compose", &["version", "--short"])?;
    let version = String::from_utf8_lossy(&output.stdout);
    let major = version.trim().trim_start_matches('v').split('.').next();
    major
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("unexpected `docker-compose version --short`: {version:?}"))
}

/// The normalised configuration of the given compose files, as JSON.
fn normalised(files: &[&str]) -> Result<Value> {
    if compose_major_version()? >= 2 {
        let json = compose(files, &["--format", "json"])?;
        return serde_json::from_str(&json).context("parsing `docker-compose config` JSON");
    }
    let yaml = compose(files, &[])?;
    ComposeYaml::parse(&yaml).context("parsing `docker-compose config` YAML")
}

fn services(files: &[&str]) -> Result<BTreeMap<String, Service>> {
    let config = normalised(files)?;
    let services = config
        .get("services")
        .and_then(Value::as_object)
        .context("the configuration has no services")?;
    services
        .iter()
        .map(|(name, def)| Ok((name.clone(), Service::new(name, def)?)))
        .collect()
}

/// One service of the normalised configuration, in a form both Compose versions map onto.
#[derive(Debug)]
struct Service {
    def: Map<String, Value>,
    binds: Vec<Mount>,
    named_volumes: Vec<Mount>,
    ports: Vec<Port>,
}

#[derive(Debug)]
struct Mount {
    source: String,
    target: String,
    read_only: bool,
}

#[derive(Debug, PartialEq)]
struct Port {
    host_ip: String,
    published: u16,
    target: u16,
}

impl Service {
    fn new(name: &str, def: &Value) -> Result<Self> {
        let def = def
            .as_object()
            .with_context(|| format!("service {name} is not a mapping"))?
            .clone();
        let (mut binds, mut named_volumes) = (Vec::new(), Vec::new());
        for volume in list(def.get("volumes")) {
            let (mount, is_bind) =
                Mount::parse(volume).with_context(|| format!("service {name}: volume {volume}"))?;
            if is_bind {
                binds.push(mount);
            } else {
                named_volumes.push(mount);
            }
        }
        let ports = list(def.get("ports"))
            .iter()
            .map(|p| Port::parse(p).with_context(|| format!("service {name}: port {p}")))
            .collect::<Result<_>>()?;
        Ok(Self {
            def,
            binds,
            named_volumes,
            ports,
        })
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.def.get(key).and_then(Value::as_str)
    }

    fn environment(&self, key: &str) -> Option<String> {
        match self.def.get("environment")? {
            Value::Object(env) => env.get(key).and_then(scalar),
            Value::Array(items) => items.iter().filter_map(Value::as_str).find_map(|item| {
                let (k, v) = item.split_once('=')?;
                (k == key).then(|| v.to_owned())
            }),
            _ => None,
        }
    }

    /// The services this one waits for, with the condition it waits for.
    fn depends_on(&self) -> BTreeMap<String, Option<String>> {
        match self.def.get("depends_on") {
            Some(Value::Object(deps)) => deps
                .iter()
                .map(|(name, d)| (name.clone(), d.get("condition").and_then(scalar)))
                .collect(),
            Some(Value::Array(names)) => names
                .iter()
                .filter_map(Value::as_str)
                .map(|n| (n.to_owned(), None))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Host names mapped by `extra_hosts`, to their address.
    fn extra_hosts(&self) -> BTreeMap<String, String> {
        match self.def.get("extra_hosts") {
            Some(Value::Object(hosts)) => hosts
                .iter()
                .filter_map(|(h, ip)| Some((h.clone(), scalar(ip)?)))
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|item| item.split_once([':', '=']))
                .map(|(h, ip)| (h.to_owned(), ip.to_owned()))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    fn bind_for(&self, target: &str) -> Option<&Mount> {
        self.binds.iter().find(|m| m.target == target)
    }
}

impl Mount {
    /// A volume in the short form `source:target[:mode]` or the long form; true for a bind.
    fn parse(volume: &Value) -> Result<(Self, bool)> {
        if let Some(short) = volume.as_str() {
            let parts: Vec<&str> = short.split(':').collect();
            let (source, target, mode) = match parts.as_slice() {
                [source, target] => (*source, *target, "rw"),
                [source, target, mode] => (*source, *target, *mode),
                _ => bail!("not source:target[:mode]"),
            };
            let mount = Self {
                source: source.to_owned(),
                target: target.to_owned(),
                read_only: mode.split(',').any(|m| m == "ro"),
            };
            let is_bind = source.starts_with(['/', '.', '~']);
            return Ok((mount, is_bind));
        }
        let field = |key: &str| volume.get(key).and_then(scalar);
        let mount = Self {
            source: field("source").unwrap_or_default(),
            target: field("target").context("no target")?,
            read_only: field("read_only").is_some_and(|v| v == "true"),
        };
        Ok((mount, field("type").as_deref() == Some("bind")))
    }
}

impl Port {
    /// A port in the short form `[ip:]published:target[/proto]` or the long form.
    fn parse(port: &Value) -> Result<Self> {
        if let Some(short) = port.as_str() {
            let short = short.split('/').next().unwrap_or_default();
            let parts: Vec<&str> = short.split(':').collect();
            let (host_ip, published, target) = match parts.as_slice() {
                [ip, published, target] => (*ip, *published, *target),
                [published, target] => ("", *published, *target),
                _ => bail!("not [ip:]published:target"),
            };
            return Ok(Self {
                host_ip: host_ip.to_owned(),
                published: published.parse()?,
                target: target.parse()?,
            });
        }
        let field = |key: &str| port.get(key).and_then(scalar);
        Ok(Self {
            host_ip: field("host_ip").unwrap_or_default(),
            published: field("published").context("no published port")?.parse()?,
            target: field("target").context("no target port")?.parse()?,
        })
    }
}

/// A scalar as a string, whatever its JSON type.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The block YAML that PyYAML writes for `docker-compose config` (v1): mappings, sequences
/// (at the parent key's indentation or deeper), plain and quoted scalars, folded long lines,
/// `{}` and `[]`. Every scalar becomes a JSON string. Not a general YAML parser.
struct ComposeYaml<'a> {
    lines: Vec<(usize, &'a str)>,
    at: usize,
}

impl<'a> ComposeYaml<'a> {
    fn parse(text: &'a str) -> Result<Value> {
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| (l.len() - l.trim_start().len(), l.trim()))
            .collect();
        let mut parser = ComposeYaml { lines, at: 0 };
        let value = parser.block(0)?;
        if let Some((_, line)) = parser.lines.get(parser.at) {
            bail!("unexpected line: {line}");
        }
        Ok(value)
    }

    fn block(&mut self, indent: usize) -> Result<Value> {
        match self.lines.get(self.at) {
            Some((_, line)) if is_item(line) => self.sequence(indent),
            Some(_) => self.mapping(indent),
            None => Ok(Value::Null),
        }
    }

    fn sequence(&mut self, indent: usize) -> Result<Value> {
        let mut items = Vec::new();
        while let Some(&(i, line)) = self.lines.get(self.at) {
            if i != indent || !is_item(line) {
                break;
            }
            let rest = line[1..].trim_start();
            if rest.is_empty() {
                self.at += 1;
                let child = self.lines.get(self.at).map_or(indent + 2, |&(i, _)| i);
                ensure!(child > indent, "empty sequence item");
                items.push(self.block(child)?);
            } else if key_value(rest).is_some() {
                // `- key: value` opens a mapping whose other keys line up with `key`.
                let inner = indent + (line.len() - rest.len());
                self.lines[self.at] = (inner, rest);
                items.push(self.mapping(inner)?);
            } else {
                self.at += 1;
                items.push(self.scalar(rest, indent)?);
            }
        }
        Ok(Value::Array(items))
    }

    fn mapping(&mut self, indent: usize) -> Result<Value> {
        let mut map = Map::new();
        while let Some(&(i, line)) = self.lines.get(self.at) {
            if i != indent || is_item(line) {
                break;
            }
            let (key, value) =
                key_value(line).with_context(|| format!("expected `key: value`: {line}"))?;
            self.at += 1;
            let value = if value.is_empty() {
                match self.lines.get(self.at) {
                    Some(&(i, next)) if i > indent || (i == indent && is_item(next)) => {
                        self.block(i)?
                    }
                    _ => Value::Null,
                }
            } else {
                self.scalar(value, indent)?
            };
            map.insert(unquote(key), value);
        }
        Ok(Value::Object(map))
    }

    /// A scalar that starts on the current line, with the more indented lines that continue it.
    fn scalar(&mut self, first: &str, indent: usize) -> Result<Value> {
        if matches!(first, "|" | "|-" | "|+" | ">" | ">-" | ">+") {
            let mut text = Vec::new();
            while let Some(&(i, line)) = self.lines.get(self.at) {
                if i <= indent {
                    break;
                }
                text.push(line);
                self.at += 1;
            }
            let sep = if first.starts_with('|') { "\n" } else { " " };
            return Ok(Value::String(text.join(sep)));
        }
        let mut text = first.to_owned();
        while let Some(&(i, line)) = self.lines.get(self.at) {
            if i <= indent {
                break;
            }
            text.push(' ');
            text.push_str(line);
            self.at += 1;
        }
        Ok(match text.as_str() {
            "{}" => Value::Object(Map::new()),
            "[]" => Value::Array(Vec::new()),
            _ => Value::String(unquote(&text)),
        })
    }
}

fn is_item(line: &str) -> bool {
    line == "-" || line.starts_with("- ")
}

/// Splits `key: value` or `key:`; None for a line that is not a mapping entry.
fn key_value(line: &str) -> Option<(&str, &str)> {
    if line.starts_with(['\'', '"']) {
        let quote = line.chars().next()?;
        let end = line[1..].find(quote)? + 2;
        let rest = line[end..].strip_prefix(':')?;
        return (rest.is_empty() || rest.starts_with(' ')).then(|| (&line[..end], rest.trim()));
    }
    if let Some(key) = line.strip_suffix(':') {
        return (!key.contains(": ")).then_some((key, ""));
    }
    let (key, value) = line.split_once(": ")?;
    Some((key, value.trim()))
}

fn unquote(text: &str) -> String {
    let text = text.trim();
    if let Some(inner) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return inner.replace("''", "'");
    }
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return inner.replace("\\\"", "\"").replace("\\\\", "\\");
    }
    text.to_owned()
}

/// `deploy/Dockerfile` and any `deploy/*.Dockerfile`.
fn dockerfiles() -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(repo_root().join("deploy"))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_file() && (name == "Dockerfile" || name.ends_with(".Dockerfile")) {
            found.push(path);
        }
    }
    found.sort();
    ensure!(!found.is_empty(), "no Dockerfile under deploy/");
    Ok(found)
}

/// True for a reference pinned to a release: `name:tag` whose tag holds a version number
/// (`v3.14.0`, `1.95.0-slim-bookworm`, `12.15-slim`), or a digest; never `latest`.
pub(crate) fn is_pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last.split_once(':') else {
        return false;
    };
    let versioned = tag
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '.')
        .any(|part| {
            let digits = part.trim_start_matches('v');
            let mut numbers = digits.split('.');
            numbers.clone().count() >= 2
                && numbers.all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        });
    !tag.contains("latest") && versioned
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    compose(&[COMPOSE_FILE], &["-q"]).unwrap();
}

#[test]
fn docker_compose_accepts_the_compose_file_with_the_loopback_override() {
    compose(&[COMPOSE_FILE, LOOPBACK_OVERRIDE], &["-q"]).unwrap();
}

#[test]
fn docker_compose_accepts_the_compose_file_with_the_replicas_override() {
    compose(&[COMPOSE_FILE, REPLICAS_OVERRIDE], &["-q"]).unwrap();
}

#[test]
fn hadolint_passes_on_every_dockerfile() {
    for dockerfile in dockerfiles().unwrap() {
        let path = dockerfile.to_string_lossy();
        let output = run("hadolint", &[&path]).unwrap();
        assert!(
            output.status.success(),
            "hadolint {path}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_stack_has_exactly_the_documented_services() {
    for files in STACKS {
        let services = services(files).unwrap();
        let found: BTreeSet<&str> = services.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = expected_services(files)
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(found, expected, "{files:?}");
    }
}

#[test]
fn the_readme_lists_every_service_of_the_stack() {
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    for (name, _) in SERVICES.iter().chain(REPLICA_SERVICES) {
        assert!(
            readme.contains(&format!("| {name} |")),
            "README.md has no row for the service {name}"
        );
    }
}

#[test]
fn every_service_has_a_healthcheck() {
    for (name, service) in STACKS.iter().flat_map(|files| services(files).unwrap()) {
        let check = service.def.get("healthcheck");
        let test = check.and_then(|c| c.get("test"));
        let disabled = check
            .and_then(|c| c.get("disable"))
            .and_then(scalar)
            .is_some_and(|d| d == "true");
        let command = list(test).iter().filter_map(scalar).collect::<Vec<_>>();
        assert!(
            !disabled && command.len() >= 2 && command[0] != "NONE",
            "service {name} has no health check: {check:?}"
        );
    }
}

#[test]
fn every_service_waits_for_its_dependencies_to_be_healthy() {
    for (files, dependencies) in [
        (&[COMPOSE_FILE][..], DEPENDENCIES),
        (&[COMPOSE_FILE, REPLICAS_OVERRIDE][..], REPLICA_DEPENDENCIES),
    ] {
        let services = services(files).unwrap();
        for (name, expected) in dependencies {
            let deps = services[*name].depends_on();
            let found: Vec<&str> = deps.keys().map(String::as_str).collect();
            assert_eq!(&found, expected, "what {name} depends on ({files:?})");
            for (dep, condition) in deps {
                assert_eq!(
                    condition.as_deref(),
                    Some("service_healthy"),
                    "{name} must wait for {dep} to be healthy ({files:?})"
                );
            }
        }
    }
}

#[test]
fn every_service_restarts_unless_stopped() {
    for (name, service) in STACKS.iter().flat_map(|files| services(files).unwrap()) {
        assert_eq!(service.str("restart"), Some("unless-stopped"), "{name}");
    }
}

#[test]
fn every_service_publishes_its_port_on_loopback_only() {
    for files in STACKS {
        let services = services(files).unwrap();
        for (name, port) in expected_services(files) {
            let expected: Vec<Port> = port
                .iter()
                .map(|&p| Port {
                    host_ip: "127.0.0.1".into(),
                    published: p,
                    target: p,
                })
                .collect();
            assert_eq!(
                services[name].ports, expected,
                "ports of {name} ({files:?})"
            );
        }
    }
}

#[test]
fn every_pulled_image_is_pinned_to_a_version() {
    for (name, service) in STACKS.iter().flat_map(|files| services(files).unwrap()) {
        let image = service.str("image").unwrap_or_default();
        if service.def.contains_key("build") {
            continue; // built here from deploy/Dockerfile, whose base images are checked below
        }
        assert!(
            is_pinned(image),
            "service {name}: image {image:?} is not pinned to a version"
        );
    }
}

#[test]
fn every_base_image_of_the_dockerfiles_is_pinned_to_a_version() {
    for dockerfile in dockerfiles().unwrap() {
        let text = fs::read_to_string(&dockerfile).unwrap();
        let mut stages = BTreeSet::new();
        let froms: Vec<Vec<&str>> = text
            .lines()
            .map(str::split_whitespace)
            .map(Iterator::collect::<Vec<_>>)
            .filter(|words| {
                words
                    .first()
                    .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
            })
            .collect();
        assert!(!froms.is_empty(), "{} has no FROM", dockerfile.display());
        for words in froms {
            let image = words
                .iter()
                .skip(1)
                .find(|w| !w.starts_with("--"))
                .copied()
                .unwrap_or_default();
            if let [.., as_, stage] = words.as_slice()
                && as_.eq_ignore_ascii_case("AS")
            {
                stages.insert(stage.to_lowercase());
            }
            let earlier_stage = stages.contains(&image.to_lowercase());
            assert!(
                earlier_stage || is_pinned(image),
                "{}: base image {image:?} is not pinned to a version",
                dockerfile.display()
            );
        }
    }
}

#[test]
fn every_host_path_the_compose_file_mounts_exists_in_the_repository() {
    let root = repo_root();
    for (name, service) in STACKS.iter().flat_map(|files| services(files).unwrap()) {
        for mount in &service.binds {
            let source = root.join(&mount.source);
            let source = source
                .canonicalize()
                .unwrap_or_else(|_| panic!("{name}: {} does not exist", mount.source));
            assert!(
                source.starts_with(&root),
                "{name}: {} is outside the repository",
                mount.source
            );
            assert!(
                mount.read_only,
                "{name}: {} should be read-only",
                mount.source
            );
        }
        if let Some(build) = service.def.get("build") {
            let context = build.get("context").and_then(scalar).unwrap_or_default();
            let context = root.join(context);
            let dockerfile = build.get("dockerfile").and_then(scalar).unwrap_or_default();
            assert!(
                context.join(&dockerfile).is_file(),
                "{name}: build file {dockerfile} is missing from {}",
                context.display()
            );
        }
    }
}

#[test]
fn the_monitoring_services_mount_the_repository_configuration_where_they_read_it() {
    let root = repo_root();
    let services = services(&[COMPOSE_FILE]).unwrap();
    let expected = [
        (
            "proxy",
            "/etc/mcp-server/mcp-server.yaml",
            "deploy/mcp-server.yaml",
        ),
        ("prometheus", "/etc/prometheus", "prometheus"),
        (
            "alertmanager",
            "/etc/alertmanager/alertmanager.yml",
            "deploy/alertmanager/alertmanager.yml",
        ),
        (
            "grafana",
            "/etc/grafana/provisioning",
            "grafana/provisioning",
        ),
        (
            "grafana",
            "/var/lib/grafana/dashboards",
            "grafana/dashboards",
        ),
    ];
    for (name, target, source) in expected {
        let mount = services[name]
            .bind_for(target)
            .unwrap_or_else(|| panic!("{name} mounts nothing at {target}"));
        assert_eq!(
            root.join(&mount.source).canonicalize().unwrap(),
            root.join(source).canonicalize().unwrap(),
            "{name}: what is mounted at {target}"
        );
    }
    // Data survives a restart of the stateful services (Redis's: the keys' spend).
    for (name, target) in [
        ("prometheus", "/prometheus"),
        ("alertmanager", "/alertmanager"),
        ("grafana", "/var/lib/grafana"),
        ("redis", "/data"),
    ] {
        assert!(
            services[name]
                .named_volumes
                .iter()
                .any(|v| v.target == target),
            "{name} keeps {target} in a named volume"
        );
    }
}

#[test]
fn the_gateway_reads_the_mounted_settings_and_serves_the_two_mocks_and_both_apis_by_default() {
    let services = services(&[COMPOSE_FILE]).unwrap();
    let proxy = &services["proxy"];
    let config = proxy.environment("MCP_CONFIG").expect("MCP_CONFIG is set");
    assert!(
        proxy.bind_for(&config).is_some(),
        "MCP_CONFIG={config} is not mounted"
    );
    assert_eq!(
        proxy
            .environment("MCP__UPSTREAMS__PRIMARY__BASE_URL")
            .as_deref(),
        Some("http://mock-upstream:8081/v1")
    );
    assert_eq!(
        proxy
            .environment("MCP__UPSTREAMS__SECONDARY__BASE_URL")
            .as_deref(),
        Some("http://mock-secondary:8082/v1")
    );
    // The Anthropic-kind upstream is the second mock, which serves the Messages API too.
    assert_eq!(
        proxy
            .environment("MCP__UPSTREAMS__ANTHROPIC__BASE_URL")
            .as_deref(),
        Some("http://mock-secondary:8082/v1")
    );
    // The names are upstreams of the mounted settings file.
    let settings = std::fs::read_to_string(repo_root().join("deploy/mcp-server.yaml")).unwrap();
    for name in ["name: primary", "name: secondary", "name: anthropic"] {
        assert!(
            settings.contains(name),
            "deploy/mcp-server.yaml has no `{name}`"
        );
    }
    assert_eq!(
        proxy.environment("MCP__SERVER__LISTEN").as_deref(),
        Some("0.0.0.0:8080")
    );
    // With no key in the environment the key is empty, which the gateway treats as unset.
    assert_eq!(proxy.environment("OPENAI_API_KEY").as_deref(), Some(""));
    assert_eq!(proxy.environment("MCP__UPSTREAM__BASE_URL"), None);
}

#[test]
fn the_gateway_keeps_its_limits_and_spend_in_the_redis_service_which_persists_them() {
    let services = services(&[COMPOSE_FILE]).unwrap();
    let proxy = &services["proxy"];
    assert_eq!(
        proxy.environment("MCP__STATE__BACKEND").as_deref(),
        Some("redis")
    );
    // REDIS_URL is the variable `state.redis.url_env` names by default.
    assert_eq!(
        proxy.environment("REDIS_URL").as_deref(),
        Some("redis://redis:6379/")
    );
    let redis = &services["redis"];
    let command: Vec<String> = list(redis.def.get("command"))
        .iter()
        .filter_map(scalar)
        .collect();
    assert_eq!(command.first().map(String::as_str), Some("redis-server"));
    assert!(
        command.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "Redis keeps an append-only file: {command:?}"
    );
    assert!(
        !command.iter().any(|arg| arg == "--port"),
        "Redis listens on 6379, where REDIS_URL points: {command:?}"
    );
}

/// The `host:port` targets of a Prometheus file_sd file.
fn scrape_targets(relative: &str) -> Vec<String> {
    let text = fs::read_to_string(repo_root().join(relative)).expect(relative);
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split('"').skip(1).step_by(2))
        .map(str::to_owned)
        .collect()
}

/// `host:port` of every gateway service of a stack: its name and the port it listens on.
fn gateway_addresses(services: &BTreeMap<String, Service>) -> Vec<String> {
    services
        .iter()
        .filter(|(_, s)| {
            list(s.def.get("command"))
                .first()
                .and_then(scalar)
                .is_some_and(|c| c == "mcp-proxy")
        })
        .map(|(name, s)| {
            let listen = s.environment("MCP__SERVER__LISTEN").unwrap_or_default();
            let port = listen.rsplit(':').next().unwrap_or_default().to_owned();
            format!("{name}:{port}")
        })
        .collect()
}

#[test]
fn prometheus_scrapes_every_gateway_replica_of_each_stack() {
    let prometheus_yml = fs::read_to_string(repo_root().join("prometheus/prometheus.yml")).unwrap();
    assert!(
        prometheus_yml.contains("files: [targets/mcp-server.yml]"),
        "the gateway job reads its targets from targets/mcp-server.yml"
    );
    let alone = services(&[COMPOSE_FILE]).unwrap();
    assert_eq!(gateway_addresses(&alone), ["proxy:8080"]);
    assert_eq!(
        scrape_targets("prometheus/targets/mcp-server.yml"),
        gateway_addresses(&alone)
    );
    let replicas = services(&[COMPOSE_FILE, REPLICAS_OVERRIDE]).unwrap();
    assert_eq!(gateway_addresses(&replicas), ["proxy:8080", "proxy-2:8083"]);
    let mount = replicas["prometheus"]
        .bind_for("/etc/prometheus/targets/mcp-server.yml")
        .expect("the replicas override mounts the list of both replicas");
    let root = repo_root();
    assert_eq!(
        root.join(&mount.source).canonicalize().unwrap(),
        root.join("prometheus/targets/replicas.yml")
            .canonicalize()
            .unwrap()
    );
    assert_eq!(
        scrape_targets("prometheus/targets/replicas.yml"),
        gateway_addresses(&replicas)
    );
    // The demo traffic goes to every replica, at the address it listens on.
    let targets = replicas["loadgen"]
        .environment("LOADGEN_TARGET")
        .expect("LOADGEN_TARGET");
    let expected: Vec<String> = gateway_addresses(&replicas)
        .iter()
        .map(|a| format!("http://{a}"))
        .collect();
    assert_eq!(targets.split(',').collect::<Vec<_>>(), expected);
    assert_eq!(
        alone["loadgen"].environment("LOADGEN_TARGET").as_deref(),
        Some("http://proxy:8080")
    );
}

#[test]
fn the_second_replica_is_the_gateway_but_for_its_address() {
    let services = services(&[COMPOSE_FILE, REPLICAS_OVERRIDE]).unwrap();
    let (first, second) = (&services["proxy"], &services["proxy-2"]);
    // What may differ: the listen address, the published port and the health URL.
    let comparable = |service: &Service, port: &str| {
        let mut def = service.def.clone();
        def.remove("ports");
        def.remove("container_name");
        let text = serde_json::to_string(&Value::Object(def)).unwrap();
        text.replace(&format!("0.0.0.0:{port}"), "LISTEN")
            .replace(&format!("127.0.0.1:{port}/health"), "HEALTH")
    };
    assert_eq!(
        comparable(first, "8080"),
        comparable(second, "8083"),
        "proxy-2 differs from proxy"
    );
    assert_eq!(
        second.environment("MCP__SERVER__LISTEN").as_deref(),
        Some("0.0.0.0:8083")
    );
}

#[test]
fn grafana_opens_on_a_provisioned_dashboard_for_anonymous_viewers() {
    let root = repo_root();
    let services = services(&[COMPOSE_FILE]).unwrap();
    let grafana = &services["grafana"];
    let env = |key: &str| grafana.environment(key);
    assert_eq!(env("GF_AUTH_ANONYMOUS_ENABLED").as_deref(), Some("true"));
    assert_eq!(env("GF_AUTH_ANONYMOUS_ORG_ROLE").as_deref(), Some("Viewer"));
    assert_eq!(env("GF_USERS_ALLOW_SIGN_UP").as_deref(), Some("false"));
    assert_eq!(env("GF_SECURITY_ADMIN_PASSWORD").as_deref(), Some("admin"));
    let home = env("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH").expect("a home dashboard");
    let mount = grafana
        .binds
        .iter()
        .find(|m| Path::new(&home).starts_with(&m.target))
        .unwrap_or_else(|| panic!("the home dashboard {home} is not in a mounted folder"));
    let relative = Path::new(&home).strip_prefix(&mount.target).unwrap();
    let file = root.join(&mount.source).join(relative);
    assert!(
        file.is_file(),
        "the home dashboard {} does not exist",
        file.display()
    );
}

#[test]
fn the_loopback_override_keeps_every_service_on_the_host_loopback() {
    let redis = services(&[COMPOSE_FILE, LOOPBACK_OVERRIDE]).unwrap()["redis"]
        .def
        .clone();
    let command: Vec<String> = list(redis.get("command"))
        .iter()
        .filter_map(scalar)
        .collect();
    assert!(
        command.windows(2).any(|w| w == ["--bind", "127.0.0.1"]),
        "redis listens on {command:?}"
    );
    assert!(
        command.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "the override keeps the append-only file: {command:?}"
    );
    let services = services(&[COMPOSE_FILE, LOOPBACK_OVERRIDE]).unwrap();
    let names: BTreeSet<&str> = SERVICES.iter().map(|(name, _)| *name).collect();
    for (name, service) in &services {
        assert_eq!(service.str("network_mode"), Some("host"), "{name}");
        let hosts = service.extra_hosts();
        for other in &names {
            assert_eq!(
                hosts.get(*other).map(String::as_str),
                Some("127.0.0.1"),
                "{name} must resolve {other} to 127.0.0.1"
            );
        }
        if service.def.contains_key("build") {
            let network = service.def["build"].get("network").and_then(scalar);
            assert_eq!(
                network.as_deref(),
                Some("host"),
                "{name} builds on the host network"
            );
        }
    }
    let listen = [
        (
            "proxy",
            services["proxy"].environment("MCP__SERVER__LISTEN"),
        ),
        (
            "mock-upstream",
            services["mock-upstream"].environment("MOCK_LISTEN"),
        ),
        (
            "mock-secondary",
            services["mock-secondary"].environment("MOCK_LISTEN"),
        ),
        (
            "grafana",
            services["grafana"].environment("GF_SERVER_HTTP_ADDR"),
        ),
    ];
    for (name, address) in listen {
        let address = address.unwrap_or_else(|| panic!("{name} sets its listen address"));
        assert!(
            address.starts_with("127.0.0.1"),
            "{name} listens on {address}"
        );
    }
    for name in ["prometheus", "alertmanager"] {
        let command = list(services[name].def.get("command"));
        let listen = command
            .iter()
            .filter_map(Value::as_str)
            .find_map(|flag| flag.strip_prefix("--web.listen-address="));
        assert!(
            listen.is_some_and(|a| a.starts_with("127.0.0.1:")),
            "{name} listens on {listen:?}"
        );
    }
}

#[test]
fn the_compose_yaml_reader_handles_what_docker_compose_prints() {
    let yaml = "\
services:
  a:
    command:
    - --flag=
    - --x
    depends_on:
      b:
        condition: service_healthy
    environment:
      EMPTY: ''
      QUOTED: \"true\"
      LONG: a value that PyYAML
        folded onto two lines
    ports:
    - 127.0.0.1:8080:8080/tcp
    volumes:
    - type: bind
      source: /repo/x
      target: /etc/x
      read_only: true
volumes:
  data: {}
";
    let value = ComposeYaml::parse(yaml).unwrap();
    let a = &value["services"]["a"];
    assert_eq!(a["command"], serde_json::json!(["--flag=", "--x"]));
    assert_eq!(a["depends_on"]["b"]["condition"], "service_healthy");
    assert_eq!(a["environment"]["EMPTY"], "");
    assert_eq!(a["environment"]["QUOTED"], "true");
    assert_eq!(
        a["environment"]["LONG"],
        "a value that PyYAML folded onto two lines"
    );
    assert_eq!(a["ports"][0], "127.0.0.1:8080:8080/tcp");
    assert_eq!(a["volumes"][0]["target"], "/etc/x");
    assert_eq!(a["volumes"][0]["read_only"], "true");
    assert_eq!(value["volumes"]["data"], serde_json::json!({}));

    let service = Service::new("a", a).unwrap();
    assert_eq!(service.binds[0].source, "/repo/x");
    assert!(service.binds[0].read_only);
    assert_eq!(
        service.ports,
        vec![Port {
            host_ip: "127.0.0.1".into(),
            published: 8080,
            target: 8080
        }]
    );
}

#[test]
fn a_pinned_image_names_a_version() {
    for pinned in [
        "prom/prometheus:v3.14.0",
        "grafana/grafana:13.2.0",
        "rust:1.95.0-slim-bookworm",
        "debian:12.15-slim",
        "localhost:5000/x:1.2",
        "debian@sha256:0123",
    ] {
        assert!(is_pinned(pinned), "{pinned}");
    }
    for floating in [
        "prom/prometheus",
        "prom/prometheus:latest",
        "debian:bookworm-slim",
        "rust:1-slim",
        "localhost:5000/x",
        "grafana/grafana:latest-ubuntu",
    ] {
        assert!(!is_pinned(floating), "{floating}");
    }
}
