//! Dynamical Similarity Analysis: delay embedding + DMD per recording, then the
//! similarity-transform distance per pair (Ostrow, Eisen, Kozachkov & Fiete, NeurIPS 2023).

use faer::Par;
use ndarray::{Array2, ArrayView3};

use crate::dmd::{DmdFit, DmdParams};
use crate::error::{MetricError, Result};
use crate::pairwise::{map_indexed, Parallelism};
use crate::simdist::{SimilarityFit, SimilarityParams, SimilarityTransformDist};
use crate::wasserstein::eigenvalue_wasserstein;

/// The score DSA reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DsaScore {
    /// `arccos <A, C B C^T>` of the unit-norm operators (radians).
    #[default]
    Angular,
    /// `|A - C B C^T|_F` of the unit-norm operators.
    Euclidean,
    /// Squared 2-Wasserstein distance between the eigenvalues of the (unnormalised)
    /// operators; needs no `C`.
    Wasserstein,
}

/// Parameters of DSA: the DMD fit, the optimiser and the score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DsaParams {
    /// Embedding and DMD parameters (the same for every recording).
    pub dmd: DmdParams,
    /// Optimiser of the similarity-transform distance.
    pub similarity: SimilarityParams,
    /// Reported score.
    pub score: DsaScore,
}

/// The comparison of two fitted recordings.
#[derive(Debug, Clone)]
pub struct DsaComparison {
    /// The requested score (or the Wasserstein score when the ranks differ, see `fallback`).
    pub value: f64,
    /// Which score `value` is.
    pub score: DsaScore,
    /// True when the ranks differed and the angular/euclidean score fell back to Wasserstein.
    pub fallback: bool,
    /// The optimiser's result (`None` for the Wasserstein score).
    pub transform: Option<SimilarityFit>,
    /// Ranks of the left and right operators.
    pub ranks: (usize, usize),
}

/// DSA as an object: hyper-parameters validated once, then `fit` each recording once and
/// `compare` pairs of fits (O(K) fits, O(K^2) cheap comparisons).
///
/// ```
/// use dynsim_metrics::{Dsa, DsaParams, DmdParams, RankSelection};
/// use ndarray::Array3;
/// let x = Array3::from_shape_fn((4, 60, 2), |(k, t, u)| ((t as f64) * 0.2 + k as f64 + u as f64 * 1.3).sin());
/// // a sinusoid spans two directions of the embedding
/// let dsa = Dsa::new(DsaParams { dmd: DmdParams { n_delays: 3, rank: RankSelection::Count(2), ..Default::default() }, ..Default::default() }).unwrap();
/// let same = dsa.fit_score(x.view(), x.view()).unwrap();
/// assert!(same.value < 1e-6);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Dsa {
    params: DsaParams,
}

