//! The leading eigenpairs of a symmetric positive semi-definite matrix, without a full
//! eigen-decomposition: block Lanczos with full re-orthogonalisation, confirmed by explicit
//! residuals and certified complete by an inertia test.
//!
//! A DMD fit at the study's settings needs the leading `r = 50` eigenpairs of a `660 x 660`
//! Gram matrix whose spectrum is flat around `r` (neighbouring eigenvalues 2-4 % apart). A
//! full decomposition spends most of its time tridiagonalising; a block Krylov method with
//! small blocks (a high polynomial degree for its basis size) converges in a basis of about
//! `2.5 r` vectors. What it cannot see by itself is an eigenvector missing from its Krylov
//! space (a multiplicity above the block size, or a start vector blind to it): small
//! residuals only say that each Ritz pair is *an* eigenpair. The inertia test closes that
//! gap (see [`top_eigenpairs`]).

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor as llt;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::Result;
use crate::linalg::{evd_err, mul_par, residual_norms};

/// Columns per Lanczos block. Small blocks give the highest polynomial degree for a basis
/// size (measured on the study's Gram matrices, rank 50: converged at 100-120 vectors with
/// blocks of 1 or 2, 140-160 with 4, 200 with 8, 240-290 with 16, 540 with 60); 4 keeps the
/// products matrix-matrix and sees multiplicities up to 4 directly.
pub(crate) const LANCZOS_BLOCK: usize = 4;

/// Vectors added after the first convergence check (at `2 r`); later checks are placed where
/// the residuals' decay predicts convergence, at most `4 CHECK_EVERY` vectors apart.
const CHECK_EVERY: usize = 16;

/// Relative residual `|G x_i - theta_i x_i| <= LANCZOS_TOL theta_i` at which a Ritz pair is
/// converged, unless the floor [`FLOOR_EPS`] `eps theta_0` is larger.
pub(crate) const LANCZOS_TOL: f64 = 1e-10;

/// Residuals are not resolved below about `eps |G|`; a pair with `rho_i <= FLOOR_EPS eps
/// theta_0` is as converged as a full decomposition would make it.
const FLOOR_EPS: f64 = 64.0;

/// Seed of the Gaussian start block (fixed: a fit is a function of its data).
const SEED: u64 = 0x1A2C_205E;

/// What [`top_eigenpairs`] found.
pub(crate) enum Partial {
    /// The certified leading eigenpairs. The matrix was overwritten by the certificate.
    Found(TopEigen),
    /// Not applicable, not converged or not certified: a full decomposition is needed, of
    /// the matrix as it was (recomputed if `overwritten`, when the certificate failed).
    Declined { overwritten: bool },
}

/// The leading eigenpairs found by [`top_eigenpairs`].
pub(crate) struct TopEigen {
    /// `theta_0 >= ... >= theta_{r-1}`.
    pub values: Vec<f64>,
    /// Orthonormal Ritz vectors (`w x r`), column `i` for `values[i]`.
    pub vectors: Mat<f64>,
}

