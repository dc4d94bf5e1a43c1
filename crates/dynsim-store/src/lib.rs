//! # dynsim-store
//!
//! dynsim's on-disk side: the activation store and the readers that fill it.
//!
//! - [`Store`]: a directory of Parquet files (catalogue + one file per recording, content
//!   addressed), crash-safe (temporary file + fsync + rename) and safe under concurrent
//!   ingests (catalogue updates under a lock). See [`store`] for the layout.
//! - Ingest ([`IngestOptions`]): HDF5 files written by h5py (pure-Rust `hdf5-reader`, see
//!   [`h5`]), Parquet long tables and dynsim recording files, NumPy `.npy` / `.npz`.
//! - [`export`](Store::export): the catalogue and recordings as plain Parquet for pandas,
//!   polars or pyarrow.

#![warn(missing_docs)]

pub mod arrowcast;
pub mod catalog;
mod error;
mod export;
pub mod fsutil;
mod guard;
pub mod h5;
mod ingest;
pub mod keys;
pub mod layout;
pub mod npy;
pub mod recording;
pub mod store;
pub mod table;

pub use catalog::{Catalog, CatalogRow};
pub use error::StoreError;
pub use export::ExportReport;
pub use guard::caught_panics;
pub use ingest::{ArrayRecording, IngestOptions};
pub use keys::{KeyValue, Keys};
pub use layout::Layout;
pub use npy::{read_npy, write_npy, NpyArray};
pub use store::{IngestEvent, IngestReport, Recording, Store, VerifyReport};

/// Plan and decode every recording of one input file, streaming in blocks of about
/// `max_values` values, without a store: `(location, keys, values)` per recording. For tests
/// of the readers (block boundaries, arbitrary bytes); `Store::ingest` is the real path.
#[doc(hidden)]
pub fn decode_file(
    path: &std::path::Path,
    opts: &IngestOptions,
    max_values: usize,
) -> Result<Vec<(String, Keys, ndarray::Array3<f32>)>, StoreError> {
    let plan = ingest::plan(path, opts)?;
    let mut out = Vec::new();
    for mut c in plan.candidates {
        let mut values = Vec::with_capacity(c.shape.iter().product::<usize>().min(1 << 24));
        let [_, time, units] = c.shape;
        c.source.blocks(max_values, &mut |b: Vec<f32>| {
            if b.is_empty() || !b.len().is_multiple_of(time * units) {
                return Err(StoreError::BadInput {
                    path: path.to_path_buf(),
                    location: c.location.clone(),
                    detail: format!("a block of {} values is not whole trials", b.len()),
                });
            }
            values.extend_from_slice(&b);
            Ok(())
        })?;
        let a = ndarray::Array3::from_shape_vec((c.shape[0], time, units), values).map_err(|e| {
            StoreError::BadInput { path: path.to_path_buf(), location: c.location.clone(), detail: e.to_string() }
        })?;
        out.push((c.location, c.keys, a));
    }
    Ok(out)
}

/// Decode arbitrary bytes with every reader dynsim ingests with (HDF5, Parquet, npy, npz),
/// writing them to a temporary file first. Used by the property tests: it must return (an
/// error, usually) and never panic.
#[doc(hidden)]
pub fn fuzz_readers(bytes: &[u8], dir: &std::path::Path) -> Vec<Result<usize, StoreError>> {
    let mut out = Vec::new();
    for ext in ["h5", "parquet", "npy", "npz"] {
        let p = dir.join(format!("fuzz.{ext}"));
        if std::fs::write(&p, bytes).is_err() {
            continue;
        }
        out.push(decode_file(&p, &IngestOptions::default(), 1 << 16).map(|v| v.len()));
    }
    out
}
