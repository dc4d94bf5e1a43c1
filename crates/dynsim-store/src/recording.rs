//! Recording files: one activation tensor `trials x time x units` as Parquet.
//!
//! Columns `trial: u32`, `time: u32`, `x: FixedSizeList<f32, units>` (one row per trial and
//! time step, in order), zstd compressed, row groups of about 16 MiB so that writing and
//! reading stream. The Parquet key-value metadata holds `dynsim.format` =
//! `dynsim-recording/1` and `dynsim.recording` = JSON [`RecordingMeta`] (shape, content hash,
//! keys, source, source dtype), so a recording file describes itself and can be ingested
//! into another store.
//!
//! The content hash is BLAKE3 over `b"dynsim-recording-v1\0"`, the shape as three u64 LE,
//! then the values as f32 LE, hex encoded: two recordings with the same shape and the same
//! bits have the same hash, whatever their keys.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ndarray::Array3;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Encoding;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue as ParquetKv;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::keys::Keys;

/// Value of the `dynsim.format` metadata entry of a recording file.
pub const RECORDING_FORMAT: &str = "dynsim-recording/1";
const META_FORMAT: &str = "dynsim.format";
const META_RECORDING: &str = "dynsim.recording";
/// Target number of f32 values per Parquet row group (16 MiB).
const ROW_GROUP_VALUES: usize = 1 << 22;

/// What a recording file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingMeta {
    /// `[trials, time, units]`.
    pub shape: [usize; 3],
    /// Content hash (see the module docs).
    pub hash: String,
    /// The recording's keys.
    pub keys: Keys,
    /// Where it came from (`file:dataset`).
    pub source: String,
    /// The dtype it had in the source (`float16`, `float32`, `float64`).
    pub dtype: String,
}

/// Incremental content hash of a recording (see the module docs).
pub struct ContentHasher {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

impl ContentHasher {
    /// Start hashing a recording of this shape.
    pub fn new(shape: [usize; 3]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"dynsim-recording-v1\0");
        for d in shape {
            hasher.update(&(d as u64).to_le_bytes());
        }
        ContentHasher { hasher, buf: Vec::with_capacity(1 << 16) }
    }

    /// Feed values in C order.
    pub fn update(&mut self, values: &[f32]) {
        if cfg!(target_endian = "little") {
            // The in-memory bytes are the LE bytes: hash them in place.
            self.hasher.update(bytemuck::cast_slice(values));
            return;
        }
        for block in values.chunks(1 << 14) {
            self.buf.clear();
            for v in block {
                self.buf.extend_from_slice(&v.to_le_bytes());
            }
            self.hasher.update(&self.buf);
        }
    }

    /// The hex digest.
    pub fn finish(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}

/// The content hash of a whole array.
pub fn content_hash(x: &Array3<f32>) -> String {
    let shape = [x.shape()[0], x.shape()[1], x.shape()[2]];
    let mut h = ContentHasher::new(shape);
    match x.as_slice() {
        Some(s) => h.update(s),
        None => h.update(&x.iter().copied().collect::<Vec<_>>()),
    }
    h.finish()
}

/// The Arrow schema of a recording file with `units` units.
pub fn recording_schema(units: usize) -> Result<SchemaRef, StoreError> {
    let width = i32::try_from(units).map_err(|_| StoreError::BadInput {
        path: "".into(),
        location: "".into(),
        detail: format!("{units} units is more than a Parquet fixed-size list can hold"),
    })?;
    Ok(Arc::new(Schema::new(vec![
        Field::new("trial", DataType::UInt32, false),
        Field::new("time", DataType::UInt32, false),
        Field::new("x", DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), width), false),
    ])))
}

/// Streams a recording into a Parquet file, trial block by trial block, hashing as it goes.
pub struct RecordingWriter {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    shape: [usize; 3],
    trials_done: usize,
    hasher: ContentHasher,
    path: std::path::PathBuf,
}

