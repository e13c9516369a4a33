//! The configured model list: which models the gateway accepts, the bounded `model` label
//! each request is counted under, and the price table that turns tokens into dollars.
//!
//! A model outside the list is either refused (when a list is configured) or forwarded and
//! counted as `other` (when none is), so a client can never create a new metric series.

use std::collections::HashMap;

use serde::Deserialize;

use crate::usage::Usage;

/// The label value for any model that is not in the configured list.
pub const OTHER_MODEL: &str = "other";

/// One configured model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// The public name clients send, e.g. `gpt-4o-mini`; also its `model` label value.
    pub id: String,
    /// Other names clients may send for it; counted under `id`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Where it is served. Empty: the only upstream, under the same name (allowed only when
    /// one upstream is configured).
    #[serde(default)]
    pub deployments: Vec<DeploymentSpec>,
    /// Public models tried in order when this one's deployments are exhausted or all open;
    /// their own fallbacks follow theirs.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// What a million tokens cost; models without a price are not counted in the cost family.
    #[serde(default)]
    pub pricing: Option<Pricing>,
}

impl ModelSpec {
    /// A model served by the only upstream under its own name, without a price.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            aliases: Vec::new(),
            deployments: Vec::new(),
            fallbacks: Vec::new(),
            pricing: None,
        }
    }

    pub fn with_pricing(mut self, pricing: Pricing) -> Self {
        self.pricing = Some(pricing);
        self
    }
}

/// One place a model is served: an upstream, the name that upstream knows it by, and its
/// share of the model's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentSpec {
    /// An upstream's `name`.
    pub upstream: String,
    /// The upstream's model id, when it differs from the public name.
    #[serde(default)]
    pub model: Option<String>,
    /// Relative share of the model's traffic among its deployments.
    #[serde(default = "DeploymentSpec::default_weight")]
    pub weight: u32,
}

impl DeploymentSpec {
    const fn default_weight() -> u32 {
        1
    }
}

/// US dollars per million tokens, by token type.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// Input tokens neither read from nor written to a prompt cache.
    pub prompt_usd_per_million: f64,
    /// Output tokens, reasoning included (providers bill reasoning as output).
    pub completion_usd_per_million: f64,
    /// Input tokens read from the prompt cache (OpenAI's cached input, Anthropic's cache
    /// reads). Unset: the prompt price, so that no discount is assumed that was not
    /// configured.
    #[serde(default)]
    pub cache_read_usd_per_million: Option<f64>,
    /// Input tokens written to the prompt cache (Anthropic's cache writes, billed at a
    /// premium). Unset: the prompt price.
    #[serde(default)]
    pub cache_write_usd_per_million: Option<f64>,
}

impl Pricing {
    /// Plain input and output prices, cached input at the input price.
    pub const fn new(prompt_usd_per_million: f64, completion_usd_per_million: f64) -> Self {
        Self {
            prompt_usd_per_million,
            completion_usd_per_million,
            cache_read_usd_per_million: None,
            cache_write_usd_per_million: None,
        }
    }

    /// The cost in US dollars of one request's tokens: each part of the input at its own
    /// rate, the output (reasoning included) at the output rate.
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        let read = self
            .cache_read_usd_per_million
            .unwrap_or(self.prompt_usd_per_million);
        let write = self
            .cache_write_usd_per_million
            .unwrap_or(self.prompt_usd_per_million);
        (usage.uncached_input() as f64 * self.prompt_usd_per_million
            + usage.cache_read as f64 * read
            + usage.cache_write as f64 * write
            + usage.completion() as f64 * self.completion_usd_per_million)
            / 1_000_000.0
    }

    fn rates(&self) -> [f64; 4] {
        [
            self.prompt_usd_per_million,
            self.completion_usd_per_million,
            self.cache_read_usd_per_million.unwrap_or(0.0),
            self.cache_write_usd_per_million.unwrap_or(0.0),
        ]
    }
}

/// Index of a model's label in [`ModelCatalog::labels`]; the last index is `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelId(u16);

