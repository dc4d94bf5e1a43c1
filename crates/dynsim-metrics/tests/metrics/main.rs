//! Integration tests of dynsim-metrics, one binary with modules by theme.

mod common;
mod errors;
mod family;
mod golden;
mod properties;