impl RecordingWriter {
    /// Create `path` (truncating it) for a recording of `shape`.
    pub fn create(path: &Path, shape: [usize; 3]) -> Result<Self, StoreError> {
        let [_, time, units] = shape;
        if time == 0 || units == 0 || time > u32::MAX as usize || shape[0] > u32::MAX as usize {
            return Err(StoreError::BadInput {
                path: path.to_path_buf(),
                location: String::new(),
                detail: format!("shape {shape:?} cannot be stored: time and units must be at least 1 and fit in u32"),
            });
        }
        let schema = recording_schema(units)?;
        let file = File::create(path).map_err(StoreError::io(path))?;
        let rows = (ROW_GROUP_VALUES / units).max(time).max(64);
        // Activations: BYTE_STREAM_SPLIT (Parquet's encoding for floats: the bytes of each
        // value are spread over four streams, so that zstd finds the repeated sign and
        // exponent bytes), no statistics (min/max of activations help no query).
        let x_item = ColumnPath::from(vec!["x".to_string(), "list".to_string(), "item".to_string()]);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(StoreError::parquet(path))?))
            .set_max_row_group_row_count(Some(rows))
            .set_dictionary_enabled(false)
            .set_column_encoding(x_item.clone(), Encoding::BYTE_STREAM_SPLIT)
            .set_column_statistics_enabled(x_item, EnabledStatistics::None)
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(StoreError::parquet(path))?;
        Ok(RecordingWriter {
            writer,
            schema,
            shape,
            trials_done: 0,
            hasher: ContentHasher::new(shape),
            path: path.to_path_buf(),
        })
    }

    /// Append whole trials: `values` holds `k x time x units` values in C order.
    pub fn write_trials(&mut self, values: Vec<f32>) -> Result<(), StoreError> {
        let [trials, time, units] = self.shape;
        let per_trial = time * units;
        if !values.len().is_multiple_of(per_trial) || self.trials_done + values.len() / per_trial > trials {
            return Err(StoreError::BadInput {
                path: self.path.clone(),
                location: String::new(),
                detail: format!(
                    "internal: a block of {} values does not fit the remaining trials of a {:?} recording",
                    values.len(),
                    self.shape
                ),
            });
        }
        let k = values.len() / per_trial;
        self.hasher.update(&values);
        let t0 = self.trials_done as u32;
        let trial = UInt32Array::from_iter_values((0..k).flat_map(|t| std::iter::repeat_n(t0 + t as u32, time)));
        let tim = UInt32Array::from_iter_values((0..k).flat_map(|_| 0..time as u32));
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let x = FixedSizeListArray::try_new(item, units as i32, Arc::new(Float32Array::from(values)), None)
            .map_err(StoreError::arrow(&self.path))?;
        let cols: Vec<ArrayRef> = vec![Arc::new(trial), Arc::new(tim), Arc::new(x)];
        let batch = RecordBatch::try_new(self.schema.clone(), cols).map_err(StoreError::arrow(&self.path))?;
        self.writer.write(&batch).map_err(StoreError::parquet(&self.path))?;
        self.trials_done += k;
        Ok(())
    }

    /// The content hash so far (complete once every trial is written).
    pub fn hash(&self) -> String {
        self.hasher.finish()
    }

    /// Write the metadata, close and fsync the file. `meta.hash` and `meta.shape` are
    /// filled in here.
    pub fn finish(mut self, mut meta: RecordingMeta) -> Result<RecordingMeta, StoreError> {
        if self.trials_done != self.shape[0] {
            return Err(StoreError::BadInput {
                path: self.path.clone(),
                location: String::new(),
                detail: format!("internal: {} of {} trials written", self.trials_done, self.shape[0]),
            });
        }
        meta.hash = self.hasher.finish();
        meta.shape = self.shape;
        let json = serde_json::to_string(&meta)
            .map_err(|e: serde_json::Error| StoreError::Parquet { path: self.path.clone(), detail: e.to_string() })?;
        self.writer.append_key_value_metadata(ParquetKv::new(META_FORMAT.into(), RECORDING_FORMAT.to_string()));
        self.writer.append_key_value_metadata(ParquetKv::new(META_RECORDING.into(), json));
        let file = self.writer.into_inner().map_err(StoreError::parquet(&self.path))?;
        file.sync_all().map_err(StoreError::io(&self.path))?;
        Ok(meta)
    }
}

