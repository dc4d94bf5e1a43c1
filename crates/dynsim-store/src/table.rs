//! One Arrow table in one Parquet file, read and written whole: the catalogue, the result
//! cache's parts, frames written with `-o`. (Recordings stream in row groups instead; see
//! [`crate::recording`].)

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::StoreError;

/// Write `batch` to `path` as Parquet (zstd level 3, the Arrow schema embedded) and fsync
/// it. Not atomic by itself: write to a temporary name with [`crate::fsutil::atomic_write`].
pub fn write_table(path: &Path, batch: &RecordBatch) -> Result<(), StoreError> {
    let file = File::create(path).map_err(StoreError::io(path))?;
    let level = ZstdLevel::try_new(3).map_err(StoreError::parquet(path))?;
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(level)).build();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(StoreError::parquet(path))?;
    w.write(batch).map_err(StoreError::parquet(path))?;
    let file = w.into_inner().map_err(StoreError::parquet(path))?;
    file.sync_all().map_err(StoreError::io(path))
}

/// Every record batch of the Parquet file at `path` (any writer), with its Arrow schema. A
/// missing file is [`StoreError::Io`] (with the OS error); a file that is not readable
/// Parquet is [`StoreError::Parquet`].
///
/// A panic of the Parquet decoder on a damaged file is [`StoreError::Parquet`] too (see
/// [`crate::guard`]).
pub fn read_table(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), StoreError> {
    crate::guard::catch_decoder_panic(|| read_table_unguarded(path)).unwrap_or_else(|why| {
        Err(StoreError::Parquet {
            path: path.to_path_buf(),
            detail: format!("not a readable Parquet file: the decoder failed on damaged data ({why})"),
        })
    })
}

fn read_table_unguarded(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), StoreError> {
    let file = File::open(path).map_err(StoreError::io(path))?;
    let bad = |e: parquet::errors::ParquetError| StoreError::Parquet {
        path: path.to_path_buf(),
        detail: format!("not a readable Parquet file: {e}"),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(bad)?;
    // The builder's schema keeps the file's schema metadata (the reader's does not).
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(bad)?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| StoreError::Parquet {
        path: path.to_path_buf(),
        detail: format!("not a readable Parquet file: {e}"),
    })?;
    Ok((schema, batches))
}
