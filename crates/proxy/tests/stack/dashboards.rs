//! Static checks of the provisioned Grafana dashboards (rules in `dashboard_lint.rs`): every panel
//! queries the provisioned datasource, filters by the dashboard's variables, takes rates over
//! `$__rate_interval`, has a unit and a description, and every query is PromQL that `promtool`
//! accepts. `panel_queries()` hands the same queries, variables set to "All", to the end-to-end test.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::dashboard_lint::{
    check_filters, check_grid, check_rates, documented_families, foreign_datasources, selectors,
    variables_used, yaml_value,
};

/// Where the compose stack mounts `grafana/dashboards` inside the Grafana container.
const DASHBOARDS_MOUNT: &str = "/var/lib/grafana/dashboards";

/// The value each variable gets outside Grafana: a one-minute rate window and "All".
const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("$__rate_interval", "1m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
    ("$instance", ".*"),
    ("$upstream", ".*"),
    ("$model", ".*"),
    ("$job", ".*"),
];

/// One query of one dashboard panel.
#[derive(Debug, Clone)]
pub(crate) struct PanelQuery {
    /// The dashboard's uid.
    pub(crate) dashboard: String,
    pub(crate) panel: String,
    pub(crate) ref_id: String,
    /// PromQL with the variables substituted (see `SUBSTITUTIONS`), ready for Prometheus's API.
    pub(crate) expr: String,
}

impl fmt::Display for PanelQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {} / {}", self.dashboard, self.panel, self.ref_id)
    }
}

/// Every panel query of every dashboard under `grafana/dashboards`, variables substituted.
pub(crate) fn panel_queries() -> Vec<PanelQuery> {
    let dashboards = dashboards().expect("the dashboards under grafana/dashboards load");
    let queries = dashboards.iter().flat_map(Dashboard::queries);
    queries
        .map(|q| PanelQuery {
            expr: substitute(&q.expr),
            ..q
        })
        .collect()
}

fn substitute(expr: &str) -> String {
    SUBSTITUTIONS
        .iter()
        .fold(expr.to_owned(), |e, (var, value)| e.replace(var, value))
}

fn read(relative: &str) -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

#[derive(Debug)]
struct Dashboard {
    /// Path relative to the repository root, for messages.
    file: String,
    json: Value,
}

fn dashboards() -> Result<Vec<Dashboard>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grafana/dashboards");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    ensure!(!files.is_empty(), "no dashboards in {}", dir.display());
    files
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let file = format!("grafana/dashboards/{name}");
            let json =
                serde_json::from_str(&read(&file)?).with_context(|| format!("parsing {file}"))?;
            Ok(Dashboard { file, json })
        })
        .collect()
}

