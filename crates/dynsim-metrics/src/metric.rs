//! One abstraction for every metric, in the spirit of netrep's `Metric` objects: a metric
//! has a name, says what its two recordings must share, **prepares** each recording once
//! (the DMD fit for DSA, the centred sample matrix for Procrustes / CKA / CCA, the RDM for
//! RSA) and **scores** two prepared recordings, returning the value and its extras.
//!
//! Every metric is also a *specification*: a name and `key=value` parameters in text
//! (`dsa:n_delays=33,delay_interval=6,rank=50`), parsed against the metric's parameter table
//! ([`MetricInfo::params`]) into its options struct (serde), validated, and given a
//! canonical form derived with serde from its parameter types ([`Metric::canonical`]). The
//! registry [`METRICS`] lists every metric; [`parse_spec`] reads a specification; the query
//! layer, the CLI and the notebooks all go through it. Adding a metric means writing one
//! file (its types, its [`Metric`] impl, its [`MetricInfo`]) and adding it to [`METRICS`].

use std::collections::BTreeMap;
use std::fmt;

use faer::Mat;
use ndarray::{Array2, ArrayView3};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::dmd::DmdFit;
use crate::error::{MetricError, Result};
use crate::linalg::{centre_columns, check_finite3, check_nonempty3, flatten_samples};

/// What the two recordings of a pair must share for a metric to compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// Nothing: any two recordings (DSA compares fitted operators).
    Nothing,
    /// The same number of samples (`trials x time`): the metric compares them sample by
    /// sample (Procrustes, CKA, CCA).
    Samples,
    /// The same number of trials (RSA with one condition per trial).
    Trials,
    /// The same number of time steps (RSA with one condition per time step).
    Time,
}

impl Matching {
    /// Whether two recordings of shapes `a` and `b` (`trials x time x units`) satisfy it.
    pub fn allows(&self, a: [usize; 3], b: [usize; 3]) -> bool {
        match self {
            Matching::Nothing => true,
            Matching::Samples => a[0] * a[1] == b[0] * b[1],
            Matching::Trials => a[0] == b[0],
            Matching::Time => a[1] == b[1],
        }
    }

    /// What it asks for, for messages (`"the same number of trials x time steps"`).
    pub fn describe(&self) -> &'static str {
        match self {
            Matching::Nothing => "nothing in common",
            Matching::Samples => "the same number of samples (trials x time steps)",
            Matching::Trials => "the same number of trials (one condition per trial)",
            Matching::Time => "the same number of time steps (one condition per time step)",
        }
    }
}

/// A recording as a metric needs it, made once by [`Metric::prepare`] and shared by every
/// pair the recording is in.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// A fitted DMD operator (DSA).
    Operator(DmdFit),
    /// The samples (`trials*time x units`, columns centred) of a sample-wise metric.
    Samples(Samples),
    /// A representational dissimilarity matrix (RSA).
    Rdm(crate::rsa::Rdm),
}

impl Prepared {
    pub(crate) fn operator(&self, metric: &'static str) -> Result<&DmdFit> {
        match self {
            Prepared::Operator(f) => Ok(f),
            other => Err(wrong_kind(metric, "a DMD fit", other)),
        }
    }

    pub(crate) fn samples(&self, metric: &'static str) -> Result<&Samples> {
        match self {
            Prepared::Samples(s) => Ok(s),
            other => Err(wrong_kind(metric, "a sample matrix", other)),
        }
    }

    pub(crate) fn rdm(&self, metric: &'static str) -> Result<&crate::rsa::Rdm> {
        match self {
            Prepared::Rdm(r) => Ok(r),
            other => Err(wrong_kind(metric, "an RDM", other)),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Prepared::Operator(_) => "a DMD fit",
            Prepared::Samples(_) => "a sample matrix",
            Prepared::Rdm(_) => "an RDM",
        }
    }
}

fn wrong_kind(metric: &'static str, want: &str, got: &Prepared) -> MetricError {
    MetricError::InvalidParameter {
        name: "prepared recording",
        value: got.kind().to_string(),
        expected: format!("{want}: prepare both recordings with the same {metric} metric before scoring them"),
    }
}

/// A recording flattened to `samples x units` (trial-major, then time), columns centred.
#[derive(Debug, Clone)]
pub struct Samples {
    pub(crate) x: Mat<f64>,
    /// Column means removed by the centring (PWCCA adds them back).
    pub(crate) means: Vec<f64>,
    pub(crate) trials: usize,
    pub(crate) time: usize,
}

