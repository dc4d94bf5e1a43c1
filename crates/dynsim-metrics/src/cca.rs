//! The CCA family (Google's SVCCA code, `cca_core.get_cca_similarity` and
//! `pwcca.compute_pwcca`): canonical correlations of two recordings' samples, their mean
//! (Raghu et al. 2017), SVCCA (CCA of the leading singular directions) and PWCCA (Morcos,
//! Raghu & Bengio 2018).

use faer::{Mat, MatRef, Side};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{MetricError, Result};
use crate::linalg::{evd_err, mul, svd_err};
use crate::metric::{self, Metric, MetricInfo, Param, ParamKind, Prepared, Samples, Scored};
use crate::rsa::{similarity_score, SimilarityScore};

/// Default regularisation of the covariances (the SVCCA code's `epsilon` as the reference
/// values use it).
pub const CCA_EPSILON: f64 = 1e-10;

/// The canonical correlations of two sample matrices and what PWCCA needs.
#[derive(Debug, Clone)]
pub struct CcaResult {
    /// Canonical correlations, descending (`min(units kept)` of them).
    pub coefficients: Vec<f64>,
    /// Left singular vectors `u` of `Sxx^-1/2 Sxy Syy^-1/2` (`units_x x min`): the
    /// SVCCA code's `coef_x^T`.
    u: Mat<f64>,
    /// Units of each side kept (variance at least `epsilon` after the rescaling).
    kept: (Vec<usize>, Vec<usize>),
}

/// Canonical correlation analysis exactly as `cca_core.get_cca_similarity`: sample
/// covariances (ddof 1) of the centred samples `x` (`n x p`), `y` (`n x q`), each block
/// rescaled by its largest absolute entry (`Sxy` by `sqrt(xmax ymax)`), units whose
/// rescaled variance is below `epsilon` dropped, `epsilon I` added, and the coefficients
/// are the singular values of `Sxx^-1/2 Sxy Syy^-1/2` (inverse square roots by
/// eigen-decomposition, eigenvalues below `1e-15` of the largest treated as zero, as
/// numpy's `pinv`).
pub fn cca(x: MatRef<'_, f64>, y: MatRef<'_, f64>, epsilon: f64) -> Result<CcaResult> {
    let n = x.nrows();
    if n != y.nrows() {
        return Err(MetricError::ShapeMismatch {
            detail: format!("CCA needs the same samples on both sides, got {n} and {}", y.nrows()),
        });
    }
    if n < 2 {
        return Err(MetricError::InvalidParameter {
            name: "samples",
            value: n.to_string(),
            expected: "at least 2 samples for a sample covariance".into(),
        });
    }
    let cov = |a: MatRef<'_, f64>, b: MatRef<'_, f64>| {
        let c = mul(a.transpose(), b);
        let d = (n - 1) as f64;
        Mat::from_fn(c.nrows(), c.ncols(), |i, j| c[(i, j)] / d)
    };
    let (sxx, syy, sxy) = (cov(x, x), cov(y, y), cov(x, y));
    let max_abs = |m: &Mat<f64>| {
        (0..m.ncols())
            .flat_map(|j| (0..m.nrows()).map(move |i| (i, j)))
            .fold(0.0f64, |a, (i, j)| a.max(m[(i, j)].abs()))
    };
    let (xmax, ymax) = (max_abs(&sxx), max_abs(&syy));
    for (m, what) in [(xmax, "left recording"), (ymax, "right recording")] {
        if m == 0.0 {
            return Err(MetricError::AllZero { what: what.into(), detail: " after centring (no variance)".into() });
        }
    }
    let keep = |s: &Mat<f64>, max: f64| -> Vec<usize> {
        (0..s.nrows()).filter(|&i| (s[(i, i)] / max).abs() >= epsilon).collect()
    };
    let (kx, ky) = (keep(&sxx, xmax), keep(&syy, ymax));
    let block = |s: &Mat<f64>, rows: &[usize], cols: &[usize], scale: f64, eps: f64| {
        Mat::from_fn(rows.len(), cols.len(), |i, j| {
            s[(rows[i], cols[j])] / scale + if i == j && eps > 0.0 { eps } else { 0.0 }
        })
    };
    let ixx = inv_sqrt(block(&sxx, &kx, &kx, xmax, epsilon))?;
    let iyy = inv_sqrt(block(&syy, &ky, &ky, ymax, epsilon))?;
    let sxy = block(&sxy, &kx, &ky, (xmax * ymax).sqrt(), 0.0);
    let arr = mul(mul(ixx.as_ref(), sxy.as_ref()).as_ref(), iyy.as_ref());
    let svd = arr.thin_svd().map_err(svd_err)?;
    let k = kx.len().min(ky.len());
    let mut order: Vec<usize> = (0..k).collect();
    let s: Vec<f64> = (0..k).map(|i| svd.S()[i].abs()).collect();
    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    let coefficients = order.iter().map(|&i| s[i]).collect();
    let u = Mat::from_fn(kx.len(), k, |i, j| svd.U()[(i, order[j])]);
    Ok(CcaResult { coefficients, u, kept: (kx, ky) })
}

