//! The rules `dashboards.rs` checks the provisioned dashboards against, the useful subset of
//! grafana/dashboard-linter, and just enough PromQL and YAML to apply them: the metric selectors
//! of an expression with their matchers, the `$variables` it uses, and the scalar values of the
//! provisioning files.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

/// Label names of each `mcp_server_*` family, from the families table of docs/metrics.md.
pub(crate) type Families = BTreeMap<String, Vec<String>>;

pub(crate) fn documented_families(markdown: &str) -> Result<Families> {
    let families: Families = markdown
        .lines()
        .filter(|l| l.starts_with("| `mcp_server_"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let labels = cells.get(3)?.split(',').map(str::trim);
            let labels = labels.filter(|s| !s.is_empty()).map(str::to_owned);
            Some((cells[1].trim_matches('`').to_owned(), labels.collect()))
        })
        .collect();
    ensure!(
        !families.is_empty(),
        "docs/metrics.md lists no `mcp_server_` family"
    );
    Ok(families)
}

/// Every `rate(`, `irate(` and `increase(` takes `[$__rate_interval]`, and every counter
/// (`_total`) sits directly inside one of them.
pub(crate) fn check_rates(expr: &str) -> Result<()> {
    for function in ["rate(", "increase("] {
        for (at, _) in expr.match_indices(function) {
            let open = at + function.len() - 1;
            let args = &expr[open + 1..closing(expr, open, b')')?];
            ensure!(
                args.trim_end().ends_with("[$__rate_interval]"),
                "`{function}{args})` must use [$__rate_interval]"
            );
        }
    }
    for s in selectors(expr)? {
        let before = s.before.trim_end();
        let wrapped = before.ends_with("rate(") || before.ends_with("increase(");
        ensure!(
            !s.name.ends_with("_total") || wrapped,
            "counter {} outside rate/increase",
            s.name
        );
    }
    Ok(())
}

/// A selector filters by every dashboard variable its series has a label for (`=~"$job"`...),
/// and a gateway family is documented and matched only on its own labels.
///
/// Recording rules carry the labels their level names: `job:...` has `job`, `mcp_server:...`
/// none; `ALERTS` from the gateway's rules have `job` but not always `instance`.
pub(crate) fn check_filters(
    s: &Selector<'_>,
    families: &Families,
    variables: &HashSet<&str>,
) -> Result<()> {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| s.name.strip_suffix(suffix));
    let family = families
        .get(s.name)
        .or_else(|| base.and_then(|b| families.get(b)));
    ensure!(
        family.is_some() || !s.name.starts_with("mcp_server_"),
        "{} is not in docs/metrics.md",
        s.name
    );
    let mut required = match s.name {
        "ALERTS" => vec!["job"],
        name if name.starts_with("job:") => vec!["job"],
        name if name.contains(':') => vec![],
        _ => vec!["job", "instance"],
    };
    if let Some(labels) = family {
        let has = |label: &str| labels.iter().any(|l| l == label);
        required.extend(["model", "upstream"].into_iter().filter(|l| has(l)));
        for (label, _, _) in &s.matchers {
            let scrape = ["job", "instance"].contains(label)
                || (*label == "le" && s.name.ends_with("_bucket"));
            ensure!(scrape || has(label), "{} has no label {label}", s.name);
        }
    }
    for label in required.into_iter().filter(|l| variables.contains(l)) {
        let value = format!("${label}");
        let filtered = s
            .matchers
            .iter()
            .any(|(l, op, v)| *l == label && *op == "=~" && *v == value);
        ensure!(filtered, "{} lacks {label}=~\"{value}\"", s.name);
    }
    Ok(())
}

/// The panels of one grid stay inside its 24 columns and do not overlap.
pub(crate) fn check_grid(panels: &[Value]) -> Result<()> {
    let cells: Vec<[u64; 4]> = panels
        .iter()
        .map(|p| ["x", "y", "w", "h"].map(|k| p["gridPos"][k].as_u64().unwrap_or(u64::MAX / 4)))
        .collect();
    for (i, [x, y, w, h]) in cells.iter().enumerate() {
        let title = &panels[i]["title"];
        ensure!(
            x + w <= 24 && *w > 0 && *h > 0,
            "panel {title} leaves the 24-column grid"
        );
        for (j, [x2, y2, w2, h2]) in cells.iter().enumerate().skip(i + 1) {
            let apart = x + w <= *x2 || x2 + w2 <= *x || y + h <= *y2 || y2 + h2 <= *y;
            ensure!(apart, "panels {title} and {} overlap", panels[j]["title"]);
        }
    }
    Ok(())
}

