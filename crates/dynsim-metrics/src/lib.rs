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
//! - [`Rsa`]: representational similarity analysis (rsatoolbox's RDMs and comparisons).
//! - [`Cca`], [`Svcca`], [`Pwcca`]: the CCA family (Google's SVCCA code).
//! - [`Metric`]: the one abstraction over all of them (`prepare` a recording once, `score`
//!   pairs), with text specifications ([`parse_spec`]) and the registry [`METRICS`].

#![warn(missing_docs)]

mod cca;
mod cka;
mod dmd;
mod dsa;
mod embed;
mod error;
mod lanczos;
mod linalg;
mod metric;
mod pairwise;
pub mod preprocess;
mod rsa;
mod shape;
mod simdist;
mod wasserstein;

pub use cca::{cca, Cca, CcaResult, CcaSummary, Pwcca, PwccaDirections, Svcca, SvccaKeep, CCA_EPSILON};
pub use cka::{Cka, CkaDistance, HsicEstimator, Kernel, MAX_GRAM_SAMPLES};
pub use dmd::{DmdFit, DmdParams, RankSelection, Regression};
pub use dsa::{Dsa, DsaComparison, DsaMatrix, DsaParams, DsaScore};
pub use embed::DelayEmbedding;
pub use error::{MetricError, Result};
pub use faer::{set_global_parallelism, Par};
pub use metric::{
    build_metric, metric_info, parse_spec, split_spec, Certificate, Matching, Metric, MetricInfo, Param, ParamKind,
    Prepared, Samples, Scored, SpecError, METRICS,
};
pub use pairwise::{pairwise_bipartite, pairwise_symmetric, Parallelism};
pub use preprocess::joint_zscore_pca;
pub use rsa::{Conditions, Rdm, RdmComparison, RdmMethod, Rsa, SimilarityScore};
pub use shape::ShapeMetric;
pub use simdist::{
    similarity_scores, Group, SimilarityBound, SimilarityFit, SimilarityParams, SimilarityTransformDist,
};
pub use wasserstein::eigenvalue_wasserstein;

/// Complex numbers (eigenvalues).
pub type Complex64 = faer::c64;

use ndarray::{ArrayView2, ArrayView3, Axis};

/// The score form of the shape metrics and CKA distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Score {
    /// An angle in radians, `arccos` of a clipped cosine similarity.
    #[default]
    Angular,
    /// A euclidean distance.
    Euclidean,
    /// The angle divided by `pi/2`, in `[0, 1]` for non-negative similarities (`[0, 2]` in
    /// general): the scale the seed study reports CKA and Procrustes on.
    Normalized,
}

impl Score {
    /// The angular score of a (clipped) cosine similarity in this form; `None` for
    /// [`Score::Euclidean`], which is no function of the cosine alone.
    pub fn of_cosine(&self, cosine: f64) -> Option<f64> {
        let angle = cosine.clamp(-1.0, 1.0).acos();
        match self {
            Score::Angular => Some(angle),
            Score::Normalized => Some(angle / std::f64::consts::FRAC_PI_2),
            Score::Euclidean => None,
        }
    }

    /// The unit of the score: `rad`, `angle/(pi/2)` or `euclidean`.
    pub fn unit(&self) -> &'static str {
        match self {
            Score::Angular => "rad",
            Score::Normalized => "angle/(pi/2)",
            Score::Euclidean => "euclidean",
        }
    }
}

/// View a single `time x units` trajectory as one trial (`1 x time x units`).
pub fn as_trials(x: ArrayView2<'_, f64>) -> ArrayView3<'_, f64> {
    x.insert_axis(Axis(0))
}

/// Everything a metric user needs in one `use`.
pub mod prelude {
    pub use crate::{
        as_trials, eigenvalue_wasserstein, parse_spec, Cka, DelayEmbedding, DmdFit, DmdParams, Dsa, DsaParams,
        DsaScore, Group, HsicEstimator, Kernel, Metric, MetricError, Parallelism, Pwcca, RankSelection, Regression,
        Rsa, Score, ShapeMetric, SimilarityParams, SimilarityTransformDist, Svcca,
    };
}