/// `S^-1/2` of a symmetric positive semi-definite matrix (numpy `pinv` then the SVCCA
/// code's `positivedef_matrix_sqrt`).
fn inv_sqrt(s: Mat<f64>) -> Result<Mat<f64>> {
    let evd = s.self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
    let w: Vec<f64> = evd.S().column_vector().iter().copied().collect();
    let wmax = w.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let d: Vec<f64> = w.iter().map(|&l| if l > 1e-15 * wmax { 1.0 / l.sqrt() } else { 0.0 }).collect();
    let v = evd.U();
    let vd = Mat::from_fn(v.nrows(), v.ncols(), |i, j| v[(i, j)] * d[j]);
    Ok(mul(vd.as_ref(), v.transpose()))
}

/// How CCA's coefficients are summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CcaSummary {
    /// Their mean (Raghu et al.'s SVCCA similarity).
    #[default]
    Mean,
    /// The mean of their squares (Yanai's generalised coefficient of determination).
    MeanSquared,
}

/// Mean canonical correlation between two recordings' samples (trials and time flatten
/// into samples; units may differ).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Cca {
    /// Mean or mean squared coefficient.
    pub summary: CcaSummary,
    /// Covariance regularisation (after rescaling), [`CCA_EPSILON`] by default.
    pub epsilon: f64,
    /// Distance (`1 - similarity`) or similarity.
    pub score: SimilarityScore,
}

impl Default for Cca {
    fn default() -> Self {
        Self { summary: CcaSummary::Mean, epsilon: CCA_EPSILON, score: SimilarityScore::Distance }
    }
}

/// How many singular directions SVCCA keeps on each side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SvccaKeep {
    /// These many on the left and on the right.
    Count(usize, usize),
    /// The fewest directions explaining this fraction of each side's variance (Raghu et al.
    /// kept 99%).
    Variance(f64),
}

/// SVCCA (Raghu, Gilmer, Yosinski & Sohl-Dickstein 2017): centre, keep the leading singular
/// directions of each side (`X_k = U_k S_k`), then the mean canonical correlation of those.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Svcca {
    /// Directions kept.
    pub keep: SvccaKeep,
    /// Covariance regularisation of the CCA.
    pub epsilon: f64,
    /// Distance or similarity.
    pub score: SimilarityScore,
}

/// Which canonical directions PWCCA weights by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PwccaDirections {
    /// `U^T (A - mean)`: well defined (the weights do not depend on the arbitrary signs of
    /// the singular vectors).
    #[default]
    Centred,
    /// `U^T (A - mean) + mean`, the reference code's formula. Adding the mean back makes the
    /// result depend on the sign of each singular vector, which LAPACK chooses arbitrarily:
    /// on the `cca_related` golden case the reference formula gives anything from 0.9559 to
    /// 0.9669 depending on those signs (the reference printed 0.9589). Here each singular
    /// vector's largest entry is made positive, so the value is reproducible; it is one of
    /// the values the reference can print, not necessarily the one it printed.
    Reference,
}

