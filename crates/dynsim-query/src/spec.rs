//! Metric specifications: which metric with which parameters, as a value with a canonical
//! form and a hash (the cache key of its results).
//!
//! Text form (the CLI's `--metric`): `name[:key=value,key=value...]`, e.g.
//! `dsa:n_delays=33,delay_interval=6,rank=50`, `procrustes:alpha=0.5`, `cka:kernel=rbf`.
//! Every parameter has the default of the metric's Rust type; the canonical form lists
//! every parameter, defaults included, so `dsa:rank=50` and `dsa:rank=50,n_delays=1` are
//! the same question and share their cached results.

use std::collections::BTreeMap;
use std::fmt;

use dynsim_metrics::{
    Cka, DmdParams, Dsa, DsaParams, DsaScore, Group, HsicEstimator, Kernel, RankSelection, Regression, Score,
    ShapeMetric, SimilarityParams,
};
use serde_json::{json, Value};

use crate::error::QueryError;

/// Version of each metric's numerical definition. It is part of the canonical parameters,
/// so a change that alters results (a new optimiser, a fixed bug) bumps it and thereby
/// invalidates exactly that metric's cached results.
pub const METRIC_VERSIONS: [(&str, u32); 3] = [("dsa", 1), ("procrustes", 1), ("cka", 1)];

fn version(name: &str) -> u32 {
    METRIC_VERSIONS.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
}

/// A metric with validated parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Dynamical Similarity Analysis ([`Dsa`]).
    Dsa(DsaParams),
    /// Procrustes and the generalised shape metrics ([`ShapeMetric`]).
    Procrustes(ShapeMetric),
    /// Centred kernel alignment, reported as the angular distance `arccos(CKA)` ([`Cka`]).
    Cka(Cka),
}

/// Preprocessing applied to both recordings of a pair before the metric compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// Every (trial, unit) series z-scored over time, then both recordings projected onto the
    /// leading principal axes of their stacked samples, this many of them: the seed study's
    /// over-learning preprocessing (`dynsim_metrics::preprocess::joint_zscore_pca`). Text
    /// form: `zscore_pca:20`.
    ZscoreJointPca(usize),
}

impl Preprocess {
    /// Parses `zscore_pca:K` (K components, at least 1).
    pub fn parse(text: &str) -> Result<Preprocess, QueryError> {
        let bad = || QueryError::Spec {
            spec: format!("preprocess={text}"),
            detail: "give zscore_pca:K, K the number of principal components (the study used zscore_pca:20)".into(),
        };
        let k = text.trim().strip_prefix("zscore_pca:").ok_or_else(bad)?;
        match k.trim().parse::<usize>() {
            Ok(k) if k > 0 => Ok(Preprocess::ZscoreJointPca(k)),
            _ => Err(bad()),
        }
    }

    /// Applies it to a pair (left, right).
    pub fn apply(
        &self,
        x: ndarray::ArrayView3<'_, f64>,
        y: ndarray::ArrayView3<'_, f64>,
    ) -> Result<(ndarray::Array3<f64>, ndarray::Array3<f64>), dynsim_metrics::MetricError> {
        match self {
            Preprocess::ZscoreJointPca(k) => dynsim_metrics::joint_zscore_pca(x, y, *k),
        }
    }

    fn canonical(&self) -> Value {
        match self {
            Preprocess::ZscoreJointPca(k) => json!({ "zscore_joint_pca": k }),
        }
    }
}

/// A metric plus its canonical parameters (sorted JSON of every parameter and the metric
/// version) and their hash: 16 hex characters of BLAKE3 of the canonical JSON. A spec with
/// a [`Preprocess`] has it in its canonical form (key `preprocess`), so its results are
/// cached apart; a spec without one has exactly the canonical form it always had.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    metric: Metric,
    canonical: String,
    hash: String,
    preprocess: Option<Preprocess>,
}

