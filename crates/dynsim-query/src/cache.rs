//! The persistent result cache in a store's `results/` folder.
//!
//! Layout:
//!
//! ```text
//! results/part-<unique>.parquet      finished results, one part per comparison run (or shard)
//! results/.journal/<unique>.jsonl    results of a run in progress, one JSON line per pair
//! results/.lock                      taken only to merge parts
//! ```
//!
//! Every part has the columns of [`ResultRow`]: `left_hash`, `right_hash`, `param_hash`,
//! `metric`, `params` (canonical JSON), `value`, `seconds`, `extra` (JSON), `left_id`,
//! `right_id`, `dynsim_version`, `computed_at` (Unix milliseconds). A result is keyed by
//! (left content hash, right content hash, parameter hash): it does not depend on the ids or
//! keys a recording has, a recording whose content changes gets a new hash (so its old
//! results no longer match), and a parameter change gives a new parameter hash.
//!
//! Crash safety: a running comparison appends each finished pair to its own journal (one
//! `write` per line; the journal is locked with `flock` for as long as the process lives)
//! and folds the journal into a part at the end (temporary file, fsync, rename, then the
//! journal is removed). A killed run leaves a journal whose lock is free; the next reader
//! takes its complete lines (a torn last line is ignored) and folds them into a part. So a
//! kill loses only the pairs being computed, and `results/*.parquet` is always a set of
//! complete Parquet files that pyarrow, polars or DuckDB read as one table. Parts and
//! journals are per process with unique names, so concurrent runs (shards of a SLURM array
//! on a shared file system) never write the same file.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use dynsim_store::arrowcast::{to_f64, to_i64, to_utf8};
use dynsim_store::fsutil::{atomic_write, sync_dir, unique_suffix, LockGuard};
use dynsim_store::table::{read_table, write_table};
use dynsim_store::{Store, StoreError};
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

use crate::error::QueryError;

/// Parts beyond this count are merged into one after a run.
pub const MERGE_PARTS_ABOVE: usize = 16;

/// The cache key of a result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultKey {
    /// Content hash of the left recording.
    pub left_hash: String,
    /// Content hash of the right recording.
    pub right_hash: String,
    /// [`crate::MetricSpec::param_hash`].
    pub param_hash: String,
}

/// One cached result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// Content hash of the left recording.
    pub left_hash: String,
    /// Content hash of the right recording.
    pub right_hash: String,
    /// Hash of the canonical parameters.
    pub param_hash: String,
    /// `dsa`, `procrustes` or `cka`.
    pub metric: String,
    /// Canonical parameters (JSON).
    pub params: String,
    /// The dissimilarity.
    pub value: f64,
    /// Seconds the pair took (the metric only; DSA's per-recording fits are not included).
    pub seconds: f64,
    /// Metric-specific outputs as JSON (DSA: ranks, optimiser loss, Wasserstein fallback;
    /// CKA: the similarity).
    pub extra: String,
    /// Id of the left recording when the result was computed.
    pub left_id: String,
    /// Id of the right recording when the result was computed.
    pub right_id: String,
    /// dynsim version that computed it.
    pub dynsim_version: String,
    /// When it was computed, Unix milliseconds.
    pub computed_at: i64,
}

impl ResultRow {
    /// Its cache key.
    pub fn key(&self) -> ResultKey {
        ResultKey {
            left_hash: self.left_hash.clone(),
            right_hash: self.right_hash.clone(),
            param_hash: self.param_hash.clone(),
        }
    }
}