/// PWCCA (Morcos, Raghu & Bengio 2018): canonical correlations weighted by how much of the
/// side with fewer units each canonical direction accounts for:
///
/// ```text
/// h_i = sum_j |<q_i, a_j>|,  pwcca = sum_i h_i rho_i / sum_i h_i
/// ```
///
/// `q_i` the orthonormalised (QR) canonical directions of that side ([`PwccaDirections`]),
/// `a_j` its (uncentred) units, as `pwcca.compute_pwcca`. When the right side has fewer
/// units the reference code builds the directions from the *left* activations (a bug); here
/// they come from the right side's own, so the measure is the same whichever side is
/// passed first.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pwcca {
    /// The directions weighted by.
    pub directions: PwccaDirections,
    /// Covariance regularisation of the CCA.
    pub epsilon: f64,
    /// Distance or similarity.
    pub score: SimilarityScore,
}

impl Default for Pwcca {
    fn default() -> Self {
        Self { directions: PwccaDirections::Centred, epsilon: CCA_EPSILON, score: SimilarityScore::Distance }
    }
}

/// Leading singular directions `U_k S_k` of a centred sample matrix.
fn singular_directions(x: MatRef<'_, f64>, keep: SvccaKeep, left: bool) -> Result<Mat<f64>> {
    let svd = x.thin_svd().map_err(svd_err)?;
    let s: Vec<f64> = (0..svd.S().dim()).map(|i| svd.S()[i]).collect();
    let k = match keep {
        SvccaKeep::Count(l, r) => {
            let k = if left { l } else { r };
            if k == 0 || k > s.len() {
                return Err(MetricError::InvalidParameter {
                    name: if left { "keep_left" } else { "keep_right" },
                    value: k.to_string(),
                    expected: format!("between 1 and {} (the {} side's units or samples)", s.len(), side(left)),
                });
            }
            k
        }
        SvccaKeep::Variance(v) => {
            let total: f64 = s.iter().map(|x| x * x).sum();
            let mut acc = 0.0;
            let mut k = s.len();
            for (i, x) in s.iter().enumerate() {
                acc += x * x;
                if acc >= v * total {
                    k = i + 1;
                    break;
                }
            }
            k
        }
    };
    Ok(Mat::from_fn(x.nrows(), k, |i, j| svd.U()[(i, j)] * s[j]))
}

fn side(left: bool) -> &'static str {
    if left {
        "left"
    } else {
        "right"
    }
}

impl Pwcca {
    /// The PWCCA similarity of two prepared recordings.
    pub fn similarity(&self, a: &Samples, b: &Samples) -> Result<f64> {
        self.weighted(a, b, None)
    }

    /// PWCCA with the reference formula ([`PwccaDirections::Reference`]) and the given
    /// signs (+1 / -1) of the canonical directions, in descending order of correlation; for
    /// checking the formula against the reference's output.
    pub fn similarity_with_signs(&self, a: &Samples, b: &Samples, signs: &[f64]) -> Result<f64> {
        Pwcca { directions: PwccaDirections::Reference, ..*self }.weighted(a, b, Some(signs))
    }

    /// The number of canonical directions PWCCA weights (the signs
    /// [`similarity_with_signs`](Self::similarity_with_signs) takes).
    pub fn directions(&self, a: &Samples, b: &Samples) -> Result<usize> {
        let (small, large) = if a.x.ncols() <= b.x.ncols() { (a, b) } else { (b, a) };
        Ok(cca(small.x.as_ref(), large.x.as_ref(), self.epsilon)?.coefficients.len())
    }

