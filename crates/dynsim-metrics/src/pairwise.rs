//! Parallel pairwise matrices.

use ndarray::Array2;
use rayon::prelude::*;

use crate::error::Result;

/// How heavy entry points spread their work (in the spirit of faer's `Par`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parallelism {
    /// One thread.
    Seq,
    /// Rayon's global pool (all cores, or `RAYON_NUM_THREADS`).
    #[default]
    Global,
    /// A dedicated rayon pool with this many threads (`Threads(1)` runs sequentially,
    /// `Threads(0)` is the same as `Global`).
    Threads(usize),
}

impl Parallelism {
    /// Run `f` under this parallelism (a dedicated pool for `Threads(n)`).
    pub(crate) fn install<R: Send>(self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            Parallelism::Threads(n) if n > 0 => match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
                Ok(pool) => pool.install(f),
                Err(_) => f(),
            },
            _ => f(),
        }
    }

    pub(crate) fn is_seq(self) -> bool {
        matches!(self, Parallelism::Seq | Parallelism::Threads(1))
    }
}

/// Evaluate `f(i)` for `i in 0..n` under `par`, keeping order; the first error wins.
pub(crate) fn map_indexed<T: Send>(
    n: usize,
    par: Parallelism,
    f: impl Fn(usize) -> Result<T> + Sync + Send,
) -> Result<Vec<T>> {
    if par.is_seq() {
        (0..n).map(f).collect()
    } else {
        par.install(|| (0..n).into_par_iter().map(&f).collect())
    }
}

/// A symmetric `n x n` matrix with zero diagonal from `f(i, j)`, evaluated once per pair
/// `i < j` (in parallel under `par`) and mirrored.
pub fn pairwise_symmetric(
    n: usize,
    par: Parallelism,
    f: impl Fn(usize, usize) -> Result<f64> + Sync + Send,
) -> Result<Array2<f64>> {
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
    let values = map_indexed(pairs.len(), par, |k| f(pairs[k].0, pairs[k].1))?;
    let mut out = Array2::zeros((n, n));
    for (&(i, j), v) in pairs.iter().zip(values) {
        out[[i, j]] = v;
        out[[j, i]] = v;
    }
    Ok(out)
}

/// An `n x m` matrix from `f(i, j)` for every left `i` and right `j` (in parallel).
pub fn pairwise_bipartite(
    n: usize,
    m: usize,
    par: Parallelism,
    f: impl Fn(usize, usize) -> Result<f64> + Sync + Send,
) -> Result<Array2<f64>> {
    let values = map_indexed(n * m, par, |k| f(k / m.max(1), k % m.max(1)))?;
    Ok(Array2::from_shape_vec((n, m), values).expect("map_indexed returns n*m values"))
}
