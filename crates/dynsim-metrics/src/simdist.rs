//! The similarity-transform distance between two linear operators (the DSA distance).

use faer::linalg::solvers::Solve;
use faer::{Mat, MatRef, Side};
use ndarray::{Array2, ArrayView2};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{MetricError, Result};
use crate::linalg::{check_finite2, evd_err, fro, inner, mul, to_faer, to_ndarray};

/// Which orthogonal transforms the distance minimises over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Group {
    /// The whole orthogonal group O(n): both components, `det C = +1` and `det C = -1`.
    #[default]
    O,
    /// Rotations only, SO(n) (`det C = +1`).
    SO,
}

/// Parameters of the optimiser behind [`SimilarityTransformDist`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimilarityParams {
    /// The group searched.
    pub group: Group,
    /// Seeded random (Haar) starting points per determinant component, on top of the
    /// spectral initialisations.
    pub restarts: usize,
    /// Iteration cap of one local optimisation.
    pub max_iters: usize,
    /// Stop a local optimisation when the Riemannian gradient norm falls below this.
    pub grad_tol: f64,
    /// Seed of the random starting points.
    pub seed: u64,
}

impl Default for SimilarityParams {
    fn default() -> Self {
        Self { group: Group::O, restarts: 2, max_iters: 1000, grad_tol: 1e-10, seed: 0 }
    }
}

/// The optimum found for one pair of operators: a certificate that anyone can check.
#[derive(Debug, Clone)]
pub struct SimilarityFit {
    /// The orthogonal matrix `C` (`C^T C = I`).
    pub c: Array2<f64>,
    /// `arccos(<A, C B C^T>_F)` for the unit-norm operators, in radians `[0, pi]`.
    pub angular: f64,
    /// `||A - C B C^T||_F` for the unit-norm operators, in `[0, 2]`.
    pub euclidean: f64,
    /// The final loss of the optimiser: the euclidean score.
    pub loss: f64,
    /// Optimiser iterations used in total (all starting points).
    pub iterations: usize,
    /// `det C`: +1 or -1.
    pub det: i8,
    /// Best loss found in each component `[det +1, det -1]` (`NaN` when not searched).
    pub component_loss: [f64; 2],
}

/// Distance between operators up to an orthogonal change of basis (Ostrow et al. 2023):
///
/// ```text
/// d(A, B) = min_{C in O(n)} || A/|A|_F - C (B/|B|_F) C^T ||_F
/// angular = arccos <A/|A|, C B C^T/|B|>_F
/// ```
///
/// The optimiser maximises `g(C) = <A, C B C^T>` with a Riemannian L-BFGS on O(n)
/// (left-trivialised gradient `skew(Ã^T B - B Ã^T)`, `Ã = C^T A C`, Cayley retraction,
/// Armijo backtracking), started from spectral alignments (eigenvectors of `sym(A)`,
/// `A A^T`, `A^T A` matched to those of B, with the sign pattern chosen by the leading
/// eigenvector of the induced sign-coupling matrix) and from seeded Haar-random points,
/// separately in each determinant component. The reference (dsa-metric) instead runs Adam
/// on a Cayley parametrisation for ~1000 iterations.
///
/// ```
/// use dynsim_metrics::{SimilarityTransformDist, SimilarityParams};
/// use ndarray::array;
/// let a = array![[0.9, 0.2], [-0.1, 0.5]];
/// // B = C^T A C with C a reflection
/// let b = array![[0.5, -0.1], [0.2, 0.9]];
/// let fit = SimilarityTransformDist::new(SimilarityParams::default()).fit(a.view(), b.view()).unwrap();
/// assert!(fit.angular < 1e-6);
/// assert_eq!(fit.det, -1);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SimilarityTransformDist {
    params: SimilarityParams,
}

impl SimilarityTransformDist {
    /// A distance with the given optimiser parameters.
    pub fn new(params: SimilarityParams) -> Self {
        Self { params }
    }

    /// The parameters.
    pub fn params(&self) -> &SimilarityParams {
        &self.params
    }