    fn weighted(&self, a: &Samples, b: &Samples, signs: Option<&[f64]>) -> Result<f64> {
        // The side with fewer units is the one weighted (the reference's rule, ties: left).
        let (small, large) = if a.x.ncols() <= b.x.ncols() { (a, b) } else { (b, a) };
        let r = cca(small.x.as_ref(), large.x.as_ref(), self.epsilon)?;
        let (kept, _) = &r.kept;
        let n = small.x.nrows();
        let k = r.coefficients.len();
        let sign = |j: usize| -> f64 {
            match signs {
                Some(s) => s.get(j).copied().unwrap_or(1.0),
                None => {
                    // the largest entry of each singular vector positive
                    let col = (0..r.u.nrows()).map(|i| r.u[(i, j)]);
                    let big = col.fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
                    if big < 0.0 {
                        -1.0
                    } else {
                        1.0
                    }
                }
            }
        };
        let u = Mat::from_fn(r.u.nrows(), k, |i, j| r.u[(i, j)] * sign(j));
        // directions^T (n x k): (A_c)_kept u (+ 1 mean_kept^T for the reference formula)
        let ac = Mat::from_fn(n, kept.len(), |i, j| small.x[(i, kept[j])]);
        let mut dirs = mul(ac.as_ref(), u.as_ref());
        if self.directions == PwccaDirections::Reference {
            for j in 0..k {
                for i in 0..n {
                    dirs[(i, j)] += small.means[kept[j]];
                }
            }
        }
        let q = dirs.qr().compute_thin_Q();
        let a_raw = Mat::from_fn(n, kept.len(), |i, j| small.x[(i, kept[j])] + small.means[kept[j]]);
        let proj = mul(q.transpose(), a_raw.as_ref());
        let h: Vec<f64> = (0..k).map(|i| (0..proj.ncols()).map(|j| proj[(i, j)].abs()).sum()).collect();
        let total: f64 = h.iter().sum();
        if total == 0.0 || !total.is_finite() {
            return Err(MetricError::AllZero { what: "PWCCA weights".into(), detail: String::new() });
        }
        Ok(h.iter().zip(&r.coefficients).map(|(w, c)| w * c).sum::<f64>() / total)
    }
}

fn check_epsilon(e: f64) -> std::result::Result<(), String> {
    if !(0.0..1.0).contains(&e) {
        return Err(format!("epsilon={e} must be in [0, 1) (a regularisation of the rescaled covariances)"));
    }
    Ok(())
}

const EPSILON_PARAM: Param = Param {
    name: "epsilon",
    kind: ParamKind::Number,
    default: "1e-10",
    help: "regularisation of the rescaled covariances (the SVCCA code's epsilon)",
};
const SCORE_PARAM: Param = Param {
    name: "score",
    kind: ParamKind::Choice(&["distance", "similarity"]),
    default: "distance",
    help: "value = 1 - similarity (distance) or the similarity",
};

/// CCA's registry entry: `cca:summary=mean`.
pub static CCA_INFO: MetricInfo = MetricInfo {
    name: "cca",
    version: 1,
    summary: "Mean canonical correlation of two recordings' samples (trials x time flattened)",
    formula: "rho = singular values of Sxx^-1/2 Sxy Syy^-1/2 (sample covariances, rescaled, + epsilon I)\\n\\
              s = mean(rho) or mean(rho^2);  value = 1 - s (distance) or s;  extras: coefficients",
    reference: "Hotelling (1936); Raghu et al. (2017), SVCCA, NeurIPS (Google's cca_core.get_cca_similarity)",
    params: &[
        Param {
            name: "summary",
            kind: ParamKind::Choice(&["mean", "mean_squared"]),
            default: "mean",
            help: "mean of the coefficients, or of their squares",
        },
        EPSILON_PARAM,
        SCORE_PARAM,
    ],
    build: build_cca,
};