impl Samples {
    /// Validate (non-empty, finite), flatten and centre a `trials x time x units` recording.
    pub fn new(x: ArrayView3<'_, f64>, what: &str) -> Result<Samples> {
        check_nonempty3(x, what)?;
        check_finite3(x, what)?;
        let mut m = flatten_samples(x);
        let n = m.nrows() as f64;
        let means = (0..m.ncols()).map(|j| (0..m.nrows()).map(|i| m[(i, j)]).sum::<f64>() / n).collect();
        centre_columns(&mut m);
        Ok(Samples { x: m, means, trials: x.dim().0, time: x.dim().1 })
    }

    /// `samples x units`.
    pub fn shape(&self) -> (usize, usize) {
        (self.x.nrows(), self.x.ncols())
    }

    /// The matrix as ndarray.
    pub fn to_array(&self) -> Array2<f64> {
        crate::linalg::to_ndarray(self.x.as_ref())
    }

    /// Check that two sample matrices can be compared sample by sample.
    pub(crate) fn check_pair(a: &Samples, b: &Samples) -> Result<()> {
        if a.x.nrows() != b.x.nrows() {
            return Err(MetricError::ShapeMismatch {
                detail: format!(
                    "this metric compares recordings sample by sample (trials x time), but the left has {} x {} = {} \
                     samples and the right {} x {} = {}; record the same trials and time steps on both sides",
                    a.trials,
                    a.time,
                    a.x.nrows(),
                    b.trials,
                    b.time,
                    b.x.nrows()
                ),
            });
        }
        Ok(())
    }
}

/// A score and what else the metric reports about it (JSON object: e.g. DSA's ranks, the
/// optimiser's loss and the certified lower bound; CKA's similarity).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The distance (or similarity, for the RSA and CCA family: see each metric).
    pub value: f64,
    /// Extras, by name.
    pub extras: Map<String, Value>,
}

/// Arrays that certify a score: anyone can recompute it from them (e.g. DSA's unit-norm
/// operators `A`, `B` and the optimal orthogonal `C`).
#[derive(Debug, Clone)]
pub struct Certificate {
    /// Named arrays (`"A"`, `"B"`, `"C"`).
    pub arrays: Vec<(String, Array2<f64>)>,
}

/// A metric with validated parameters.
pub trait Metric: Send + Sync + fmt::Debug {
    /// Its registry entry (name, parameter table, reference).
    fn info(&self) -> &'static MetricInfo;

    /// Its parameters as JSON, every one spelled out (derived with serde from the parameter
    /// types). [`canonical`](Self::canonical) adds the name and version.
    fn params(&self) -> Value;

    /// What both recordings of a pair must share. Default: the same samples (the defaults
    /// of this method, [`prepare_key`](Self::prepare_key), [`compact`](Self::compact) and
    /// [`prepare`](Self::prepare) describe a sample-wise metric on centred sample matrices).
    fn matching(&self) -> Matching {
        Matching::Samples
    }

    /// What [`prepare`](Self::prepare) makes and from which parameters, unique across
    /// metrics: two metrics with equal keys share their prepared recordings (DSA specs that
    /// differ only in the optimiser share their DMD fits, `{"dmd":...}`). Default: `samples`
    /// (every sample-wise metric shares the centred sample matrix).
    fn prepare_key(&self) -> String {
        "samples".into()
    }

    /// Whether a prepared recording is small whatever the recording's length (a DMD fit, an
    /// RDM): the query layer then prepares every recording once up front; otherwise (sample
    /// matrices, the default) it prepares them per chunk within its memory budget.
    fn compact(&self) -> bool {
        false
    }

    /// Prepare one recording (`trials x time x units`). Default: its centred sample matrix
    /// ([`Samples`]).
    fn prepare(&self, x: ArrayView3<'_, f64>) -> Result<Prepared> {
        Ok(Prepared::Samples(Samples::new(x, "recording")?))
    }

    /// Score two prepared recordings.
    fn score(&self, a: &Prepared, b: &Prepared) -> Result<Scored>;

    /// [`score`](Self::score) together with the arrays that certify it, when the metric has
    /// any (DSA), from one computation.
    fn score_certified(&self, a: &Prepared, b: &Prepared) -> Result<(Scored, Option<Certificate>)> {
        Ok((self.score(a, b)?, None))
    }

