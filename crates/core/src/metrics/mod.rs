//! Every metric family the gateway exports: names, help texts, label sets and buckets are
//! defined here and nowhere else.
//!
//! Each holder is built by a `register(&Registry, ..)` constructor; the registry is created
//! once at start-up and passed in (there is no global registry). Label values come from
//! closed sets ([`LabelSets`] for the configured ones), and hot-path updates go through
//! [`Indexed`] children rather than a label hash per event.

mod gateway;
mod indexed;
mod keys;
mod routing;
mod upstream;
mod usage;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{IntGaugeVec, Opts, Registry};

pub use gateway::{DisconnectPhase, GatewayMetrics, ReloadResult};
pub use indexed::{Family, Indexed, LabelValues, label_values};
pub use keys::{KeyMetrics, STATE_BUCKETS, StateMetrics};
pub use routing::{ATTEMPT_BUCKETS, QUEUE_WAIT_BUCKETS, RETRY_REASONS, RoutingMetrics};
pub use upstream::{RateLimitKind, UpstreamMetrics};
pub use usage::UsageMetrics;

/// Every family name starts with this (followed by `_`).
pub const NAMESPACE: &str = "mcp_server";

/// The HTTP families' names below [`NAMESPACE`] (they are recorded by actix-web-prom).
pub const REQUESTS_TOTAL: &str = "requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "request_duration_seconds";

/// The `endpoint` label value for any path the gateway does not serve.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// Request and upstream durations: LLM calls take from milliseconds to many minutes.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
    600.0,
];
/// Time to first token or first byte.
pub const FIRST_TOKEN_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
];
/// Gaps between streamed chunks.
pub const INTER_TOKEN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// The gateway's own time per request: tens of microseconds when all is well.
pub const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];
/// Tokens per request, from a one-word prompt to a million-token context.
pub const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
];

/// The label values that come from configuration.
#[derive(Debug, Clone)]
pub struct LabelSets {
    /// Configured model ids, then `other` (see [`crate::ModelCatalog::labels`]).
    pub models: LabelValues,
    /// Configured upstream names, in [`crate::upstream::UpstreamId`] order.
    pub upstreams: LabelValues,
    /// Configured client key names (or `_all`), then `_global`.
    pub keys: LabelValues,
}

/// The running build, for `mcp_server_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
}

/// All of the gateway's own families.
#[derive(Debug)]
pub struct Metrics {
    pub gateway: GatewayMetrics,
    pub usage: UsageMetrics,
    pub upstream: UpstreamMetrics,
    pub routing: RoutingMetrics,
    pub keys: KeyMetrics,
    pub state: StateMetrics,
    /// Every family registered, whether or not it has a series yet: its full name and its
    /// label keys.
    families: Vec<(String, Vec<String>)>,
    /// The registered families themselves, by full name, for [`Metrics::rebind`].
    collectors: Arc<Collectors>,
}

type Collectors = Mutex<HashMap<String, Box<dyn Any + Send + Sync>>>;

impl Metrics {
    pub fn register(
        registry: &Registry,
        sets: &LabelSets,
        build: &BuildInfo,
    ) -> Result<Self, prometheus::Error> {
        let info = IntGaugeVec::new(
            Opts::new("build_info", "The running build; always 1.").namespace(NAMESPACE),
            &["version", "revision"],
        )?;
        registry.register(Box::new(info.clone()))?;
        info.with_label_values(&[build.version.as_str(), build.revision.as_str()])
            .set(1);
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let mut families = vec![(
            format!("{NAMESPACE}_build_info"),
            vec!["version".to_owned(), "revision".to_owned()],
        )];
        let metrics = Self::bind(Some(registry), &Arc::new(Mutex::default()), sets)?;
        families.extend(metrics.families);
        Ok(Self {
            families,
            ..metrics
        })
    }

    /// The same families, for a new configuration's label values (models, upstreams): the
    /// series already recorded keep counting, new label values start theirs. Nothing is
    /// registered again, so a configuration reload needs no new registry.
    pub fn rebind(&self, sets: &LabelSets) -> Result<Self, prometheus::Error> {
        let mut metrics = Self::bind(None, &self.collectors, sets)?;
        metrics.families = self.families.clone();
        Ok(metrics)
    }

    fn bind(
        registry: Option<&Registry>,
        collectors: &Arc<Collectors>,
        sets: &LabelSets,
    ) -> Result<Self, prometheus::Error> {
        let mut reg = Registrar {
            registry,
            collectors,
            families: Vec::new(),
        };
        let gateway = GatewayMetrics::register(&mut reg, sets)?;
        let usage = UsageMetrics::register(&mut reg, sets)?;
        let upstream = UpstreamMetrics::register(&mut reg, sets)?;
        let routing = RoutingMetrics::register(&mut reg, sets)?;
        let keys = KeyMetrics::register(&mut reg, sets)?;
        let state = StateMetrics::register(&mut reg)?;
        Ok(Self {
            gateway,
            usage,
            upstream,
            routing,
            keys,
            state,
            families: reg.families,
            collectors: Arc::clone(collectors),
        })
    }

