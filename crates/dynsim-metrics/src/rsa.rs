//! Representational similarity analysis (Kriegeskorte, Mur & Bandettini 2008), as
//! rsatoolbox computes it: one representational dissimilarity matrix (RDM) per recording
//! over its conditions, then a comparison of the two RDMs.

use ndarray::ArrayView3;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{MetricError, Result};
use crate::linalg::{check_finite3, check_nonempty3};
use crate::metric::{self, Matching, Metric, MetricInfo, Param, ParamKind, Prepared, Scored};

/// Which rows of a recording are the conditions of its RDM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Conditions {
    /// Trial-averaged: each time step is a condition, its pattern the units' mean over
    /// trials (`time x units`). A `conditions x units` table ingested as one trial is
    /// exactly its rows. Both recordings need the same number of time steps.
    #[default]
    Time,
    /// Each trial is a condition, its pattern the whole trial (`time * units` values):
    /// recordings whose trials are the task's conditions (e.g. one trial per stimulus).
    /// Both recordings need the same number of trials.
    Trial,
}

/// How the dissimilarity of two condition patterns `p`, `q` (length `m`) is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RdmMethod {
    /// `1 - pearson(p, q)` (rsatoolbox's `correlation`).
    #[default]
    Correlation,
    /// `|p - q|^2 / m` (rsatoolbox's `euclidean`: the squared distance per channel).
    Euclidean,
}

/// How two RDMs (their upper triangles, row by row) are compared (rsatoolbox's
/// `rdm.compare` methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RdmComparison {
    /// Spearman's rank correlation (average ranks for ties).
    #[default]
    Spearman,
    /// Kendall's tau-a: (concordant - discordant pairs) / all pairs (ties count as neither).
    TauA,
    /// Pearson correlation (rsatoolbox's `corr`).
    Corr,
    /// Cosine similarity of the raw dissimilarity vectors.
    Cosine,
}

/// What RSA reports as the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimilarityScore {
    /// `1 - similarity`: 0 for identical, like dynsim's other distances.
    #[default]
    Distance,
    /// The similarity itself (as rsatoolbox and the SVCCA code report it).
    Similarity,
}

impl SimilarityScore {
    /// The reported value of a similarity.
    pub fn of(&self, similarity: f64) -> f64 {
        match self {
            SimilarityScore::Distance => 1.0 - similarity,
            SimilarityScore::Similarity => similarity,
        }
    }
}

/// An RDM: its upper triangle (`i < j`, row by row) over `n` conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Rdm {
    n: usize,
    v: Vec<f64>,
}

impl Rdm {
    /// The RDM of `patterns` (`conditions x values`, row-major, `n` rows of `m`).
    pub fn from_patterns(patterns: &[f64], n: usize, m: usize, method: RdmMethod) -> Result<Rdm> {
        if n < 3 || m == 0 {
            return Err(MetricError::InvalidParameter {
                name: "conditions",
                value: format!("{n} conditions of {m} values"),
                expected: "at least 3 conditions (an RDM comparison needs at least 3 dissimilarities) with at least \
                           one value each"
                    .into(),
            });
        }
        let row = |i: usize| &patterns[i * m..(i + 1) * m];
        let mut v = Vec::with_capacity(n * (n - 1) / 2);
        match method {
            RdmMethod::Correlation => {
                // rsatoolbox: centre each pattern, normalise, 1 - inner products
                let mut z = Vec::with_capacity(n * m);
                for i in 0..n {
                    let p = row(i);
                    let mean = p.iter().sum::<f64>() / m as f64;
                    let c: Vec<f64> = p.iter().map(|x| x - mean).collect();
                    let norm = c.iter().map(|x| x * x).sum::<f64>().sqrt();
                    if norm == 0.0 {
                        return Err(MetricError::AllZero {
                            what: format!("condition {i} of the recording"),
                            detail: " after centring (a constant pattern has no correlation); use rdm=euclidean".into(),
                        });
                    }
                    z.extend(c.iter().map(|x| x / norm));
                }
                for i in 0..n {
                    for j in i + 1..n {
                        let r: f64 = z[i * m..(i + 1) * m].iter().zip(&z[j * m..(j + 1) * m]).map(|(a, b)| a * b).sum();
                        v.push(1.0 - r);
                    }
                }
            }
            RdmMethod::Euclidean => {
                for i in 0..n {
                    for j in i + 1..n {
                        let d: f64 = row(i).iter().zip(row(j)).map(|(a, b)| (a - b) * (a - b)).sum();
                        v.push(d / m as f64);
                    }
                }
            }
        }
        Ok(Rdm { n, v })
    }

