//! Tests of dynsim-nets: golden forward/backward passes against PyTorch and mambapy, gradient
//! checks by finite differences, and the PDM task family's statistics.

mod common;
mod golden;
mod gradcheck;
mod tasks;
mod training;
