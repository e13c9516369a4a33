use super::*;
use crate::{DeploymentSpec, ModelSpec};

fn upstreams() -> Vec<String> {
    vec!["primary".into(), "secondary".into()]
}

fn dep(upstream: &str, weight: u32) -> DeploymentSpec {
    DeploymentSpec {
        upstream: upstream.into(),
        model: None,
        weight,
    }
}

fn model(id: &str, deployments: Vec<DeploymentSpec>, fallbacks: &[&str]) -> ModelSpec {
    let mut spec = ModelSpec::new(id);
    spec.deployments = deployments;
    spec.fallbacks = fallbacks.iter().map(|f| (*f).to_owned()).collect();
    spec
}

fn table(specs: Vec<ModelSpec>) -> Result<RoutingTable, RoutingError> {
    RoutingTable::new(ModelCatalog::new(specs)?, &upstreams())
}

fn err(specs: Vec<ModelSpec>) -> String {
    table(specs).unwrap_err().to_string()
}

#[test]
fn deployments_resolve_to_upstreams_and_the_upstreams_model_name() {
    let mut renamed = dep("secondary", 3);
    renamed.model = Some("mini-2024".into());
    let t = table(vec![model("mini", vec![dep("primary", 1), renamed], &[])]).unwrap();
    let route = t.route(t.catalog().resolve("mini").unwrap());
    let deps: Vec<_> = route.deployments.iter().map(|d| t.deployment(*d)).collect();
    assert_eq!(deps[0].upstream, UpstreamId::new(0));
    assert_eq!(deps[0].upstream_model.as_deref(), Some("mini"));
    assert_eq!(deps[1].upstream, UpstreamId::new(1));
    assert_eq!(deps[1].upstream_model.as_deref(), Some("mini-2024"));
    assert_eq!(deps[1].weight, 3);
}

#[test]
fn fallbacks_are_planned_depth_first_each_model_once() {
    let t = table(vec![
        model("a", vec![dep("primary", 1)], &["b", "c"]),
        model("b", vec![dep("primary", 1)], &["d"]),
        model("c", vec![dep("secondary", 1)], &["d"]),
        model("d", vec![dep("secondary", 1)], &[]),
    ])
    .unwrap();
    let c = t.catalog();
    let names: Vec<&str> = t
        .route(c.resolve("a").unwrap())
        .plan
        .iter()
        .map(|m| c.label(*m))
        .collect();
    assert_eq!(names, ["a", "b", "d", "c"]);
}

#[test]
fn configuration_mistakes_name_their_key() {
    assert_eq!(
        err(vec![model("a", vec![dep("tertiary", 1)], &[])]),
        "models[0].deployments[0].upstream: no upstream is named `tertiary` (configured: primary, secondary)"
    );
    assert_eq!(
        err(vec![model("a", vec![], &[])]),
        "models[0].deployments: required when more than one upstream is configured"
    );
    assert_eq!(
        err(vec![model("a", vec![dep("primary", 0)], &[])]),
        "models[0].deployments[0]: weight must be at least 1"
    );
    assert_eq!(
        err(vec![model(
            "a",
            vec![dep("primary", 1), dep("primary", 2)],
            &[]
        )]),
        "models[0].deployments[1]: the same upstream and model are listed twice"
    );
    assert_eq!(
        err(vec![model("a", vec![dep("primary", 1)], &["z"])]),
        "models[0].fallbacks[0]: no model is named `z`"
    );
    assert_eq!(
        err(vec![
            model("a", vec![dep("primary", 1)], &["b"]),
            model("b", vec![dep("primary", 1)], &["c"]),
            model("c", vec![dep("primary", 1)], &["a"]),
        ]),
        "models[0].fallbacks: a cycle of fallbacks: a -> b -> c -> a"
    );
    assert_eq!(
        err(vec![model("a", vec![dep("primary", 1)], &["a"])]),
        "models[0].fallbacks: a cycle of fallbacks: a -> a"
    );
}

#[test]
fn one_upstream_serves_models_without_deployments() {
    let t = RoutingTable::new(
        ModelCatalog::new(vec![ModelSpec::new("m")]).unwrap(),
        &["only".to_owned()],
    )
    .unwrap();
    let d = t.deployment(t.route(t.catalog().resolve("m").unwrap()).deployments[0]);
    assert_eq!(d.upstream_model.as_deref(), Some("m"));
}

#[test]
fn the_open_gateway_forwards_any_model_unchanged_to_the_first_upstream() {
    let t = RoutingTable::new(ModelCatalog::new(vec![]).unwrap(), &upstreams()).unwrap();
    let other = t.catalog().resolve("anything").unwrap();
    let route = t.route(other);
    assert_eq!(route.plan, [other]);
    let d = t.deployment(route.deployments[0]);
    assert_eq!(
        (d.upstream, d.upstream_model.clone()),
        (UpstreamId::new(0), None)
    );
}

#[test]
fn a_seeded_weighted_pick_splits_by_weight_among_the_best_ranked() {
    let t = table(vec![model(
        "m",
        vec![dep("primary", 3), dep("secondary", 1)],
        &[],
    )])
    .unwrap();
    let m = t.catalog().resolve("m").unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut counts = [0u32; 2];
    for _ in 0..10_000 {
        let id = t.pick(m, &mut rng, |_| Some(0)).unwrap();
        counts[t.deployment(id).upstream.index()] += 1;
    }
    // 7,500 expected; the binomial's standard deviation is about 43.
    assert!((7_300..=7_700).contains(&counts[0]), "{counts:?}");
    // A better rank wins whatever the weights; leaving a deployment out leaves it out.
    let secondary = |d: &Deployment| Some(u8::from(d.upstream.index() == 0));
    for _ in 0..100 {
        let id = t.pick(m, &mut rng, secondary).unwrap();
        assert_eq!(t.deployment(id).upstream.index(), 1);
    }
    assert_eq!(t.pick(m, &mut rng, |_| None), None);
}

#[test]
fn a_model_is_served_to_the_kinds_of_its_deployments_and_its_fallbacks() {
    use crate::upstream::UpstreamKind::{Anthropic, OpenAi};
    let claude = model("claude", vec![dep("secondary", 1)], &[]);
    let gpt = model("gpt", vec![dep("primary", 1)], &["claude"]);
    let t = table(vec![claude, gpt])
        .unwrap()
        .with_kinds(&[OpenAi, Anthropic]);
    let id = |name| t.catalog().resolve(name).unwrap();
    assert!(t.serves(id("claude"), Anthropic));
    assert!(!t.serves(id("claude"), OpenAi));
    assert!(t.serves(id("gpt"), OpenAi));
    // Through its fallback only; the request's own kind decides which deployments it tries.
    assert!(t.serves(id("gpt"), Anthropic));
}