    /// Minimise over C for square operators of equal size. The inputs are not modified.
    pub fn fit(&self, a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Result<SimilarityFit> {
        check_finite2(a, "operator A")?;
        check_finite2(b, "operator B")?;
        self.fit_faer(to_faer(a).as_ref(), to_faer(b).as_ref())
    }

    /// As [`fit`](Self::fit), on faer matrices.
    pub fn fit_faer(&self, a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Result<SimilarityFit> {
        if a.nrows() != a.ncols() || b.nrows() != b.ncols() || a.nrows() != b.nrows() {
            return Err(MetricError::ShapeMismatch {
                detail: format!(
                    "the similarity-transform distance needs two square operators of the same size, got {}x{} and {}x{}; \
                     use the eigenvalue-Wasserstein score for operators of different rank",
                    a.nrows(),
                    a.ncols(),
                    b.nrows(),
                    b.ncols()
                ),
            });
        }
        if a.nrows() == 0 {
            return Err(MetricError::Empty { what: "operator".into(), shape: "0x0".into() });
        }
        let (na, nb) = (fro(a), fro(b));
        if na == 0.0 || nb == 0.0 {
            return Err(MetricError::AllZero {
                what: if na == 0.0 { "operator A" } else { "operator B" }.into(),
                detail: String::new(),
            });
        }
        let an = Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] / na);
        let bn = Mat::from_fn(b.nrows(), b.ncols(), |i, j| b[(i, j)] / nb);
        let problem = Problem { a: an.as_ref(), b: bn.as_ref() };
        let mut rng = ChaCha8Rng::seed_from_u64(self.params.seed);
        let spectral = problem.spectral_candidates()?;
        let components: &[f64] = match self.params.group {
            Group::O => &[1.0, -1.0],
            Group::SO => &[1.0],
        };
        let mut iterations = 0;
        let mut component_loss = [f64::NAN; 2];
        let mut best: Option<(Mat<f64>, f64)> = None;
        for (ci, &det) in components.iter().enumerate() {
            let mut starts: Vec<Mat<f64>> = spectral.iter().map(|s| s.in_component(det)).collect();
            for _ in 0..self.params.restarts {
                starts.push(haar(a.nrows(), det, &mut rng));
            }
            for c0 in starts {
                let (c, g, it) = problem.local_opt(c0, self.params.max_iters, self.params.grad_tol);
                iterations += it;
                let loss = (2.0 - 2.0 * g).max(0.0).sqrt();
                if !(loss >= component_loss[ci]) {
                    component_loss[ci] = loss;
                }
                if best.as_ref().is_none_or(|(_, bg)| g > *bg) {
                    best = Some((c, g));
                }
            }
        }
        let (c, _) = best.ok_or(MetricError::NoConvergence { what: "similarity-transform optimiser" })?;
        let c = polar(c.as_ref())?;
        let (angular, euclidean) = scores_unit(an.as_ref(), bn.as_ref(), c.as_ref());
        let det = if c.as_ref().determinant() >= 0.0 { 1 } else { -1 };
        Ok(SimilarityFit {
            c: to_ndarray(c.as_ref()),
            angular,
            euclidean,
            loss: euclidean,
            iterations,
            det,
            component_loss,
        })
    }
}

/// Recompute the scores of a given orthogonal `C` (e.g. to check a certificate):
/// returns `(angular, euclidean)` for the unit-norm operators.
pub fn similarity_scores(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>, c: ArrayView2<'_, f64>) -> (f64, f64) {
    let (a, b, c) = (to_faer(a), to_faer(b), to_faer(c));
    let (na, nb) = (fro(a.as_ref()), fro(b.as_ref()));
    let an = Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] / na);
    let bn = Mat::from_fn(b.nrows(), b.ncols(), |i, j| b[(i, j)] / nb);
    scores_unit(an.as_ref(), bn.as_ref(), c.as_ref())
}

/// `(angular, euclidean)` for unit-norm `a`, `b`. The angle between unit vectors `a` and
/// `m = C b C^T` is computed as `2 atan2(|a - m|, |a + m|)`, which is accurate near 0 and
/// pi where `arccos` of the cosine loses half the digits.
fn scores_unit(a: MatRef<'_, f64>, b: MatRef<'_, f64>, c: MatRef<'_, f64>) -> (f64, f64) {
    let m = mul(mul(c, b).as_ref(), c.transpose());
    let diff = Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] - m[(i, j)]);
    let sum = Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] + m[(i, j)]);
    let (d, s) = (fro(diff.as_ref()), fro(sum.as_ref()));
    (2.0 * d.atan2(s), d)
}

struct Problem<'a> {
    a: MatRef<'a, f64>,
    b: MatRef<'a, f64>,
}

/// A spectral starting point `C = Q_a diag(d) Q_b^T`, with what is needed to move it into
/// either determinant component at the least cost.
struct SpectralStart {
    qa: Mat<f64>,
    qb: Mat<f64>,
    d: Vec<f64>,
    w: Mat<f64>,
    det_q: f64,
}