    /// The metric's name (`dsa`, `procrustes`, ...).
    fn name(&self) -> &'static str {
        self.info().name
    }

    /// The canonical parameters: [`params`](Self::params) plus `metric` (the name) and
    /// `version`, as compact JSON with sorted keys. Results are cached by its hash.
    fn canonical(&self) -> Value {
        let mut v = self.params();
        if let Value::Object(m) = &mut v {
            m.insert("metric".into(), Value::from(self.info().name));
            m.insert("version".into(), Value::from(self.info().version));
        }
        v
    }

    /// The unit of the value, read from the `score` parameter: `rad` (angular),
    /// `angle/(pi/2)` (normalized), `euclidean`, `wasserstein`, `1 - similarity` (distance)
    /// or `similarity`.
    fn unit(&self) -> &'static str {
        match self.params().get("score").and_then(Value::as_str) {
            Some("normalized") => "angle/(pi/2)",
            Some("euclidean") => "euclidean",
            Some("wasserstein") => "wasserstein",
            Some("distance") => "1 - similarity",
            Some("similarity") => "similarity",
            _ => "rad",
        }
    }

    /// Prepare both and score them.
    fn compare(&self, x: ArrayView3<'_, f64>, y: ArrayView3<'_, f64>) -> Result<Scored> {
        let a = self.prepare(x).map_err(|e| annotate(e, "left recording"))?;
        let b = self.prepare(y).map_err(|e| annotate(e, "right recording"))?;
        self.score(&a, &b)
    }
}

fn annotate(e: MetricError, side: &str) -> MetricError {
    match e {
        MetricError::NonFinite { what, value, index } if what == "recording" => {
            MetricError::NonFinite { what: side.into(), value, index }
        }
        MetricError::AllZero { what, detail } if what == "recording" => {
            MetricError::AllZero { what: side.into(), detail }
        }
        MetricError::Empty { what, shape } if what == "recording" => MetricError::Empty { what: side.into(), shape },
        other => other,
    }
}

/// The type of a parameter's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A non-negative integer.
    Count,
    /// A finite number.
    Number,
    /// `true` / `false` (also `1`/`0`, `yes`/`no`).
    Flag,
    /// One of these words.
    Choice(&'static [&'static str]),
}

impl ParamKind {
    /// Convert the text of a value into JSON of this kind, or say what it should be.
    pub fn read(&self, text: &str) -> std::result::Result<Value, String> {
        let t = text.trim();
        match self {
            ParamKind::Count => t.parse::<u64>().map(Value::from).map_err(|_| "is not a non-negative integer".into()),
            ParamKind::Number => match t.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Value::from(x)),
                Ok(_) => Err("is not a finite number".into()),
                Err(_) => Err("is not a number".into()),
            },
            ParamKind::Flag => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Value::Bool(true)),
                "false" | "0" | "no" => Ok(Value::Bool(false)),
                _ => Err("is not true or false".into()),
            },
            ParamKind::Choice(options) => options
                .iter()
                .find(|o| o.eq_ignore_ascii_case(t))
                .map(|o| Value::from(*o))
                .ok_or_else(|| format!("is not allowed; choose one of {}", options.join(", "))),
        }
    }

    /// `integer`, `number`, `true|false` or the choices, for help texts.
    pub fn describe(&self) -> String {
        match self {
            ParamKind::Count => "integer".into(),
            ParamKind::Number => "number".into(),
            ParamKind::Flag => "true|false".into(),
            ParamKind::Choice(o) => o.join("|"),
        }
    }
}

/// One parameter of a metric's text specification.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its key (`n_delays`).
    pub name: &'static str,
    /// Its values.
    pub kind: ParamKind,
    /// Its default, as text (`"1"`, `"none"`).
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Builds a metric from its typed parameters, or says what is wrong with them.
pub type BuildFn = fn(Map<String, Value>) -> std::result::Result<Box<dyn Metric>, String>;

/// A metric's registry entry.
pub struct MetricInfo {
    /// Name in specifications (`dsa`).
    pub name: &'static str,
    /// Version of its numerical definition: part of the canonical parameters, so a change
    /// that alters results bumps it and invalidates exactly this metric's cached results.
    pub version: u32,
    /// One line: what it computes.
    pub summary: &'static str,
    /// The formula it computes, in plain text.
    pub formula: &'static str,
    /// The paper or code it follows.
    pub reference: &'static str,
    /// Its parameters, in the order help lists them.
    pub params: &'static [Param],
    /// Build the metric from parameters already read by [`ParamKind::read`] (keys checked
    /// against `params`).
    pub build: BuildFn,
}

impl fmt::Debug for MetricInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricInfo").field("name", &self.name).field("version", &self.version).finish()
    }
}

impl MetricInfo {
    /// A help text: summary, formula, reference and one line per parameter.
    pub fn help(&self) -> String {
        let mut s = format!(
            "{}: {}\n\n  {}\n\nReference: {}\n\nParameters (name=value, comma-separated):\n",
            self.name,
            self.summary,
            self.formula.replace('\n', "\n  "),
            self.reference
        );
        let width = self.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in self.params {
            s.push_str(&format!(
                "  {:width$}  {} (default {}; {})\n",
                p.name,
                p.help,
                p.default,
                p.kind.describe(),
                width = width
            ));
        }
        s
    }
}

