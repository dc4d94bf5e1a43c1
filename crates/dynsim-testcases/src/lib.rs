//! # dynsim-testcases
//!
//! The seed study's benchmark test cases, generated in Rust with explicit seeds:
//!
//! - [`lorenz`]: Lorenz systems in three regimes (one attractor, two stable attractors, two
//!   chaotic attractors), trajectories scaled into the unit volume.
//! - [`regimes`]: Test A, which asks whether a metric puts systems of one regime closer
//!   together than systems of different regimes: the recordings go into a store, the
//!   comparisons run through `dynsim-query` (cached), and [`separation`] summarises the
//!   within- vs across-regime dissimilarities (means, ratio, ROC AUC).

#![warn(missing_docs)]

pub mod lorenz;
pub mod noise;
pub mod regimes;
pub mod separation;
