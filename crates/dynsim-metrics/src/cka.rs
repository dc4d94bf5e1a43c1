//! Centred kernel alignment (Kornblith et al. 2019).

use faer::{Mat, MatRef};
use ndarray::ArrayView3;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::error::{MetricError, Result};
use crate::linalg::{arccos_clipped, fro, inner, mul};
use crate::metric::{self, Metric, MetricInfo, Param, ParamKind, Prepared, Samples, Scored};
use crate::shape::{prepare_pair, score_choice};
use crate::Score;

impl Serialize for Kernel {
    /// `"linear"` or `{"rbf": threshold}` (the canonical form of CKA specifications).
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Kernel::Linear => s.serialize_str("linear"),
            Kernel::Rbf { threshold } => json!({ "rbf": threshold }).serialize(s),
        }
    }
}

/// CKA as a distance: the angle `arccos(CKA)` (radians) or that angle over `pi/2`
/// ([`Score::Normalized`], the seed study's scale); the similarity is an extra.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CkaDistance {
    /// Kernel and estimator.
    #[serde(flatten)]
    pub cka: Cka,
    /// [`Score::Angular`] or [`Score::Normalized`].
    pub score: Score,
}

impl CkaDistance {
    /// Validate: the RBF bandwidth multiplier is positive and finite; the score is angular.
    pub fn new(cka: Cka, score: Score) -> Result<Self> {
        if let Kernel::Rbf { threshold } = cka.kernel {
            if !(threshold > 0.0 && threshold.is_finite()) {
                return Err(MetricError::InvalidParameter {
                    name: "threshold",
                    value: threshold.to_string(),
                    expected: "a positive multiplier of the median bandwidth".into(),
                });
            }
        }
        if score == Score::Euclidean {
            return Err(MetricError::InvalidParameter {
                name: "score",
                value: "euclidean".into(),
                expected: "angular or normalized: CKA is reported as the angle arccos(CKA)".into(),
            });
        }
        Ok(Self { cka, score })
    }
}

/// CKA's registry entry: `cka:kernel=rbf,threshold=0.5,debiased=true`.
pub static CKA_INFO: MetricInfo = MetricInfo {
    name: "cka",
    version: 1,
    summary: "Centred kernel alignment, reported as the angle arccos(CKA)",
    formula: "CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L));  linear, biased: |Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F)\n\
              value = arccos(CKA) (radians) or arccos(CKA)/(pi/2) (normalized); extras: similarity = CKA",
    reference: "Kornblith, Norouzi, Lee & Hinton (2019), Similarity of neural network representations revisited, \
                ICML; debiased: Song et al. (2012)",
    params: &[
        Param { name: "kernel", kind: ParamKind::Choice(&["linear", "rbf"]), default: "linear", help: "the kernel" },
        Param {
            name: "threshold",
            kind: ParamKind::Number,
            default: "none",
            help: "rbf only: bandwidth as a multiple of the median pairwise distance (default 1)",
        },
        Param { name: "debiased", kind: ParamKind::Flag, default: "false", help: "the unbiased HSIC estimator" },
        Param {
            name: "score",
            kind: ParamKind::Choice(&["angular", "normalized"]),
            default: "angular",
            help: "angular (radians) or normalized (angle/(pi/2), the seed study's scale)",
        },
    ],
    build: build_cka,
};

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CkaOptions {
    kernel: Option<String>,
    threshold: Option<f64>,
    debiased: bool,
    score: Option<String>,
}

fn build_cka(map: Map<String, Value>) -> std::result::Result<Box<dyn Metric>, String> {
    let o: CkaOptions = metric::options(map)?;
    let rbf = o.kernel.as_deref() == Some("rbf");
    if o.threshold.is_some() && !rbf {
        return Err("threshold applies to kernel=rbf only".into());
    }
    let cka = Cka {
        kernel: if rbf { Kernel::Rbf { threshold: o.threshold.unwrap_or(1.0) } } else { Kernel::Linear },
        estimator: if o.debiased { HsicEstimator::Debiased } else { HsicEstimator::Biased },
    };
    Ok(Box::new(CkaDistance::new(cka, score_choice(o.score.as_deref())).map_err(|e| e.to_string())?))
}

impl Metric for CkaDistance {
    fn info(&self) -> &'static MetricInfo {
        &CKA_INFO
    }

    fn params(&self) -> Value {
        metric::to_json(self)
    }

    /// The angle; extras `similarity` (CKA itself).
    fn score(&self, a: &Prepared, b: &Prepared) -> Result<Scored> {
        let (a, b) = (a.samples("cka")?, b.samples("cka")?);
        Samples::check_pair(a, b)?;
        let s = self.cka.similarity_samples(a.x.as_ref(), b.x.as_ref())?;
        let value = self.score.of_cosine(s).unwrap_or(f64::NAN);
        let mut extras = Map::new();
        extras.insert("similarity".into(), json!(s));
        Ok(Scored { value, extras })
    }
}