/// Write a whole array as a recording file (not atomically: see `Store` for that).
pub fn write_recording(path: &Path, x: &Array3<f32>, meta: RecordingMeta) -> Result<RecordingMeta, StoreError> {
    let shape = [x.shape()[0], x.shape()[1], x.shape()[2]];
    let mut w = RecordingWriter::create(path, shape)?;
    let per_trial = shape[1] * shape[2];
    let x = x.as_standard_layout();
    let flat = x.as_slice().unwrap_or_default();
    for block in flat.chunks(trials_per_block(ROW_GROUP_VALUES, per_trial) * per_trial.max(1)) {
        w.write_trials(block.to_vec())?;
    }
    w.finish(meta)
}

/// How many whole trials of `per_trial` values fit in a block of about `max_values`
/// values (at least one).
pub(crate) fn trials_per_block(max_values: usize, per_trial: usize) -> usize {
    (max_values / per_trial.max(1)).max(1)
}

/// Read the `dynsim.recording` metadata of a Parquet file, `None` if it is not a dynsim
/// recording file.
pub fn read_recording_meta(path: &Path) -> Result<Option<RecordingMeta>, StoreError> {
    guarded(path, || read_recording_meta_unguarded(path))
}

fn read_recording_meta_unguarded(path: &Path) -> Result<Option<RecordingMeta>, StoreError> {
    let file = File::open(path).map_err(StoreError::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(StoreError::parquet(path))?;
    meta_of(builder.metadata().file_metadata().key_value_metadata(), path)
}

fn meta_of(kv: Option<&Vec<ParquetKv>>, path: &Path) -> Result<Option<RecordingMeta>, StoreError> {
    let Some(kv) = kv else { return Ok(None) };
    let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    match get(META_FORMAT) {
        None => return Ok(None),
        Some(f) if f != RECORDING_FORMAT => {
            return Err(StoreError::Parquet {
                path: path.to_path_buf(),
                detail: format!("recording format {f:?} is not {RECORDING_FORMAT:?}; upgrade dynsim to read it"),
            })
        }
        Some(_) => {}
    }
    let json = get(META_RECORDING).ok_or_else(|| StoreError::Parquet {
        path: path.to_path_buf(),
        detail: "a dynsim recording file without its dynsim.recording metadata".into(),
    })?;
    serde_json::from_str(&json).map(Some).map_err(|e| StoreError::Parquet {
        path: path.to_path_buf(),
        detail: format!("damaged dynsim.recording metadata: {e}"),
    })
}

/// Read a recording file: the array and its metadata. The rows must be in order and
/// complete; `verify` also recomputes the content hash and compares.
///
/// A panic of the Parquet decoder on a damaged file is [`StoreError::Corrupt`] too (see
/// [`crate::guard`]).
pub fn read_recording(path: &Path, verify: bool) -> Result<(Array3<f32>, RecordingMeta), StoreError> {
    guarded(path, || read_recording_unguarded(path, verify))
}

/// Run a read of the recording file `path`; a decoder panic is [`StoreError::Corrupt`].
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    crate::guard::catch_decoder_panic(f).unwrap_or_else(|why| {
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("the Parquet decoder failed on damaged data ({why})"),
        })
    })
}

