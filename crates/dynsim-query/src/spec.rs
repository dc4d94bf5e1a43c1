//! Metric specifications: which metric with which parameters, as a value with a canonical
//! form and a hash (the cache key of its results).
//!
//! Text form (the CLI's `--metric`): `name[:key=value,key=value...]`, e.g.
//! `dsa:n_delays=33,delay_interval=6,rank=50`, `procrustes:alpha=0.5`, `cka:kernel=rbf`,
//! `rsa:compare=tau_a`, `svcca:keep=20`. The metrics and their parameters are
//! `dynsim_metrics`' registry ([`dynsim_metrics::METRICS`]); every parameter has a default,
//! and the canonical form lists every parameter, defaults included, so `dsa:rank=50` and
//! `dsa:rank=50,n_delays=1` are the same question and share their cached results.

use std::fmt;
use std::sync::Arc;

use dynsim_metrics::{build_metric, split_spec, Matching, Metric};
use serde_json::{json, Value};

use crate::error::QueryError;

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

/// A metric plus its canonical parameters (sorted JSON of every parameter, the metric's
/// name and version: [`Metric::canonical`]) and their hash: 16 hex characters of BLAKE3 of
/// the canonical JSON. A spec with a [`Preprocess`] has it in its canonical form (key
/// `preprocess`), so its results are cached apart; a spec without one has exactly the
/// canonical form it always had.
#[derive(Clone)]
pub struct MetricSpec {
    metric: Arc<dyn Metric>,
    canonical: String,
    hash: String,
    label: String,
    preprocess: Option<Preprocess>,
}

impl fmt::Debug for MetricSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricSpec").field("canonical", &self.canonical).finish()
    }
}

impl PartialEq for MetricSpec {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl fmt::Display for MetricSpec {
    /// The short form: `name:key=value,...` with every parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.label())
    }
}

impl MetricSpec {
    /// Parse `name[:key=value,...]`: a metric of [`dynsim_metrics::METRICS`] (`dsa`,
    /// `procrustes`, `cka`, `rsa`, `cca`, `svcca`, `pwcca`) with its parameters
    /// (`dynsim metric NAME --help` lists them), plus for every metric `preprocess`
    /// ([`Preprocess`], e.g. `preprocess=zscore_pca:20`).
    pub fn parse(text: &str) -> Result<MetricSpec, QueryError> {
        let err = |detail: String| QueryError::Spec { spec: text.to_string(), detail };
        let (name, mut kv) = split_spec(text).map_err(|e| err(e.detail))?;
        let preprocess = kv.remove("preprocess").map(|v| Preprocess::parse(&v)).transpose()?;
        let metric = build_metric(&name, &kv).map_err(err)?;
        Ok(MetricSpec::from_boxed(metric).with_preprocess(preprocess))
    }

    /// The spec of a metric object (e.g. `MetricSpec::new(Rsa::default())`).
    pub fn new<M: Metric + 'static>(metric: M) -> MetricSpec {
        MetricSpec::from_boxed(Box::new(metric))
    }

    fn from_boxed(metric: Box<dyn Metric>) -> MetricSpec {
        MetricSpec::build(Arc::from(metric), None)
    }

    /// The canonical form (serde_json's map is ordered by key: the text is canonical), its
    /// hash and its label, from the metric's canonical parameters and the preprocessing.
    fn build(metric: Arc<dyn Metric>, preprocess: Option<Preprocess>) -> MetricSpec {
        let mut v = metric.canonical();
        if let Some(p) = preprocess {
            v["preprocess"] = p.canonical();
        }
        let canonical = v.to_string();
        let label = label(metric.name(), &v);
        MetricSpec { hash: hash(&canonical), canonical, label, metric, preprocess }
    }

    /// This spec with `preprocess` applied to every pair before the metric (or without any,
    /// for `None`); the canonical form and hash follow.
    pub fn with_preprocess(self, preprocess: Option<Preprocess>) -> MetricSpec {
        MetricSpec::build(self.metric, preprocess)
    }

    /// The preprocessing of each pair, if any.
    pub fn preprocess(&self) -> Option<Preprocess> {
        self.preprocess
    }

    /// The metric object.
    pub fn metric(&self) -> &dyn Metric {
        self.metric.as_ref()
    }

    /// A shared handle to the metric object.
    pub fn metric_arc(&self) -> Arc<dyn Metric> {
        Arc::clone(&self.metric)
    }

    /// `dsa`, `procrustes`, `cka`, `rsa`, `cca`, `svcca` or `pwcca`.
    pub fn name(&self) -> &'static str {
        self.metric.name()
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

    /// The unit of the values (`rad`, `angle/(pi/2)`, `euclidean`, `1 - similarity`, ...).
    pub fn unit(&self) -> &'static str {
        self.metric.unit()
    }

    /// `name:key=value,...` with every parameter except `metric` and `version`, for tables.
    pub fn label(&self) -> String {
        self.label.clone()
    }

    /// What the two recordings of a pair must share ([`Matching`]).
    pub fn matching(&self) -> Matching {
        self.metric.matching()
    }

    /// Whether the metric compares the recordings sample by sample (Procrustes, CKA, the CCA
    /// family), so both need the same number of trials x time steps.
    pub fn needs_equal_samples(&self) -> bool {
        self.matching() == Matching::Samples
    }
}

