//! Where a model's requests go: its deployments (an upstream, the upstream's name for the
//! model, a weight) and the fallback models tried after them, resolved and cross-checked once
//! at start-up so that the request path only follows indexes.
//!
//! Without a model list the gateway is open: any model is forwarded as it was asked for, to
//! the first upstream, and counted as `other`.

use std::sync::Arc;

use crate::models::{CatalogError, ModelCatalog, ModelId};
use crate::upstream::{UpstreamId, UpstreamKind};

#[cfg(test)]
mod tests;

/// Index of a deployment in [`RoutingTable::deployments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeploymentId(u16);

impl DeploymentId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// An upstream serving a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: DeploymentId,
    pub upstream: UpstreamId,
    /// The public model it serves.
    pub model: ModelId,
    /// The upstream's name for the model. `None` (the open gateway) forwards the request's
    /// `model` unchanged.
    pub upstream_model: Option<Arc<str>>,
    pub weight: u32,
    /// The API its upstream speaks: a request only goes to deployments of its endpoint's
    /// kind.
    pub kind: UpstreamKind,
}

/// One model's routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub deployments: Vec<DeploymentId>,
    /// The models to try, in order: this one, then its fallbacks (depth first, each once).
    pub plan: Vec<ModelId>,
}

/// A model table that cannot be routed; each message names the key it is about.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RoutingError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("models[{0}].deployments: required when more than one upstream is configured")]
    NoDeployments(usize),
    #[error(
        "models[{model}].deployments[{deployment}].upstream: no upstream is named `{name}` (configured: {known})"
    )]
    UnknownUpstream {
        model: usize,
        deployment: usize,
        name: String,
        known: String,
    },
    #[error("models[{model}].deployments[{deployment}]: {message}")]
    BadDeployment {
        model: usize,
        deployment: usize,
        message: &'static str,
    },
    #[error("models[{model}].fallbacks[{fallback}]: no model is named `{name}`")]
    UnknownFallback {
        model: usize,
        fallback: usize,
        name: String,
    },
    #[error("models[{model}].fallbacks: a cycle of fallbacks: {cycle}")]
    FallbackCycle { model: usize, cycle: String },
    #[error("at most {max} deployments can be configured")]
    TooManyDeployments { max: usize },
}

/// Every model's routes, resolved.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    catalog: ModelCatalog,
    deployments: Vec<Deployment>,
    /// By model index; the open gateway has one route, for `other`.
    routes: Vec<Route>,
}

impl RoutingTable {
    /// Keeps per-deployment label sets (deployments x states) small.
    pub const MAX_DEPLOYMENTS: usize = 1024;

    /// Resolves `catalog`'s deployments and fallbacks against the configured `upstreams`
    /// (their names, in [`UpstreamId`] order; at least one).
    pub fn new(catalog: ModelCatalog, upstreams: &[String]) -> Result<Self, RoutingError> {
        assert!(!upstreams.is_empty(), "at least one upstream");
        if catalog.is_open() {
            let other = catalog.other();
            return Ok(Self {
                catalog,
                deployments: vec![Deployment {
                    id: DeploymentId(0),
                    upstream: UpstreamId::new(0),
                    model: other,
                    upstream_model: None,
                    weight: 1,
                    kind: UpstreamKind::OpenAi,
                }],
                routes: vec![Route {
                    deployments: vec![DeploymentId(0)],
                    plan: vec![other],
                }],
            });
        }
        let mut deployments = Vec::new();
        let mut routes = Vec::with_capacity(catalog.specs().len());
        for (m, spec) in catalog.specs().iter().enumerate() {
            let model = catalog.resolve(&spec.id).expect("every id resolves");
            let mut ids = Vec::new();
            if spec.deployments.is_empty() {
                if upstreams.len() > 1 {
                    return Err(RoutingError::NoDeployments(m));
                }
                ids.push(push_deployment(
                    &mut deployments,
                    UpstreamId::new(0),
                    model,
                    &spec.id,
                    1,
                )?);
            }
            for (d, dep) in spec.deployments.iter().enumerate() {
                let bad = |message| RoutingError::BadDeployment {
                    model: m,
                    deployment: d,
                    message,
                };
                let Some(u) = upstreams.iter().position(|name| *name == dep.upstream) else {
                    return Err(RoutingError::UnknownUpstream {
                        model: m,
                        deployment: d,
                        name: dep.upstream.clone(),
                        known: upstreams.join(", "),
                    });
                };
                if dep.weight == 0 {
                    return Err(bad("weight must be at least 1"));
                }
                let upstream_model = dep.model.as_deref().unwrap_or(&spec.id);
                if upstream_model.trim().is_empty() {
                    return Err(bad("model must not be empty"));
                }
                let upstream = UpstreamId::new(u);
                let twice = ids.iter().any(|id: &DeploymentId| {
                    let other = &deployments[id.index()];
                    other.upstream == upstream
                        && other.upstream_model.as_deref() == Some(upstream_model)
                });
                if twice {
                    return Err(bad("the same upstream and model are listed twice"));
                }
                ids.push(push_deployment(
                    &mut deployments,
                    upstream,
                    model,
                    upstream_model,
                    dep.weight,
                )?);
            }
            routes.push(Route {
                deployments: ids,
                plan: Vec::new(),
            });
        }
        let fallbacks = resolve_fallbacks(&catalog)?;
        for (m, route) in routes.iter_mut().enumerate() {
            route.plan = plan(m, &fallbacks);
        }
        Ok(Self {
            catalog,
            deployments,
            routes,
        })
    }