/// The kernel CKA compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// `k(x, x') = <x, x'>`, computed in feature space (no `n x n` Gram matrix).
    Linear,
    /// `k(x, x') = exp(-|x - x'|^2 / (2 threshold^2 median_sq))`, where `median_sq` is the
    /// median of all squared pairwise distances (the median heuristic of Kornblith et al.;
    /// `threshold = 1` is the usual choice). Needs `n x n` Gram matrices.
    Rbf {
        /// Multiplier of the median bandwidth.
        threshold: f64,
    },
}

/// Which HSIC estimator CKA normalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HsicEstimator {
    /// The biased estimator `tr(K H L H)` (the original CKA).
    #[default]
    Biased,
    /// The unbiased estimator of Song et al. (2012), "debiased CKA" (Kornblith's
    /// `debiased=True`; Davari et al. 2022).
    Debiased,
}

/// Largest sample count for Gram-matrix (RBF) CKA: two `n x n` f64 matrices of 512 MiB each.
pub const MAX_GRAM_SAMPLES: usize = 8192;

/// Centred kernel alignment between two recordings (trials and time flatten into samples;
/// units may differ):
///
/// ```text
/// CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))
/// linear, biased: |Y^T X|_F^2 / (|X^T X|_F |Y^T Y|_F)   (columns centred)
/// ```
///
/// The debiased linear form uses Kornblith's feature-space expression of the unbiased HSIC;
/// Gram-matrix kernels use the unbiased centring of the Gram matrices.
/// [`distance`](Cka::distance) is the angular form `arccos(CKA)`.
///
/// ```
/// use dynsim_metrics::Cka;
/// use ndarray::Array3;
/// let x = Array3::from_shape_fn((1, 40, 3), |(_, t, u)| ((t * (u + 2)) as f64).sin());
/// let y = x.mapv(|v| 3.0 * v + 1.0);
/// assert!((Cka::default().similarity(x.view(), y.view()).unwrap() - 1.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Cka {
    /// The kernel.
    pub kernel: Kernel,
    /// The HSIC estimator.
    pub estimator: HsicEstimator,
}

impl Default for Cka {
    fn default() -> Self {
        Self { kernel: Kernel::Linear, estimator: HsicEstimator::Biased }
    }
}

impl Cka {
    /// The CKA similarity in `[0, 1]` (the debiased estimator can dip slightly below 0).
    pub fn similarity(&self, x: ArrayView3<'_, f64>, y: ArrayView3<'_, f64>) -> Result<f64> {
        let (xs, ys) = prepare_pair(x, y)?;
        self.similarity_samples(xs.x.as_ref(), ys.x.as_ref())
    }

    /// CKA of two column-centred `samples x units` matrices (validated, same rows).
    fn similarity_samples(&self, xs: MatRef<'_, f64>, ys: MatRef<'_, f64>) -> Result<f64> {
        for (m, what) in [(xs, "left recording"), (ys, "right recording")] {
            if fro(m) == 0.0 {
                return Err(MetricError::AllZero { what: what.into(), detail: " after centring (no variance)".into() });
            }
        }
        let n = xs.nrows();
        if self.estimator == HsicEstimator::Debiased && n < 4 {
            return Err(MetricError::InvalidParameter {
                name: "estimator",
                value: "debiased".into(),
                expected: format!("at least 4 samples for the unbiased HSIC estimator, got {n}"),
            });
        }
        match self.kernel {
            Kernel::Linear => Ok(linear(xs, ys, self.estimator)),
            Kernel::Rbf { threshold } => {
                if !(threshold > 0.0 && threshold.is_finite()) {
                    return Err(MetricError::InvalidParameter {
                        name: "threshold",
                        value: threshold.to_string(),
                        expected: "a positive multiplier of the median bandwidth".into(),
                    });
                }
                if n > MAX_GRAM_SAMPLES {
                    return Err(MetricError::TooLarge {
                        what: "RBF CKA",
                        detail: format!(
                            "{n} samples need two {n}x{n} Gram matrices; at most {MAX_GRAM_SAMPLES} samples are \
                             allowed: subsample trials or time steps, or use the linear kernel"
                        ),
                    });
                }
                let k = centre_gram(rbf_gram(xs, threshold), self.estimator);
                let l = centre_gram(rbf_gram(ys, threshold), self.estimator);
                Ok(inner(k.as_ref(), l.as_ref()) / (fro(k.as_ref()) * fro(l.as_ref())))
            }
        }
    }

    /// The angular distance `arccos(CKA)` (CKA clipped into `[-1, 1]`).
    pub fn distance(&self, x: ArrayView3<'_, f64>, y: ArrayView3<'_, f64>) -> Result<f64> {
        Ok(arccos_clipped(self.similarity(x, y)?))
    }
}