/// The result cache of one store.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// The cache of `store`. Nothing is created until a result is written, so reading the
    /// cache of a read-only store works.
    pub fn open(store: &Store) -> Result<ResultCache, QueryError> {
        Ok(ResultCache { dir: store.results_dir() })
    }

    /// The `results/` folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The finished parts, sorted by name.
    pub fn parts(&self) -> Result<Vec<PathBuf>, QueryError> {
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(StoreError::io(&self.dir))?,
        };
        let mut out: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                name.starts_with("part-") && name.ends_with(".parquet")
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Fold the journals of dead runs into parts. Returns how many results they held.
    pub fn recover(&self) -> Result<usize, QueryError> {
        let jdir = self.dir.join(".journal");
        let Ok(entries) = fs::read_dir(&jdir) else { return Ok(0) };
        let (mut n, mut removed) = (0, 0);
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("jsonl") {
                continue;
            }
            let Ok(file) = File::open(&path) else { continue };
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => continue, // a live run
                Err(std::fs::TryLockError::Error(err)) => return Err(StoreError::Io { path, source: err }.into()),
            }
            let rows = read_journal(&file);
            if !rows.is_empty() {
                self.write_part(&rows)?;
            }
            n += rows.len();
            fs::remove_file(&path).map_err(StoreError::io(&path))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&jdir)?;
        }
        Ok(n)
    }

    /// Every cached result (parts, after folding in dead runs' journals), by key. Where a key
    /// appears twice (two shards racing on a pair), the first part in name order wins.
    pub fn load(&self) -> Result<HashMap<ResultKey, ResultRow>, QueryError> {
        self.recover()?;
        // A concurrent merge may remove a part between listing and reading it; its rows are
        // then in the merged part, so list again (at most three times).
        for _ in 0..2 {
            let (rows, vanished) = read_parts(&self.parts()?)?;
            if !vanished {
                return Ok(rows);
            }
        }
        Ok(read_parts(&self.parts()?)?.0)
    }

    /// Every cached result as one frame (columns of [`ResultRow`]), deduplicated by key.
    pub fn frame(&self) -> Result<DataFrame, QueryError> {
        rows_to_frame(&sorted(self.load()?))
    }

    /// Start a journal for a run.
    pub fn journal(&self) -> Result<Journal, QueryError> {
        let jdir = self.dir.join(".journal");
        fs::create_dir_all(&jdir).map_err(StoreError::io(&jdir))?;
        let name = format!("{}-{}", hostname(), unique_suffix());
        // Created and locked under a temporary name, then renamed: a reader never sees an
        // unlocked journal of a live run.
        let tmp = jdir.join(format!("{name}.new"));
        let path = jdir.join(format!("{name}.jsonl"));
        let file = OpenOptions::new().create_new(true).append(true).open(&tmp).map_err(StoreError::io(&tmp))?;
        file.lock().map_err(StoreError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(StoreError::io(&path))?;
        Ok(Journal { cache: self.clone(), file, path, rows: Vec::new() })
    }

    /// Write `rows` as a new part; returns its path.
    pub fn write_part(&self, rows: &[ResultRow]) -> Result<PathBuf, QueryError> {
        fs::create_dir_all(&self.dir).map_err(StoreError::io(&self.dir))?;
        let path = self.dir.join(format!("part-{}-{}.parquet", hostname(), unique_suffix()));
        let batch = rows_to_batch(rows)?;
        atomic_write(&path, |tmp| write_table(tmp, &batch))?;
        Ok(path)
    }

    /// Merge every part into one when there are more than `above` (under `results/.lock`;
    /// skipped when another process holds it). Returns the number of parts merged.
    pub fn merge_parts(&self, above: usize) -> Result<usize, QueryError> {
        let parts = self.parts()?;
        if parts.len() <= above {
            return Ok(0);
        }
        let Some(_lock) = LockGuard::try_acquire(&self.dir.join(".lock"))? else { return Ok(0) };
        let parts = self.parts()?;
        let rows = sorted(read_parts(&parts)?.0);
        // The merged part is durable before any input is removed: a crash in between leaves
        // duplicates, which readers deduplicate.
        self.write_part(&rows)?;
        for p in &parts {
            let _ = fs::remove_file(p);
        }
        sync_dir(&self.dir)?;
        Ok(parts.len())
    }
}

/// The journal of one running comparison: every appended result is on disk (in the page
/// cache, which survives the process) when `append` returns.
#[derive(Debug)]
pub struct Journal {
    cache: ResultCache,
    file: File,
    path: PathBuf,
    rows: Vec<ResultRow>,
}

impl Journal {
    /// Append one result (one `write` of one JSON line).
    pub fn append(&mut self, row: ResultRow) -> Result<(), QueryError> {
        let mut line = serde_json::to_string(&row).map_err(|e| QueryError::Cache {
            path: self.path.clone(),
            detail: format!("cannot encode a result: {e}"),
        })?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(StoreError::io(&self.path))?;
        self.rows.push(row);
        Ok(())
    }

    /// Results appended so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Fold the journal into a part (none when it is empty) and remove it.
    pub fn finish(self) -> Result<Option<PathBuf>, QueryError> {
        let part = if self.rows.is_empty() { None } else { Some(self.cache.write_part(&self.rows)?) };
        fs::remove_file(&self.path).map_err(StoreError::io(&self.path))?;
        Ok(part)
    }
}

fn hostname() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "host".into());
    let clean: String = raw.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(32).collect();
    if clean.is_empty() {
        "host".into()
    } else {
        clean
    }
}

/// The complete lines of a journal; a torn or garbled line (a write cut by a kill) is skipped.
fn read_journal(file: &File) -> Vec<ResultRow> {
    let mut out = Vec::new();
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if !line.ends_with('\n') {
                    break;
                }
                if let Ok(row) = serde_json::from_str::<ResultRow>(&line) {
                    out.push(row);
                }
            }
        }
    }
    out
}

/// The rows of `parts` by key, the first part in name order winning, and whether a part
/// vanished while being read (a concurrent merge removed it).
fn read_parts(parts: &[PathBuf]) -> Result<(HashMap<ResultKey, ResultRow>, bool), QueryError> {
    let mut out = HashMap::new();
    let mut vanished = false;
    for p in parts {
        match read_part(p) {
            Ok(rows) => {
                for r in rows {
                    out.entry(r.key()).or_insert(r);
                }
            }
            Err(PartError::Vanished) => vanished = true,
            Err(PartError::Bad(e)) => return Err(e),
        }
    }
    Ok((out, vanished))
}

/// The rows of a keyed map in key order.
fn sorted(rows: HashMap<ResultKey, ResultRow>) -> Vec<ResultRow> {
    let mut rows: Vec<ResultRow> = rows.into_values().collect();
    rows.sort_by_key(ResultRow::key);
    rows
}

