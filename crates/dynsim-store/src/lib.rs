//! # dynsim-store
//!
//! dynsim's on-disk side: the activation store and the readers that fill it.
//!
//! - [`Store`]: a directory of Parquet files (catalogue + one file per recording, content
//!   addressed), crash-safe (temporary file + fsync + rename) and safe under concurrent
//!   ingests (catalogue updates under a lock). See [`store`] for the layout.
//! - Ingest ([`IngestOptions`]): HDF5 files written by h5py (pure-Rust `hdf5-reader`, see
//!   [`h5`]), Parquet long tables and dynsim recording files, NumPy `.npy` / `.npz`.
//! - [`Predicate`]: SQL `WHERE`-style filters over the catalogue.
//! - [`export`](Store::export): the catalogue and recordings as plain Parquet for pandas,
//!   polars or pyarrow.

#![warn(missing_docs)]

pub mod catalog;
mod error;
mod export;
mod fsutil;
pub mod h5;
mod ingest;
pub mod keys;
pub mod layout;
pub mod npy;
pub mod predicate;
pub mod recording;
pub mod store;

pub use catalog::{Catalog, CatalogRow};
pub use error::StoreError;
pub use export::ExportReport;
pub use ingest::IngestOptions;
pub use keys::{KeyValue, Keys};
pub use layout::Layout;
pub use npy::{read_npy, write_npy, NpyArray};
pub use predicate::Predicate;
pub use store::{IngestEvent, IngestReport, Recording, Store, VerifyReport};

/// Decode arbitrary bytes with every reader dynsim ingests with (HDF5, Parquet, npy, npz),
/// writing them to a temporary file first. Used by the fuzz / property tests: it must
/// return (an error, usually) and never panic.
#[doc(hidden)]
pub fn fuzz_readers(bytes: &[u8], dir: &std::path::Path) -> Vec<Result<usize, StoreError>> {
    let mut out = Vec::new();
    for ext in ["h5", "parquet", "npy", "npz"] {
        let p = dir.join(format!("fuzz.{ext}"));
        if std::fs::write(&p, bytes).is_err() {
            continue;
        }
        let opts = IngestOptions::default();
        let r = ingest::plan(&p, &opts).and_then(|plan| {
            let mut n = 0usize;
            for mut c in plan.candidates {
                c.source.blocks(1 << 16, &mut |b: Vec<f32>| {
                    n += b.len();
                    Ok(())
                })?;
            }
            Ok(n)
        });
        out.push(r);
    }
    out
}