    /// Tells each deployment the kind of its upstream (`kinds` in [`UpstreamId`] order, as
    /// the names given to [`RoutingTable::new`]; an upstream without one is OpenAI-kind).
    pub fn with_kinds(mut self, kinds: &[UpstreamKind]) -> Self {
        for d in &mut self.deployments {
            d.kind = kinds.get(d.upstream.index()).copied().unwrap_or_default();
        }
        self
    }

    pub fn catalog(&self) -> &ModelCatalog {
        &self.catalog
    }

    /// Whether a request of `kind` for `model` has anywhere to go: a deployment of that
    /// kind for the model or one of its fallbacks.
    pub fn serves(&self, model: ModelId, kind: UpstreamKind) -> bool {
        self.route(model).plan.iter().any(|m| {
            self.route(*m)
                .deployments
                .iter()
                .any(|d| self.deployment(*d).kind == kind)
        })
    }

    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    pub fn deployment(&self, id: DeploymentId) -> &Deployment {
        &self.deployments[id.index()]
    }

    /// The route of a model the catalog resolved.
    pub fn route(&self, model: ModelId) -> &Route {
        if self.catalog.is_open() {
            &self.routes[0]
        } else {
            &self.routes[model.index()]
        }
    }

    /// A weighted choice among `model`'s deployments of the best rank `rank` gives (lower is
    /// better; `None` leaves a deployment out).
    pub fn pick(
        &self,
        model: ModelId,
        rng: &mut fastrand::Rng,
        mut rank: impl FnMut(&Deployment) -> Option<u8>,
    ) -> Option<DeploymentId> {
        let route = self.route(model);
        let ranked: Vec<(DeploymentId, u8)> = route
            .deployments
            .iter()
            .filter_map(|id| rank(self.deployment(*id)).map(|r| (*id, r)))
            .collect();
        let best = ranked.iter().map(|(_, r)| *r).min()?;
        let weight = |id: DeploymentId| u64::from(self.deployment(id).weight);
        let total: u64 = ranked
            .iter()
            .filter(|(_, r)| *r == best)
            .map(|(id, _)| weight(*id))
            .sum();
        let mut point = rng.u64(0..total);
        for (id, _) in ranked.iter().filter(|(_, r)| *r == best) {
            let w = weight(*id);
            if point < w {
                return Some(*id);
            }
            point -= w;
        }
        unreachable!("the point falls inside the total weight")
    }
}

fn push_deployment(
    deployments: &mut Vec<Deployment>,
    upstream: UpstreamId,
    model: ModelId,
    upstream_model: &str,
    weight: u32,
) -> Result<DeploymentId, RoutingError> {
    let index = deployments.len();
    if index >= RoutingTable::MAX_DEPLOYMENTS {
        return Err(RoutingError::TooManyDeployments {
            max: RoutingTable::MAX_DEPLOYMENTS,
        });
    }
    let id = DeploymentId(u16::try_from(index).expect("bounded by MAX_DEPLOYMENTS"));
    deployments.push(Deployment {
        id,
        upstream,
        model,
        upstream_model: Some(upstream_model.into()),
        weight,
        kind: UpstreamKind::OpenAi,
    });
    Ok(id)
}

/// Each model's fallbacks as model indexes; refuses unknown names and cycles.
fn resolve_fallbacks(catalog: &ModelCatalog) -> Result<Vec<Vec<usize>>, RoutingError> {
    let specs = catalog.specs();
    let index_of = |name: &str| specs.iter().position(|s| s.id == name);
    let mut graph = Vec::with_capacity(specs.len());
    for (m, spec) in specs.iter().enumerate() {
        let mut edges = Vec::with_capacity(spec.fallbacks.len());
        for (f, name) in spec.fallbacks.iter().enumerate() {
            let Some(to) = index_of(name) else {
                return Err(RoutingError::UnknownFallback {
                    model: m,
                    fallback: f,
                    name: name.clone(),
                });
            };
            edges.push(to);
        }
        graph.push(edges);
    }
    // Depth-first search with three colours: a grey node reached again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    fn visit(
        node: usize,
        graph: &[Vec<usize>],
        colour: &mut [Colour],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        colour[node] = Colour::Grey;
        path.push(node);
        for &next in &graph[node] {
            match colour[next] {
                Colour::Grey => {
                    let start = path.iter().position(|n| *n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Colour::White => {
                    if let Some(cycle) = visit(next, graph, colour, path) {
                        return Some(cycle);
                    }
                }
                Colour::Black => {}
            }
        }
        path.pop();
        colour[node] = Colour::Black;
        None
    }
    let mut colour = vec![Colour::White; graph.len()];
    for start in 0..graph.len() {
        if colour[start] != Colour::White {
            continue;
        }
        if let Some(cycle) = visit(start, &graph, &mut colour, &mut Vec::new()) {
            let names: Vec<&str> = cycle.iter().map(|n| specs[*n].id.as_str()).collect();
            return Err(RoutingError::FallbackCycle {
                model: cycle[0],
                cycle: names.join(" -> "),
            });
        }
    }
    Ok(graph)
}

/// Model `m`, then its fallbacks depth first, each model once.
fn plan(m: usize, graph: &[Vec<usize>]) -> Vec<ModelId> {
    fn walk(m: usize, graph: &[Vec<usize>], out: &mut Vec<usize>) {
        if out.contains(&m) {
            return;
        }
        out.push(m);
        for &f in &graph[m] {
            walk(f, graph, out);
        }
    }
    let mut order = Vec::new();
    walk(m, graph, &mut order);
    order.into_iter().map(ModelId::from_index).collect()
}