impl fmt::Display for MetricSpec {
    /// The short form: `name:key=value,...` with every parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.label())
    }
}

const DSA_KEYS: &[&str] = &[
    "n_delays",
    "delay_interval",
    "rank",
    "rank_thresh",
    "rank_explained_variance",
    "lambda",
    "steps_ahead",
    "reduced_rank",
    "score",
    "seed",
    "restarts",
    "max_iters",
    "grad_tol",
    "thorough",
    "group",
];
const PROCRUSTES_KEYS: &[&str] = &["alpha", "score"];
const CKA_KEYS: &[&str] = &["kernel", "threshold", "debiased"];

impl MetricSpec {
    /// Parse `name[:key=value,...]`. Names: `dsa`, `procrustes`, `cka`.
    ///
    /// - dsa: `n_delays`, `delay_interval`, one of `rank` (count) / `rank_thresh` /
    ///   `rank_explained_variance`, `lambda`, `steps_ahead`, `reduced_rank`, `score`
    ///   (angular | euclidean | wasserstein), `seed`, `restarts`, `max_iters`, `grad_tol`,
    ///   `thorough` (run every start to convergence), `group` (o | so).
    /// - procrustes: `alpha` (1 = Procrustes, 0 = CCA-like), `score` (angular | euclidean).
    /// - cka: `kernel` (linear | rbf), `threshold` (rbf bandwidth multiplier), `debiased`.
    /// - every metric: `preprocess` ([`Preprocess`], e.g. `preprocess=zscore_pca:20`).
    pub fn parse(text: &str) -> Result<MetricSpec, QueryError> {
        let err = |detail: String| QueryError::Spec { spec: text.to_string(), detail };
        let (name, rest) = match text.trim().split_once(':') {
            Some((n, r)) => (n.trim(), r),
            None => (text.trim(), ""),
        };
        let mut kv: BTreeMap<String, String> = BTreeMap::new();
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(err(format!("{part:?} is not key=value")));
            };
            let k = k.trim().to_ascii_lowercase();
            if kv.insert(k.clone(), v.trim().to_string()).is_some() {
                return Err(err(format!("parameter {k} is given twice")));
            }
        }
        let accepted = match name.to_ascii_lowercase().as_str() {
            "dsa" => DSA_KEYS,
            "procrustes" => PROCRUSTES_KEYS,
            "cka" => CKA_KEYS,
            other => {
                return Err(err(format!("unknown metric {other:?}; the metrics are dsa, procrustes and cka")));
            }
        };
        let preprocess = kv.remove("preprocess").map(|v| Preprocess::parse(&v)).transpose()?;
        if let Some(k) = kv.keys().find(|k| !accepted.contains(&k.as_str())) {
            return Err(err(format!("{name} has no parameter {k:?}; its parameters are {}", accepted.join(", "))));
        }
        let p = Params { kv: &kv, err: &err };
        let metric = match name.to_ascii_lowercase().as_str() {
            "dsa" => {
                let rank_rules = ["rank", "rank_thresh", "rank_explained_variance"];
                let given: Vec<&str> = rank_rules.iter().copied().filter(|k| kv.contains_key(*k)).collect();
                if given.len() > 1 {
                    return Err(err(format!("give one rank rule, not {}", given.join(" and "))));
                }
                let rank = if let Some(r) = p.usize("rank")? {
                    RankSelection::Count(r)
                } else if let Some(t) = p.f64("rank_thresh")? {
                    RankSelection::Threshold(t)
                } else if let Some(v) = p.f64("rank_explained_variance")? {
                    RankSelection::ExplainedVariance(v)
                } else {
                    RankSelection::Full
                };
                let d = DmdParams::default();
                let thorough = p.bool("thorough")?.unwrap_or(false);
                let base = if thorough { SimilarityParams::thorough() } else { SimilarityParams::default() };
                Metric::Dsa(DsaParams {
                    dmd: DmdParams {
                        n_delays: p.usize("n_delays")?.unwrap_or(d.n_delays),
                        delay_interval: p.usize("delay_interval")?.unwrap_or(d.delay_interval),
                        rank,
                        lambda: p.f64("lambda")?.unwrap_or(d.lambda),
                        steps_ahead: p.usize("steps_ahead")?.unwrap_or(d.steps_ahead),
                        regression: if p.bool("reduced_rank")?.unwrap_or(false) {
                            Regression::ReducedRank
                        } else {
                            Regression::PrincipalComponent
                        },
                    },
                    similarity: SimilarityParams {
                        group: match p.choice("group", &["o", "so"])? {
                            Some("so") => Group::SO,
                            _ => Group::O,
                        },
                        restarts: p.usize("restarts")?.unwrap_or(base.restarts),
                        max_iters: p.usize("max_iters")?.unwrap_or(base.max_iters),
                        grad_tol: p.f64("grad_tol")?.unwrap_or(base.grad_tol),
                        seed: p.u64("seed")?.unwrap_or(base.seed),
                        race: base.race,
                    },
                    score: match p.choice("score", &["angular", "euclidean", "wasserstein"])? {
                        Some("euclidean") => DsaScore::Euclidean,
                        Some("wasserstein") => DsaScore::Wasserstein,
                        _ => DsaScore::Angular,
                    },
                })
            }
            "procrustes" => Metric::Procrustes(ShapeMetric {
                alpha: p.f64("alpha")?.unwrap_or(1.0),
                score: match p.choice("score", &["angular", "euclidean"])? {
                    Some("euclidean") => Score::Euclidean,
                    _ => Score::Angular,
                },
            }),
            _ => {
                let kernel = p.choice("kernel", &["linear", "rbf"])?;
                let threshold = p.f64("threshold")?;
                if threshold.is_some() && kernel != Some("rbf") {
                    return Err(err("threshold applies to kernel=rbf only".into()));
                }
                Metric::Cka(Cka {
                    kernel: match kernel {
                        Some("rbf") => Kernel::Rbf { threshold: threshold.unwrap_or(1.0) },
                        _ => Kernel::Linear,
                    },
                    estimator: if p.bool("debiased")?.unwrap_or(false) {
                        HsicEstimator::Debiased
                    } else {
                        HsicEstimator::Biased
                    },
                })
            }
        };
        let spec = MetricSpec::new(metric).map_err(|e| match e {
            QueryError::Spec { detail, .. } => err(detail),
            other => other,
        })?;
        Ok(spec.with_preprocess(preprocess))
    }

    /// This spec with `preprocess` applied to every pair before the metric (or without any,
    /// for `None`); the canonical form and hash follow.
    pub fn with_preprocess(self, preprocess: Option<Preprocess>) -> MetricSpec {
        let base = MetricSpec::new(self.metric).unwrap_or(self);
        let Some(p) = preprocess else { return base };
        let mut v: Value = serde_json::from_str(&base.canonical).unwrap_or(Value::Null);
        v["preprocess"] = p.canonical();
        let canonical = v.to_string();
        let hash = blake3::hash(canonical.as_bytes()).to_hex()[..16].to_string();
        MetricSpec { metric: base.metric, canonical, hash, preprocess: Some(p) }
    }

    /// The preprocessing of each pair, if any.
    pub fn preprocess(&self) -> Option<Preprocess> {
        self.preprocess
    }

    /// Validate a metric and compute its canonical form.
    pub fn new(metric: Metric) -> Result<MetricSpec, QueryError> {
        let name = metric_name(&metric);
        let invalid =
            |e: dynsim_metrics::MetricError| QueryError::Spec { spec: name.to_string(), detail: e.to_string() };
        let mut v = match &metric {
            Metric::Dsa(p) => {
                Dsa::new(*p).map_err(invalid)?;
                let rank = match p.dmd.rank {
                    RankSelection::Full => json!("full"),
                    RankSelection::Count(r) => json!({ "count": r }),
                    RankSelection::Threshold(t) => json!({ "threshold": t }),
                    RankSelection::ExplainedVariance(x) => json!({ "explained_variance": x }),
                };
                json!({
                    "n_delays": p.dmd.n_delays,
                    "delay_interval": p.dmd.delay_interval,
                    "rank": rank,
                    "lambda": p.dmd.lambda,
                    "steps_ahead": p.dmd.steps_ahead,
                    "regression": match p.dmd.regression {
                        Regression::PrincipalComponent => "principal_component",
                        Regression::ReducedRank => "reduced_rank",
                    },
                    "score": match p.score {
                        DsaScore::Angular => "angular",
                        DsaScore::Euclidean => "euclidean",
                        DsaScore::Wasserstein => "wasserstein",
                    },
                    "group": match p.similarity.group { Group::O => "o", Group::SO => "so" },
                    "restarts": p.similarity.restarts,
                    "max_iters": p.similarity.max_iters,
                    "grad_tol": p.similarity.grad_tol,
                    "seed": p.similarity.seed,
                    "race": p.similarity.race,
                })
            }
            Metric::Procrustes(m) => {
                m.validate().map_err(invalid)?;
                json!({ "alpha": m.alpha, "score": score_name(m.score) })
            }
            Metric::Cka(c) => {
                if let Kernel::Rbf { threshold } = c.kernel {
                    if !(threshold > 0.0 && threshold.is_finite()) {
                        return Err(QueryError::Spec {
                            spec: name.into(),
                            detail: format!(
                                "threshold {threshold} must be a positive multiplier of the median bandwidth"
                            ),
                        });
                    }
                }
                json!({
                    "kernel": match c.kernel { Kernel::Linear => json!("linear"), Kernel::Rbf { threshold } => json!({ "rbf": threshold }) },
                    "estimator": match c.estimator { HsicEstimator::Biased => "biased", HsicEstimator::Debiased => "debiased" },
                    "score": "angular",
                })
            }
        };
        v["metric"] = json!(name);
        v["version"] = json!(version(name));
        // serde_json's map is ordered by key: the text is canonical.
        let canonical = v.to_string();
        let hash = blake3::hash(canonical.as_bytes()).to_hex()[..16].to_string();
        Ok(MetricSpec { metric, canonical, hash, preprocess: None })
    }

    /// The metric and its parameters.
    pub fn metric(&self) -> &Metric {
        &self.metric
    }

    /// `dsa`, `procrustes` or `cka`.
    pub fn name(&self) -> &'static str {
        metric_name(&self.metric)
    }

    /// The canonical parameters: compact JSON with sorted keys, every parameter, the metric
    /// name and version.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// 16 hex characters of BLAKE3 over [`canonical`](Self::canonical): with the two content
    /// hashes, the key of a cached result.
    pub fn param_hash(&self) -> &str {
        &self.hash
    }

    /// `name:key=value,...` with every parameter except `metric` and `version`, for tables.
    pub fn label(&self) -> String {
        let v: Value = serde_json::from_str(&self.canonical).unwrap_or(Value::Null);
        let mut parts = Vec::new();
        if let Value::Object(m) = v {
            for (k, v) in m {
                if k == "metric" || k == "version" {
                    continue;
                }
                let text = match v {
                    Value::String(s) => s,
                    Value::Object(o) => o.iter().map(|(a, b)| format!("{a}:{b}")).collect::<Vec<_>>().join("/"),
                    other => other.to_string(),
                };
                parts.push(format!("{k}={text}"));
            }
        }
        format!("{}:{}", self.name(), parts.join(","))
    }

    /// Whether the metric compares the recordings sample by sample (Procrustes, CKA), so both
    /// need the same number of trials x time steps.
    pub fn needs_equal_samples(&self) -> bool {
        !matches!(self.metric, Metric::Dsa(_))
    }
}