    /// Number of conditions.
    pub fn conditions(&self) -> usize {
        self.n
    }

    /// The upper triangle, row by row (`i < j`).
    pub fn vector(&self) -> &[f64] {
        &self.v
    }
}

/// RSA: RDMs over conditions ([`Conditions`], [`RdmMethod`]) compared by an
/// [`RdmComparison`].
///
/// ```
/// use dynsim_metrics::{Rsa, Metric};
/// use ndarray::Array3;
/// let x = Array3::from_shape_fn((1, 6, 4), |(_, t, u)| (((t + 1) * (u + 2)) as f64 * 0.7).sin());
/// let y = x.mapv(|v| 2.0 * v);
/// let s = Rsa::default().compare(x.view(), y.view()).unwrap();
/// assert!(s.value.abs() < 1e-12); // 1 - spearman of identical correlation RDMs
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Rsa {
    /// The conditions.
    pub conditions: Conditions,
    /// The dissimilarity.
    pub rdm: RdmMethod,
    /// The RDM comparison.
    pub compare: RdmComparison,
    /// Distance or similarity.
    pub score: SimilarityScore,
}

impl Rsa {
    /// The RDM of one recording.
    pub fn rdm(&self, x: ArrayView3<'_, f64>) -> Result<Rdm> {
        check_nonempty3(x, "recording")?;
        check_finite3(x, "recording")?;
        let (tr, t, u) = x.dim();
        match self.conditions {
            Conditions::Time => {
                let mut p = vec![0.0; t * u];
                for k in 0..tr {
                    for i in 0..t {
                        for j in 0..u {
                            p[i * u + j] += x[[k, i, j]];
                        }
                    }
                }
                p.iter_mut().for_each(|v| *v /= tr as f64);
                Rdm::from_patterns(&p, t, u, self.rdm)
            }
            Conditions::Trial => {
                let p: Vec<f64> = x.iter().copied().collect();
                Rdm::from_patterns(&p, tr, t * u, self.rdm)
            }
        }
    }

    /// The similarity of two RDMs.
    pub fn similarity(&self, a: &Rdm, b: &Rdm) -> Result<f64> {
        if a.n != b.n {
            return Err(MetricError::ShapeMismatch {
                detail: format!(
                    "RSA compares RDMs over the same conditions, but the left has {} and the right {}; {}",
                    a.n,
                    b.n,
                    match self.conditions {
                        Conditions::Time => "record the same time steps (conditions=time) or use conditions=trial",
                        Conditions::Trial => "record the same trials (conditions=trial) or use conditions=time",
                    }
                ),
            });
        }
        let (x, y) = (&a.v, &b.v);
        let s = match self.compare {
            RdmComparison::Cosine => cosine(x, y),
            RdmComparison::Corr => pearson(x, y),
            RdmComparison::Spearman => pearson(&ranks(x), &ranks(y)),
            RdmComparison::TauA => tau_a(x, y),
        };
        if !s.is_finite() {
            return Err(MetricError::AllZero {
                what: "an RDM".into(),
                detail: format!(
                    " or constant ({:?} is undefined for a constant dissimilarity vector); use another comparison",
                    self.compare
                ),
            });
        }
        Ok(s)
    }
}

fn cosine(x: &[f64], y: &[f64]) -> f64 {
    let dot: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
    let nx = x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let ny = y.iter().map(|a| a * a).sum::<f64>().sqrt();
    dot / (nx * ny)
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let centre = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|a| a - m).collect::<Vec<f64>>()
    };
    cosine(&centre(x), &centre(y))
}