/// The `r` largest eigenpairs of the symmetric positive semi-definite `g` (both triangles
/// stored), or [`Partial::Declined`] when the method does not apply (`2 r + LANCZOS_BLOCK >
/// w / 2`), breaks down, does not converge within `w / 2` basis vectors, or cannot certify
/// its answer. The caller then falls back to a full decomposition; a `Found` is always
/// right. The certificate overwrites `g`'s lower triangle.
///
/// Method (Golub & Underwood 1977; Saad, *Numerical Methods for Large Eigenvalue Problems*,
/// 2011, ch. 6): from a seeded Gaussian block `Q_0`, each block `Q_{j+1}` is `G Q_j`
/// orthogonalised twice against all earlier ones (full re-orthogonalisation) and
/// QR-factored, `G Q_j - Q T_j = Q_{j+1} B_{j+1}`. The projection `T = Q^T G Q` is kept
/// explicitly; at checks (from `2 r` on, [`CHECK_EVERY`]) its eigen-decomposition gives
/// Ritz pairs `(theta_i, Q s_i)` whose residuals are `|B_{j+1} s_i^{last}|`. When all `r`
/// leading ones are below [`LANCZOS_TOL`] they are recomputed directly, `rho_i = |G x_i -
/// theta_i x_i|`, and then certified:
///
/// - by Kahan's theorem each `theta_i` lies within `|R|_F` (`R = G X - X Theta`) of its own
///   eigenvalue of `G`, so with `sigma = (theta_{r-1} + theta_r) / 2` (the next Ritz value
///   `theta_r` is a lower bound of `lambda_r`) and `theta_{r-1} - |R|_F > sigma`, `G` has at
///   least `r` eigenvalues above `sigma`;
/// - `M = sigma I - G + X Theta X^T` differs from `sigma I - G` by a positive semi-definite
///   matrix of rank `r`, which can remove at most `r` negative eigenvalues; so if the
///   Cholesky factorisation of `M` succeeds, `G` has at most `r` eigenvalues above `sigma`.
///
/// Together: the `theta_i` approximate exactly the `r` largest eigenvalues, every other one
/// is `<= sigma`, and each Ritz vector's component outside the leading eigenspace is at most
/// `rho_i / (theta_i - sigma)` (the sine of its angle to it).
pub(crate) fn top_eigenpairs(mut g: MatMut<'_, f64>, r: usize, par: Par) -> Result<Partial> {
    let w = g.nrows();
    let b = LANCZOS_BLOCK;
    let max_m = (w / 2) / b * b;
    const DECLINED: Partial = Partial::Declined { overwritten: false };
    if r == 0 || 2 * r + b > max_m {
        return Ok(DECLINED);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let start = Mat::from_fn(w, b, |_, _| rng.sample::<f64, _>(StandardNormal));
    let mut block = start.qr().compute_thin_Q();
    let mut q = Mat::<f64>::zeros(w, max_m);
    let mut gq = Mat::<f64>::zeros(w, max_m);
    let mut t = Mat::<f64>::zeros(max_m, max_m);
    let mut m = 0;
    let mut next_check = (2 * r).div_ceil(b) * b;
    // basis size and worst estimate / tolerance at the last check
    let mut last_check: Option<(usize, f64)> = None;
    while m + b <= max_m {
        q.subcols_mut(m, b).copy_from(&block);
        let y = mul_par(g.as_ref(), block.as_ref(), par);
        gq.subcols_mut(m, b).copy_from(&y);
        m += b;
        // the new columns (and rows) of T = Q^T G Q
        let col = mul_par(q.subcols(0, m).transpose(), y.as_ref(), par);
        for j in 0..b {
            for i in 0..m {
                t[(i, m - b + j)] = col[(i, j)];
                t[(m - b + j, i)] = col[(i, j)];
            }
        }
        // the next block: G Q_j orthogonalised twice against the basis
        let before: Vec<f64> = (0..b).map(|j| y.col(j).norm_l2()).collect();
        let mut next = y;
        for _ in 0..2 {
            let coef = mul_par(q.subcols(0, m).transpose(), next.as_ref(), par);
            let proj = mul_par(q.subcols(0, m), coef.as_ref(), par);
            next -= proj;
        }
        let qr = next.qr();
        let b_next = qr.thin_R().to_owned();
        // an (almost) invariant Krylov space, or a block of dependent columns: the QR would
        // invent directions that need not be orthogonal to the basis; the full
        // decomposition takes over
        if !(0..b).all(|j| {
            let d = b_next[(j, j)].abs();
            d.is_finite() && d > 1e-10 * before[j]
        }) {
            return Ok(DECLINED);
        }
        block = qr.compute_thin_Q();
        // (the largest basis is always checked)
        if m < next_check && m + b <= max_m {
            continue;
        }
        // Ritz pairs of T, with the Lanczos residual estimates |B_{j+1} s_i^last|
        let evd = t.submatrix(0, 0, m, m).self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
        let theta: Vec<f64> = (0..=r).map(|i| evd.S()[m - 1 - i]).collect();
        if !(theta[0] > 0.0 && theta[0].is_finite() && theta[r - 1] > 0.0) {
            return Ok(DECLINED);
        }
        let tol = |i: usize| (LANCZOS_TOL * theta[i]).max(FLOOR_EPS * f64::EPSILON * theta[0]);
        let estimate = |i: usize| {
            let s_last = Mat::from_fn(b, 1, |k, _| evd.U()[(m - b + k, m - 1 - i)]);
            mul_par(b_next.as_ref(), s_last.as_ref(), Par::Seq).col(0).norm_l2()
        };
        // (a NaN estimate counts as unconverged)
        let worst = (0..r)
            .map(|i| estimate(i) / tol(i))
            .fold(0.0, |acc: f64, e| if e.is_nan() { f64::INFINITY } else { acc.max(e) });
        if worst > 1.0 {
            // the next check where the decay since the last one, extrapolated on a log scale,
            // reaches the tolerance (the decay speeds up, so this errs towards a few vectors
            // too many rather than a check too early)
            let step = match last_check {
                Some((m0, w0)) if w0 > worst => (worst.ln() * (m - m0) as f64 / (w0 / worst).ln()).ceil() as usize,
                _ => CHECK_EVERY,
            };
            next_check = m + step.clamp(b, 4 * CHECK_EVERY).div_ceil(b) * b;
            last_check = Some((m, worst));
            continue;
        }
        let s = Mat::from_fn(m, r, |i, j| evd.U()[(i, m - 1 - j)]);
        let x = mul_par(q.subcols(0, m), s.as_ref(), par);
        let gx = mul_par(gq.subcols(0, m), s.as_ref(), par);
        let residuals = residual_norms(gx.as_ref(), x.as_ref(), &theta[..r]);
        if !(0..r).all(|i| residuals[i] <= tol(i)) {
            // rounding the estimate did not see; more vectors will not fix it reliably
            return Ok(DECLINED);
        }
        let sigma = 0.5 * (theta[r - 1] + theta[r]);
        let r_fro = residuals.iter().map(|x| x * x).sum::<f64>().sqrt();
        if theta[r - 1] - r_fro <= sigma {
            return Ok(DECLINED);
        }
        if !complete(g.as_mut(), x.as_ref(), &theta[..r], sigma, par) {
            return Ok(Partial::Declined { overwritten: true });
        }
        return Ok(Partial::Found(TopEigen { values: theta[..r].to_vec(), vectors: x }));
    }
    Ok(DECLINED)
}

/// Whether `M = sigma I - G + X Theta X^T` is positive definite (its Cholesky factorisation
/// succeeds): then `G` has at most `r = X.ncols()` eigenvalues above `sigma` (see
/// [`top_eigenpairs`]). `M` is formed and factored in place of `G`'s lower triangle (a
/// second `w x w` matrix would cost as much again in fresh memory as the factorisation).
fn complete(mut g: MatMut<'_, f64>, x: MatRef<'_, f64>, theta: &[f64], sigma: f64, par: Par) -> bool {
    let w = g.nrows();
    for j in 0..w {
        for i in j..w {
            g[(i, j)] = -g[(i, j)];
        }
        g[(j, j)] += sigma;
    }
    let xt = Mat::from_fn(w, theta.len(), |i, j| x[(i, j)] * theta[j]);
    triangular::matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Add,
        xt.as_ref(),
        BlockStructure::Rectangular,
        x.transpose(),
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    let params = Default::default();
    let mut scratch = MemBuffer::new(llt::cholesky_in_place_scratch::<f64>(w, par, params));
    llt::cholesky_in_place(g, Default::default(), par, MemStack::new(&mut scratch), params).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eigenpairs found on a copy of `g`, if any.
    fn found(g: &Mat<f64>, r: usize) -> Option<TopEigen> {
        match top_eigenpairs(g.clone().as_mut(), r, Par::Seq).unwrap() {
            Partial::Found(top) => Some(top),
            Partial::Declined { .. } => None,
        }
    }

    /// `Q diag(lambda) Q^T` with a seeded random orthogonal `Q`.
    fn with_spectrum(lambda: &[f64], seed: u64) -> (Mat<f64>, Mat<f64>) {
        let w = lambda.len();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let q = Mat::from_fn(w, w, |_, _| rng.sample::<f64, _>(StandardNormal)).qr().compute_thin_Q();
        let ql = Mat::from_fn(w, w, |i, j| q[(i, j)] * lambda[j]);
        (mul_par(ql.as_ref(), q.transpose(), Par::Seq), q)
    }

    /// A flat spectrum like the study's: `lambda_i = 1 / (1 + i/8)^2` over 400 dimensions.
    fn flat(w: usize) -> Vec<f64> {
        (0..w).map(|i| 1.0 / (1.0 + i as f64 / 8.0).powi(2)).collect()
    }

    #[test]
    fn finds_the_leading_eigenpairs_of_a_flat_spectrum() {
        let lambda = flat(400);
        let (g, q) = with_spectrum(&lambda, 1);
        let r = 30;
        let top = found(&g, r).expect("converges");
        let gx = mul_par(g.as_ref(), top.vectors.as_ref(), Par::Seq);
        let residuals = residual_norms(gx.as_ref(), top.vectors.as_ref(), &top.values);
        for i in 0..r {
            assert!((top.values[i] - lambda[i]).abs() <= 1e-12, "theta_{i} {} vs {}", top.values[i], lambda[i]);
            assert!(residuals[i] <= LANCZOS_TOL * lambda[i], "residual {i}: {}", residuals[i]);
            // the Ritz vector is the eigenvector up to sign
            let c: f64 = (0..400).map(|k| top.vectors[(k, i)] * q[(k, i)]).sum();
            assert!((c.abs() - 1.0).abs() < 1e-9, "vector {i}: |cos| = {}", c.abs());
        }
    }

    /// A leading eigenvalue of multiplicity 6, more than a block sees at once: the answer
    /// either contains the whole eigenspace or is refused, never a wrong subspace.
    #[test]
    fn a_multiplicity_above_the_block_size_is_found_or_refused() {
        let mut lambda = flat(300);
        for l in lambda.iter_mut().take(6) {
            *l = 2.0;
        }
        let (g, q) = with_spectrum(&lambda, 2);
        if let Some(top) = found(&g, 10) {
            // the six found span the eigenspace: |Q_6^T X_6| has singular values 1
            let overlap = mul_par(q.subcols(0, 6).transpose(), top.vectors.subcols(0, 6), Par::Seq);
            let sv = overlap.singular_values().unwrap();
            assert!(sv.iter().all(|&c| (c - 1.0).abs() < 1e-9), "{sv:?}");
        }
    }

    /// The completeness test is what rejects a set of exact eigenpairs that skips one.
    #[test]
    fn the_inertia_test_rejects_a_skipped_eigenvalue() {
        let lambda = flat(120);
        let (g, q) = with_spectrum(&lambda, 3);
        let r = 10;
        let theta: Vec<f64> = lambda[..r].to_vec();
        let sigma = 0.5 * (lambda[r - 1] + lambda[r]);
        assert!(complete(g.clone().as_mut(), q.subcols(0, r), &theta, sigma, Par::Seq));
        // eigenpairs 0..=10 without 4: every residual is zero, yet one is missing
        let idx: Vec<usize> = (0..=r).filter(|&i| i != 4).collect();
        let x = Mat::from_fn(120, r, |i, j| q[(i, idx[j])]);
        let theta: Vec<f64> = idx.iter().map(|&i| lambda[i]).collect();
        let sigma = 0.5 * (lambda[r] + lambda[r + 1]);
        assert!(!complete(g.clone().as_mut(), x.as_ref(), &theta, sigma, Par::Seq));
    }

    #[test]
    fn steps_aside_when_it_does_not_apply() {
        let (g, _) = with_spectrum(&flat(60), 4);
        // 2 r + b > w / 2
        assert!(found(&g, 14).is_none());
        assert!(found(&g, 0).is_none());
        // rank 3: the Krylov space is exhausted before the first check
        let mut low = flat(200);
        for l in low.iter_mut().skip(3) {
            *l = 0.0;
        }
        let (g, _) = with_spectrum(&low, 5);
        assert!(found(&g, 20).is_none());
    }
}
