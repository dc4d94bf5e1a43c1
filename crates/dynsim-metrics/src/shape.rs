//! Procrustes and the generalised shape metrics of Williams et al. (2021).

use faer::{Mat, MatRef, Side};
use ndarray::ArrayView3;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{MetricError, Result};
use crate::linalg::{arccos_clipped, evd_err, fro, mul, svd_err};
use crate::metric::{self, Metric, MetricInfo, Param, ParamKind, Prepared, Samples, Scored};
use crate::Score;

/// Procrustes' registry entry: `procrustes:alpha=1,score=angular`.
pub static PROCRUSTES_INFO: MetricInfo = MetricInfo {
    name: "procrustes",
    version: 1,
    summary: "Procrustes and the generalised shape metrics: the angle (or distance) between two recordings' \
              sample clouds after the best rotation, with partial whitening alpha",
    formula: "angular = arccos( |X~^T Y~|_* / (|X~|_F |Y~|_F) )   (X~, Y~ centred, partially whitened, zero-padded)\n\
              euclidean = sqrt(|X~|^2 + |Y~|^2 - 2 |X~^T Y~|_*) / sqrt(samples);  normalized = angular / (pi/2)",
    reference: "Williams, Kunz, Kornblith & Linderman (2021), Generalized shape metrics on neural representations, \
                NeurIPS; netrep's LinearMetric",
    params: &[
        Param {
            name: "alpha",
            kind: ParamKind::Number,
            default: "1",
            help: "partial whitening in [0, 1]: 1 = Procrustes, 0 = full whitening (CCA-like)",
        },
        Param {
            name: "score",
            kind: ParamKind::Choice(&["angular", "euclidean", "normalized"]),
            default: "angular",
            help: "angular (radians), euclidean, or normalized (angle/(pi/2), the seed study's scale)",
        },
    ],
    build: build_procrustes,
};

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ProcrustesOptions {
    alpha: Option<f64>,
    score: Option<String>,
}

pub(crate) fn score_choice(s: Option<&str>) -> Score {
    match s {
        Some("euclidean") => Score::Euclidean,
        Some("normalized") => Score::Normalized,
        _ => Score::Angular,
    }
}

fn build_procrustes(map: Map<String, Value>) -> std::result::Result<Box<dyn Metric>, String> {
    let o: ProcrustesOptions = metric::options(map)?;
    let m = ShapeMetric { alpha: o.alpha.unwrap_or(1.0), score: score_choice(o.score.as_deref()) };
    m.validate().map_err(|e| e.to_string())?;
    Ok(Box::new(m))
}

impl Metric for ShapeMetric {
    fn info(&self) -> &'static MetricInfo {
        &PROCRUSTES_INFO
    }

    fn params(&self) -> Value {
        metric::to_json(self)
    }

    fn score(&self, a: &Prepared, b: &Prepared) -> Result<Scored> {
        self.validate()?;
        let (a, b) = (a.samples("procrustes")?, b.samples("procrustes")?);
        Samples::check_pair(a, b)?;
        let value = self.distance_samples(a.x.as_ref(), b.x.as_ref())?;
        Ok(Scored { value, extras: Map::new() })
    }
}

/// The generalised shape metric with partial whitening `alpha` (Williams, Kunz, Kornblith &
/// Linderman 2021, "Generalized shape metrics on neural representations"; netrep's
/// `LinearMetric`).
///
/// Time and trials flatten into samples (`trials*time x units`); both inputs need the same
/// number of samples. Steps: zero-pad the narrower side to equal width, centre columns,
/// partially whiten each side with `Z = V diag(d) V^T`, `X^T X = V diag(lam) V^T`,
/// `d = alpha + (1 - alpha) lam^-1/2` (rescaled to preserve the total variance; `lam`
/// clipped at 1e-7), then align with the orthogonal Procrustes solution. With `nuc` the
/// nuclear norm of `X̃^T Ỹ`:
///
/// ```text
/// angular   = arccos( nuc / (|X̃|_F |Ỹ|_F) )
/// euclidean = sqrt( |X̃|_F^2 + |Ỹ|_F^2 - 2 nuc ) / sqrt(samples)   (RMS distance per sample)
/// ```
///
/// `alpha = 1` is Procrustes; `alpha = 0` whitens fully (a CCA-like distance).
///
/// ```
/// use dynsim_metrics::{ShapeMetric, Score};
/// use ndarray::Array3;
/// let x = Array3::from_shape_fn((2, 50, 3), |(k, t, u)| ((k * 50 + t) as f64 * (u as f64 + 1.0) * 0.37).sin());
/// let d = ShapeMetric::procrustes(Score::Angular).distance(x.view(), x.view()).unwrap();
/// assert!(d < 1e-6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ShapeMetric {
    /// Regularisation of the whitening, in `[0, 1]` (1 = Procrustes, 0 = full whitening).
    pub alpha: f64,
    /// Angular or euclidean score.
    pub score: Score,
}