enum PartError {
    Vanished,
    Bad(QueryError),
}

fn read_part(path: &Path) -> Result<Vec<ResultRow>, PartError> {
    let bad = |detail: String| PartError::Bad(QueryError::Cache { path: path.to_path_buf(), detail });
    let batches = match read_table(path) {
        Ok((_, batches)) => batches,
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(PartError::Vanished)
        }
        Err(StoreError::Parquet { detail, .. }) => return Err(bad(detail)),
        Err(e) => return Err(PartError::Bad(e.into())),
    };
    let mut out = Vec::new();
    for batch in &batches {
        out.extend(batch_to_rows(batch).map_err(bad)?);
    }
    Ok(out)
}

const STR_COLUMNS: [&str; 9] =
    ["left_hash", "right_hash", "param_hash", "metric", "params", "extra", "left_id", "right_id", "dynsim_version"];

fn rows_to_frame(rows: &[ResultRow]) -> Result<DataFrame, QueryError> {
    let s = |name: &str, f: &dyn Fn(&ResultRow) -> &str| -> Column {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<&str>>())
    };
    let cols = vec![
        s("left_hash", &|r| &r.left_hash),
        s("right_hash", &|r| &r.right_hash),
        s("param_hash", &|r| &r.param_hash),
        s("metric", &|r| &r.metric),
        s("params", &|r| &r.params),
        Column::new("value".into(), rows.iter().map(|r| r.value).collect::<Vec<f64>>()),
        Column::new("seconds".into(), rows.iter().map(|r| r.seconds).collect::<Vec<f64>>()),
        s("extra", &|r| &r.extra),
        s("left_id", &|r| &r.left_id),
        s("right_id", &|r| &r.right_id),
        s("dynsim_version", &|r| &r.dynsim_version),
        Column::new("computed_at".into(), rows.iter().map(|r| r.computed_at).collect::<Vec<i64>>()),
    ];
    Ok(DataFrame::new(rows.len(), cols)?)
}

/// The columns of a part, in order, with their Arrow types.
fn part_schema() -> Schema {
    let mut fields: Vec<Field> = STR_COLUMNS[..5].iter().map(|c| Field::new(*c, ArrowType::Utf8, false)).collect();
    fields.push(Field::new("value", ArrowType::Float64, false));
    fields.push(Field::new("seconds", ArrowType::Float64, false));
    fields.extend(STR_COLUMNS[5..].iter().map(|c| Field::new(*c, ArrowType::Utf8, false)));
    fields.push(Field::new("computed_at", ArrowType::Int64, false));
    Schema::new(fields)
}

fn rows_to_batch(rows: &[ResultRow]) -> Result<RecordBatch, QueryError> {
    let s =
        |f: &dyn Fn(&ResultRow) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(rows.iter().map(f))) };
    let cols: Vec<ArrayRef> = vec![
        s(&|r| &r.left_hash),
        s(&|r| &r.right_hash),
        s(&|r| &r.param_hash),
        s(&|r| &r.metric),
        s(&|r| &r.params),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.seconds))),
        s(&|r| &r.extra),
        s(&|r| &r.left_id),
        s(&|r| &r.right_id),
        s(&|r| &r.dynsim_version),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.computed_at))),
    ];
    RecordBatch::try_new(Arc::new(part_schema()), cols)
        .map_err(|e| QueryError::Conversion(format!("cannot assemble a result part: {e}")))
}

/// Column `name` of a part, converted by `to` (parts written by polars store strings as
/// views or large strings; every string and number layout is accepted).
fn part_column<T>(b: &RecordBatch, name: &str, to: fn(&dyn Array) -> Result<T, String>) -> Result<T, String> {
    let c = b.column_by_name(name).ok_or_else(|| format!("column {name} is missing"))?;
    to(c.as_ref()).map_err(|e| format!("column {name}: {e}"))
}

fn batch_to_rows(b: &RecordBatch) -> Result<Vec<ResultRow>, String> {
    let strs: Vec<StringArray> = STR_COLUMNS.iter().map(|c| part_column(b, c, to_utf8)).collect::<Result<_, _>>()?;
    let (value, seconds) = (part_column(b, "value", to_f64)?, part_column(b, "seconds", to_f64)?);
    let at = part_column(b, "computed_at", to_i64)?;
    let mut out = Vec::with_capacity(b.num_rows());
    for i in 0..b.num_rows() {
        if value.is_null(i) || seconds.is_null(i) {
            return Err(format!("row {i}: value or seconds is null"));
        }
        let g = |k: usize| if strs[k].is_null(i) { String::new() } else { strs[k].value(i).to_string() };
        out.push(ResultRow {
            left_hash: g(0),
            right_hash: g(1),
            param_hash: g(2),
            metric: g(3),
            params: g(4),
            value: value.value(i),
            seconds: seconds.value(i),
            extra: g(5),
            left_id: g(6),
            right_id: g(7),
            dynsim_version: g(8),
            computed_at: if at.is_null(i) { 0 } else { at.value(i) },
        });
    }
    Ok(out)
}