impl ModelId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The id of the `index`-th configured model (or `other`, one past the last).
    pub(crate) fn from_index(index: usize) -> Self {
        Self(u16::try_from(index).expect("bounded by MAX_MODELS"))
    }
}

/// A configured model list that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogError {
    #[error("models[{0}].id is empty")]
    EmptyId(usize),
    #[error("models[{index}].id `{id}` is listed twice")]
    Duplicate { index: usize, id: String },
    #[error("models[{0}].id `other` is reserved for models outside the list")]
    Reserved(usize),
    #[error(
        "models[{index}].aliases[{alias}] `{name}` is empty, reserved, or already a model's name or alias"
    )]
    BadAlias {
        index: usize,
        alias: usize,
        name: String,
    },
    #[error("models[{index}].pricing for `{id}` must be finite and not negative")]
    BadPrice { index: usize, id: String },
    #[error("at most {max} models can be configured")]
    TooMany { max: usize },
}

/// The configured models, resolved once at start-up.
#[derive(Debug, Clone)]
pub struct ModelCatalog {
    specs: Vec<ModelSpec>,
    /// The ids in configuration order, then `other`.
    labels: Vec<String>,
    by_id: HashMap<String, ModelId>,
}

impl ModelCatalog {
    /// Keeps label sets (models x other label values) comfortably small.
    pub const MAX_MODELS: usize = 256;

