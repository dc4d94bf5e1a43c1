//! # dynsim-metrics
//!
//! The numerical core of dynsim: metrics that compare recordings of neural activity,
//! `trials x time x units` arrays (a single `time x units` trajectory is one trial; use
//! [`as_trials`]). f64 throughout, faer inside, ndarray at the edges, rayon for pairwise
//! work, no I/O and no dataframe or file-format dependency.
//!
//! - [`DelayEmbedding`]: Hankel embedding (newest sample first).
//! - [`DmdFit`]: DMD / HAVOK operator on delay-embedded data (principal-component or
//!   reduced-rank regression, rank by count / threshold / explained variance, ridge).
//! - [`SimilarityTransformDist`]: `min_{C in O(n)} |A - C B C^T|_F`, with the optimal `C`
//!   as a certificate; [`eigenvalue_wasserstein`] as the spectrum-only score.
//! - [`Dsa`]: Dynamical Similarity Analysis (fit once per recording, compare per pair,
//!   pairwise and bipartite matrices).
//! - [`ShapeMetric`]: Procrustes and the generalised shape metrics.
//! - [`Cka`]: linear / RBF, biased / debiased centred kernel alignment.

#![warn(missing_docs)]

mod cka;
mod dmd;
mod dsa;
mod embed;
mod error;
mod linalg;
mod pairwise;
pub mod preprocess;
mod shape;
mod simdist;
mod wasserstein;

pub use cka::{Cka, HsicEstimator, Kernel, MAX_GRAM_SAMPLES};
pub use dmd::{DmdFit, DmdParams, RankSelection, Regression};
pub use dsa::{Dsa, DsaComparison, DsaMatrix, DsaParams, DsaScore};
pub use embed::DelayEmbedding;
pub use error::{MetricError, Result};
pub use faer::{set_global_parallelism, Par};
pub use pairwise::{pairwise_bipartite, pairwise_symmetric, Parallelism};
pub use preprocess::joint_zscore_pca;
pub use shape::ShapeMetric;
pub use simdist::{similarity_scores, Group, SimilarityFit, SimilarityParams, SimilarityTransformDist};
pub use wasserstein::eigenvalue_wasserstein;

/// Complex numbers (eigenvalues).
pub type Complex64 = faer::c64;

use ndarray::{ArrayView2, ArrayView3, Axis};

/// The score form of the shape metrics and CKA distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Score {
    /// An angle in radians, `arccos` of a clipped cosine similarity.
    #[default]
    Angular,
    /// A euclidean distance.
    Euclidean,
}

/// View a single `time x units` trajectory as one trial (`1 x time x units`).
pub fn as_trials(x: ArrayView2<'_, f64>) -> ArrayView3<'_, f64> {
    x.insert_axis(Axis(0))
}

/// Everything a metric user needs in one `use`.
pub mod prelude {
    pub use crate::{
        as_trials, eigenvalue_wasserstein, Cka, DelayEmbedding, DmdFit, DmdParams, Dsa, DsaParams, DsaScore, Group,
        HsicEstimator, Kernel, MetricError, Parallelism, RankSelection, Regression, Score, ShapeMetric,
        SimilarityParams, SimilarityTransformDist,
    };
}
