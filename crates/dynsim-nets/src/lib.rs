//! # dynsim-nets
//!
//! The seed study's networks and tasks, on [candle](https://github.com/huggingface/candle):
//!
//! - [`task`]: the perceptual-decision-making family (PDM, AntiPDM, PDMDelay, AntiPDMDelay)
//!   generated on the fly from explicit seeds, and the [`Task`] trait for new tasks.
//! - [`Network`]: leaky RNN, leaky GRU (the study's variant) and Mamba (as mambapy 1.0.0), with
//!   PyTorch parameter names and initialisation, forward passes that return the logits and the
//!   recorded state, and the study's loss (cross-entropy + 1e-4 · Σ‖p‖_F).
//! - [`train`]: the study's training (curricula, frozen weights, Adam) with atomic
//!   [`checkpoint`]s and resume; [`record`]: states on a task's fixed test trials.
//!
//! On the CPU the recurrences (the RNN/GRU time loop, Mamba's selective scan) run as fused
//! candle custom ops with hand-written backward passes ([`fused`]): one op per sequence instead
//! of a few tiny ops per step. On other devices, or with [`Network::set_fused`]`(false)`, the
//! same models run as compositions of candle ops, which the tests use as a second, independent
//! implementation.
//!
//! The code is device-generic (candle's `Device`): a program that depends on candle-core with
//! its `cuda` feature runs these networks on a GPU (there is no `cuda` feature here, because
//! the workspace's tests build with `--all-features` on machines without CUDA; untested).
//!
//! No polars, arrow or store dependency: the crate sits beside `dynsim-metrics` and
//! `dynsim-store` at the bottom of the workspace.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod fused;
mod mamba;
mod model;
pub mod record;
mod rnn;
pub mod task;
pub mod train;

pub use candle_core::{DType, Device, Tensor};
pub use model::{Activation, Arch, NetConfig, Network, Output, GRU_GATES};
pub use task::{Batch, Rule, Split, Task, Timing, Trial};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A configuration value is invalid (unknown name, zero size, non-positive rate, ...).
    #[error("{0}")]
    Config(String),
    /// A tensor handed in (inputs, a checkpoint's parameters) does not fit the model.
    #[error("{0}")]
    Shape(String),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checkpoint is truncated, foreign or does not fit the model.
    #[error("checkpoint {path}: {why}")]
    Checkpoint {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// candle failed.
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result with [`NetError`].
pub type Result<T, E = NetError> = std::result::Result<T, E>;