    /// Every family this holder registered: its full name (`mcp_server_...`) and its label
    /// keys in order. A family with no series yet is absent from a scrape; this list still
    /// names it.
    pub fn families(&self) -> &[(String, Vec<String>)] {
        &self.families
    }
}

/// Registers families (or, when rebinding, finds the ones registered before) and remembers
/// their names.
pub(crate) struct Registrar<'a> {
    /// `None` when rebinding: every family exists already.
    registry: Option<&'a Registry>,
    collectors: &'a Collectors,
    families: Vec<(String, Vec<String>)>,
}

impl Registrar<'_> {
    /// Registers a family and returns it; when rebinding, returns the one registered under
    /// the same name instead.
    pub(crate) fn add<C>(&mut self, collector: C) -> Result<C, prometheus::Error>
    where
        C: prometheus::core::Collector + Clone + Send + Sync + 'static,
    {
        let descs = collector.desc();
        let name = descs.first().map(|d| d.fq_name.clone()).unwrap_or_default();
        self.families.extend(
            descs
                .iter()
                .map(|d| (d.fq_name.clone(), d.variable_labels.clone())),
        );
        let mut collectors = self
            .collectors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = collectors.get(&name) {
            return existing
                .downcast_ref::<C>()
                .cloned()
                .ok_or_else(|| prometheus::Error::Msg(format!("{name} changed type")));
        }
        let registry = self
            .registry
            .ok_or_else(|| prometheus::Error::Msg(format!("{name} was never registered")))?;
        registry.register(Box::new(collector.clone()))?;
        collectors.insert(name, Box::new(collector.clone()));
        Ok(collector)
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, TextEncoder};

    use super::*;

    #[test]
    fn buckets_are_strictly_increasing() {
        for b in [
            DURATION_BUCKETS,
            FIRST_TOKEN_BUCKETS,
            INTER_TOKEN_BUCKETS,
            OVERHEAD_BUCKETS,
            TOKEN_BUCKETS,
            ATTEMPT_BUCKETS,
            QUEUE_WAIT_BUCKETS,
        ] {
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        }
        assert_eq!(DURATION_BUCKETS.last(), Some(&600.0));
    }

    #[test]
    fn every_family_registers_once_with_help_and_the_namespace() {
        let registry = Registry::new();
        let sets = LabelSets {
            models: label_values(["m", "other"]),
            upstreams: label_values(["u"]),
            keys: label_values(["k", "_global"]),
        };
        let build = BuildInfo {
            version: "1".into(),
            revision: "abc".into(),
        };
        let metrics = Metrics::register(&registry, &sets, &build).unwrap();
        metrics.gateway.active_connections.inc();
        assert!(
            metrics
                .families()
                .iter()
                .any(|(n, labels)| n == "mcp_server_upstream_requests_total"
                    && labels == &["upstream", "model", "outcome"]),
            "{:?}",
            metrics.families()
        );
        let families = registry.gather();
        let mut text = Vec::new();
        TextEncoder::new().encode(&families, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("mcp_server_build_info{revision=\"abc\",version=\"1\"} 1"));
        assert!(text.contains("mcp_server_active_connections 1"));
        for f in &families {
            assert!(!f.help().is_empty(), "{} has no help", f.name());
            assert!(
                f.name().starts_with("mcp_server_") || f.name().starts_with("process_"),
                "{}",
                f.name()
            );
        }
        // A second registration of the same families is refused, not silently doubled.
        assert!(Metrics::register(&registry, &sets, &build).is_err());
    }

    #[test]
    fn rebinding_keeps_the_families_and_their_series() {
        let registry = Registry::new();
        let sets = LabelSets {
            models: label_values(["a", "other"]),
            upstreams: label_values(["u"]),
            keys: label_values(["k", "_global"]),
        };
        let build = BuildInfo {
            version: "1".into(),
            revision: "abc".into(),
        };
        let before = Metrics::register(&registry, &sets, &build).unwrap();
        before
            .routing
            .record_fallback(crate::ModelId::from_index(1), crate::ModelId::from_index(0));
        let wider = LabelSets {
            models: label_values(["a", "b", "other"]),
            upstreams: label_values(["u", "v"]),
            keys: label_values(["_global"]),
        };
        let after = before.rebind(&wider).unwrap();
        assert_eq!(after.families(), before.families());
        after.gateway.active_connections.inc();
        let text = {
            let mut text = Vec::new();
            TextEncoder::new()
                .encode(&registry.gather(), &mut text)
                .unwrap();
            String::from_utf8(text).unwrap()
        };
        // One family each, shared: the old holder's series and the new one's in one scrape.
        assert_eq!(text.matches("# TYPE mcp_server_fallbacks_total").count(), 1);
        assert!(
            text.contains("mcp_server_fallbacks_total{from=\"other\",to=\"a\"} 1"),
            "{text}"
        );
        assert!(text.contains("mcp_server_active_connections 1"));
        assert!(text.contains("mcp_server_upstream_in_flight{upstream=\"v\"} 0"));
    }
}
