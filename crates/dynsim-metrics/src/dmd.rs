//! DMD / HAVOK fit of a linear operator on delay-embedded data.

use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Par, Side};
use ndarray::{Array2, Array3, ArrayView3};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::embed::DelayEmbedding;
use crate::error::{MetricError, Result};
use crate::lanczos::{self, Partial};
use crate::linalg::{evd_err, gram, mul, mul_par, residual_norms, svd_err, to_ndarray};
use crate::Complex64;

/// How the DMD rank `r` is chosen from the singular values `s_0 >= s_1 >= ...` of the
/// embedding. Exactly one rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RankSelection {
    /// Full rank: every direction above the numerical-rank tolerance
    /// `s_0 * max(rows, width) * eps`.
    #[default]
    Full,
    /// A fixed count `r`; more than the embedding can support is an error.
    Count(usize),
    /// Keep singular values with `s_i / s_0 > t` (relative threshold, `0 < t < 1`).
    Threshold(f64),
    /// The smallest `r` with `sum_{i<r} s_i^2 / sum_i s_i^2 >= v` (`0 < v <= 1`).
    ExplainedVariance(f64),
}

/// The regression that fits the operator on the singular-vector coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Regression {
    /// Principal-component regression on the first `r` right singular vectors (HAVOK):
    /// `A_v = ((Vm^T Vm + lambda I)^-1 Vm^T Vp)^T`, an `r x r` operator.
    #[default]
    PrincipalComponent,
    /// Reduced-rank regression: ridge regression on all `k` numerically non-zero
    /// components, then projection of the fitted values onto their top-`r` principal
    /// directions `P`: `A_v = (B P P^T)^T`, a `k x k` operator of rank `r`.
    ReducedRank,
}

/// Parameters of a DMD fit. Override only what you change:
///
/// ```
/// use dynsim_metrics::{DmdParams, RankSelection};
/// let p = DmdParams { n_delays: 33, delay_interval: 6, rank: RankSelection::Count(50), ..Default::default() };
/// assert_eq!(p.lambda, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DmdParams {
    /// Number of delays of the Hankel embedding.
    pub n_delays: usize,
    /// Spacing of the delays in time steps.
    pub delay_interval: usize,
    /// Rank rule.
    pub rank: RankSelection,
    /// Ridge penalty `lambda >= 0`.
    pub lambda: f64,
    /// Prediction horizon of the regression, in embedded rows (default 1).
    pub steps_ahead: usize,
    /// Principal-component (default) or reduced-rank regression.
    pub regression: Regression,
}

impl Default for DmdParams {
    fn default() -> Self {
        Self {
            n_delays: 1,
            delay_interval: 1,
            rank: RankSelection::Full,
            lambda: 0.0,
            steps_ahead: 1,
            regression: Regression::PrincipalComponent,
        }
    }
}

impl DmdParams {
    /// The delay embedding these parameters describe.
    pub fn embedding(&self) -> DelayEmbedding {
        DelayEmbedding { n_delays: self.n_delays, delay_interval: self.delay_interval }
    }

