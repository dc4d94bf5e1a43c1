//! Preprocessing of a pair of recordings before a metric compares them.
//!
//! [`joint_zscore_pca`] is what the seed study did before its over-learning comparisons
//! (RepAL's `main/representation.py::compute_common_pca`, with 20 components):
//!
//! 1. when the two networks have different numbers of units, the larger is first reduced to
//!    the smaller's count by its own PCA;
//! 2. every (trial, unit) series is z-scored over time: `(x - mean_t) / std_t`, `std_t` with
//!    `n - 1` (torch's default), a constant series divided by 1;
//! 3. the samples (trial, time) of both recordings are stacked in one `samples x units`
//!    matrix, its columns centred, and projected onto its leading `components` principal
//!    axes (as `sklearn.decomposition.PCA`);
//! 4. each recording gets its own rows back, `trials x time x components`.
//!
//! Step 3 puts unit `i` of one network and unit `i` of the other in one coordinate: it treats
//! the two unit spaces as one, which holds for networks that share an initialisation and
//! not in general. The principal axes' signs are arbitrary (sklearn fixes them one way, faer
//! another); every metric here is invariant to them (an orthogonal map of the unit space).
//! dynsim's time axis is the second (`trials x time x units`); the study's arrays are
//! time-major, and its z-score runs over their first axis, which is time there too.

use faer::{Mat, Side};
use ndarray::{Array3, ArrayView3};

use crate::error::{MetricError, Result};
use crate::linalg::{centre_columns, check_finite3, check_nonempty3, evd_err, flatten_samples, mul};

/// Principal-component scores of the rows of `m` (columns centred here) on its `k` leading
/// axes, largest variance first.
fn pca_scores(mut m: Mat<f64>, k: usize) -> Result<Mat<f64>> {
    centre_columns(&mut m);
    let cov = mul(m.transpose(), m.as_ref());
    let evd = cov.self_adjoint_eigen(Side::Lower).map_err(evd_err)?;
    // faer sorts eigenvalues in ascending order: the last k columns, reversed.
    let u = evd.U();
    let n = u.ncols();
    let axes = Mat::from_fn(u.nrows(), k, |i, j| u[(i, n - 1 - j)]);
    Ok(mul(m.as_ref(), axes.as_ref()))
}

fn unflatten(m: &Mat<f64>, trials: usize, time: usize, offset: usize) -> Array3<f64> {
    Array3::from_shape_fn((trials, time, m.ncols()), |(a, t, j)| m[(offset + a * time + t, j)])
}

/// z-scores every (trial, unit) series of `x` over time (module docs, step 2).
fn zscore_over_time(x: &mut Array3<f64>) {
    let (trials, time, units) = x.dim();
    for a in 0..trials {
        for j in 0..units {
            let mean = (0..time).map(|t| x[[a, t, j]]).sum::<f64>() / time as f64;
            let var = if time > 1 {
                (0..time).map(|t| (x[[a, t, j]] - mean).powi(2)).sum::<f64>() / (time as f64 - 1.0)
            } else {
                0.0
            };
            let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
            for t in 0..time {
                x[[a, t, j]] = (x[[a, t, j]] - mean) / sd;
            }
        }
    }
}

