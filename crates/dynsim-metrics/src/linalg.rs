//! The one small interop module: ndarray at the edges, faer inside.
//!
//! Conversions copy (ndarray and faer disagree on default layout, and the matrices involved
//! are small next to the decompositions run on them), plus a few dense helpers used across
//! the crate.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par};
use ndarray::{Array2, ArrayView2, ArrayView3};

use crate::error::{MetricError, Result};

/// Copy an ndarray matrix into a faer matrix.
pub(crate) fn to_faer(a: ArrayView2<'_, f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

/// Copy a faer matrix into an ndarray matrix.
pub(crate) fn to_ndarray(a: MatRef<'_, f64>) -> Array2<f64> {
    Array2::from_shape_fn((a.nrows(), a.ncols()), |(i, j)| a[(i, j)])
}

/// `a * b` (sequential: callers parallelise over pairs, not inside a product).
pub(crate) fn mul(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0, Par::Seq);
    out
}

/// `a * b` with the given parallelism (for the large products of a DMD fit).
pub(crate) fn mul_par(a: MatRef<'_, f64>, b: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0, par);
    out
}

/// The Gram matrix `a^T a`: computed on its lower triangle (half the flops of a general
/// product) and mirrored.
pub(crate) fn gram(a: MatRef<'_, f64>, par: Par) -> Mat<f64> {
    let w = a.ncols();
    let mut g = Mat::zeros(w, w);
    triangular::matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        a.transpose(),
        BlockStructure::Rectangular,
        a,
        BlockStructure::Rectangular,
        1.0,
        par,
    );
    for j in 0..w {
        for i in 0..j {
            g[(i, j)] = g[(j, i)];
        }
    }
    g
}

/// Residual norms of approximate eigen- or singular pairs: `|a_j - d_j b_j|_2` for each of the
/// first `d.len()` columns.
pub(crate) fn residual_norms(a: MatRef<'_, f64>, b: MatRef<'_, f64>, d: &[f64]) -> Vec<f64> {
    d.iter()
        .enumerate()
        .map(|(j, &dj)| (0..a.nrows()).map(|i| (a[(i, j)] - dj * b[(i, j)]).powi(2)).sum::<f64>().sqrt())
        .collect()
}

/// Frobenius inner product `<a, b>_F = sum_ij a_ij b_ij`.
pub(crate) fn inner(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> f64 {
    debug_assert_eq!((a.nrows(), a.ncols()), (b.nrows(), b.ncols()));
    let mut s = 0.0;
    for j in 0..a.ncols() {
        let (ca, cb) = (a.col(j), b.col(j));
        match (ca.try_as_col_major(), cb.try_as_col_major()) {
            (Some(x), Some(y)) => s += dot(x.as_slice(), y.as_slice()),
            _ => {
                for i in 0..a.nrows() {
                    s += a[(i, j)] * b[(i, j)];
                }
            }
        }
    }
    s
}

/// `sum_i a_i b_i` through faer's SIMD kernel (runtime-dispatched AVX2 / AVX-512; a
/// plain `.sum()` is one serial chain of float additions).
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    faer::linalg::matmul::dot::inner_prod(
        faer::RowRef::from_slice(a),
        faer::Conj::No,
        faer::ColRef::from_slice(b),
        faer::Conj::No,
    )
}

/// Frobenius norm.
pub(crate) fn fro(a: MatRef<'_, f64>) -> f64 {
    inner(a, a).sqrt()
}

/// Reject NaN / Inf with the index of the first offender.
pub(crate) fn check_finite3(x: ArrayView3<'_, f64>, what: &str) -> Result<()> {
    // the common case in one plain pass; the index of an offender only when there is one
    if x.iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    if let Some((idx, v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(MetricError::NonFinite { what: what.to_string(), value: *v, index: vec![idx.0, idx.1, idx.2] });
    }
    Ok(())
}

/// Reject NaN / Inf in a matrix.
pub(crate) fn check_finite_mat(m: MatRef<'_, f64>, what: &str) -> Result<()> {
    for j in 0..m.ncols() {
        for i in 0..m.nrows() {
            if !m[(i, j)].is_finite() {
                return Err(MetricError::NonFinite { what: what.into(), value: m[(i, j)], index: vec![i, j] });
            }
        }
    }
    Ok(())
}

/// Reject an input with an empty axis.
pub(crate) fn check_nonempty3(x: ArrayView3<'_, f64>, what: &str) -> Result<()> {
    if x.is_empty() {
        return Err(MetricError::Empty { what: what.to_string(), shape: format!("{:?}", x.shape()) });
    }
    Ok(())
}

/// Flatten `trials x time x units` into `samples x units` (trial-major, then time).
pub(crate) fn flatten_samples(x: ArrayView3<'_, f64>) -> Mat<f64> {
    let (tr, t, u) = x.dim();
    Mat::from_fn(tr * t, u, |i, j| x[[i / t, i % t, j]])
}

/// Subtract each column's mean in place.
pub(crate) fn centre_columns(x: &mut Mat<f64>) {
    let n = x.nrows() as f64;
    for j in 0..x.ncols() {
        let mut m = 0.0;
        for i in 0..x.nrows() {
            m += x[(i, j)];
        }
        m /= n;
        for i in 0..x.nrows() {
            x[(i, j)] -= m;
        }
    }
}

/// Map faer's SVD error (which does not implement `std::error::Error`) into ours.
pub(crate) fn svd_err(_: faer::linalg::svd::SvdError) -> MetricError {
    MetricError::NoConvergence { what: "singular value decomposition" }
}

/// Map faer's eigen-decomposition error into ours.
pub(crate) fn evd_err(_: faer::linalg::evd::EvdError) -> MetricError {
    MetricError::NoConvergence { what: "eigen-decomposition" }
}

/// `arccos` of a cosine clipped into `[-1, 1]` (round-off can push it just outside).
pub(crate) fn arccos_clipped(c: f64) -> f64 {
    c.clamp(-1.0, 1.0).acos()
}
