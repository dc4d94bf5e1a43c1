//! Delay (Hankel) embedding of recordings.

use ndarray::{Array3, ArrayView3};

use crate::error::{MetricError, Result};
use crate::linalg::{check_finite3, check_nonempty3};
use faer::Mat;

/// Delay embedding with `n_delays` copies of the signal spaced `delay_interval` (tau) apart.
///
/// For a trial `x` of shape `time x units`, row `t` of the embedding is
///
/// ```text
/// h_t = [ x_{t+(d-1)tau}, x_{t+(d-2)tau}, ..., x_{t+tau}, x_t ]      (d = n_delays)
/// ```
///
/// i.e. column block `k` (columns `k*units .. (k+1)*units`) holds `x_{t+(d-1-k)tau}`: the
/// **newest sample comes first**, as in the reference implementation (dsa-metric's
/// `embed_signal_torch`). Each trial gives `time - (d-1)*tau` rows and width `units * d`;
/// trials are embedded separately and never mixed across their boundaries.
///
/// ```
/// use dynsim_metrics::DelayEmbedding;
/// use ndarray::Array3;
/// let x = Array3::from_shape_fn((1, 5, 1), |(_, t, _)| t as f64);
/// let h = DelayEmbedding { n_delays: 2, delay_interval: 2 }.embed(x.view()).unwrap();
/// assert_eq!(h.shape(), &[1, 3, 2]);
/// assert_eq!(h[[0, 0, 0]], 2.0); // newest sample first
/// assert_eq!(h[[0, 0, 1]], 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayEmbedding {
    /// Number of delayed copies `d` (1 = no embedding).
    pub n_delays: usize,
    /// Spacing `tau` between copies, in time steps.
    pub delay_interval: usize,
}

impl Default for DelayEmbedding {
    fn default() -> Self {
        Self { n_delays: 1, delay_interval: 1 }
    }
}

impl DelayEmbedding {
    /// Check the parameters themselves (not the data).
    pub fn validate(&self) -> Result<()> {
        if self.n_delays == 0 {
            return Err(MetricError::InvalidParameter {
                name: "n_delays",
                value: "0".into(),
                expected: "at least 1 (1 means no delay embedding)".into(),
            });
        }
        if self.delay_interval == 0 {
            return Err(MetricError::InvalidParameter {
                name: "delay_interval",
                value: "0".into(),
                expected: "at least 1 time step".into(),
            });
        }
        Ok(())
    }

    /// Time steps spanned by one embedded row: `(d-1)*tau`.
    pub fn span(&self) -> usize {
        (self.n_delays - 1) * self.delay_interval
    }

    /// Rows one trial of `time` steps gives, or `None` when it is too short.
    pub fn rows_per_trial(&self, time: usize) -> Option<usize> {
        time.checked_sub(self.span()).filter(|&r| r > 0)
    }

    /// Embedded width for `units` units.
    pub fn width(&self, units: usize) -> usize {
        units * self.n_delays
    }

    /// Check that `x` can be embedded with at least `min_rows` rows per trial.
    pub(crate) fn check_input(&self, x: ArrayView3<'_, f64>, what: &str, min_rows: usize) -> Result<usize> {
        self.validate()?;
        check_nonempty3(x, what)?;
        check_finite3(x, what)?;
        let time = x.dim().1;
        match self.rows_per_trial(time) {
            Some(r) if r >= min_rows => Ok(r),
            _ => Err(MetricError::TooShortForDelays {
                what: what.to_string(),
                time,
                n_delays: self.n_delays,
                delay_interval: self.delay_interval,
                needed: self.span() + min_rows,
            }),
        }
    }

    /// Embed `x` (`trials x time x units`) into `trials x rows x (units*n_delays)`.
    pub fn embed(&self, x: ArrayView3<'_, f64>) -> Result<Array3<f64>> {
        let rows = self.check_input(x, "recording", 1)?;
        let (trials, _, units) = x.dim();
        let d = self.n_delays;
        let tau = self.delay_interval;
        Ok(Array3::from_shape_fn((trials, rows, units * d), |(k, t, c)| {
            let block = c / units;
            x[[k, t + (d - 1 - block) * tau, c % units]]
        }))
    }

    /// Embed into one stacked matrix `H` (`(trials*rows) x width`, trial-major), stored
    /// transposed: the result is `H^T` (`width x (trials*rows)`, column-major), so each row
    /// of `H` is one contiguous column, filled from contiguous runs of `x`'s units (use
    /// `.transpose()` for `H` itself). The caller has already validated the input.
    pub(crate) fn embed_stacked_t(&self, x: ArrayView3<'_, f64>, rows: usize) -> Mat<f64> {
        let (trials, _, units) = x.dim();
        let d = self.n_delays;
        let tau = self.delay_interval;
        let time = x.dim().1;
        let mut ht = Mat::zeros(units * d, trials * rows);
        let contiguous = x.as_slice();
        for k in 0..trials {
            for t in 0..rows {
                let mut col = ht.col_mut(k * rows + t);
                for block in 0..d {
                    let s = t + (d - 1 - block) * tau;
                    match contiguous {
                        // the usual layout: one run of `units` values
                        Some(all) => {
                            let start = (k * time + s) * units;
                            for (u, v) in all[start..start + units].iter().enumerate() {
                                col[block * units + u] = *v;
                            }
                        }
                        None => {
                            for u in 0..units {
                                col[block * units + u] = x[[k, s, u]];
                            }
                        }
                    }
                }
            }
        }
        ht
    }
}