/// Ranks from 1, ties get their average rank (scipy's `rankdata`).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Kendall's tau-a in O(n log n) (Knight 1966, as scipy's `kendalltau`): with `n0` all
/// pairs, `t_x`, `t_y` the pairs tied in x, in y, `t_xy` tied in both and `d` the discordant
/// pairs, `concordant - discordant = n0 - t_x - t_y + t_xy - 2d`; tau-a divides it by `n0`.
fn tau_a(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    let dense = |v: &[f64]| -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0; n];
        let mut rank = 0;
        for k in 0..n {
            if k > 0 && v[idx[k]] != v[idx[k - 1]] {
                rank += 1;
            }
            r[idx[k]] = rank;
        }
        r
    };
    let (rx, ry) = (dense(x), dense(y));
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (rx[i], ry[i]));
    let tied = |key: &dyn Fn(usize) -> (usize, usize)| -> u64 {
        let mut total = 0u64;
        let mut run = 1u64;
        for k in 1..=n {
            if k < n && key(order[k]) == key(order[k - 1]) {
                run += 1;
            } else {
                total += run * (run - 1) / 2;
                run = 1;
            }
        }
        total
    };
    let t_xy = tied(&|i| (rx[i], ry[i]));
    let t_x = tied(&|i| (rx[i], 0));
    let mut by_y = order.clone();
    by_y.sort_by_key(|&i| ry[i]);
    let t_y = {
        let mut total = 0u64;
        let mut run = 1u64;
        for k in 1..=n {
            if k < n && ry[by_y[k]] == ry[by_y[k - 1]] {
                run += 1;
            } else {
                total += run * (run - 1) / 2;
                run = 1;
            }
        }
        total
    };
    // Discordant pairs: in (x, y) order, pairs i < j with y_i > y_j (a Fenwick tree over
    // the dense y ranks).
    let m = ry.iter().max().map_or(0, |v| v + 1);
    let mut tree = vec![0u64; m + 1];
    let mut d = 0u64;
    for (seen, &i) in order.iter().enumerate() {
        let mut at_most = 0u64;
        let mut k = ry[i] + 1;
        while k > 0 {
            at_most += tree[k];
            k &= k - 1;
        }
        d += seen as u64 - at_most;
        let mut k = ry[i] + 1;
        while k <= m {
            tree[k] += 1;
            k += k & k.wrapping_neg();
        }
    }
    let n0 = (n * (n - 1) / 2) as u64;
    let num = n0 as f64 - t_x as f64 - t_y as f64 + t_xy as f64 - 2.0 * d as f64;
    num / n0 as f64
}