impl Dsa {
    /// Validate the parameters.
    pub fn new(params: DsaParams) -> Result<Self> {
        params.dmd.validate()?;
        if params.similarity.max_iters == 0 {
            return Err(MetricError::InvalidParameter {
                name: "max_iters",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        Ok(Self { params })
    }

    /// The parameters.
    pub fn params(&self) -> &DsaParams {
        &self.params
    }

    /// Embed and fit one recording (`trials x time x units`).
    pub fn fit(&self, x: ArrayView3<'_, f64>) -> Result<DmdFit> {
        DmdFit::fit(x, &self.params.dmd, Par::Seq)
    }

    /// Compare two fits.
    pub fn compare(&self, a: &DmdFit, b: &DmdFit) -> Result<DsaComparison> {
        let ranks = (a.a_v_faer().nrows(), b.a_v_faer().nrows());
        let wasserstein = || -> Result<f64> { eigenvalue_wasserstein(&a.eigenvalues()?, &b.eigenvalues()?) };
        if self.params.score == DsaScore::Wasserstein || ranks.0 != ranks.1 {
            return Ok(DsaComparison {
                value: wasserstein()?,
                score: DsaScore::Wasserstein,
                fallback: self.params.score != DsaScore::Wasserstein,
                transform: None,
                ranks,
            });
        }
        let fit = SimilarityTransformDist::new(self.params.similarity).fit_faer(a.a_v_faer(), b.a_v_faer())?;
        Ok(DsaComparison {
            value: if self.params.score == DsaScore::Angular { fit.angular } else { fit.euclidean },
            score: self.params.score,
            fallback: false,
            transform: Some(fit),
            ranks,
        })
    }

    /// Fit both recordings and compare them.
    pub fn fit_score(&self, x: ArrayView3<'_, f64>, y: ArrayView3<'_, f64>) -> Result<DsaComparison> {
        self.compare(&self.fit(x)?, &self.fit(y)?)
    }

    /// Fit every recording once, in parallel.
    pub fn fit_all(&self, xs: &[ArrayView3<'_, f64>], par: Parallelism) -> Result<Vec<DmdFit>> {
        map_indexed(xs.len(), par, |i| self.fit(xs[i]).map_err(|e| annotate(e, &format!("recording {i}"))))
    }

    /// All pairs of one list: a symmetric matrix with zero diagonal. Each recording is fitted
    /// once; pairs run in parallel; every pair uses the same optimiser seed, so the result
    /// does not depend on scheduling.
    pub fn pairwise(&self, xs: &[ArrayView3<'_, f64>], par: Parallelism) -> Result<DsaMatrix> {
        let fits = self.fit_all(xs, par)?;
        self.pairwise_fits(&fits, par)
    }

    /// All pairs of already fitted recordings.
    pub fn pairwise_fits(&self, fits: &[DmdFit], par: Parallelism) -> Result<DsaMatrix> {
        let n = fits.len();
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
        let cmp = map_indexed(pairs.len(), par, |k| self.compare(&fits[pairs[k].0], &fits[pairs[k].1]))?;
        let mut m = DsaMatrix::new(n, n);
        for (&(i, j), c) in pairs.iter().zip(&cmp) {
            m.set(i, j, c);
            m.set(j, i, c);
        }
        Ok(m)
    }

    /// Every left recording against every right recording (`left x right`).
    pub fn bipartite(
        &self,
        left: &[ArrayView3<'_, f64>],
        right: &[ArrayView3<'_, f64>],
        par: Parallelism,
    ) -> Result<DsaMatrix> {
        let lf = self.fit_all(left, par)?;
        let rf = self.fit_all(right, par)?;
        let (n, m) = (lf.len(), rf.len());
        let cmp = map_indexed(n * m, par, |k| self.compare(&lf[k / m], &rf[k % m]))?;
        let mut out = DsaMatrix::new(n, m);
        for (k, c) in cmp.iter().enumerate() {
            out.set(k / m, k % m, c);
        }
        Ok(out)
    }
}

/// A matrix of DSA comparisons.
#[derive(Debug, Clone)]
pub struct DsaMatrix {
    /// The scores.
    pub values: Array2<f64>,
    /// The optimiser's final loss per pair (`NaN` where no transform was fitted, e.g. the
    /// diagonal or Wasserstein entries).
    pub loss: Array2<f64>,
    /// True where the ranks differed and the score fell back to Wasserstein.
    pub fallback: Array2<bool>,
}

impl DsaMatrix {
    fn new(n: usize, m: usize) -> Self {
        Self {
            values: Array2::zeros((n, m)),
            loss: Array2::from_elem((n, m), f64::NAN),
            fallback: Array2::from_elem((n, m), false),
        }
    }

    fn set(&mut self, i: usize, j: usize, c: &DsaComparison) {
        self.values[[i, j]] = c.value;
        self.loss[[i, j]] = c.transform.as_ref().map_or(f64::NAN, |t| t.loss);
        self.fallback[[i, j]] = c.fallback;
    }
}

fn annotate(e: MetricError, whr: &str) -> MetricError {
    match e {
        MetricError::NonFinite { what, value, index } => {
            MetricError::NonFinite { what: format!("{what} ({whr})"), value, index }
        }
        MetricError::AllZero { what, detail } => MetricError::AllZero { what: format!("{what} ({whr})"), detail },
        MetricError::Empty { what, shape } => MetricError::Empty { what: format!("{what} ({whr})"), shape },
        MetricError::TooShortForDelays { what, time, n_delays, delay_interval, needed } => {
            MetricError::TooShortForDelays { what: format!("{what} ({whr})"), time, n_delays, delay_interval, needed }
        }
        MetricError::RankTooLarge { rank, limit, why } => {
            MetricError::RankTooLarge { rank, limit, why: format!("{why}, {whr}") }
        }
        other => other,
    }
}