/// `name:key=value,...` of canonical parameters (objects as `key:value/...`), without
/// `metric` and `version`.
fn label(name: &str, canonical: &Value) -> String {
    let mut parts = Vec::new();
    if let Value::Object(m) = canonical {
        for (k, v) in m {
            if k == "metric" || k == "version" {
                continue;
            }
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.iter().map(|(a, b)| format!("{a}:{b}")).collect::<Vec<_>>().join("/"),
                other => other.to_string(),
            };
            parts.push(format!("{k}={text}"));
        }
    }
    format!("{name}:{}", parts.join(","))
}

fn hash(canonical: &str) -> String {
    blake3::hash(canonical.as_bytes()).to_hex()[..16].to_string()
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
        assert_eq!(v["version"], 2);
        assert!(a.label().starts_with("dsa:") && a.label().contains("rank=count:50"), "{}", a.label());
        let cka = MetricSpec::parse("cka").expect("cka");
        assert_ne!(cka.param_hash(), MetricSpec::parse("cka:debiased=true").expect("cka").param_hash());
        assert_eq!(
            MetricSpec::parse("procrustes").expect("p"),
            MetricSpec::new(dynsim_metrics::ShapeMetric::procrustes(dynsim_metrics::Score::Angular))
        );
        assert_eq!(cka.unit(), "rad");
        assert_eq!(MetricSpec::parse("cka:score=normalized").expect("cka").unit(), "angle/(pi/2)");
        assert_eq!(MetricSpec::parse("rsa").expect("rsa").unit(), "1 - similarity");
    }

    /// The cache keys of every metric that existed before the metric objects are unchanged:
    /// `data/reference/spec_pins_v1.tsv` holds the hashes, canonical forms and labels the
    /// earlier hand-written specifications gave (spec, hash, canonical, label per line).
    /// DSA alone moved to version 2 on purpose (its results now carry the certified bound):
    /// its canonical form is the pinned one with `"version":2`.
    #[test]
    fn cache_keys_of_the_first_metrics_are_unchanged() {
        let path = format!(
            "{}/../../data/reference/spec_pins_v1.tsv",
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string())
        );
        let text = std::fs::read_to_string(&path).expect("pins");
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 5, "{line}");
            let spec = MetricSpec::parse(f[1]).expect(f[1]);
            assert_eq!(spec.label(), f[4], "{}", f[1]);
            if spec.name() == "dsa" {
                assert_eq!(spec.canonical(), f[3].replace("\"version\":1", "\"version\":2"), "{}", f[1]);
                assert_ne!(spec.param_hash(), f[2], "{}", f[1]);
            } else {
                assert_eq!(spec.canonical(), f[3], "{}", f[1]);
                assert_eq!(spec.param_hash(), f[2], "{}", f[1]);
            }
            n += 1;
        }
        assert_eq!(n, 11);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("dsx", "unknown metric"),
            ("dsa:rank", "not key=value"),
            ("dsa:rank=ten", "not a non-negative integer"),
            ("dsa:foo=1", "has no parameter \"foo\""),
            ("cka:preprocess=pca", "zscore_pca:K"),
            ("procrustes:alpha=2", "alpha"),
        ];
        for (spec, want) in cases {
            let e = MetricSpec::parse(spec).expect_err(spec).to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
