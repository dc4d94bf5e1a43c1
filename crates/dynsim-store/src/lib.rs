//! # dynsim-store
//!
//! dynsim's on-disk side. For now: reading and writing NumPy `.npy` files, the simplest
//! way a recording reaches dynsim from a Python script (`np.save`). The columnar
//! activation store (catalogue, recordings, ingest from HDF5 / Parquet) grows here.

#![warn(missing_docs)]

mod error;
pub mod npy;

pub use error::StoreError;
pub use npy::{read_npy, write_npy, NpyArray};