impl SpectralStart {
    fn in_component(&self, det: f64) -> Mat<f64> {
        let mut d = self.d.clone();
        let current: f64 = self.det_q * d.iter().product::<f64>();
        if current * det < 0.0 {
            // flip the sign that costs least
            let k = (0..d.len())
                .max_by(|&i, &j| flip_gain(&self.w, &d, i).total_cmp(&flip_gain(&self.w, &d, j)))
                .unwrap_or(0);
            d[k] = -d[k];
        }
        let qad = Mat::from_fn(self.qa.nrows(), self.qa.ncols(), |i, j| self.qa[(i, j)] * d[j]);
        mul(qad.as_ref(), self.qb.transpose())
    }
}

/// Change of `d^T W d` when `d_k` flips.
fn flip_gain(w: &Mat<f64>, d: &[f64], k: usize) -> f64 {
    let mut s = 0.0;
    for (j, dj) in d.iter().enumerate() {
        if j != k {
            s += w[(k, j)] * dj;
        }
    }
    -4.0 * d[k] * s
}

impl Problem<'_> {
    /// `g(C) = <A, C B C^T> = <C^T A C, B>` and `Ã = C^T A C`.
    fn value(&self, c: MatRef<'_, f64>) -> (f64, Mat<f64>) {
        let at = mul(mul(c.transpose(), self.a).as_ref(), c);
        (inner(at.as_ref(), self.b), at)
    }

    /// Left-trivialised gradient of g: `skew(Ã^T B - B Ã^T)`.
    fn grad(&self, at: MatRef<'_, f64>) -> Mat<f64> {
        let m1 = mul(at.transpose(), self.b);
        let m2 = mul(self.b, at.transpose());
        let n = at.nrows();
        Mat::from_fn(n, n, |i, j| 0.5 * ((m1[(i, j)] - m2[(i, j)]) - (m1[(j, i)] - m2[(j, i)])))
    }

    fn spectral_candidates(&self) -> Result<Vec<SpectralStart>> {
        let sym = |m: MatRef<'_, f64>| Mat::from_fn(m.nrows(), m.ncols(), |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
        let invariants = [
            (sym(self.a), sym(self.b)),
            (mul(self.a, self.a.transpose()), mul(self.b, self.b.transpose())),
            (mul(self.a.transpose(), self.a), mul(self.b.transpose(), self.b)),
        ];
        let mut out = Vec::with_capacity(invariants.len());
        for (sa, sb) in invariants {
            let ea = sa.self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
            let eb = sb.self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
            let qa = ea.U().to_owned();
            let qb = eb.U().to_owned();
            let ma = mul(mul(qa.transpose(), self.a).as_ref(), qa.as_ref());
            let mb = mul(mul(qb.transpose(), self.b).as_ref(), qb.as_ref());
            let n = ma.nrows();
            let w = Mat::from_fn(n, n, |i, j| 0.5 * (ma[(i, j)] * mb[(i, j)] + ma[(j, i)] * mb[(j, i)]));
            // leading eigenvector of W, rounded to signs, then greedy single flips
            let ew = w.self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
            let v = ew.U().col(n - 1);
            let mut d: Vec<f64> = (0..n).map(|i| if v[i] < 0.0 { -1.0 } else { 1.0 }).collect();
            for _ in 0..(4 * n * n) {
                let (k, gain) =
                    (0..n).map(|k| (k, flip_gain(&w, &d, k))).max_by(|x, y| x.1.total_cmp(&y.1)).unwrap_or((0, 0.0));
                if gain <= 1e-15 {
                    break;
                }
                d[k] = -d[k];
            }
            let det_q = qa.as_ref().determinant() * qb.as_ref().determinant();
            out.push(SpectralStart { qa, qb, d, w, det_q });
        }
        Ok(out)
    }

    /// Riemannian L-BFGS ascent of g from `c`. Returns (C, g(C), iterations).
    fn local_opt(&self, mut c: Mat<f64>, max_iters: usize, grad_tol: f64) -> (Mat<f64>, f64, usize) {
        const MEMORY: usize = 10;
        let n = c.nrows();
        let (mut g, mut at) = self.value(c.as_ref());
        let mut grad = self.grad(at.as_ref());
        let mut mem: std::collections::VecDeque<(Mat<f64>, Mat<f64>, f64)> = Default::default();
        let mut stall = 0;
        let mut it = 0;
        while it < max_iters {
            let gn = fro(grad.as_ref());
            if gn < grad_tol {
                break;
            }
            it += 1;
            // two-loop recursion on h = -g, gradient q = -grad
            let mut q = Mat::from_fn(n, n, |i, j| -grad[(i, j)]);
            let mut alphas = Vec::with_capacity(mem.len());
            for (s, y, rho) in mem.iter().rev() {
                let alpha = rho * inner(s.as_ref(), q.as_ref());
                q -= Mat::from_fn(n, n, |i, j| alpha * y[(i, j)]);
                alphas.push(alpha);
            }
            let gamma = match mem.back() {
                Some((s, y, _)) => inner(s.as_ref(), y.as_ref()) / inner(y.as_ref(), y.as_ref()),
                None => (0.5 / gn).min(1.0),
            };
            let mut r = Mat::from_fn(n, n, |i, j| gamma * q[(i, j)]);
            for ((s, y, rho), alpha) in mem.iter().zip(alphas.iter().rev()) {
                let beta = rho * inner(y.as_ref(), r.as_ref());
                r += Mat::from_fn(n, n, |i, j| (alpha - beta) * s[(i, j)]);
            }
            // descent direction of h = ascent direction of g: p = -r
            let mut p = Mat::from_fn(n, n, |i, j| -r[(i, j)]);
            let mut slope = inner(grad.as_ref(), p.as_ref()); // dg/dt > 0 wanted
            if slope <= 0.0 {
                mem.clear();
                p = Mat::from_fn(n, n, |i, j| grad[(i, j)] * (0.5 / gn).min(1.0));
                slope = inner(grad.as_ref(), p.as_ref());
            }
            let mut t = 1.0;
            let mut accepted = None;
            for _ in 0..40 {
                let cand = mul(c.as_ref(), cayley(p.as_ref(), t).as_ref());
                let (gc, atc) = self.value(cand.as_ref());
                if gc >= g + 1e-4 * t * slope {
                    accepted = Some((cand, gc, atc));
                    break;
                }
                t *= 0.5;
            }
            let Some((cand, gc, atc)) = accepted else {
                if mem.is_empty() {
                    break;
                }
                mem.clear();
                continue;
            };
            let grad_new = self.grad(atc.as_ref());
            let s = Mat::from_fn(n, n, |i, j| t * p[(i, j)]);
            let y = Mat::from_fn(n, n, |i, j| grad[(i, j)] - grad_new[(i, j)]);
            let sy = inner(s.as_ref(), y.as_ref());
            if sy > 1e-20 {
                if mem.len() == MEMORY {
                    mem.pop_front();
                }
                mem.push_back((s, y, 1.0 / sy));
            }
            stall = if gc - g <= 1e-15 * g.abs().max(1.0) { stall + 1 } else { 0 };
            c = cand;
            g = gc;
            at = atc;
            grad = grad_new;
            if stall >= 3 {
                break;
            }
        }
        let _ = at;
        (c, g, it)
    }
}

