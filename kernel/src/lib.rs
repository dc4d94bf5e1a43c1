//! # dynsim-kernel
//!
//! dynsim in Jupyter through [evcxr](https://github.com/evcxr/evcxr). evcxr shows a cell's
//! last expression by calling its `evcxr_display()` method, which prints
//! `EVCXR_BEGIN_CONTENT <mime>` ... `EVCXR_END_CONTENT` blocks. This crate gives dynsim's
//! types such renderings:
//!
//! | value | shown as |
//! | --- | --- |
//! | polars `DataFrame`, [`Selection`](dynsim::query::Selection), [`Outcome`](dynsim::query::Outcome) | HTML table (head and tail), shape and dtypes |
//! | [`Matrix`] (from a result frame with [`Matrix::from_pairs`]) | labelled SVG heatmap |
//! | [`Svg`], test-case [`Figure`](dynsim::testcases::report::Figure)s | SVG |
//! | [`Store`](dynsim::store::Store) | HTML summary: recordings, keys, cached results |
//! | [`Recording`](dynsim::store::Recording) | HTML summary: keys, shape, value statistics, unit traces |
//! | Lorenz `TestA` / `TestB` / `MotifTest` / report `Section` | HTML table, reading and figures |
//!
//! The renderings are plain functions returning strings ([`Show::bundle`], [`frame_html`],
//! [`Matrix::to_svg`], ...), tested without a notebook. The `evcxr` feature adds the
//! [`EvcxrDisplay`] trait (one print of the bundle), implemented for every [`Show`] type;
//! the kernel's init file turns it on and brings it into scope with
//! `use dynsim_kernel::prelude::*;`.

#![warn(missing_docs)]

mod html;
mod matrix;
mod show;
mod summary;

pub use html::{esc, frame_html, FRAME_ROWS};
pub use matrix::Matrix;
pub use show::{payload, Bundle, Show, Svg};
pub use summary::{recording_html, store_html, traces_svg};

#[cfg(feature = "evcxr")]
pub use show::EvcxrDisplay;

/// What can go wrong when a display is built from data.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// polars failed (a column of the wrong type, ...).
    #[error(transparent)]
    Polars(#[from] dynsim::polars::prelude::PolarsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] dynsim::store::StoreError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] dynsim::query::QueryError),
    /// The input cannot be shown this way; the message says why and what to do.
    #[error("{0}")]
    Input(String),
}

/// Everything a notebook needs: dynsim's prelude, the display types and (with the `evcxr`
/// feature) the `evcxr_display` trait.
pub mod prelude {
    #[cfg(feature = "evcxr")]
    pub use crate::EvcxrDisplay;
    pub use crate::{frame_html, Matrix, Show, Svg};
    pub use dynsim::prelude::*;
}