fn metric_name(m: &Metric) -> &'static str {
    match m {
        Metric::Dsa(_) => "dsa",
        Metric::Procrustes(_) => "procrustes",
        Metric::Cka(_) => "cka",
    }
}

fn score_name(s: Score) -> &'static str {
    match s {
        Score::Angular => "angular",
        Score::Euclidean => "euclidean",
    }
}

struct Params<'a, E: Fn(String) -> QueryError> {
    kv: &'a BTreeMap<String, String>,
    err: &'a E,
}

impl<E: Fn(String) -> QueryError> Params<'_, E> {
    fn parse<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, QueryError> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| (self.err)(format!("{key}={v:?} is not {what}"))),
        }
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, QueryError> {
        self.parse(key, "a non-negative integer")
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, QueryError> {
        self.parse(key, "a non-negative integer")
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, QueryError> {
        let v: Option<f64> = self.parse(key, "a number")?;
        match v {
            Some(x) if !x.is_finite() => Err((self.err)(format!("{key}={x} is not a finite number"))),
            other => Ok(other),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, QueryError> {
        match self.kv.get(key).map(|v| v.to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err((self.err)(format!("{key}={v:?} is not true or false"))),
            },
        }
    }

    fn choice(&self, key: &str, options: &[&'static str]) -> Result<Option<&'static str>, QueryError> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(v) => options
                .iter()
                .copied()
                .find(|o| o.eq_ignore_ascii_case(v))
                .map(Some)
                .ok_or_else(|| (self.err)(format!("{key}={v:?}; choose one of {}", options.join(", ")))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_spelled_out_in_the_canonical_form() {
        let a = MetricSpec::parse("dsa:rank=50").expect("parse");
        let b = MetricSpec::parse(" DSA : n_delays=1, rank=50 ,delay_interval=1").expect("parse");
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.param_hash(), b.param_hash());
        assert_eq!(a.param_hash().len(), 16);
        let c = MetricSpec::parse("dsa:rank=49").expect("parse");
        assert_ne!(a.param_hash(), c.param_hash());
        let v: Value = serde_json::from_str(a.canonical()).expect("json");
        assert_eq!(v["rank"]["count"], 50);
        assert_eq!(v["metric"], "dsa");
        assert_eq!(v["version"], 1);
        assert!(a.label().starts_with("dsa:") && a.label().contains("rank=count:50"), "{}", a.label());
        let cka = MetricSpec::parse("cka").expect("cka");
        assert_ne!(cka.param_hash(), MetricSpec::parse("cka:debiased=true").expect("cka").param_hash());
        assert_eq!(
            MetricSpec::parse("procrustes").expect("p").metric(),
            &Metric::Procrustes(ShapeMetric::procrustes(Score::Angular))
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("dsx", "unknown metric"),
            ("dsa:rank", "not key=value"),
            ("dsa:rank=ten", "not a non-negative integer"),
            ("dsa:rank=5,rank_thresh=0.1", "one rank rule"),
            ("dsa:n_delays=0", "n_delays"),
            ("dsa:rank=0", "rank"),
            ("dsa:foo=1", "has no parameter \"foo\""),
            ("dsa:score=cosine", "choose one of angular, euclidean, wasserstein"),
            ("dsa:rank=3,rank=4", "twice"),
            ("procrustes:alpha=2", "alpha"),
            ("procrustes:alpha=nan", "finite"),
            ("cka:threshold=2", "rbf only"),
            ("cka:kernel=rbf,threshold=-1", "positive"),
            ("cka:debiased=maybe", "true or false"),
        ];
        for (spec, want) in cases {
            let e = MetricSpec::parse(spec).expect_err(spec).to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(e.contains(spec.split(':').next().unwrap_or(spec)), "{spec}: {e}");
        }
    }
}