/// SVCCA's registry entry: `svcca:keep=20` or `svcca:variance=0.99`.
pub static SVCCA_INFO: MetricInfo = MetricInfo {
    name: "svcca",
    version: 1,
    summary: "SVCCA: mean canonical correlation of the leading singular directions of each recording",
    formula: "X_k = U_k S_k (top k of the centred samples' SVD), likewise Y_k;  s = mean CCA(X_k, Y_k)\\n\\
              value = 1 - s (distance) or s",
    reference: "Raghu, Gilmer, Yosinski & Sohl-Dickstein (2017), SVCCA: singular vector canonical correlation \\
                analysis for deep learning dynamics and interpretability, NeurIPS",
    params: &[
        Param {
            name: "keep",
            kind: ParamKind::Count,
            default: "none",
            help: "directions kept on each side (instead of variance)",
        },
        Param { name: "keep_left", kind: ParamKind::Count, default: "none", help: "directions kept on the left" },
        Param { name: "keep_right", kind: ParamKind::Count, default: "none", help: "directions kept on the right" },
        Param {
            name: "variance",
            kind: ParamKind::Number,
            default: "0.99",
            help: "keep the fewest directions explaining this fraction of each side's variance",
        },
        EPSILON_PARAM,
        SCORE_PARAM,
    ],
    build: build_svcca,
};

