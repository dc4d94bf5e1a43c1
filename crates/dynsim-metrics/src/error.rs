//! The error type of `dynsim-metrics`.

use thiserror::Error;

/// Everything a metric can refuse or fail at.
///
/// Each message names what is wrong, where, and what to do about it.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum MetricError {
    /// An input contains NaN or ±Inf.
    #[error("{what} contains a non-finite value ({value}) at index {index:?}; clean the data or drop that trial")]
    NonFinite {
        /// Which input (e.g. "left recording").
        what: String,
        /// The offending value.
        value: f64,
        /// Its index in the input array.
        index: Vec<usize>,
    },
    /// An input is identically zero (or has zero variance after centring).
    #[error("{what} is all zeros{detail}; a metric needs some signal")]
    AllZero {
        /// Which input.
        what: String,
        /// Extra context (e.g. " after centring").
        detail: String,
    },
    /// An input has no elements along an axis that needs some.
    #[error("{what} is empty ({shape}); it needs at least one trial, time step and unit")]
    Empty {
        /// Which input.
        what: String,
        /// The shape it had.
        shape: String,
    },
    /// The recording is too short for the requested delay embedding.
    #[error(
        "{what} has {time} time steps, too few for n_delays={n_delays} and delay_interval={delay_interval}: \
         the embedding needs at least {needed}; lower --n-delays or --delay-interval"
    )]
    TooShortForDelays {
        /// Which input.
        what: String,
        /// Time steps in the input.
        time: usize,
        /// Requested number of delays.
        n_delays: usize,
        /// Requested delay interval.
        delay_interval: usize,
        /// Minimum number of time steps for this embedding (and a one-step-ahead fit).
        needed: usize,
    },
    /// The requested rank is impossible for the data.
    #[error("rank {rank} exceeds {limit} ({why}); lower --rank or add delays")]
    RankTooLarge {
        /// Requested rank.
        rank: usize,
        /// Largest rank possible.
        limit: usize,
        /// Which bound applies.
        why: String,
    },
    /// A parameter is outside its domain.
    #[error("invalid parameter {name} = {value}: {expected}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// Two inputs whose shapes must agree do not.
    #[error("shape mismatch: {detail}")]
    ShapeMismatch {
        /// What differs and how to fix it.
        detail: String,
    },
    /// An input is too large for an algorithm with quadratic memory.
    #[error("{what}: {detail}")]
    TooLarge {
        /// Which computation.
        what: &'static str,
        /// Sizes and the suggested fix.
        detail: String,
    },
    /// A dense decomposition did not converge (faer's SVD / EVD errors are mapped here).
    #[error("{what} did not converge; the input may be badly scaled or contain extreme values")]
    NoConvergence {
        /// Which decomposition.
        what: &'static str,
    },
}

/// Result alias of this crate.
pub type Result<T, E = MetricError> = std::result::Result<T, E>;