/// Every metric dynsim has, in the order help lists them.
pub static METRICS: &[&MetricInfo] = &[
    &crate::dsa::DSA_INFO,
    &crate::shape::PROCRUSTES_INFO,
    &crate::cka::CKA_INFO,
    &crate::rsa::RSA_INFO,
    &crate::cca::CCA_INFO,
    &crate::cca::SVCCA_INFO,
    &crate::cca::PWCCA_INFO,
];

/// The registry entry of a metric by name (case-insensitive).
pub fn metric_info(name: &str) -> Option<&'static MetricInfo> {
    METRICS.iter().copied().find(|m| m.name.eq_ignore_ascii_case(name.trim()))
}

/// A specification that cannot be read: what is wrong and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metric {spec:?}: {detail}")]
pub struct SpecError {
    /// The specification as given.
    pub spec: String,
    /// What is wrong and what to do.
    pub detail: String,
}

/// Split `name[:key=value,...]` into the name and its parameters (keys lower-cased; a key
/// given twice is an error).
pub fn split_spec(text: &str) -> std::result::Result<(String, BTreeMap<String, String>), SpecError> {
    let err = |detail: String| SpecError { spec: text.to_string(), detail };
    let (name, rest) = match text.trim().split_once(':') {
        Some((n, r)) => (n.trim(), r),
        None => (text.trim(), ""),
    };
    let mut kv = BTreeMap::new();
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(err(format!("{part:?} is not key=value")));
        };
        let k = k.trim().to_ascii_lowercase();
        if kv.insert(k.clone(), v.trim().to_string()).is_some() {
            return Err(err(format!("parameter {k} is given twice")));
        }
    }
    Ok((name.to_ascii_lowercase(), kv))
}

/// Build a metric from its name and textual parameters: every key must be one of the
/// metric's [`Param`]s, every value of its kind; then the metric validates them together.
pub fn build_metric(name: &str, kv: &BTreeMap<String, String>) -> std::result::Result<Box<dyn Metric>, String> {
    let Some(info) = metric_info(name) else {
        let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        return Err(format!("unknown metric {name:?}; the metrics are {}", names.join(", ")));
    };
    let mut map = Map::new();
    for (k, v) in kv {
        let Some(p) = info.params.iter().find(|p| p.name == k) else {
            let names: Vec<&str> = info.params.iter().map(|p| p.name).collect();
            return Err(format!("{} has no parameter {k:?}; its parameters are {}", info.name, names.join(", ")));
        };
        let value = p.kind.read(v).map_err(|why| format!("{k}={v:?} {why}"))?;
        map.insert(k.clone(), value);
    }
    (info.build)(map)
}

/// Parse `name[:key=value,...]` (e.g. `dsa:n_delays=33,delay_interval=6,rank=50`) into a
/// validated metric.
pub fn parse_spec(text: &str) -> std::result::Result<Box<dyn Metric>, SpecError> {
    let (name, kv) = split_spec(text)?;
    build_metric(&name, &kv).map_err(|detail| SpecError { spec: text.to_string(), detail })
}

/// Read parameters (already typed by [`ParamKind::read`]) into a metric's options struct,
/// whose serde defaults are the parameters' defaults.
pub(crate) fn options<T: DeserializeOwned>(map: Map<String, Value>) -> std::result::Result<T, String> {
    serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
}

/// JSON of a serde-serialisable parameter set (an object).
pub(crate) fn to_json<T: serde::Serialize>(p: &T) -> Value {
    serde_json::to_value(p).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parameter of every metric reads its own default, and the options struct accepts
    /// every key of the table (and no key outside it: deny_unknown_fields).
    #[test]
    fn parameter_tables_match_the_options_structs() {
        for info in METRICS {
            let mut all = BTreeMap::new();
            for p in info.params {
                if p.default != "none" {
                    p.kind.read(p.default).unwrap_or_else(|e| panic!("{}.{}: default {e}", info.name, p.name));
                }
                let one: BTreeMap<String, String> =
                    [(p.name.to_string(), p.default.to_string())].into_iter().filter(|(_, v)| v != "none").collect();
                build_metric(info.name, &one).unwrap_or_else(|e| panic!("{}.{}: {e}", info.name, p.name));
                all.insert(p.name, ());
            }
            assert_eq!(all.len(), info.params.len(), "{}: a parameter is listed twice", info.name);
            let m = build_metric(info.name, &BTreeMap::new()).expect("defaults build");
            assert_eq!(m.name(), info.name);
            let c = m.canonical();
            assert_eq!(c["metric"], info.name);
            assert!(info.help().contains(info.reference));
        }
    }
}