fn linear(x: MatRef<'_, f64>, y: MatRef<'_, f64>, est: HsicEstimator) -> f64 {
    let xty = fro(mul(x.transpose(), y.as_ref()).as_ref()).powi(2);
    let xtx = fro(mul(x.transpose(), x.as_ref()).as_ref()).powi(2);
    let yty = fro(mul(y.transpose(), y.as_ref()).as_ref()).powi(2);
    match est {
        HsicEstimator::Biased => xty / (xtx.sqrt() * yty.sqrt()),
        HsicEstimator::Debiased => {
            // Kornblith et al.'s _debiased_dot_product_similarity_helper
            let n = x.nrows() as f64;
            let rows = |m: MatRef<'_, f64>| -> Vec<f64> {
                (0..m.nrows()).map(|i| (0..m.ncols()).map(|j| m[(i, j)] * m[(i, j)]).sum()).collect()
            };
            let (rx, ry) = (rows(x), rows(y));
            let (sx, sy): (f64, f64) = (rx.iter().sum(), ry.iter().sum());
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
            let helper = |xy: f64, ra: &[f64], rb: &[f64], na: f64, nb: f64| {
                xy - n / (n - 2.0) * dot(ra, rb) + na * nb / ((n - 1.0) * (n - 2.0))
            };
            let num = helper(xty, &rx, &ry, sx, sy);
            let dx = helper(xtx, &rx, &rx, sx, sx);
            let dy = helper(yty, &ry, &ry, sy, sy);
            num / (dx * dy).sqrt()
        }
    }
}

fn rbf_gram(x: MatRef<'_, f64>, threshold: f64) -> Mat<f64> {
    let g = mul(x.as_ref(), x.transpose());
    let n = g.nrows();
    let mut d2 = Mat::from_fn(n, n, |i, j| (g[(i, i)] + g[(j, j)] - 2.0 * g[(i, j)]).max(0.0));
    let mut all: Vec<f64> = (0..n).flat_map(|j| (0..n).map(move |i| (i, j))).map(|(i, j)| d2[(i, j)]).collect();
    let median = median(&mut all);
    let denom = 2.0 * threshold * threshold * median;
    for j in 0..n {
        for i in 0..n {
            d2[(i, j)] = if denom > 0.0 { (-d2[(i, j)] / denom).exp() } else { 1.0 };
        }
    }
    d2
}

/// numpy's median (mean of the two middle values for even counts).
fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    v.sort_by(f64::total_cmp);
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Centre a Gram matrix: `H K H` (biased) or Kornblith's unbiased centring.
fn centre_gram(mut k: Mat<f64>, est: HsicEstimator) -> Mat<f64> {
    let n = k.nrows();
    let nf = n as f64;
    match est {
        HsicEstimator::Biased => {
            let col: Vec<f64> = (0..n).map(|j| (0..n).map(|i| k[(i, j)]).sum::<f64>() / nf).collect();
            let total = col.iter().sum::<f64>() / nf;
            for j in 0..n {
                for i in 0..n {
                    k[(i, j)] += total - col[i] - col[j];
                }
            }
        }
        HsicEstimator::Debiased => {
            for i in 0..n {
                k[(i, i)] = 0.0;
            }
            let mut means: Vec<f64> = (0..n).map(|j| (0..n).map(|i| k[(i, j)]).sum::<f64>() / (nf - 2.0)).collect();
            let s = means.iter().sum::<f64>() / (2.0 * (nf - 1.0));
            means.iter_mut().for_each(|m| *m -= s);
            for j in 0..n {
                for i in 0..n {
                    k[(i, j)] -= means[i] + means[j];
                }
            }
            for i in 0..n {
                k[(i, i)] = 0.0;
            }
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    /// The feature-space debiased linear CKA equals the Gram-matrix form with a linear kernel.
    #[test]
    fn debiased_linear_feature_space_equals_gram_form() {
        let x = Array3::from_shape_fn((2, 15, 4), |(k, t, u)| (((k * 15 + t) * (u + 3)) as f64 * 0.731).sin());
        let y = Array3::from_shape_fn((2, 15, 3), |(k, t, u)| {
            (((k * 15 + t) * (u + 1)) as f64 * 0.377).cos() + 0.1 * u as f64
        });
        let (xs, ys) = prepare_pair(x.view(), y.view()).unwrap();
        let (xs, ys) = (xs.x, ys.x);
        let feat = linear(xs.as_ref(), ys.as_ref(), HsicEstimator::Debiased);
        let k = centre_gram(mul(xs.as_ref(), xs.transpose()), HsicEstimator::Debiased);
        let l = centre_gram(mul(ys.as_ref(), ys.transpose()), HsicEstimator::Debiased);
        let gram = inner(k.as_ref(), l.as_ref()) / (fro(k.as_ref()) * fro(l.as_ref()));
        assert!((feat - gram).abs() < 1e-10, "{feat} vs {gram}");
        // and the biased forms agree too
        let featb = linear(xs.as_ref(), ys.as_ref(), HsicEstimator::Biased);
        let kb = centre_gram(mul(xs.as_ref(), xs.transpose()), HsicEstimator::Biased);
        let lb = centre_gram(mul(ys.as_ref(), ys.transpose()), HsicEstimator::Biased);
        let gramb = inner(kb.as_ref(), lb.as_ref()) / (fro(kb.as_ref()) * fro(lb.as_ref()));
        assert!((featb - gramb).abs() < 1e-10);
    }
}