    /// Validate the parameters (not the data).
    pub fn validate(&self) -> Result<()> {
        self.embedding().validate()?;
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return Err(MetricError::InvalidParameter {
                name: "lambda",
                value: self.lambda.to_string(),
                expected: "a finite number >= 0".into(),
            });
        }
        if self.steps_ahead == 0 {
            return Err(MetricError::InvalidParameter {
                name: "steps_ahead",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        match self.rank {
            RankSelection::Count(0) => {
                Err(MetricError::InvalidParameter { name: "rank", value: "0".into(), expected: "at least 1".into() })
            }
            RankSelection::Threshold(t) if !(t > 0.0 && t < 1.0) => Err(MetricError::InvalidParameter {
                name: "rank_thresh",
                value: t.to_string(),
                expected: "a relative singular-value threshold in (0, 1)".into(),
            }),
            RankSelection::ExplainedVariance(v) if !(v > 0.0 && v <= 1.0) => Err(MetricError::InvalidParameter {
                name: "rank_explained_variance",
                value: v.to_string(),
                expected: "a fraction in (0, 1]".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// A fitted DMD / HAVOK model of one recording.
///
/// With the stacked embedding `H` (`N x w`, trials stacked, see [`DelayEmbedding`]) and the
/// thin SVD `H^T = U S V^T`, the operator on the first `r` right singular vectors is
///
/// ```text
/// A_v    = ((Vm^T Vm + lambda I)^-1 Vm^T Vp)^T                     (r x r)
/// A_full = U_r S_r A_v S_r^-1 U_r^T                                (w x w)
/// ```
///
/// where `Vm` / `Vp` are the rows of `V` at `t` and `t + steps_ahead` inside each trial.
/// `A_v` is what DSA compares. (Brunton et al. 2017, HAVOK; Ostrow et al. 2023, DSA.)
#[derive(Debug, Clone)]
pub struct DmdFit {
    params: DmdParams,
    units: usize,
    singular_values: Vec<f64>,
    rank: usize,
    a_v: Mat<f64>,
    /// Left singular vectors used by `A_v` (`w x k`, k = dim of `A_v`).
    u: Mat<f64>,
    /// Singular values used by `A_v` (length k).
    s: Vec<f64>,
}

impl DmdFit {
    /// Fit the operator to `x` (`trials x time x units`).
    ///
    /// `par` parallelises the large products; the decompositions follow faer's global
    /// parallelism ([`crate::set_global_parallelism`]). Inside a parallel loop over
    /// recordings use `Par::Seq`.
    pub fn fit(x: ArrayView3<'_, f64>, params: &DmdParams, par: Par) -> Result<Self> {
        Self::fit_routed(x, params, par, true)
    }

    /// [`DmdFit::fit`], with the partial SVD routes (Lanczos on the Gram matrix, randomised
    /// block Krylov) allowed or not (tests compare the two).
    fn fit_routed(x: ArrayView3<'_, f64>, params: &DmdParams, par: Par, partial: bool) -> Result<Self> {
        params.validate()?;
        let emb = params.embedding();
        let rows = emb.check_input(x, "recording", params.steps_ahead + 1)?;
        let (trials, _, units) = x.dim();
        let ht = emb.embed_stacked_t(x, rows);
        let h = ht.transpose();
        let (n, w) = (h.nrows(), h.ncols());
        if h.norm_max() == 0.0 {
            return Err(MetricError::AllZero { what: "recording".into(), detail: String::new() });
        }
        // H = V S U^T, so faer's (U_h, V_h) of H are (V, U) of H^T.
        let svd = TallSvd::new(h.as_ref(), params, par, partial)?;
        let s_all = svd.s.clone();
        let numerical_rank = svd.reliable;
        let rank = choose_rank(params.rank, &s_all, numerical_rank, w, n)?;
        // Columns of V used by the regression.
        let k = match params.regression {
            Regression::PrincipalComponent => rank,
            Regression::ReducedRank => numerical_rank,
        };
        let v = svd.left_cols(h.as_ref(), k, par);
        let per = rows - params.steps_ahead;
        let m = trials * per;
        let vm = Mat::from_fn(m, k, |i, j| v[((i / per) * rows + i % per, j)]);
        let vp = Mat::from_fn(m, k, |i, j| v[((i / per) * rows + i % per + params.steps_ahead, j)]);
        // B = (Vm^T Vm + lambda I)^-1 Vm^T Vp   (k x k)
        let mut gram = mul_par(vm.transpose(), vm.as_ref(), par);
        for i in 0..k {
            gram[(i, i)] += params.lambda;
        }
        let rhs = mul_par(vm.transpose(), vp.as_ref(), par);
        let b = solve_spd(gram.as_ref(), rhs)?;
        let a_v = match params.regression {
            Regression::PrincipalComponent => b.transpose().to_owned(),
            Regression::ReducedRank => {
                // Fitted values Yhat = Vm B; P = top-r eigenvectors of Yhat^T Yhat.
                let yhat = mul_par(vm.as_ref(), b.as_ref(), par);
                let cov = mul_par(yhat.transpose(), yhat.as_ref(), par);
                let evd = cov.self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
                // ascending eigenvalues: the top r are the last r columns
                let p = evd.U().subcols(k - rank, rank).to_owned();
                let bp = mul(b.as_ref(), p.as_ref());
                let b_rrr = mul(bp.as_ref(), p.transpose());
                b_rrr.transpose().to_owned()
            }
        };
        let u = svd.v.subcols(0, k).to_owned();
        let s = s_all[..k].to_vec();
        Ok(Self { params: *params, units, singular_values: s_all, rank, a_v, u, s })
    }

    /// The parameters of the fit.
    pub fn params(&self) -> &DmdParams {
        &self.params
    }

    /// Units of the recording the model was fitted to.
    pub fn units(&self) -> usize {
        self.units
    }

    /// The singular values of the embedding the fit computed, in non-increasing order: all of
    /// them, except for a fixed rank `r` small next to the width (see the docs of the SVD
    /// routes in the source): on the Gram route's Lanczos branch (a tall embedding) only the
    /// leading `r` are computed; on the randomised route (a wide one) the leading
    /// `m >= 2(r + 10)`, of which the first `r` are converged (relative residual below 1e-9).
    /// When the fit took the Gram-matrix route (every used direction has `s_i >= 1e-5 s_0`),
    /// values below `1e-5 s_0` are approximate (absolute error about `eps s_0^2 / s_i`).
    pub fn singular_values(&self) -> &[f64] {
        &self.singular_values
    }

    /// The chosen rank `r`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The reduced operator `A_v` as an ndarray matrix.
    pub fn a_v(&self) -> Array2<f64> {
        to_ndarray(self.a_v.as_ref())
    }

    /// The reduced operator `A_v` as a faer view (what DSA compares).
    pub fn a_v_faer(&self) -> MatRef<'_, f64> {
        self.a_v.as_ref()
    }

    /// The full-space operator `A_full = U S A_v S^-1 U^T` (`width x width`).
    pub fn a_full(&self) -> Array2<f64> {
        to_ndarray(self.a_full_faer().as_ref())
    }

    fn a_full_faer(&self) -> Mat<f64> {
        let k = self.s.len();
        let us = Mat::from_fn(self.u.nrows(), k, |i, j| self.u[(i, j)] * self.s[j]);
        let usa = mul(us.as_ref(), self.a_v.as_ref());
        let sinv_ut = Mat::from_fn(k, self.u.nrows(), |i, j| self.u[(j, i)] / self.s[i]);
        mul(usa.as_ref(), sinv_ut.as_ref())
    }

    /// Eigenvalues of `A_v`, sorted by real part, then imaginary part.
    pub fn eigenvalues(&self) -> Result<Vec<Complex64>> {
        let mut e = self.a_v.eigenvalues().map_err(evd_err)?;
        e.sort_by(|a, b| a.re.total_cmp(&b.re).then(a.im.total_cmp(&b.im)));
        Ok(e)
    }

    /// Roll the fitted operator forward on `x` (same units as the fit).
    ///
    /// Each trial is embedded; the embedded state is re-seeded from the data every
    /// `reseed_every` steps of `steps_ahead` rows and otherwise advanced with `A_full`
    /// (`h_{t+s} = A_full h_t`). Returns `trials x rows x units`: the newest-sample block of
    /// each predicted row, where row `t` predicts time `t + (n_delays-1)*delay_interval`.
    /// Rows that were seeded from data equal the data.
    pub fn predict(&self, x: ArrayView3<'_, f64>, reseed_every: usize) -> Result<Array3<f64>> {
        if reseed_every == 0 {
            return Err(MetricError::InvalidParameter {
                name: "reseed_every",
                value: "0".into(),
                expected: "at least 1 (1 = one-step-ahead prediction from data)".into(),
            });
        }
        if x.dim().2 != self.units {
            return Err(MetricError::ShapeMismatch {
                detail: format!("the model was fitted to {} units but the data has {}", self.units, x.dim().2),
            });
        }
        let emb = self.params.embedding();
        let rows = emb.check_input(x, "recording", 1)?;
        let ht = emb.embed_stacked_t(x, rows);
        let h = ht.transpose();
        let a = self.a_full_faer();
        let w = h.ncols();
        let s = self.params.steps_ahead;
        let trials = x.dim().0;
        let mut pred = Mat::<f64>::zeros(trials * rows, w);
        for k in 0..trials {
            for t in 0..rows {
                let r = k * rows + t;
                if t < s || (t / s).is_multiple_of(reseed_every) {
                    for c in 0..w {
                        pred[(r, c)] = h[(r, c)];
                    }
                } else {
                    for i in 0..w {
                        let mut acc = 0.0;
                        for j in 0..w {
                            acc += a[(i, j)] * pred[(r - s, j)];
                        }
                        pred[(r, i)] = acc;
                    }
                }
            }
        }
        Ok(Array3::from_shape_fn((trials, rows, self.units), |(k, t, u)| pred[(k * rows + t, u)]))
    }
}

/// Thin SVD `H = U S V^T` of the tall stacked embedding (`n x w`, `n > w` as a rule).
///
/// Three routes, tried in this order:
/// - fast (tall `H` only): the eigen-decomposition of the Gram matrix `H^T H = V S^2 V^T`
///   (computed on its lower triangle, `n w^2` flops); a direction with singular value `s_i`
///   comes out with relative error about `eps (s_0 / s_i)^2`, so it is taken only when every
///   direction the fit will use has `s_i / s_0 >=` [`GRAM_MIN_RATIO`] (error below ~1e-6),
///   and never for the numerical-rank rule [`RankSelection::Full`] or reduced-rank
///   regression (which use every resolved direction). For a fixed rank `r` with `2 r + 4`
///   at most half the width (and a width of at least [`LANCZOS_MIN_WIDTH`]) only the leading
///   `r` eigenpairs are computed, by certified block Lanczos
///   ([`crate::lanczos::top_eigenpairs`]: every residual below `1e-10 s_i^2`, and an inertia
///   test that no leading direction was missed), instead of all `w`: at the study's RNN
///   settings (1,600 x 660, rank 50) a fit takes 21-30 ms instead of 63-75 ms, at 200 x 350 x 64
///   units (31,400 x 2,112) 2.1 s instead of 5.3 s through the randomised route. Otherwise,
///   or when Lanczos declines, the full eigen-decomposition of the same Gram matrix;
/// - randomised, for a fixed rank `r` (principal-component regression, `2(r + 10)` at most
///   half the smaller side): randomised block Krylov iteration until every leading triplet
///   has a relative residual below [`RANDOMIZED_TOL`] ([`TallSvd::randomized`]). Cost
///   `O(n w m)` for a basis of `m` columns; it replaces a full SVD of a wide `H` (many units
///   times delays, e.g. 64 units x 33 delays over 1,600 rows: ~6.5x faster) and the
///   accurate route of a tall one the Gram route refuses, and computes only `m` singular
///   values;
/// - accurate: the thin SVD, through a QR factorisation `H = Q R` and the SVD of the small
///   square `R = U_R S V^T` when `H` is tall (relative error about `eps s_0 / s_i`).
///
/// Only the first `k` columns of `U` are ever needed; on the fast route they are recovered as
/// `H V_k S_k^-1` without forming `Q` or the full `U`.
struct TallSvd {
    s: Vec<f64>,
    v: Mat<f64>,
    u: Option<Mat<f64>>,
    /// How many leading singular values are resolved: above `s_0 max(n, w) eps` on the
    /// accurate route (the numerical rank), at least `GRAM_MIN_RATIO s_0` on the fast one.
    reliable: usize,
}

/// Smallest `s_r / s_0` for which the Gram-matrix route is accurate enough (see [`TallSvd`]).
const GRAM_MIN_RATIO: f64 = 1e-5;

/// Smallest width for which the fast route computes only the leading eigenpairs of the Gram
/// matrix (below it a full decomposition takes well under a millisecond).
const LANCZOS_MIN_WIDTH: usize = 128;

/// Seed of the randomised route's Gaussian start (fixed: a fit is a function of its data).
const RANDOMIZED_SEED: u64 = 0x5EED_0D5A;

/// Relative residual `rho_i / s_i` at which the randomised route accepts (see
/// [`TallSvd::randomized`]).
const RANDOMIZED_TOL: f64 = 1e-9;

/// Columns a Krylov block has beyond the rank (see [`TallSvd::randomized`]).
const KRYLOV_OVERSAMPLE: usize = 10;

impl TallSvd {
    fn accurate(h: MatRef<'_, f64>) -> Result<Self> {
        let (s, v, u) = if h.nrows() <= h.ncols() {
            let svd = h.thin_svd().map_err(svd_err)?;
            (svd.S().column_vector().iter().copied().collect::<Vec<_>>(), svd.V().to_owned(), Some(svd.U().to_owned()))
        } else {
            let svd = h.qr().thin_R().svd().map_err(svd_err)?;
            (svd.S().column_vector().iter().copied().collect(), svd.V().to_owned(), None)
        };
        let tol = s[0] * (h.nrows().max(h.ncols()) as f64) * f64::EPSILON;
        let reliable = s.iter().take_while(|&&x| x > tol).count();
        Ok(Self { s, v, u, reliable })
    }

    /// The fast route, or `None` when it would not be accurate enough for `rule`. With
    /// `partial` and a fixed rank `r` (and `w >=` [`LANCZOS_MIN_WIDTH`]) only the leading `r`
    /// eigenpairs of the Gram matrix are computed, by certified block Lanczos
    /// ([`crate::lanczos::top_eigenpairs`]); the full eigen-decomposition of the same Gram
    /// matrix is the fallback.
    fn fast(h: MatRef<'_, f64>, params: &DmdParams, par: Par, partial: bool) -> Result<Option<Self>> {
        let rule = params.rank;
        if h.nrows() <= h.ncols() || rule == RankSelection::Full || params.regression == Regression::ReducedRank {
            return Ok(None);
        }
        let mut gram = gram(h, par);
        let w = gram.nrows();
        if let (true, RankSelection::Count(r)) = (partial && w >= LANCZOS_MIN_WIDTH, rule) {
            match lanczos::top_eigenpairs(gram.as_mut(), r, par)? {
                Partial::Found(top) => {
                    let s: Vec<f64> = top.values.iter().map(|l| l.sqrt()).collect();
                    // the full decomposition would refuse the same way
                    if s[r - 1] / s[0] < GRAM_MIN_RATIO {
                        return Ok(None);
                    }
                    return Ok(Some(Self { s, v: top.vectors, u: None, reliable: r }));
                }
                Partial::Declined { overwritten: true } => gram = crate::linalg::gram(h, par),
                Partial::Declined { overwritten: false } => {}
            }
        }
        let evd = gram.self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
        // ascending eigenvalues -> descending singular values
        let s: Vec<f64> = (0..w).rev().map(|i| evd.S()[i].max(0.0).sqrt()).collect();
        let v = Mat::from_fn(w, w, |i, j| evd.U()[(i, w - 1 - j)]);
        // the rank this rule would choose, judged on the fast singular values
        let r = match rule {
            RankSelection::Count(r) => r.min(w),
            _ => choose_rank(rule, &s, w, w, h.nrows())?,
        };
        if s[0] > 0.0 && s[r - 1] / s[0] >= GRAM_MIN_RATIO {
            let reliable = s.iter().take_while(|&&x| x / s[0] >= GRAM_MIN_RATIO).count();
            Ok(Some(Self { s, v, u: None, reliable }))
        } else {
            Ok(None)
        }
    }

    /// The randomised route for a fixed rank `r` much smaller than the width, or `None` when
    /// it does not apply or does not converge (module docs of [`TallSvd`]).
    ///
    /// Randomised block Krylov iteration (Musco & Musco 2015; Halko, Martinsson & Tropp 2011)
    /// with blocks of `b = r + 10` columns from a seeded Gaussian start: the basis `K` of
    /// `span{H G, (H H^T) H G, (H H^T)^2 H G, ...}` grows one block at a time (each block
    /// orthogonalised twice against the others), and Rayleigh-Ritz on it gives the thin SVD
    /// `H^T K = Z S W^T`, so `(s_i, z_i, K w_i)` are Ritz triplets with `H^T (K w_i) = s_i z_i`
    /// exactly. The other residual `rho_i = |H z_i - s_i K w_i|` is tracked per block from the
    /// stored `H H^T K` and confirmed by a direct product at the end. Accepted when
    /// `rho_i <= RANDOMIZED_TOL s_i` for every `i < r`: the triplets are then exact for a
    /// matrix within that relative distance of `H`, and the subspace DSA uses (only the span of
    /// the leading `r` matters: `A_v` changes by an orthogonal similarity under a rotation
    /// inside it) is off by about `rho / (s_r - s_{r+1})`. Otherwise (basis wider than half
    /// the smaller side) the caller falls back to a full decomposition.
    fn randomized(h: MatRef<'_, f64>, params: &DmdParams, par: Par) -> Result<Option<Self>> {
        let RankSelection::Count(r) = params.rank else { return Ok(None) };
        let (n, w) = (h.nrows(), h.ncols());
        let b = r + KRYLOV_OVERSAMPLE;
        let max_m = n.min(w) / 2;
        if params.regression != Regression::PrincipalComponent || r == 0 || 2 * b > max_m {
            return Ok(None);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(RANDOMIZED_SEED);
        let start = Mat::from_fn(w, b, |_, _| rng.sample::<f64, _>(StandardNormal));
        let mut block = mul_par(h, start.as_ref(), par).qr().compute_thin_Q();
        // basis K, H^T K and H H^T K, filled block by block
        let mut k = Mat::<f64>::zeros(n, max_m);
        let mut bt = Mat::<f64>::zeros(w, max_m);
        let mut p = Mat::<f64>::zeros(n, max_m);
        // the small Gram matrix (H^T K)^T (H^T K), grown by the new block's rows and columns
        let mut g = Mat::<f64>::zeros(max_m, max_m);
        let mut m = 0;
        loop {
            let cols = block.ncols();
            k.subcols_mut(m, cols).copy_from(&block);
            let t = mul_par(h.transpose(), block.as_ref(), par);
            let ht = mul_par(h, t.as_ref(), par);
            bt.subcols_mut(m, cols).copy_from(&t);
            p.subcols_mut(m, cols).copy_from(&ht);
            let new = mul_par(bt.subcols(0, m + cols).transpose(), t.as_ref(), par);
            for j in 0..cols {
                for i in 0..m + cols {
                    g[(i, m + j)] = new[(i, j)];
                    g[(m + j, i)] = new[(i, j)];
                }
            }
            m += cols;
            // Rayleigh-Ritz through the small Gram matrix
            let (km, btm, pm) = (k.subcols(0, m), bt.subcols(0, m), p.subcols(0, m));
            let evd = g.submatrix(0, 0, m, m).self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
            let s: Vec<f64> = (0..m).rev().map(|i| evd.S()[i].max(0.0).sqrt()).collect();
            if !(s[0] > 0.0 && s[0].is_finite()) {
                return Ok(None);
            }
            let wr = Mat::from_fn(m, r.min(m), |i, j| evd.U()[(i, m - 1 - j)]);
            let (hz, u) = (mul_par(pm, wr.as_ref(), par), mul_par(km, wr.as_ref(), par));
            let converged = s[r - 1] > 0.0
                && (0..r).all(|j| {
                    let rho = (0..n).map(|i| (hz[(i, j)] / s[j] - s[j] * u[(i, j)]).powi(2)).sum::<f64>().sqrt();
                    rho <= RANDOMIZED_TOL * s[j]
                });
            if converged {
                return Self::ritz(h, km, btm, r, par);
            }
            if m + b > max_m {
                return Ok(None);
            }
            // next block: H H^T of the last one, orthogonalised twice against the basis
            let before: Vec<f64> = (0..ht.ncols()).map(|j| ht.col(j).norm_l2()).collect();
            let mut next = ht;
            for _ in 0..2 {
                let coef = mul_par(k.subcols(0, m).transpose(), next.as_ref(), par);
                let proj = mul_par(k.subcols(0, m), coef.as_ref(), par);
                next -= proj;
            }
            // A column (nearly) inside the basis already: the Krylov space is exhausted and its
            // QR would invent directions that need not be orthogonal to the basis; the full
            // route takes over.
            let kept = |j: usize| {
                let norm = next.col(j).norm_l2();
                norm.is_finite() && norm > 1e-8 * before[j]
            };
            if !(0..next.ncols()).all(kept) {
                return Ok(None);
            }
            block = next.qr().compute_thin_Q();
        }
    }

    /// The Ritz triplets of `H` on the basis `K` (`H^T K = Z S W^T`), checked directly: `None`
    /// unless every leading residual `|H z_i - s_i K w_i| <= RANDOMIZED_TOL s_i`.
    fn ritz(h: MatRef<'_, f64>, k: MatRef<'_, f64>, bt: MatRef<'_, f64>, r: usize, par: Par) -> Result<Option<Self>> {
        let svd = bt.thin_svd().map_err(svd_err)?;
        let s: Vec<f64> = svd.S().column_vector().iter().copied().collect();
        let z = svd.U().to_owned();
        let u = mul_par(k, svd.V(), par);
        let hz = mul_par(h, z.subcols(0, r), par);
        let rho = residual_norms(hz.as_ref(), u.as_ref(), &s[..r]);
        if !(0..r).all(|j| rho[j] <= RANDOMIZED_TOL * s[j]) {
            return Ok(None);
        }
        let tol = s[0] * (h.nrows().max(h.ncols()) as f64) * f64::EPSILON;
        let reliable = s.iter().take_while(|&&x| x > tol).count();
        if reliable < r {
            // rank-deficient at r: the full routes report it properly
            return Ok(None);
        }
        Ok(Some(Self { s, v: z, u: Some(u), reliable }))
    }

    fn new(h: MatRef<'_, f64>, params: &DmdParams, par: Par, partial: bool) -> Result<Self> {
        if let Some(svd) = Self::fast(h, params, par, partial)? {
            return Ok(svd);
        }
        if partial {
            if let Some(svd) = Self::randomized(h, params, par)? {
                return Ok(svd);
            }
        }
        Self::accurate(h)
    }

    /// The first `k` left singular vectors (`k` within the numerical rank).
    fn left_cols(&self, h: MatRef<'_, f64>, k: usize, par: Par) -> Mat<f64> {
        match &self.u {
            Some(u) => u.subcols(0, k).to_owned(),
            None => {
                let mut hv = mul_par(h, self.v.subcols(0, k), par);
                for j in 0..k {
                    let inv = 1.0 / self.s[j];
                    for i in 0..hv.nrows() {
                        hv[(i, j)] *= inv;
                    }
                }
                hv
            }
        }
    }
}

fn choose_rank(rule: RankSelection, s: &[f64], numerical_rank: usize, width: usize, rows: usize) -> Result<usize> {
    let r = match rule {
        RankSelection::Full => numerical_rank,
        RankSelection::Count(r) => {
            let limit = width.min(rows);
            if r > width {
                return Err(MetricError::RankTooLarge {
                    rank: r,
                    limit: width,
                    why: format!("the embedding width (units x n_delays = {width})"),
                });
            }
            if r > limit {
                return Err(MetricError::RankTooLarge {
                    rank: r,
                    limit,
                    why: format!("the number of embedded rows ({rows})"),
                });
            }
            if r > numerical_rank {
                return Err(MetricError::RankTooLarge {
                    rank: r,
                    limit: numerical_rank,
                    why: "the numerical rank of the embedded data: the remaining singular values are zero".into(),
                });
            }
            r
        }
        RankSelection::Threshold(t) => s.iter().take(numerical_rank).take_while(|&&x| x / s[0] > t).count(),
        RankSelection::ExplainedVariance(v) => {
            let total: f64 = s.iter().map(|x| x * x).sum();
            let mut acc = 0.0;
            let mut r = 0;
            for x in s.iter().take(numerical_rank) {
                acc += x * x;
                r += 1;
                if acc / total >= v * (1.0 - 1e-12) {
                    break;
                }
            }
            r
        }
    };
    Ok(r.max(1))
}

/// Solve `G X = rhs` for symmetric positive (semi-)definite `G` (Cholesky; LU fallback).
fn solve_spd(g: MatRef<'_, f64>, mut rhs: Mat<f64>) -> Result<Mat<f64>> {
    if let Ok(llt) = g.llt(Side::Lower) {
        llt.solve_in_place(rhs.as_mut());
    } else {
        g.partial_piv_lu().solve_in_place(rhs.as_mut());
    }
    if rhs.norm_max().is_finite() {
        Ok(rhs)
    } else {
        Err(MetricError::NoConvergence { what: "DMD regression solve (singular Gram matrix; add --lambda)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn tall(n: usize, w: usize, decay: f64) -> Mat<f64> {
        // H = X diag(decay^j) with pseudo-random X: singular values spread by `decay`
        let mut s = 7u64;
        Mat::from_fn(n, w, |_, j| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * decay.powi(j as i32)
        })
    }

    /// A recording of a leaky tanh RNN driven by noise (`h <- 0.8 h + 0.2 tanh(W h) + noise`),
    /// trials x time x units: a slowly decaying, flat-tailed spectrum like the study's
    /// networks' (the randomised route's hard case: small gaps around the rank).
    fn noisy_rnn(trials: usize, time: usize, units: usize, seed: u64) -> Array3<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scale = 1.5 / (units as f64).sqrt();
        let w = Mat::from_fn(units, units, |_, _| scale * rng.sample::<f64, _>(StandardNormal));
        let mut x = Array3::zeros((trials, time, units));
        for k in 0..trials {
            let mut h: Vec<f64> = (0..units).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
            for t in 0..time {
                let drive: Vec<f64> = (0..units).map(|i| (0..units).map(|j| w[(i, j)] * h[j]).sum::<f64>()).collect();
                for i in 0..units {
                    h[i] = 0.8 * h[i] + 0.2 * drive[i].tanh() + 0.1 * rng.sample::<f64, _>(StandardNormal);
                    x[[k, t, i]] = h[i];
                }
            }
        }
        x
    }

    /// Two fits of one recording describe the same operator: the same eigenvalues, the same
    /// matrix up to the signs of the basis vectors, `A_a = D A_b D` with `D = sign(diag(U_b^T
    /// U_a))` (so every DSA score, a function of the operators up to orthogonal similarity,
    /// is the same), and DSA distance 0 between them.
    fn fits_agree(a: &DmdFit, b: &DmdFit, p: &DmdParams) {
        let r = a.rank();
        assert_eq!(r, b.rank());
        let sorted = |f: &DmdFit| {
            let mut e = f.eigenvalues().unwrap();
            e.sort_by(|a, b| (a.re, a.im).partial_cmp(&(b.re, b.im)).unwrap());
            e
        };
        for (x, y) in sorted(a).iter().zip(sorted(b).iter()) {
            assert!((x - y).norm() < 1e-8, "eigenvalue {x} vs {y}");
        }
        let d = mul(b.u.transpose(), a.u.as_ref());
        let signs: Vec<f64> = (0..r).map(|i| d[(i, i)].signum()).collect();
        assert!((0..r).all(|i| (d[(i, i)].abs() - 1.0).abs() < 1e-8), "singular vectors differ beyond sign");
        let diff = Mat::from_fn(r, r, |i, j| a.a_v[(i, j)] - signs[i] * b.a_v[(i, j)] * signs[j]);
        assert!(diff.norm_max() < 1e-8 * b.a_v.norm_max(), "A_v differs by {}", diff.norm_max());
        let dsa = crate::Dsa::new(crate::DsaParams { dmd: *p, ..Default::default() }).unwrap();
        let same = dsa.compare(a, b).unwrap().value;
        assert!(same < 1e-6, "DSA between the two fits of one recording: {same}");
    }

    /// The leading singular triplets of `a` agree with those of the accurate route: values to
    /// `1e-9` relative, and the same leading `r`-dimensional left subspace.
    fn triplets_agree(a: &TallSvd, h: MatRef<'_, f64>, r: usize) {
        let acc = TallSvd::accurate(h).unwrap();
        for i in 0..r {
            assert!((a.s[i] - acc.s[i]).abs() <= 1e-9 * acc.s[i], "s_{i}: {} vs {}", a.s[i], acc.s[i]);
        }
        // |U_a^T U_acc| has singular values 1
        let ua = a.left_cols(h, r, Par::Seq);
        let uacc = acc.left_cols(h, r, Par::Seq);
        let overlap = mul(ua.transpose(), uacc.as_ref()).singular_values().unwrap();
        assert!(overlap.iter().all(|&c| (c - 1.0).abs() < 1e-9), "{overlap:?}");
    }

    /// The randomised route agrees with the full decomposition (see [`triplets_agree`] and,
    /// for a wide embedding, which the fit sends to it, [`fits_agree`]).
    fn randomized_agrees(x: &Array3<f64>, r: usize, wide: bool) {
        let p = DmdParams { n_delays: 8, delay_interval: 2, rank: RankSelection::Count(r), ..Default::default() };
        let emb = p.embedding();
        let rows = emb.check_input(x.view(), "x", 2).unwrap();
        let ht = emb.embed_stacked_t(x.view(), rows);
        let h = ht.transpose();
        assert_eq!(h.nrows() < h.ncols(), wide, "{} x {}", h.nrows(), h.ncols());
        let rand = TallSvd::randomized(h, &p, Par::Seq).unwrap().expect("randomised route taken");
        triplets_agree(&rand, h, r);
        if wide {
            let fast = DmdFit::fit(x.view(), &p, Par::Seq).unwrap();
            let full = DmdFit::fit_routed(x.view(), &p, Par::Seq, false).unwrap();
            // the randomised fit computed only its Krylov basis' singular values
            let m = fast.singular_values().len();
            assert!(m >= 2 * (r + KRYLOV_OVERSAMPLE) && m <= h.nrows().min(h.ncols()) / 2, "{m}");
            assert_eq!(full.singular_values().len(), h.nrows().min(h.ncols()));
            fits_agree(&fast, &full, &p);
        }
    }

    /// A wide embedding: 150 units x 8 delays over 1,056 rows, rank 40.
    #[test]
    fn randomized_route_agrees_with_the_full_svd_on_a_wide_embedding() {
        randomized_agrees(&noisy_rnn(16, 80, 150, 1), 40, true);
    }

    /// A tall one wide next to its rank: 60 units x 8 delays over 2,640 rows, rank 10 (a fit
    /// takes the Gram route; the randomised one is its fallback).
    #[test]
    fn randomized_route_agrees_with_the_full_svd_on_a_tall_embedding() {
        randomized_agrees(&noisy_rnn(40, 80, 60, 5), 10, false);
    }

    /// The Gram route's Lanczos branch (fixed rank, wide enough) agrees with the full
    /// eigen-decomposition of the Gram matrix and with the accurate SVD: 20 units x 8 delays
    /// over 2,640 rows, a flat spectrum, rank 20.
    #[test]
    fn lanczos_gram_route_agrees_with_the_full_decompositions() {
        let x = noisy_rnn(40, 80, 20, 6);
        let p = DmdParams { n_delays: 16, delay_interval: 2, rank: RankSelection::Count(20), ..Default::default() };
        let rows = p.embedding().check_input(x.view(), "x", 2).unwrap();
        let ht = p.embedding().embed_stacked_t(x.view(), rows);
        let h = ht.transpose();
        assert!(h.ncols() >= LANCZOS_MIN_WIDTH);
        let partial = TallSvd::fast(h, &p, Par::Seq, true).unwrap().expect("Gram route");
        // only the leading r were computed: the Lanczos branch was taken
        assert_eq!(partial.s.len(), 20);
        assert_eq!(partial.reliable, 20);
        let full = TallSvd::fast(h, &p, Par::Seq, false).unwrap().expect("Gram route");
        assert_eq!(full.s.len(), h.ncols());
        for i in 0..20 {
            assert!((partial.s[i] - full.s[i]).abs() <= 1e-10 * full.s[i], "s_{i}");
        }
        triplets_agree(&partial, h, 20);
        let fast = DmdFit::fit(x.view(), &p, Par::Seq).unwrap();
        assert_eq!(fast.singular_values().len(), 20);
        let slow = DmdFit::fit_routed(x.view(), &p, Par::Seq, false).unwrap();
        fits_agree(&fast, &slow, &p);
        // other rank rules use the whole spectrum: the full decomposition
        let thresh = DmdParams { rank: RankSelection::Threshold(0.01), ..p };
        assert_eq!(TallSvd::fast(h, &thresh, Par::Seq, true).unwrap().expect("Gram route").s.len(), h.ncols());
    }

    /// A tall embedding of low numerical rank (40 units mixing 4 latent series, 8 delays:
    /// rank 32 of width 320): the Lanczos branch's Krylov space runs out, it declines, and
    /// the fit is the full decomposition's; a rank above 32 is the same clear error.
    #[test]
    fn lanczos_gram_route_declines_on_a_low_rank_embedding() {
        let latent = noisy_rnn(40, 80, 4, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mix: Vec<f64> = (0..4 * 40).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let x =
            Array3::from_shape_fn((40, 80, 40), |(k, t, u)| (0..4).map(|l| latent[[k, t, l]] * mix[l * 40 + u]).sum());
        let p = DmdParams { n_delays: 8, delay_interval: 2, rank: RankSelection::Count(20), ..Default::default() };
        let rows = p.embedding().check_input(x.view(), "x", 2).unwrap();
        let ht = p.embedding().embed_stacked_t(x.view(), rows);
        let h = ht.transpose();
        assert!(h.ncols() >= LANCZOS_MIN_WIDTH && h.nrows() > h.ncols());
        let mut g = gram(h, Par::Seq);
        assert!(matches!(lanczos::top_eigenpairs(g.as_mut(), 20, Par::Seq).unwrap(), Partial::Declined { .. }));
        let fast = DmdFit::fit(x.view(), &p, Par::Seq).unwrap();
        let full = DmdFit::fit_routed(x.view(), &p, Par::Seq, false).unwrap();
        fits_agree(&fast, &full, &p);
        let too_many = DmdParams { rank: RankSelection::Count(40), ..p };
        let err = DmdFit::fit(x.view(), &too_many, Par::Seq).unwrap_err().to_string();
        assert!(err.contains("numerical rank"), "{err}");
    }

    /// Where the rank exceeds the numerical rank, or the rank is not a fixed count, the
    /// randomised route steps aside and the full route's answer (or error) stands.
    #[test]
    fn randomized_route_steps_aside_when_it_does_not_apply() {
        // 150 units that are mixtures of 5 latent series: numerical rank 5 x 8 = 40 < 45
        let latent = noisy_rnn(16, 80, 5, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mix: Vec<f64> = (0..5 * 150).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let x = Array3::from_shape_fn((16, 80, 150), |(k, t, u)| {
            (0..5).map(|l| latent[[k, t, l]] * mix[l * 150 + u]).sum()
        });
        let p = DmdParams { n_delays: 8, delay_interval: 2, rank: RankSelection::Count(45), ..Default::default() };
        let emb = p.embedding();
        let rows = emb.check_input(x.view(), "x", 2).unwrap();
        let ht = emb.embed_stacked_t(x.view(), rows);
        let h = ht.transpose();
        assert!(TallSvd::randomized(h.as_ref(), &p, Par::Seq).unwrap().is_none());
        let err = DmdFit::fit(x.view(), &p, Par::Seq).unwrap_err().to_string();
        assert!(err.contains("numerical rank"), "{err}");
        // rank 40 is within it: both routes agree on the operator's eigenvalues
        let p40 = DmdParams { rank: RankSelection::Count(40), ..p };
        assert!(TallSvd::randomized(h.as_ref(), &p40, Par::Seq).unwrap().is_some());
        for rule in [RankSelection::Full, RankSelection::Threshold(1e-3), RankSelection::ExplainedVariance(0.9)] {
            assert!(TallSvd::randomized(h.as_ref(), &DmdParams { rank: rule, ..p }, Par::Seq).unwrap().is_none());
        }
        let rrr = DmdParams { regression: Regression::ReducedRank, ..p40 };
        assert!(TallSvd::randomized(h.as_ref(), &rrr, Par::Seq).unwrap().is_none());
    }

    /// The Gram route agrees with the QR + SVD route where it is taken, and is refused where
    /// it would lose accuracy.
    #[test]
    fn gram_route_agrees_with_accurate_route_and_knows_its_limits() {
        let h = tall(300, 12, 0.7);
        let p = DmdParams { rank: RankSelection::Count(8), ..Default::default() };
        let fast = TallSvd::fast(h.as_ref(), &p, Par::Seq, true).unwrap().expect("well conditioned: fast route");
        assert!(fast.reliable >= 8);
        let acc = TallSvd::accurate(h.as_ref()).unwrap();
        for i in 0..8 {
            assert!((fast.s[i] - acc.s[i]).abs() <= 1e-10 * acc.s[0], "s_{i}");
        }
        // same left singular subspace: |U_f^T U_a| has singular values 1
        let uf = fast.left_cols(h.as_ref(), 8, Par::Seq);
        let ua = acc.left_cols(h.as_ref(), 8, Par::Seq);
        let overlap = mul(uf.transpose(), ua.as_ref()).singular_values().unwrap();
        assert!(overlap.iter().all(|&c| (c - 1.0).abs() < 1e-8), "{overlap:?}");
        // steep decay: s_8 / s_0 ~ 0.05^7, far below the Gram route's limit
        let steep = tall(300, 12, 0.05);
        assert!(TallSvd::fast(steep.as_ref(), &p, Par::Seq, true).unwrap().is_none());
        // the numerical-rank rule and reduced-rank regression always take the accurate route
        let full = DmdParams { rank: RankSelection::Full, ..p };
        assert!(TallSvd::fast(h.as_ref(), &full, Par::Seq, true).unwrap().is_none());
        let rrr = DmdParams { regression: Regression::ReducedRank, ..p };
        assert!(TallSvd::fast(h.as_ref(), &rrr, Par::Seq, true).unwrap().is_none());
    }
}