    pub fn new(specs: Vec<ModelSpec>) -> Result<Self, CatalogError> {
        if specs.len() > Self::MAX_MODELS {
            return Err(CatalogError::TooMany {
                max: Self::MAX_MODELS,
            });
        }
        let mut by_id = HashMap::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            if spec.id.trim().is_empty() {
                return Err(CatalogError::EmptyId(index));
            }
            if spec.id == OTHER_MODEL {
                return Err(CatalogError::Reserved(index));
            }
            if let Some(p) = spec.pricing {
                let ok = |v: f64| v.is_finite() && v >= 0.0;
                if !p.rates().into_iter().all(ok) {
                    return Err(CatalogError::BadPrice {
                        index,
                        id: spec.id.clone(),
                    });
                }
            }
            let id = ModelId(u16::try_from(index).expect("bounded by MAX_MODELS"));
            if by_id.insert(spec.id.clone(), id).is_some() {
                return Err(CatalogError::Duplicate {
                    index,
                    id: spec.id.clone(),
                });
            }
        }
        // Aliases after every id, so that an alias shadowing a later model's id is caught.
        for (index, spec) in specs.iter().enumerate() {
            let id = ModelId(u16::try_from(index).expect("bounded by MAX_MODELS"));
            for (alias, name) in spec.aliases.iter().enumerate() {
                let taken = name.trim().is_empty() || name == OTHER_MODEL;
                if taken || by_id.insert(name.clone(), id).is_some() {
                    return Err(CatalogError::BadAlias {
                        index,
                        alias,
                        name: name.clone(),
                    });
                }
            }
        }
        let labels = specs
            .iter()
            .map(|s| s.id.clone())
            .chain(std::iter::once(OTHER_MODEL.to_owned()))
            .collect();
        Ok(Self {
            specs,
            labels,
            by_id,
        })
    }

    /// Whether any model name is accepted (no list configured).
    pub fn is_open(&self) -> bool {
        self.specs.is_empty()
    }

    /// The label a requested model (a name or an alias) is counted under, or `None` when a
    /// list is configured and the model is not on it (the request is then refused).
    pub fn resolve(&self, requested: &str) -> Option<ModelId> {
        match self.by_id.get(requested) {
            Some(id) => Some(*id),
            None if self.is_open() => Some(self.other()),
            None => None,
        }
    }

    /// The `other` label's id.
    pub fn other(&self) -> ModelId {
        ModelId(u16::try_from(self.specs.len()).expect("bounded by MAX_MODELS"))
    }

    pub fn label(&self, id: ModelId) -> &str {
        &self.labels[id.index()]
    }

    /// Every label value, `other` last.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn pricing(&self, id: ModelId) -> Option<&Pricing> {
        self.specs.get(id.index()).and_then(|s| s.pricing.as_ref())
    }

    pub fn specs(&self) -> &[ModelSpec] {
        &self.specs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> ModelSpec {
        ModelSpec::new(id)
    }

    #[test]
    fn a_configured_list_refuses_unknown_models() {
        let c = ModelCatalog::new(vec![spec("a"), spec("b")]).unwrap();
        assert_eq!(c.resolve("b").map(|id| c.label(id)), Some("b"));
        assert_eq!(c.resolve("c"), None);
        assert_eq!(c.labels(), ["a", "b", "other"]);
    }

    #[test]
    fn aliases_resolve_to_their_model_and_may_not_shadow_a_name() {
        let mut a = spec("a");
        a.aliases = vec!["first".into()];
        let c = ModelCatalog::new(vec![a.clone(), spec("b")]).unwrap();
        assert_eq!(c.resolve("first").map(|id| c.label(id)), Some("a"));
        a.aliases = vec!["b".into()];
        assert_eq!(
            ModelCatalog::new(vec![a.clone(), spec("b")])
                .unwrap_err()
                .to_string(),
            "models[0].aliases[0] `b` is empty, reserved, or already a model's name or alias"
        );
        a.aliases = vec!["other".into()];
        assert!(matches!(
            ModelCatalog::new(vec![a]),
            Err(CatalogError::BadAlias {
                index: 0,
                alias: 0,
                ..
            })
        ));
    }

    #[test]
    fn an_empty_list_accepts_every_model_as_other() {
        let c = ModelCatalog::new(vec![]).unwrap();
        let id = c.resolve("anything").unwrap();
        assert_eq!(c.label(id), "other");
    }

    #[test]
    fn duplicates_reserved_names_and_bad_prices_are_refused() {
        assert!(matches!(
            ModelCatalog::new(vec![spec("a"), spec("a")]),
            Err(CatalogError::Duplicate { index: 1, .. })
        ));
        assert_eq!(
            ModelCatalog::new(vec![spec("other")]).unwrap_err(),
            CatalogError::Reserved(0)
        );
        let mut priced = spec("p");
        priced.pricing = Some(Pricing::new(-1.0, 1.0));
        assert!(matches!(
            ModelCatalog::new(vec![priced.clone()]),
            Err(CatalogError::BadPrice { .. })
        ));
        priced.pricing = Some(Pricing {
            cache_write_usd_per_million: Some(f64::NAN),
            ..Pricing::new(1.0, 1.0)
        });
        assert!(matches!(
            ModelCatalog::new(vec![priced]),
            Err(CatalogError::BadPrice { .. })
        ));
    }

    fn usage(input: u64, cache_read: u64, cache_write: u64, output: u64) -> Usage {
        Usage {
            input: Some(input),
            output: Some(output),
            cache_read,
            cache_write,
            reasoning: 0,
        }
    }

    #[test]
    fn cost_is_priced_per_million_tokens() {
        let p = Pricing::new(0.15, 0.6);
        let cost = p.cost_usd(&usage(1_000, 0, 0, 500));
        assert!((cost - 0.00045).abs() < 1e-12, "{cost}");
    }

    #[test]
    fn cached_input_is_priced_at_its_own_rates_and_at_the_input_rate_when_unset() {
        // Claude Sonnet's list prices: $3 input, $0.30 cache reads, $3.75 cache writes, $15
        // output. 50 plain + 1800 read + 248 written input tokens, 120 output tokens.
        let p = Pricing {
            cache_read_usd_per_million: Some(0.3),
            cache_write_usd_per_million: Some(3.75),
            ..Pricing::new(3.0, 15.0)
        };
        let u = usage(2098, 1800, 248, 120);
        let expected = (50.0 * 3.0 + 1800.0 * 0.3 + 248.0 * 3.75 + 120.0 * 15.0) / 1e6;
        assert!(
            (p.cost_usd(&u) - expected).abs() < 1e-15,
            "{}",
            p.cost_usd(&u)
        );
        let undiscounted = Pricing::new(3.0, 15.0).cost_usd(&u);
        assert!((undiscounted - (2098.0 * 3.0 + 120.0 * 15.0) / 1e6).abs() < 1e-15);
    }
}