/// PWCCA's registry entry: `pwcca`.
pub static PWCCA_INFO: MetricInfo = MetricInfo {
    name: "pwcca",
    version: 1,
    summary: "Projection-weighted CCA: canonical correlations weighted by how much of the narrower recording \\
              each canonical direction accounts for",
    formula: "h_i = sum_j |<q_i, a_j>| (q_i: QR-orthonormalised canonical directions, a_j: units of the side with \\
              fewer units)\\n  s = sum_i h_i rho_i / sum_i h_i;  value = 1 - s (distance) or s",
    reference: "Morcos, Raghu & Bengio (2018), Insights on representational similarity in neural networks with \\
                canonical correlation, NeurIPS (Google's pwcca.compute_pwcca)",
    params: &[
        Param {
            name: "directions",
            kind: ParamKind::Choice(&["centred", "reference"]),
            default: "centred",
            help: "centred: U^T(A - mean), sign-free; reference: + mean, the SVCCA code's formula (depends on \
                   the singular vectors' signs)",
        },
        EPSILON_PARAM,
        SCORE_PARAM,
    ],
    build: build_pwcca,
};

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct CcaOptions {
    summary: Option<String>,
    epsilon: Option<f64>,
    score: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct SvccaOptions {
    keep: Option<usize>,
    keep_left: Option<usize>,
    keep_right: Option<usize>,
    variance: Option<f64>,
    epsilon: Option<f64>,
    score: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct PwccaOptions {
    directions: Option<String>,
    epsilon: Option<f64>,
    score: Option<String>,
}

fn build_cca(map: Map<String, Value>) -> std::result::Result<Box<dyn Metric>, String> {
    let o: CcaOptions = metric::options(map)?;
    let epsilon = o.epsilon.unwrap_or(CCA_EPSILON);
    check_epsilon(epsilon)?;
    Ok(Box::new(Cca {
        summary: if o.summary.as_deref() == Some("mean_squared") { CcaSummary::MeanSquared } else { CcaSummary::Mean },
        epsilon,
        score: similarity_score(o.score.as_deref()),
    }))
}

fn build_svcca(map: Map<String, Value>) -> std::result::Result<Box<dyn Metric>, String> {
    let o: SvccaOptions = metric::options(map)?;
    let epsilon = o.epsilon.unwrap_or(CCA_EPSILON);
    check_epsilon(epsilon)?;
    let counts = o.keep.is_some() || o.keep_left.is_some() || o.keep_right.is_some();
    if counts && o.variance.is_some() {
        return Err("give keep (or keep_left and keep_right) or variance, not both".into());
    }
    if o.keep.is_some() && (o.keep_left.is_some() || o.keep_right.is_some()) {
        return Err("give keep, or keep_left and keep_right, not both".into());
    }
    let keep = if counts {
        match (o.keep, o.keep_left, o.keep_right) {
            (Some(k), _, _) => SvccaKeep::Count(k, k),
            (_, Some(l), Some(r)) => SvccaKeep::Count(l, r),
            _ => return Err("give both keep_left and keep_right (or keep for both)".into()),
        }
    } else {
        let v = o.variance.unwrap_or(0.99);
        if !(v > 0.0 && v <= 1.0) {
            return Err(format!("variance={v} must be in (0, 1]"));
        }
        SvccaKeep::Variance(v)
    };
    if let SvccaKeep::Count(l, r) = keep {
        if l == 0 || r == 0 {
            return Err("keep at least 1 direction on each side".into());
        }
    }
    Ok(Box::new(Svcca { keep, epsilon, score: similarity_score(o.score.as_deref()) }))
}

fn build_pwcca(map: Map<String, Value>) -> std::result::Result<Box<dyn Metric>, String> {
    let o: PwccaOptions = metric::options(map)?;
    let epsilon = o.epsilon.unwrap_or(CCA_EPSILON);
    check_epsilon(epsilon)?;
    let directions = if o.directions.as_deref() == Some("reference") {
        PwccaDirections::Reference
    } else {
        PwccaDirections::Centred
    };
    Ok(Box::new(Pwcca { directions, epsilon, score: similarity_score(o.score.as_deref()) }))
}

fn scored(score: SimilarityScore, s: f64, extras: Map<String, Value>) -> Scored {
    let mut extras = extras;
    extras.insert("similarity".into(), json!(s));
    Scored { value: score.of(s), extras }
}

impl Metric for Cca {
    fn info(&self) -> &'static MetricInfo {
        &CCA_INFO
    }
    fn params(&self) -> Value {
        metric::to_json(self)
    }
    /// The value; extras `similarity` and `coefficients` (descending).
    fn score(&self, a: &Prepared, b: &Prepared) -> Result<Scored> {
        let (a, b) = (a.samples("cca")?, b.samples("cca")?);
        Samples::check_pair(a, b)?;
        let r = cca(a.x.as_ref(), b.x.as_ref(), self.epsilon)?;
        let c = &r.coefficients;
        let s = match self.summary {
            CcaSummary::Mean => c.iter().sum::<f64>() / c.len() as f64,
            CcaSummary::MeanSquared => c.iter().map(|v| v * v).sum::<f64>() / c.len() as f64,
        };
        let mut extras = Map::new();
        extras.insert("coefficients".into(), json!(c));
        Ok(scored(self.score, s, extras))
    }
}

impl Svcca {
    /// The SVCCA similarity of two prepared recordings, and the directions kept `(left, right)`.
    pub fn similarity(&self, a: &Samples, b: &Samples) -> Result<(f64, (usize, usize))> {
        Samples::check_pair(a, b)?;
        let xa = singular_directions(a.x.as_ref(), self.keep, true)?;
        let xb = singular_directions(b.x.as_ref(), self.keep, false)?;
        let r = cca(xa.as_ref(), xb.as_ref(), self.epsilon)?;
        let c = &r.coefficients;
        Ok((c.iter().sum::<f64>() / c.len() as f64, (xa.ncols(), xb.ncols())))
    }
}

impl Metric for Svcca {
    fn info(&self) -> &'static MetricInfo {
        &SVCCA_INFO
    }
    fn params(&self) -> Value {
        metric::to_json(self)
    }
    /// The value; extras `similarity` and `kept` (directions kept, left and right).
    fn score(&self, a: &Prepared, b: &Prepared) -> Result<Scored> {
        let (s, kept) = self.similarity(a.samples("svcca")?, b.samples("svcca")?)?;
        let mut extras = Map::new();
        extras.insert("kept".into(), json!([kept.0, kept.1]));
        Ok(scored(self.score, s, extras))
    }
}

impl Metric for Pwcca {
    fn info(&self) -> &'static MetricInfo {
        &PWCCA_INFO
    }
    fn params(&self) -> Value {
        metric::to_json(self)
    }
    /// The value; extras `similarity`.
    fn score(&self, a: &Prepared, b: &Prepared) -> Result<Scored> {
        let (a, b) = (a.samples("pwcca")?, b.samples("pwcca")?);
        Samples::check_pair(a, b)?;
        Ok(scored(self.score, self.similarity(a, b)?, Map::new()))
    }
}