impl Dashboard {
    fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or_default()
    }

    fn top_panels(&self) -> &[Value] {
        self.json["panels"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every panel, rows and the panels of collapsed rows included.
    fn panels<'a>(&'a self) -> Vec<&'a Value> {
        let nested = |p: &'a Value| p["panels"].as_array().into_iter().flatten();
        let top = self.top_panels().iter();
        top.flat_map(|p| std::iter::once(p).chain(nested(p)))
            .collect()
    }

    fn variables(&self) -> &[Value] {
        self.json["templating"]["list"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn variable_names(&self) -> HashSet<&str> {
        self.variables()
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect()
    }

    /// The queries as written, Grafana variables still in place.
    fn queries(&self) -> Vec<PanelQuery> {
        let mut out = Vec::new();
        for panel in self.panels() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(PanelQuery {
                    dashboard: self.uid().to_owned(),
                    panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                    ref_id: target["refId"].as_str().unwrap_or_default().to_owned(),
                    expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
        out
    }
}

#[test]
fn every_dashboard_parses_and_has_a_stable_uid_a_title_a_version_and_no_import_inputs() -> Result<()>
{
    let dashboards = dashboards()?;
    let uids: HashSet<&str> = dashboards.iter().map(Dashboard::uid).collect();
    ensure!(uids.len() == dashboards.len(), "two dashboards share a uid");
    for d in &dashboards {
        let (uid, file, json) = (d.uid(), &d.file, &d.json);
        ensure!(
            !uid.is_empty() && uid.len() <= 40,
            "{file}: uid {uid:?} must have 1 to 40 characters"
        );
        ensure!(
            json["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{file}: no title"
        );
        ensure!(json["version"].is_u64(), "{file}: no version");
        ensure!(json["schemaVersion"].is_u64(), "{file}: no schemaVersion");
        ensure!(
            json.get("__inputs").is_none(),
            "{file}: __inputs is for UI import, not provisioning"
        );
        ensure!(
            !json.to_string().contains("${DS_"),
            "{file}: a ${{DS_...}} placeholder"
        );
        for link in json["links"].as_array().into_iter().flatten() {
            let url = link["url"].as_str().unwrap_or_default();
            let target = url
                .strip_prefix("/d/")
                .and_then(|rest| rest.split(['/', '?']).next());
            ensure!(
                target.is_some_and(|t| uids.contains(t)),
                "{file}: link {url} leads to no dashboard"
            );
        }
    }
    Ok(())
}

#[test]
fn every_datasource_reference_is_the_provisioned_prometheus_uid() -> Result<()> {
    let provisioning = read("grafana/provisioning/datasources/prometheus.yml")?;
    let uid = yaml_value(&provisioning, "uid").context("the provisioned datasource has no uid")?;
    let mut found = Vec::new();
    for d in dashboards()? {
        foreign_datasources(&d.json, uid, &d.file, &mut found);
        // A panel, target or variable without a datasource would silently use the default one.
        let panels = d.panels().into_iter().filter(|p| p["type"] != "row");
        let targets = panels
            .clone()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten());
        for item in panels.chain(targets).chain(d.variables()) {
            if item.get("datasource").is_none() {
                let name = ["title", "refId", "name"]
                    .iter()
                    .find_map(|k| item[k].as_str());
                found.push(format!(
                    "{}: {} has no datasource",
                    d.file,
                    name.unwrap_or("?")
                ));
            }
        }
    }
    ensure!(
        found.is_empty(),
        "datasource references other than uid {uid:?}:\n{}",
        found.join("\n")
    );
    Ok(())
}

#[test]
fn panel_ids_are_unique_and_every_panel_has_a_target_a_unit_a_description_and_its_own_grid_cell()
-> Result<()> {
    for d in dashboards()? {
        let (file, mut ids, mut titles) = (&d.file, HashSet::new(), HashSet::new());
        for panel in d.panels() {
            let title = panel["title"].as_str().unwrap_or_default();
            let id = panel["id"]
                .as_u64()
                .with_context(|| format!("{file}: {title} has no id"))?;
            ensure!(ids.insert(id), "{file}: {title} reuses id {id}");
            ensure!(
                titles.insert(title),
                "{file}: two panels are titled {title:?}"
            );
            if panel["type"] == "row" {
                continue;
            }
            let targets = panel["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            ensure!(!targets.is_empty(), "{file}: {title} has no target");
            let written = |t: &Value| t["expr"].as_str().is_some_and(|e| !e.trim().is_empty());
            ensure!(
                targets.iter().all(written),
                "{file}: {title} has an empty query"
            );
            let unit = panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or_default();
            ensure!(!unit.is_empty(), "{file}: {title} has no unit");
            let description = panel["description"].as_str().unwrap_or_default();
            ensure!(
                !description.is_empty(),
                "{file}: {title} has no description"
            );
        }
        // Expanded rows share the top-level grid; a collapsed row keeps its panels to itself.
        check_grid(d.top_panels()).with_context(|| file.clone())?;
        for row in d.top_panels().iter().filter_map(|p| p["panels"].as_array()) {
            check_grid(row).with_context(|| file.clone())?;
        }
    }
    Ok(())
}

#[test]
fn rates_use_the_rate_interval_and_counters_appear_only_inside_rate_or_increase() -> Result<()> {
    for q in dashboards()?.iter().flat_map(Dashboard::queries) {
        check_rates(&q.expr).with_context(|| q.to_string())?;
    }
    Ok(())
}

#[test]
fn every_query_filters_by_the_dashboard_variables_and_uses_documented_families() -> Result<()> {
    let families = documented_families(&read("docs/metrics.md")?)?;
    for d in dashboards()? {
        let variables = d.variable_names();
        for q in d.queries() {
            for var in variables_used(&q.expr) {
                let known = var.starts_with("__") || variables.contains(var);
                ensure!(known, "{q}: ${var} is not a variable of the dashboard");
            }
            let selectors = selectors(&q.expr).with_context(|| q.to_string())?;
            ensure!(
                !selectors.is_empty(),
                "{q}: no metric selector in {}",
                q.expr
            );
            for s in &selectors {
                check_filters(s, &families, &variables).with_context(|| q.to_string())?;
            }
        }
        for v in d.variables() {
            let (file, name) = (&d.file, &v["name"]);
            ensure!(
                v["refresh"] == 2,
                "{file}: variable {name} must refresh on time range change"
            );
            let all = v["includeAll"] == true && v["multi"] == true && v["allValue"] == ".*";
            ensure!(
                all,
                "{file}: variable {name} must be multi-value with All = .*"
            );
        }
    }
    Ok(())
}

#[test]
fn every_query_is_valid_promql_according_to_promtool() -> Result<()> {
    let mut queries = panel_queries();
    for d in dashboards()? {
        for v in d.variables() {
            let definition = v["definition"].as_str().unwrap_or_default();
            let args = definition
                .strip_prefix("label_values(")
                .and_then(|a| a.strip_suffix(')'));
            let (selector, _label) = args.and_then(|a| a.rsplit_once(',')).with_context(|| {
                format!(
                    "{}: {definition} is not label_values(selector, label)",
                    d.file
                )
            })?;
            queries.push(PanelQuery {
                dashboard: d.uid().to_owned(),
                panel: format!("variable {}", v["name"].as_str().unwrap_or_default()),
                ref_id: "query".into(),
                expr: substitute(selector),
            });
        }
    }
    // One recording rule per query: `promtool check rules` parses each expression.
    let mut rules = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        ensure!(
            variables_used(&q.expr).is_empty(),
            "{q}: unsubstituted variable in {}",
            q.expr
        );
        let expr = serde_json::to_string(&q.expr)?; // a JSON string is a YAML double-quoted scalar
        rules +=
            &format!("      # {q}\n      - record: dashboard_query_{i}\n        expr: {expr}\n");
    }
    let file = std::env::temp_dir().join(format!(
        "mcp-server-dashboards-{}.rules.yml",
        std::process::id()
    ));
    fs::write(&file, rules)?;
    let output = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output();
    let _ = fs::remove_file(&file);
    let output = match output {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!(
                "promtool is not on PATH: install the `prometheus` package (the setup script does)"
            )
        }
        result => result.context("running promtool")?,
    };
    let index = queries
        .iter()
        .enumerate()
        .map(|(i, q)| format!("dashboard_query_{i}: {q}\n"));
    ensure!(
        output.status.success(),
        "promtool rejects a dashboard query:\n{}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        index.collect::<String>()
    );
    Ok(())
}

#[test]
fn the_dashboard_provider_reads_the_directory_the_dashboards_are_mounted_at() -> Result<()> {
    let text = read("grafana/provisioning/dashboards/mcp-server.yml")?;
    ensure!(
        yaml_value(&text, "type") == Some("file"),
        "the dashboard provider must be a file provider"
    );
    let path = yaml_value(&text, "path");
    ensure!(
        path == Some(DASHBOARDS_MOUNT),
        "the provider reads {path:?}, not {DASHBOARDS_MOUNT}"
    );
    let ui = yaml_value(&text, "allowUiUpdates");
    ensure!(
        ui == Some("false"),
        "provisioned dashboards must not be saved from the UI"
    );
    Ok(())
}