impl Default for ShapeMetric {
    fn default() -> Self {
        Self::procrustes(Score::Angular)
    }
}

const EIGVAL_TOL: f64 = 1e-7;

impl ShapeMetric {
    /// Procrustes distance (`alpha = 1`).
    pub fn procrustes(score: Score) -> Self {
        Self { alpha: 1.0, score }
    }

    /// Validate `alpha`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(MetricError::InvalidParameter {
                name: "alpha",
                value: self.alpha.to_string(),
                expected: "a number in [0, 1] (1 = Procrustes, 0 = full whitening)".into(),
            });
        }
        Ok(())
    }

    /// The distance between two recordings `trials x time x units` (units may differ).
    pub fn distance(&self, x: ArrayView3<'_, f64>, y: ArrayView3<'_, f64>) -> Result<f64> {
        self.validate()?;
        let (xs, ys) = prepare_pair(x, y)?;
        self.distance_samples(xs.x.as_ref(), ys.x.as_ref())
    }

    /// The distance between two column-centred `samples x units` matrices (validated, same
    /// rows). They are only copied when padded or whitened.
    fn distance_samples(&self, xs: MatRef<'_, f64>, ys: MatRef<'_, f64>) -> Result<f64> {
        let width = xs.ncols().max(ys.ncols());
        let (xw, yw) = (self.whiten(xs, width, "left recording")?, self.whiten(ys, width, "right recording")?);
        let (xw, yw) = (xw.as_ref().map_or(xs, |m| m.as_ref()), yw.as_ref().map_or(ys, |m| m.as_ref()));
        let m = mul(xw.transpose(), yw);
        let nuc: f64 = m.singular_values().map_err(svd_err)?.iter().sum();
        let (nx, ny) = (fro(xw), fro(yw));
        Ok(match self.score {
            Score::Angular => arccos_clipped(nuc / (nx * ny)),
            Score::Normalized => arccos_clipped(nuc / (nx * ny)) / std::f64::consts::FRAC_PI_2,
            Score::Euclidean => ((nx * nx + ny * ny - 2.0 * nuc).max(0.0)).sqrt() / (xw.nrows() as f64).sqrt(),
        })
    }

    /// `x` (column-centred) zero-padded to `width` columns and partially whitened; `None`
    /// when that leaves it as it is (Procrustes on equal widths).
    fn whiten(&self, x: MatRef<'_, f64>, width: usize, what: &str) -> Result<Option<Mat<f64>>> {
        if fro(x) == 0.0 {
            return Err(MetricError::AllZero { what: what.into(), detail: " after centring (no variance)".into() });
        }
        let padded = (x.ncols() < width)
            .then(|| Mat::from_fn(x.nrows(), width, |i, j| if j < x.ncols() { x[(i, j)] } else { 0.0 }));
        if self.alpha > 1.0 - EIGVAL_TOL {
            return Ok(padded);
        }
        let x = padded.as_ref().map_or(x, |p| p.as_ref());
        let cov = mul(x.transpose(), x);
        let evd = cov.self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
        let lam: Vec<f64> = evd.S().column_vector().iter().map(|&l| l.max(EIGVAL_TOL)).collect();
        let a = self.alpha;
        let mut d: Vec<f64> = lam.iter().map(|l| a + (1.0 - a) / l.sqrt()).collect();
        let new_var: f64 = lam.iter().map(|l| a * a * l + 2.0 * a * (1.0 - a) * l.sqrt() + (1.0 - a) * (1.0 - a)).sum();
        let scale = (lam.iter().sum::<f64>() / new_var).sqrt();
        d.iter_mut().for_each(|v| *v *= scale);
        let v = evd.U();
        let vd = Mat::from_fn(v.nrows(), v.ncols(), |i, j| v[(i, j)] * d[j]);
        let z = mul(vd.as_ref(), v.transpose());
        Ok(Some(mul(x, z.as_ref())))
    }
}

/// Validate two recordings compared sample by sample ([`Samples::new`],
/// [`Samples::check_pair`]): their centred `samples x units` matrices.
pub(crate) fn prepare_pair(x: ArrayView3<'_, f64>, y: ArrayView3<'_, f64>) -> Result<(Samples, Samples)> {
    let (a, b) = (Samples::new(x, "left recording")?, Samples::new(y, "right recording")?);
    Samples::check_pair(&a, &b)?;
    Ok((a, b))
}
