//! Export to plain Parquet, for pandas, polars, pyarrow, DuckDB.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, ListArray, RecordBatch, UInt32Array};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::catalog::{Catalog, CatalogRow};
use crate::error::StoreError;
use crate::fsutil::atomic_write;
use crate::recording::{write_recording, RecordingMeta};
use crate::store::Store;

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Recordings exported.
    pub recordings: usize,
    /// Files written.
    pub files: Vec<PathBuf>,
}

impl Store {
    /// Export the recordings whose ids are in `ids` (all when `None`; select them by their
    /// keys with the query layer, e.g. `dynsim_query::Selection::filter_sql(..).ids()`).
    ///
    /// - `to` ending in `.parquet`: one long table, one row per (recording, trial, time):
    ///   the catalogue columns of the recording (`id`, keys, `n_trials`, ... `source`), then
    ///   `trial: u32`, `time: u32`, `x: list<f32>` (the units). One row group per recording
    ///   or less, written recording by recording.
    /// - otherwise a folder (new or empty): `catalog.parquet` (the selected catalogue rows,
    ///   `file` pointing into the folder) and `recordings/<id>.parquet` (the recording files,
    ///   columns `trial`, `time`, `x: fixed_size_list<f32>[units]`).
    ///
    /// Every file is written to a temporary name and renamed into place when complete.
    pub fn export(&self, to: &Path, ids: Option<&[String]>) -> Result<ExportReport, StoreError> {
        let cat = self.catalog()?;
        let rows: Vec<CatalogRow> = match ids {
            Some(ids) => {
                let keep: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
                cat.rows.into_iter().filter(|r| keep.contains(r.id.as_str())).collect()
            }
            None => cat.rows,
        };
        if to.extension().is_some_and(|e| e == "parquet") {
            self.export_table(to, &rows)
        } else {
            self.export_folder(to, rows)
        }
    }

    fn export_folder(&self, to: &Path, rows: Vec<CatalogRow>) -> Result<ExportReport, StoreError> {
        if to.exists() && fs::read_dir(to).map_err(StoreError::io(to))?.next().is_some() {
            return Err(StoreError::Io {
                path: to.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the export folder exists and is not empty; give a new folder (or a .parquet file name)",
                ),
            });
        }
        let rec = to.join("recordings");
        fs::create_dir_all(&rec).map_err(StoreError::io(&rec))?;
        let mut files = Vec::new();
        let mut out = Catalog::default();
        for mut row in rows {
            let src = self.root().join(&row.file);
            let dest = rec.join(format!("{}.parquet", row.id));
            // Recordings with identical content share one file, whose embedded metadata names
            // the keys of the first; the exported file must describe this row.
            let meta = crate::recording::read_recording_meta(&src)?;
            let own = RecordingMeta {
                shape: row.shape,
                hash: row.hash.clone(),
                keys: row.keys.clone(),
                source: row.source.clone(),
                dtype: row.dtype.clone(),
            };
            if meta.as_ref() == Some(&own) {
                atomic_write(&dest, |tmp| fs::copy(&src, tmp).map(|_| ()).map_err(StoreError::io(&src)))?;
            } else {
                let rec = self.read_row(&row, false)?;
                atomic_write(&dest, |tmp| write_recording(tmp, &rec.data, own.clone()).map(|_| ()))?;
            }
            row.file = format!("recordings/{}.parquet", row.id);
            files.push(dest);
            out.rows.push(row);
        }
        let cat_path = to.join("catalog.parquet");
        atomic_write(&cat_path, |tmp| out.write_parquet(tmp))?;
        files.push(cat_path);
        Ok(ExportReport { recordings: out.rows.len(), files })
    }

    fn export_table(&self, to: &Path, rows: &[CatalogRow]) -> Result<ExportReport, StoreError> {
        let cat = Catalog { rows: rows.to_vec() };
        let meta = cat.to_record_batch()?;
        let mut fields: Vec<Field> = meta.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("trial", DataType::UInt32, false));
        fields.push(Field::new("time", DataType::UInt32, false));
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        fields.push(Field::new("x", DataType::List(item.clone()), false));
        let schema = Arc::new(Schema::new(fields));
        atomic_write(to, |tmp| {
            let file = File::create(tmp).map_err(StoreError::io(tmp))?;
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(StoreError::parquet(tmp))?))
                .build();
            let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(StoreError::parquet(tmp))?;
            for (i, row) in rows.iter().enumerate() {
                let rec = self.read_row(row, false)?;
                let [trials, time, units] = row.shape;
                let n = trials * time;
                let take = UInt32Array::from(vec![i as u32; n]);
                let mut cols: Vec<ArrayRef> = meta
                    .columns()
                    .iter()
                    .map(|c| arrow_select::take::take(c.as_ref(), &take, None))
                    .collect::<Result<_, _>>()
                    .map_err(StoreError::arrow(tmp))?;
                cols.push(Arc::new(UInt32Array::from_iter_values((0..n).map(|r| (r / time) as u32))));
                cols.push(Arc::new(UInt32Array::from_iter_values((0..n).map(|r| (r % time) as u32))));
                let values = Float32Array::from(rec.data.into_raw_vec_and_offset().0);
                let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(units, n));
                let list = ListArray::try_new(item.clone(), offsets, Arc::new(values), None)
                    .map_err(StoreError::arrow(tmp))?;
                cols.push(Arc::new(list));
                let batch = RecordBatch::try_new(schema.clone(), cols).map_err(StoreError::arrow(tmp))?;
                w.write(&batch).map_err(StoreError::parquet(tmp))?;
                w.flush().map_err(StoreError::parquet(tmp))?;
            }
            w.close().map_err(StoreError::parquet(tmp))?;
            Ok(())
        })?;
        Ok(ExportReport { recordings: rows.len(), files: vec![to.to_path_buf()] })
    }
}