/// RSA's registry entry: `rsa:rdm=correlation,compare=spearman,conditions=time`.
pub static RSA_INFO: MetricInfo = MetricInfo {
    name: "rsa",
    version: 1,
    summary: "Representational similarity analysis: an RDM over conditions per recording, RDMs compared by rank \\
              or linear correlation (rsatoolbox's definitions)",
    formula: "RDM_ij = 1 - pearson(p_i, p_j) (correlation) or |p_i - p_j|^2 / units (euclidean), i < j\\n\\
              s = spearman | kendall tau-a | pearson | cosine (RDM_x, RDM_y);  value = 1 - s (distance) or s\\n\\
              conditions=time: trial-averaged, one condition per time step; conditions=trial: one per trial",
    reference: "Kriegeskorte, Mur & Bandettini (2008), Representational similarity analysis, Front. Syst. \\
                Neurosci.; Nili et al. (2014), A toolbox for RSA, PLoS Comput. Biol. (rsatoolbox 0.3.2)",
    params: &[
        Param {
            name: "rdm",
            kind: ParamKind::Choice(&["correlation", "euclidean"]),
            default: "correlation",
            help: "dissimilarity: 1 - pearson, or squared distance per unit",
        },
        Param {
            name: "compare",
            kind: ParamKind::Choice(&["spearman", "tau_a", "corr", "cosine"]),
            default: "spearman",
            help: "RDM comparison (tau_a: Kendall's tau-a; corr: pearson)",
        },
        Param {
            name: "conditions",
            kind: ParamKind::Choice(&["time", "trial"]),
            default: "time",
            help: "time: trial-average, a condition per time step; trial: a condition per trial",
        },
        Param {
            name: "score",
            kind: ParamKind::Choice(&["distance", "similarity"]),
            default: "distance",
            help: "value = 1 - similarity (distance) or the similarity",
        },
    ],
    build: build_rsa,
};

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RsaOptions {
    rdm: Option<String>,
    compare: Option<String>,
    conditions: Option<String>,
    score: Option<String>,
}

fn build_rsa(map: Map<String, Value>) -> std::result::Result<Box<dyn Metric>, String> {
    let o: RsaOptions = metric::options(map)?;
    Ok(Box::new(Rsa {
        conditions: if o.conditions.as_deref() == Some("trial") { Conditions::Trial } else { Conditions::Time },
        rdm: if o.rdm.as_deref() == Some("euclidean") { RdmMethod::Euclidean } else { RdmMethod::Correlation },
        compare: match o.compare.as_deref() {
            Some("tau_a") => RdmComparison::TauA,
            Some("corr") => RdmComparison::Corr,
            Some("cosine") => RdmComparison::Cosine,
            _ => RdmComparison::Spearman,
        },
        score: similarity_score(o.score.as_deref()),
    }))
}

pub(crate) fn similarity_score(s: Option<&str>) -> SimilarityScore {
    if s == Some("similarity") {
        SimilarityScore::Similarity
    } else {
        SimilarityScore::Distance
    }
}

impl Metric for Rsa {
    fn info(&self) -> &'static MetricInfo {
        &RSA_INFO
    }

    fn params(&self) -> Value {
        metric::to_json(self)
    }

    fn matching(&self) -> Matching {
        match self.conditions {
            Conditions::Time => Matching::Time,
            Conditions::Trial => Matching::Trials,
        }
    }

    fn prepare_key(&self) -> String {
        json!({ "rsa_rdm": { "conditions": self.conditions, "rdm": self.rdm } }).to_string()
    }

    fn compact(&self) -> bool {
        true
    }

    fn prepare(&self, x: ArrayView3<'_, f64>) -> Result<Prepared> {
        Ok(Prepared::Rdm(self.rdm(x)?))
    }

    /// The value; extras `similarity` and `conditions` (their number).
    fn score(&self, a: &Prepared, b: &Prepared) -> Result<Scored> {
        let (a, b) = (a.rdm("rsa")?, b.rdm("rsa")?);
        let s = self.similarity(a, b)?;
        let mut extras = Map::new();
        extras.insert("similarity".into(), json!(s));
        extras.insert("conditions".into(), json!(a.n));
        Ok(Scored { value: self.score.of(s), extras })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tau-a against the O(n^2) definition, with ties in x, in y and in both (pairs that
    /// repeat: period 12 below).
    #[test]
    fn tau_a_matches_the_pairwise_definition() {
        let cases: [(Vec<f64>, Vec<f64>); 2] = [
            (
                (0..60).map(|i| ((i * 7) % 11) as f64).collect(),
                (0..60).map(|i| ((i * 5) % 13) as f64 + if i % 4 == 0 { 0.5 } else { 0.0 }).collect(),
            ),
            ((0..60).map(|i| (i % 6) as f64).collect(), (0..60).map(|i| ((i % 4) * (i % 3)) as f64).collect()),
        ];
        for (x, y) in cases {
            let n = x.len();
            let mut s = 0.0;
            for i in 0..n {
                for j in i + 1..n {
                    if x[i] != x[j] && y[i] != y[j] {
                        s += (x[i] - x[j]).signum() * (y[i] - y[j]).signum();
                    }
                }
            }
            let want = s / (n * (n - 1) / 2) as f64;
            assert!((tau_a(&x, &y) - want).abs() < 1e-14, "{} vs {want}", tau_a(&x, &y));
        }
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }
}