/// Paths of every `datasource` in `value` that is not `{"type": "prometheus", "uid": uid}`.
pub(crate) fn foreign_datasources(value: &Value, uid: &str, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(ds) = map.get("datasource")
                && (ds["uid"].as_str() != Some(uid) || ds["type"] != "prometheus")
            {
                found.push(format!("{at}: datasource {ds}"));
            }
            for (key, v) in map {
                foreign_datasources(v, uid, &format!("{at}.{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                foreign_datasources(v, uid, &format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Names of the `$variables` an expression uses (`${1}` in a label_replace is not one).
pub(crate) fn variables_used(expr: &str) -> Vec<&str> {
    expr.match_indices('$')
        .map(|(i, _)| {
            let rest = &expr[i + 1..];
            &rest[..rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len())]
        })
        .filter(|name| name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .collect()
}

/// The value of the first `key: value` line of a YAML file; enough for the provisioning files.
pub(crate) fn yaml_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .map(|l| l.trim_start().trim_start_matches("- "))
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| {
            v.split(" #")
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches(['"', '\''])
        })
}

/// A metric selector in an expression: `name{label op "value", ...}`.
#[derive(Debug)]
pub(crate) struct Selector<'a> {
    pub(crate) name: &'a str,
    pub(crate) matchers: Vec<(&'a str, &'a str, &'a str)>,
    /// The expression before the selector, to see what it is wrapped in.
    pub(crate) before: &'a str,
}

const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "nan", "inf"];

/// The metric selectors of a PromQL expression: identifiers that are not functions,
/// aggregations, keywords or grouping labels, with their label matchers.
pub(crate) fn selectors(expr: &str) -> Result<Vec<Selector<'_>>> {
    let bytes = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            i = closing(expr, i, b'"')? + 1;
        } else if c == b'[' {
            i = closing(expr, i, b']')? + 1;
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (ident(bytes[i]) || bytes[i] == b'.') {
                i += 1;
            }
        } else if ident(c) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let name = &expr[start..i];
            let rest = expr[i..].trim_start();
            if GROUPING.contains(&name) && rest.starts_with('(') {
                i = closing(expr, expr.len() - rest.len(), b')')? + 1;
            } else if rest.starts_with('(')
                || rest.starts_with("by")
                || rest.starts_with("without")
                || GROUPING.contains(&name)
                || KEYWORDS.contains(&name.to_ascii_lowercase().as_str())
            {
                // a function call, an aggregation or a keyword
            } else {
                let mut matchers = Vec::new();
                if expr[i..].starts_with('{') {
                    let end = closing(expr, i, b'}')?;
                    matchers = parse_matchers(&expr[i + 1..end])?;
                    i = end + 1;
                }
                out.push(Selector {
                    name,
                    matchers,
                    before: &expr[..start],
                });
            }
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// Index of the byte closing the bracket or quote at `open`, skipping quoted strings.
fn closing(expr: &str, open: usize, close: u8) -> Result<usize> {
    let bytes = expr.as_bytes();
    let (opener, mut depth, mut i) = (bytes[open], 0usize, open);
    while i < bytes.len() {
        let c = bytes[i];
        if i > open && c == close && (close == b'"' || depth == 1) {
            return Ok(i);
        } else if c == b'\\' && close == b'"' {
            i += 1;
        } else if c == b'"' && close != b'"' {
            i = closing(expr, i, b'"')?;
        } else if c == opener {
            depth += 1;
        } else if c == close {
            depth -= 1;
        }
        i += 1;
    }
    bail!("unbalanced `{}` at byte {open} of {expr}", opener as char)
}

fn parse_matchers(body: &str) -> Result<Vec<(&str, &str, &str)>> {
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let op_at = rest
            .find(['=', '!'])
            .with_context(|| format!("no operator in `{body}`"))?;
        let op_len = if rest[op_at + 1..].starts_with(['~', '=']) {
            2
        } else {
            1
        };
        let value = rest[op_at + op_len..].trim_start();
        ensure!(
            value.starts_with('"'),
            "matcher values must be double-quoted in `{body}`"
        );
        let end = closing(value, 0, b'"')?;
        out.push((
            rest[..op_at].trim(),
            &rest[op_at..op_at + op_len],
            &value[1..end],
        ));
        rest = value[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    Ok(out)
}