/// Cayley transform `(I - tW/2)^-1 (I + tW/2)` of a skew matrix: orthogonal, det +1.
fn cayley(w: MatRef<'_, f64>, t: f64) -> Mat<f64> {
    let n = w.nrows();
    let id = |i: usize, j: usize| if i == j { 1.0 } else { 0.0 };
    let lhs = Mat::from_fn(n, n, |i, j| id(i, j) - 0.5 * t * w[(i, j)]);
    let mut rhs = Mat::from_fn(n, n, |i, j| id(i, j) + 0.5 * t * w[(i, j)]);
    lhs.partial_piv_lu().solve_in_place(rhs.as_mut());
    rhs
}

/// A Haar-random orthogonal matrix with the given determinant sign.
fn haar(n: usize, det: f64, rng: &mut ChaCha8Rng) -> Mat<f64> {
    let mut q = Mat::from_fn(n, n, |_, _| rng.sample::<f64, _>(StandardNormal));
    // modified Gram-Schmidt (the sign convention of QR with positive diag(R) = Haar)
    for j in 0..n {
        for k in 0..j {
            let mut dot = 0.0;
            for i in 0..n {
                dot += q[(i, k)] * q[(i, j)];
            }
            for i in 0..n {
                let v = q[(i, k)];
                q[(i, j)] -= dot * v;
            }
        }
        let mut nrm = 0.0;
        for i in 0..n {
            nrm += q[(i, j)] * q[(i, j)];
        }
        let nrm = nrm.sqrt();
        for i in 0..n {
            q[(i, j)] /= nrm;
        }
    }
    if q.as_ref().determinant() * det < 0.0 {
        for i in 0..n {
            q[(i, 0)] = -q[(i, 0)];
        }
    }
    q
}

/// Nearest orthogonal matrix (polar factor `U V^T`), to remove round-off drift.
fn polar(c: MatRef<'_, f64>) -> Result<Mat<f64>> {
    let svd = c.svd().map_err(crate::linalg::svd_err)?;
    Ok(mul(svd.U(), svd.V().transpose()))
}
