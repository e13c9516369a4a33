//! Assertions on a `/metrics` scrape: find a series by name and a subset of its labels.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use mcp_core::metrics::{
    BuildInfo, LabelSets, Metrics, NAMESPACE, REQUEST_DURATION_SECONDS, REQUESTS_TOTAL,
    label_values,
};

/// One parsed exposition.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Scrape {
    pub fn parse(text: String) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|line| parse_line(line).unwrap_or_else(|| panic!("unparseable sample: {line}")))
            .collect();
        Self { text, samples }
    }

    /// The sum of every series of `name` whose labels include `labels`; `None` if there is
    /// no such series at all.
    ///
    /// # Panics
    /// If the gateway has no family called `name`: a misspelt or removed family must fail
    /// the test, not read as "no series yet".
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        assert_family_exists(name);
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// Like [`Scrape::sum`], reading a missing series of an existing family as 0.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(name, labels).unwrap_or(0.0)
    }

    /// The values one label takes across the series of `name`.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        assert_family_exists(name);
        let mut values: Vec<String> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect();
        values.sort();
        values.dedup();
        values
    }

    /// Every family name present.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.samples.iter().map(|s| s.name.as_str()).collect();
        names.dedup();
        names
    }
}

/// Every family the gateway can export, with its label keys: its own (from a registry built
/// the way it builds one) and the two HTTP families actix-web-prom records under core's names.
pub fn family_labels() -> BTreeMap<String, Vec<String>> {
    let sets = LabelSets {
        models: label_values(["m", "other"]),
        upstreams: label_values(["u"]),
        keys: label_values(["k", "_global"]),
    };
    let build = BuildInfo {
        version: "0".into(),
        revision: "0".into(),
    };
    let metrics = Metrics::register(&prometheus::Registry::new(), &sets, &build)
        .expect("the families register");
    let mut families: BTreeMap<String, Vec<String>> = metrics.families().iter().cloned().collect();
    for http in [REQUESTS_TOTAL, REQUEST_DURATION_SECONDS] {
        let labels = ["endpoint", "method", "status"].map(String::from).to_vec();
        families.insert(format!("{NAMESPACE}_{http}"), labels);
    }
    families
}

fn known_families() -> &'static HashSet<String> {
    static KNOWN: OnceLock<HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| family_labels().into_keys().collect())
}

fn assert_family_exists(name: &str) {
    let known = known_families();
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| {
            name.strip_suffix(suffix)
                .filter(|base| known.contains(*base))
        })
        .unwrap_or(name);
    assert!(
        known.contains(family) || name.starts_with("process_"),
        "the gateway has no metric family `{name}`"
    );
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series.to_owned(), BTreeMap::new()),
        Some((name, rest)) => (name.to_owned(), parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

fn parse_labels(mut rest: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

#[test]
fn the_scrape_helper_matches_label_subsets_and_escapes() {
    let s = Scrape::parse(
        "# HELP x y\nmcp_server_errors_total{a=\"1\",b=\"q\\\"z\"} 2\nmcp_server_errors_total{a=\"1\",b=\"w\"} 3\nmcp_server_active_connections 7\n".into(),
    );
    assert_eq!(s.sum("mcp_server_errors_total", &[("a", "1")]), Some(5.0));
    assert_eq!(
        s.sum("mcp_server_errors_total", &[("b", "q\"z")]),
        Some(2.0)
    );
    assert_eq!(s.sum("mcp_server_errors_total", &[("a", "2")]), None);
    assert_eq!(s.get("mcp_server_active_connections", &[]), 7.0);
    // A family of the gateway's with no series yet reads as 0.
    assert_eq!(s.get("mcp_server_usage_missing_total", &[]), 0.0);
}

#[test]
#[should_panic(expected = "no metric family `mcp_server_no_such_family_total`")]
fn a_lookup_of_a_family_that_does_not_exist_fails() {
    let s = Scrape::parse("mcp_server_active_connections 0\n".into());
    s.get("mcp_server_no_such_family_total", &[]);
}