/// The study's over-learning preprocessing of a pair (module docs): both recordings
/// (`trials x time x units`, any numbers of trials and units, at least 2 time steps) z-scored
/// per (trial, unit) over time and projected onto the `components` leading principal axes of
/// their stacked samples. Returns the two `trials x time x components` arrays.
pub fn joint_zscore_pca(
    x: ArrayView3<'_, f64>,
    y: ArrayView3<'_, f64>,
    components: usize,
) -> Result<(Array3<f64>, Array3<f64>)> {
    check_nonempty3(x, "first recording")?;
    check_nonempty3(y, "second recording")?;
    check_finite3(x, "first recording")?;
    check_finite3(y, "second recording")?;
    let units = x.dim().2.min(y.dim().2);
    if components == 0 || components > units {
        return Err(MetricError::InvalidParameter {
            name: "components",
            value: components.to_string(),
            expected: format!("1 to the smaller number of units ({units})"),
        });
    }
    if x.dim().1 < 2 || y.dim().1 < 2 {
        return Err(MetricError::ShapeMismatch {
            detail: format!(
                "z-scoring over time needs at least 2 time steps; the recordings have {} and {}",
                x.dim().1,
                y.dim().1
            ),
        });
    }
    // Step 1: the wider recording reduced to the narrower's units by its own PCA.
    let reduce = |r: ArrayView3<'_, f64>| -> Result<Array3<f64>> {
        let (trials, time, u) = r.dim();
        if u == units {
            return Ok(r.to_owned());
        }
        Ok(unflatten(&pca_scores(flatten_samples(r), units)?, trials, time, 0))
    };
    let (mut a, mut b) = (reduce(x)?, reduce(y)?);
    // Step 2.
    zscore_over_time(&mut a);
    zscore_over_time(&mut b);
    // Step 3: stacked samples, centred, projected.
    let (ta, tia, _) = a.dim();
    let (tb, tib, _) = b.dim();
    let (fa, fb) = (flatten_samples(a.view()), flatten_samples(b.view()));
    let stacked =
        Mat::from_fn(
            fa.nrows() + fb.nrows(),
            units,
            |i, j| {
                if i < fa.nrows() {
                    fa[(i, j)]
                } else {
                    fb[(i - fa.nrows(), j)]
                }
            },
        );
    let scores = pca_scores(stacked, components)?;
    // Step 4.
    Ok((unflatten(&scores, ta, tia, 0), unflatten(&scores, tb, tib, fa.nrows())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn random(seed: u64, shape: (usize, usize, usize)) -> Array3<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array3::from_shape_fn(shape, |_| rng.random::<f64>() * 2.0 - 1.0)
    }

    /// Written out with ndarray: z-scored series, stacked, centred.
    fn zscored_stacked(x: &Array3<f64>, y: &Array3<f64>) -> ndarray::Array2<f64> {
        let mut rows = Vec::new();
        for r in [x, y] {
            let (tr, t, u) = r.dim();
            let mut z = r.clone();
            for a in 0..tr {
                for j in 0..u {
                    let s = r.slice(ndarray::s![a, .., j]);
                    let m = s.mean().unwrap_or(0.0);
                    let sd = s.std(1.0);
                    for k in 0..t {
                        z[[a, k, j]] = (r[[a, k, j]] - m) / if sd > 0.0 { sd } else { 1.0 };
                    }
                }
            }
            for a in 0..tr {
                for k in 0..t {
                    rows.push(z.slice(ndarray::s![a, k, ..]).to_vec());
                }
            }
        }
        let u = rows[0].len();
        let mut m = ndarray::Array2::from_shape_fn((rows.len(), u), |(i, j)| rows[i][j]);
        let mean = m.mean_axis(ndarray::Axis(0)).expect("rows");
        m -= &mean;
        m
    }

    /// With every component kept, the projection is a rotation of the z-scored, jointly
    /// centred samples: every Gram entry (inner products of samples) is preserved. With fewer,
    /// the scores are uncorrelated with falling variances, and their total variance is the
    /// largest any k-dimensional projection keeps (it beats the first k units).
    #[test]
    fn projection_preserves_geometry_and_orders_variance() {
        let (x, y) = (random(1, (3, 20, 5)), random(2, (4, 20, 5)));
        let (px, py) = joint_zscore_pca(x.view(), y.view(), 5).expect("pca");
        assert_eq!((px.dim(), py.dim()), ((3, 20, 5), (4, 20, 5)));
        let z = zscored_stacked(&x, &y);
        let flat = |a: &Array3<f64>| {
            let (tr, t, u) = a.dim();
            a.clone().into_shape_with_order((tr * t, u)).expect("shape")
        };
        let p = ndarray::concatenate(ndarray::Axis(0), &[flat(&px).view(), flat(&py).view()]).expect("stack");
        let (gz, gp) = (z.dot(&z.t()), p.dot(&p.t()));
        let err = (&gz - &gp).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-9, "Gram matrices differ by {err}");

        let (kx, ky) = joint_zscore_pca(x.view(), y.view(), 2).expect("pca");
        let p = ndarray::concatenate(ndarray::Axis(0), &[flat(&kx).view(), flat(&ky).view()]).expect("stack");
        let cov = p.t().dot(&p);
        assert!(cov[[0, 1]].abs() < 1e-8 * cov[[0, 0]], "scores are uncorrelated: {cov:?}");
        assert!(cov[[0, 0]] >= cov[[1, 1]], "variance falls: {cov:?}");
        let kept = cov[[0, 0]] + cov[[1, 1]];
        let first_two: f64 = (0..2).map(|j| z.column(j).iter().map(|v| v * v).sum::<f64>()).sum();
        assert!(kept >= first_two - 1e-9, "{kept} < {first_two}");
        for c in p.columns() {
            assert!(c.sum().abs() < 1e-8, "scores are centred");
        }
    }

    /// A wider network is first reduced to the narrower's units; bad input is refused.
    #[test]
    fn different_widths_and_bad_input() {
        let (x, y) = (random(3, (2, 10, 6)), random(4, (2, 10, 4)));
        let (px, py) = joint_zscore_pca(x.view(), y.view(), 3).expect("pca");
        assert_eq!((px.dim(), py.dim()), ((2, 10, 3), (2, 10, 3)));
        for k in [0, 5] {
            let e = joint_zscore_pca(x.view(), y.view(), k).expect_err("components");
            assert!(e.to_string().contains("smaller number of units (4)"), "{e}");
        }
        let short = random(5, (2, 1, 4));
        assert!(joint_zscore_pca(short.view(), y.view(), 2).expect_err("time").to_string().contains("2 time steps"));
        let mut nan = y.clone();
        nan[[0, 0, 0]] = f64::NAN;
        assert!(joint_zscore_pca(x.view(), nan.view(), 2).is_err());
    }
}