fn read_recording_unguarded(path: &Path, verify: bool) -> Result<(Array3<f32>, RecordingMeta), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { path: path.to_path_buf(), detail };
    let file = File::open(path).map_err(StoreError::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(StoreError::parquet(path))?;
    let meta = meta_of(builder.metadata().file_metadata().key_value_metadata(), path)?
        .ok_or_else(|| corrupt("not a dynsim recording file (no dynsim.format metadata)".into()))?;
    let [trials, time, units] = meta.shape;
    let expected = recording_schema(units)?;
    if builder.schema().fields() != expected.fields() {
        return Err(corrupt(format!("columns {:?} are not those of a recording of {units} units", builder.schema())));
    }
    let rows = trials.checked_mul(time).ok_or_else(|| corrupt("shape overflows".into()))?;
    let n_rows = builder.metadata().file_metadata().num_rows();
    if n_rows < 0 || n_rows as usize != rows {
        return Err(corrupt(format!("{n_rows} rows but the shape {:?} needs {rows}", meta.shape)));
    }
    let total = rows.checked_mul(units).ok_or_else(|| corrupt("shape overflows".into()))?;
    // The shape comes from the file: reserve at most 64 MiB up front, grow with the data.
    let mut values: Vec<f32> = Vec::with_capacity(total.min(1 << 24));
    let reader = builder.with_batch_size(8192).build().map_err(StoreError::parquet(path))?;
    let mut row = 0usize;
    for batch in reader {
        let batch = batch.map_err(StoreError::arrow(path))?;
        let (tr, tm, x) = recording_columns(&batch).ok_or_else(|| corrupt("unexpected column types".into()))?;
        for i in 0..batch.num_rows() {
            let (t, s) = ((row + i) / time, (row + i) % time);
            if tr.value(i) as usize != t || tm.value(i) as usize != s {
                return Err(corrupt(format!(
                    "row {} holds trial {} time {}, expected trial {t} time {s}",
                    row + i,
                    tr.value(i),
                    tm.value(i)
                )));
            }
        }
        if x.null_count() > 0 {
            return Err(corrupt("null rows in column x".into()));
        }
        let child = x.values().as_any().downcast_ref::<Float32Array>().ok_or_else(|| corrupt("x is not f32".into()))?;
        let start = x.value_offset_at(0);
        let slice = child.values().get(start..start + batch.num_rows() * units);
        values.extend_from_slice(slice.ok_or_else(|| corrupt("x values shorter than the rows".into()))?);
        row += batch.num_rows();
    }
    if values.len() != total {
        return Err(corrupt(format!("{} values but the shape {:?} needs {total}", values.len(), meta.shape)));
    }
    let x = Array3::from_shape_vec((trials, time, units), values).map_err(|e| corrupt(e.to_string()))?;
    if verify {
        let h = content_hash(&x);
        if h != meta.hash {
            return Err(corrupt(format!("content hash {h} does not match the recorded {}", meta.hash)));
        }
    }
    Ok((x, meta))
}

fn recording_columns(batch: &RecordBatch) -> Option<(&UInt32Array, &UInt32Array, &FixedSizeListArray)> {
    Some((
        batch.column(0).as_any().downcast_ref::<UInt32Array>()?,
        batch.column(1).as_any().downcast_ref::<UInt32Array>()?,
        batch.column(2).as_any().downcast_ref::<FixedSizeListArray>()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips_with_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let x = Array3::from_shape_fn((3, 5, 4), |(a, b, c)| (a * 100 + b * 10 + c) as f32 * 0.5 - 7.0);
        let p = dir.path().join("r.parquet");
        let meta = RecordingMeta {
            shape: [0; 3],
            hash: String::new(),
            keys: Keys::new(),
            source: "test".into(),
            dtype: "float32".into(),
        };
        let m = write_recording(&p, &x, meta).expect("write");
        assert_eq!(m.hash, content_hash(&x));
        let (y, m2) = read_recording(&p, true).expect("read");
        assert_eq!(x, y);
        assert_eq!(m, m2);
        let mut z = x.clone();
        z[[1, 2, 3]] += 1e-3;
        assert_ne!(content_hash(&z), m.hash);
    }
}
