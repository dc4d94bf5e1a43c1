//! Turning input files into recordings: HDF5 (h5py), Parquet (long tables and dynsim
//! recording files), NumPy `.npy` / `.npz`.
//!
//! Ingest happens in two steps. [`plan`] reads only metadata (HDF5 tree and attributes,
//! Parquet key columns, npy headers) and returns one [`Candidate`] per recording, with its
//! keys, shape and dtype; problems with the layout, shapes or keys surface here, before
//! anything is written. Then each candidate streams its values block by block (a few
//! trials at a time), so memory stays near one block, not one file.
//!
//! Keys, from weakest to strongest: HDF5 attributes of the root, each group on the path and
//! the dataset (when `attributes` is on); layout captures or table key columns; `--key`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::arrowcast::{to_f32, to_f64, to_i64, to_utf8};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::arrow::ProjectionMask;

use crate::error::StoreError;
use crate::h5::{attribute_value, H5File};
use crate::keys::{normalise, sanitise_key_name, KeyValue, Keys};
use crate::layout::{natural_cmp, Layout};
use crate::npy::{parse_npy, NpyArray};
use crate::recording::trials_per_block;

/// How to turn input files into recordings.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Maps paths inside HDF5 files (and array names inside `.npz` files) to keys.
    pub layout: Option<Layout>,
    /// Constant keys added to every recording (`--key k=v`); they win over everything.
    /// Standard keys are normalised to their types first (`progress` 0 becomes 0.0).
    pub keys: Keys,
    /// Keep NaN / Inf values instead of rejecting the input.
    pub allow_nonfinite: bool,
    /// Skip HDF5 attributes as keys.
    pub no_attributes: bool,
    /// Parquet long tables: extra columns to treat as keys even though they are floats.
    pub key_columns: Vec<String>,
    /// Keys every recording must end up with (after attributes, layout, columns and
    /// `keys`); a recording without one is an error, so a file with a missing attribute or
    /// a layout that does not capture a key is caught before anything is written.
    pub require_keys: Vec<String>,
}

/// Streams a recording's values in blocks of whole trials (C order).
pub(crate) trait BlockSource: Send {
    /// Call `sink` with blocks of about `max_values` values (at least one trial each).
    fn blocks(
        &mut self,
        max_values: usize,
        sink: &mut dyn FnMut(Vec<f32>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// One recording an input file will produce.
pub(crate) struct Candidate {
    /// The input file.
    pub file: PathBuf,
    /// Where inside it (dataset path, array name, key values of a table group).
    pub location: String,
    /// Keys before `--key` (normalised).
    pub keys: Keys,
    /// `[trials, time, units]`.
    pub shape: [usize; 3],
    /// Source dtype name.
    pub dtype: String,
    /// The values.
    pub source: Box<dyn BlockSource>,
}

impl Candidate {
    /// `file:location`, as stored in the catalogue's `source` column (only the description
    /// for a recording ingested from memory, which has no location).
    pub fn source_label(&self) -> String {
        if self.location.is_empty() {
            self.file.display().to_string()
        } else {
            format!("{}:{}", self.file.display(), self.location)
        }
    }
}

/// A recording held in memory, for [`crate::Store::ingest_arrays`].
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayRecording {
    /// `trials * time * units` values, C order (trial-major, then time).
    pub values: Vec<f32>,
    /// `[trials, time, units]`, each at least 1.
    pub shape: [usize; 3],
    /// The recording's keys (standard keys are normalised to their types).
    pub keys: Keys,
    /// What the recording is, for the catalogue's `source` column: something a reader can
    /// trace it back to (e.g. `dynsim record: runs/a/checkpoints/train-003.safetensors,
    /// anti_pdm_delay test trials 0..200, stimulus`).
    pub source: String,
}

impl ArrayRecording {
    pub(crate) fn into_candidate(self) -> Result<Candidate, StoreError> {
        let bad = |detail: String| StoreError::BadInput {
            path: PathBuf::from(&self.source),
            location: String::new(),
            detail,
        };
        if self.source.trim().is_empty() {
            return Err(StoreError::BadInput {
                path: PathBuf::from("<memory>"),
                location: String::new(),
                detail: "an in-memory recording needs a source description".into(),
            });
        }
        if self.shape.contains(&0) {
            return Err(bad(format!(
                "shape {:?} has an empty dimension; recordings need at least one trial, step and unit",
                self.shape
            )));
        }
        let len: usize = self.shape.iter().product();
        if len != self.values.len() {
            return Err(bad(format!("shape {:?} needs {len} values but {} were given", self.shape, self.values.len())));
        }
        let keys: Keys = self
            .keys
            .iter()
            .map(|(k, v)| Ok((k.clone(), normalise(k, v.clone())?)))
            .collect::<Result<_, StoreError>>()?;
        let units = self.shape[1] * self.shape[2];
        Ok(Candidate {
            file: PathBuf::from(&self.source),
            location: String::new(),
            keys,
            shape: self.shape,
            dtype: "float32".into(),
            source: Box::new(ArraySource { array: Some(self.values), per_trial: units }),
        })
    }
}

/// What `plan` found in one file: the recordings and the things it left out (and why).
pub(crate) struct Plan {
    pub candidates: Vec<Candidate>,
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Hdf5,
    Parquet,
    Npy,
    Npz,
}

fn sniff(path: &Path) -> Result<Format, StoreError> {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let by_ext = match ext.as_str() {
        "h5" | "hdf5" | "hdf" | "he5" => Some(Format::Hdf5),
        "parquet" | "pq" => Some(Format::Parquet),
        "npy" => Some(Format::Npy),
        "npz" => Some(Format::Npz),
        _ => None,
    };
    let mut head = [0u8; 8];
    let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(StoreError::io(path))?;
    let by_magic = match &head[..n] {
        [0x89, b'H', b'D', b'F', ..] => Some(Format::Hdf5),
        [b'P', b'A', b'R', b'1', ..] => Some(Format::Parquet),
        [0x93, b'N', b'U', b'M', b'P', b'Y', ..] => Some(Format::Npy),
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Some(Format::Npz),
        _ => None,
    };
    by_ext.or(by_magic).ok_or_else(|| StoreError::BadInput {
        path: path.to_path_buf(),
        location: "file".into(),
        detail: "unrecognised format; dynsim ingests HDF5 (.h5), Parquet (.parquet) and NumPy (.npy, .npz)".into(),
    })
}

/// Read the metadata of `path` and list the recordings it holds.
pub(crate) fn plan(path: &Path, opts: &IngestOptions) -> Result<Plan, StoreError> {
    let plan = match sniff(path)? {
        Format::Hdf5 => plan_hdf5(path, opts)?,
        Format::Parquet => plan_parquet(path, opts)?,
        Format::Npy => plan_npy(path, opts)?,
        Format::Npz => plan_npz(path, opts)?,
    };
    if plan.candidates.is_empty() {
        let why = match plan.skipped.len() {
            0 => String::new(),
            n if n <= 3 => format!(" (left out: {})", plan.skipped.join("; ")),
            n => format!(" (left out: {}; and {} more)", plan.skipped[..3].join("; "), n - 3),
        };
        return Err(match &opts.layout {
            Some(l) => StoreError::Layout {
                pattern: l.pattern().to_string(),
                detail: format!("matches nothing in {}{why}", path.display()),
            },
            None => StoreError::BadInput {
                path: path.to_path_buf(),
                location: "file".into(),
                detail: format!("holds no float array of rank 2 or 3 to ingest{why}"),
            },
        });
    }
    Ok(plan)
}

/// Merge key sources (weakest first) and normalise every value.
fn merge_keys(file: &Path, location: &str, layers: &[Vec<(String, KeyValue)>]) -> Result<Keys, StoreError> {
    let mut keys = Keys::new();
    for layer in layers {
        for (k, v) in layer {
            let v = normalise(k, v.clone()).map_err(|e| StoreError::BadInput {
                path: file.to_path_buf(),
                location: location.to_string(),
                detail: e.to_string(),
            })?;
            keys.insert(k.clone(), v);
        }
    }
    Ok(keys)
}

fn shape3(shape: &[usize]) -> Option<[usize; 3]> {
    match *shape {
        [t, u] => Some([1, t, u]),
        [n, t, u] => Some([n, t, u]),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// HDF5

struct H5Source {
    file: Arc<H5File>,
    /// One rank-3 dataset, or rank-2 datasets stacked as trials.
    datasets: Vec<String>,
    shape: [usize; 3],
}

impl BlockSource for H5Source {
    fn blocks(
        &mut self,
        max_values: usize,
        sink: &mut dyn FnMut(Vec<f32>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let per_trial = self.shape[1] * self.shape[2];
        let step = trials_per_block(max_values, per_trial);
        if self.datasets.len() == 1 {
            let ds = &self.datasets[0];
            let mut start = 0;
            while start < self.shape[0] {
                let end = (start + step).min(self.shape[0]);
                let v = self.file.read_f32_trials(ds, start, end)?;
                check_len(&self.file, ds, v.len(), (end - start) * per_trial)?;
                sink(v)?;
                start = end;
            }
        } else {
            let mut block = Vec::with_capacity((step.min(self.datasets.len()) * per_trial).min(1 << 24));
            for ds in &self.datasets {
                let v = self.file.read_f32_trials(ds, 0, 1)?;
                check_len(&self.file, ds, v.len(), per_trial)?;
                block.extend_from_slice(&v);
                if block.len() >= step * per_trial {
                    sink(std::mem::take(&mut block))?;
                }
            }
            if !block.is_empty() {
                sink(block)?;
            }
        }
        Ok(())
    }
}

fn check_len(file: &H5File, ds: &str, got: usize, want: usize) -> Result<(), StoreError> {
    if got != want {
        return Err(StoreError::Hdf5 {
            path: file.path().to_path_buf(),
            dataset: Some(ds.to_string()),
            detail: format!("read {got} values where the shape promises {want}; the file is damaged"),
        });
    }
    Ok(())
}

fn plan_hdf5(path: &Path, opts: &IngestOptions) -> Result<Plan, StoreError> {
    let file = Arc::new(H5File::open(path)?);
    let (groups, datasets) = file.walk()?;
    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    let usable = |d: &crate::h5::DatasetInfo| -> Result<Option<[usize; 3]>, String> {
        let Some(shape) = &d.shape else { return Err("null dataspace (h5py.Empty)".into()) };
        if d.dtype.float_name().is_none() {
            return Err(format!("dtype {} is not a float", d.dtype.numpy()));
        }
        let s = shape3(shape)
            .ok_or_else(|| format!("rank {} (need 2: time x units, or 3: trials x time x units)", shape.len()))?;
        if s.contains(&0) {
            return Ok(None);
        }
        Ok(Some(s))
    };
    // Attribute keys along a path: root, each group, the object itself.
    let attr_keys = |object: &str| -> Result<Vec<(String, KeyValue)>, StoreError> {
        let mut out = Vec::new();
        if opts.no_attributes {
            return Ok(out);
        }
        let mut prefixes = vec!["/".to_string()];
        let mut acc = String::new();
        for seg in object.split('/').filter(|s| !s.is_empty()) {
            acc.push('/');
            acc.push_str(seg);
            prefixes.push(acc.clone());
        }
        for p in prefixes {
            for (name, v) in file.attributes(&p)? {
                // h5py / netCDF bookkeeping attributes are not keys.
                if matches!(name.as_str(), "CLASS" | "NAME" | "REFERENCE_LIST" | "DIMENSION_LIST" | "_Netcdf4Dimid")
                    || name.starts_with("_NCProperties")
                {
                    continue;
                }
                if let Some(k) = sanitise_key_name(&name) {
                    out.push((k, attribute_value(&v)));
                }
            }
        }
        Ok(out)
    };
    let text_caps = |caps: Vec<(String, String)>| caps.into_iter().map(|(k, v)| (k, KeyValue::infer(&v))).collect();
    let mut add = |location: String,
                   dss: Vec<String>,
                   shape: [usize; 3],
                   dtype: &str,
                   layers: Vec<Vec<(String, KeyValue)>>|
     -> Result<(), StoreError> {
        let keys = merge_keys(path, &location, &layers)?;
        candidates.push(Candidate {
            file: path.to_path_buf(),
            location,
            keys,
            shape,
            dtype: dtype.to_string(),
            source: Box::new(H5Source { file: file.clone(), datasets: dss, shape }),
        });
        Ok(())
    };
    match &opts.layout {
        None => {
            for d in &datasets {
                match usable(d) {
                    Ok(Some(s)) => add(
                        d.path.clone(),
                        vec![d.path.clone()],
                        s,
                        d.dtype.float_name().unwrap_or(""),
                        vec![attr_keys(&d.path)?],
                    )?,
                    Ok(None) => skipped.push(format!("{} is empty", d.path)),
                    Err(why) => skipped.push(format!("{}: {why}", d.path)),
                }
            }
        }
        Some(layout) => {
            for d in &datasets {
                let Some(caps) = layout.matches(&d.path) else { continue };
                match usable(d) {
                    Ok(Some(s)) => add(
                        d.path.clone(),
                        vec![d.path.clone()],
                        s,
                        d.dtype.float_name().unwrap_or(""),
                        vec![attr_keys(&d.path)?, text_caps(caps)],
                    )?,
                    Ok(None) => skipped.push(format!("{} is empty", d.path)),
                    Err(why) => {
                        return Err(StoreError::BadInput {
                            path: path.to_path_buf(),
                            location: d.path.clone(),
                            detail: format!(
                            "matches --layout {:?} but cannot be a recording: {why}; make the pattern more specific",
                            layout.pattern()
                        ),
                        })
                    }
                }
            }
            for g in &groups {
                let Some(caps) = layout.matches(g) else { continue };
                let prefix = if g == "/" { "/".to_string() } else { format!("{g}/") };
                let mut children: Vec<(&crate::h5::DatasetInfo, [usize; 3])> = Vec::new();
                for d in datasets.iter().filter(|d| d.path.strip_prefix(&prefix).is_some_and(|r| !r.contains('/'))) {
                    match usable(d) {
                        Ok(Some(s)) => children.push((d, s)),
                        Ok(None) => skipped.push(format!("{} is empty", d.path)),
                        Err(why) => skipped.push(format!("{}: {why}", d.path)),
                    }
                }
                if children.is_empty() {
                    let deeper = datasets.iter().any(|d| d.path.starts_with(&prefix));
                    skipped.push(if deeper {
                        format!("group {g} matches but its datasets sit deeper; add levels to the pattern")
                    } else {
                        format!("group {g} matches but holds no datasets")
                    });
                    continue;
                }
                children.sort_by(|a, b| natural_cmp(&a.0.path, &b.0.path));
                let ranks2 = children.iter().all(|(d, _)| d.shape.as_ref().is_some_and(|s| s.len() == 2));
                let dtype = children[0].0.dtype.float_name().unwrap_or("");
                if children.len() == 1 {
                    let (d, s) = children[0];
                    add(g.clone(), vec![d.path.clone()], s, dtype, vec![attr_keys(&d.path)?, text_caps(caps)])?;
                } else if ranks2 && children.iter().all(|(_, s)| s[1..] == children[0].1[1..]) {
                    let [_, t, u] = children[0].1;
                    let names = children.iter().map(|(d, _)| d.path.clone()).collect::<Vec<_>>();
                    add(g.clone(), names, [children.len(), t, u], dtype, vec![attr_keys(g)?, text_caps(caps)])?;
                } else {
                    let list: Vec<String> = children
                        .iter()
                        .map(|(d, _)| format!("{} {:?}", d.path, d.shape.clone().unwrap_or_default()))
                        .collect();
                    return Err(StoreError::BadInput {
                        path: path.to_path_buf(),
                        location: g.clone(),
                        detail: format!(
                            "the group matches --layout {:?} but holds several datasets that are not trials of one \
                             shape ({}); add the dataset name to the pattern, e.g. '{}/activations'",
                            layout.pattern(),
                            list.join(", "),
                            layout.pattern()
                        ),
                    });
                }
            }
        }
    }
    Ok(Plan { candidates, skipped })
}

// ---------------------------------------------------------------------------------------
// NumPy

struct ArraySource {
    array: Option<Vec<f32>>,
    per_trial: usize,
}

impl BlockSource for ArraySource {
    fn blocks(
        &mut self,
        max_values: usize,
        sink: &mut dyn FnMut(Vec<f32>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(values) = self.array.take() else { return Ok(()) };
        let step = trials_per_block(max_values, self.per_trial) * self.per_trial.max(1);
        if values.len() <= step {
            return sink(values);
        }
        for block in values.chunks(step) {
            sink(block.to_vec())?;
        }
        Ok(())
    }
}

fn npy_to_f32(a: NpyArray) -> Vec<f32> {
    match a {
        NpyArray::F32(a) => {
            if a.is_standard_layout() {
                a.into_raw_vec_and_offset().0
            } else {
                a.iter().copied().collect()
            }
        }
        NpyArray::F64(a) => a.iter().map(|&v| v as f32).collect(),
    }
}

fn npy_candidate(
    file: &Path,
    location: String,
    array: NpyArray,
    layers: Vec<Vec<(String, KeyValue)>>,
) -> Result<Candidate, StoreError> {
    let shape = shape3(array.shape()).ok_or_else(|| StoreError::BadInput {
        path: file.to_path_buf(),
        location: location.clone(),
        detail: format!(
            "shape {:?} has rank {}; a recording is time x units or trials x time x units",
            array.shape(),
            array.shape().len()
        ),
    })?;
    if shape.contains(&0) {
        return Err(StoreError::BadInput {
            path: file.to_path_buf(),
            location,
            detail: format!("shape {:?} is empty", array.shape()),
        });
    }
    let dtype = array.dtype().to_string();
    let keys = merge_keys(file, &location, &layers)?;
    Ok(Candidate {
        file: file.to_path_buf(),
        location,
        keys,
        shape,
        dtype,
        source: Box::new(ArraySource { array: Some(npy_to_f32(array)), per_trial: shape[1] * shape[2] }),
    })
}

fn plan_npy(path: &Path, _opts: &IngestOptions) -> Result<Plan, StoreError> {
    let array = crate::npy::read_npy(path)?;
    Ok(Plan { candidates: vec![npy_candidate(path, "/".into(), array, vec![])?], skipped: vec![] })
}

fn plan_npz(path: &Path, opts: &IngestOptions) -> Result<Plan, StoreError> {
    let npz_err = |detail: String| StoreError::Npy { path: path.to_path_buf(), detail };
    let file = File::open(path).map_err(StoreError::io(path))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| npz_err(format!("not a valid .npz (zip) file: {e}")))?;
    let mut names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| npz_err(format!("damaged .npz member name: {e}")))?;
    names.sort_by(|a, b| natural_cmp(a, b));
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    for name in names {
        let Some(stem) = name.strip_suffix(".npy") else {
            skipped.push(format!("{name}: not an .npy member"));
            continue;
        };
        let location = format!("/{stem}");
        let caps = match &opts.layout {
            Some(l) => match l.matches(&location) {
                Some(c) => c.into_iter().map(|(k, v)| (k, KeyValue::infer(&v))).collect(),
                None => continue,
            },
            None => vec![],
        };
        let mut member = zip.by_name(&name).map_err(|e| npz_err(format!("member {name}: {e}")))?;
        let mut bytes = Vec::with_capacity(member.size().min(1 << 26) as usize);
        member.read_to_end(&mut bytes).map_err(|e| npz_err(format!("member {name} is damaged: {e}")))?;
        let array = match parse_npy(&bytes, Path::new(&name)) {
            Ok(a) => a,
            Err(e) if opts.layout.is_none() => {
                skipped.push(format!("{name}: {e}"));
                continue;
            }
            Err(e) => return Err(npz_err(format!("member {name}: {e}"))),
        };
        if shape3(array.shape()).is_none() && opts.layout.is_none() {
            skipped.push(format!("{name}: rank {}", array.shape().len()));
            continue;
        }
        candidates.push(npy_candidate(path, location, array, vec![caps])?);
    }
    Ok(Plan { candidates, skipped })
}

// ---------------------------------------------------------------------------------------
// Parquet

struct RecordingFileSource {
    path: PathBuf,
}

impl BlockSource for RecordingFileSource {
    fn blocks(
        &mut self,
        _max_values: usize,
        sink: &mut dyn FnMut(Vec<f32>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let (x, _) = crate::recording::read_recording(&self.path, true)?;
        sink(x.into_raw_vec_and_offset().0)
    }
}

/// One group of rows of a long table: reads its rows and scatters them into place.
struct TableSource {
    path: PathBuf,
    rows: Vec<usize>,
    /// For each row (in `rows` order), its flat (trial, time) slot.
    slots: Vec<usize>,
    unit_columns: UnitColumns,
    shape: [usize; 3],
}

#[derive(Clone)]
enum UnitColumns {
    /// One list / fixed-size-list column of floats.
    List(usize),
    /// One float column per unit.
    Columns(Vec<usize>),
}

impl BlockSource for TableSource {
    fn blocks(
        &mut self,
        max_values: usize,
        sink: &mut dyn FnMut(Vec<f32>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let perr = StoreError::parquet(&self.path);
        let bad = |detail: String| StoreError::BadInput { path: self.path.clone(), location: "table".into(), detail };
        let file = File::open(&self.path).map_err(StoreError::io(&self.path))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
        let cols: Vec<usize> = match &self.unit_columns {
            UnitColumns::List(c) => vec![*c],
            UnitColumns::Columns(c) => c.clone(),
        };
        let mask = ProjectionMask::roots(builder.parquet_schema(), cols.iter().copied());
        // Rows in file order; `order[i]` is the position in `self.rows` of the i-th selected row.
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_by_key(|&i| self.rows[i]);
        // Runs of selected rows, skipping the rest.
        let mut selectors = Vec::new();
        let mut next = 0usize;
        let mut run = 0usize;
        for &i in &order {
            let r = self.rows[i];
            if r > next {
                if run > 0 {
                    selectors.push(RowSelector::select(run));
                    run = 0;
                }
                selectors.push(RowSelector::skip(r - next));
            }
            run += 1;
            next = r + 1;
        }
        if run > 0 {
            selectors.push(RowSelector::select(run));
        }
        let reader = builder
            .with_projection(mask)
            .with_row_selection(RowSelection::from(selectors))
            .build()
            .map_err(StoreError::parquet(&self.path))?;
        let [_, time, units] = self.shape;
        let total = self.rows.len();
        // Rows already in (trial, time) order in the file (the usual case) stream out in
        // blocks of whole trials; otherwise the recording is assembled in memory first.
        let streaming = order.iter().enumerate().all(|(j, &i)| self.slots[i] == j);
        let block_rows = if streaming { trials_per_block(max_values, time * units) * time } else { total };
        let mut base = 0usize;
        let mut out = vec![0f32; block_rows.min(total) * units];
        let mut k = 0usize;
        for batch in reader {
            let batch = batch.map_err(StoreError::arrow(&self.path))?;
            let n = batch.num_rows();
            if k + n > total {
                return Err(bad(format!("more rows than the {total} selected; the file is damaged")));
            }
            // The batch's values: one list column (values + offsets) or one column per unit.
            let mut list: Option<(arrow_array::ArrayRef, Vec<usize>)> = None;
            let mut cols: Vec<arrow_array::ArrayRef> = Vec::new();
            match &self.unit_columns {
                UnitColumns::List(_) => {
                    let col = batch.column(0);
                    let (values, offsets): (arrow_array::ArrayRef, Vec<usize>) = match col.data_type() {
                        DataType::FixedSizeList(_, w) => {
                            let l = col.as_fixed_size_list();
                            (l.values().clone(), (0..=n).map(|i| (l.offset() + i) * *w as usize).collect())
                        }
                        DataType::List(_) => {
                            let l = col.as_list::<i32>();
                            (l.values().clone(), l.value_offsets().iter().map(|&o| o as usize).collect())
                        }
                        DataType::LargeList(_) => {
                            let l = col.as_list::<i64>();
                            (l.values().clone(), l.value_offsets().iter().map(|&o| o as usize).collect())
                        }
                        other => return Err(bad(format!("unit column has type {other}"))),
                    };
                    if col.null_count() > 0 || values.null_count() > 0 {
                        return Err(bad("the unit list column holds nulls; fill or drop them before ingesting".into()));
                    }
                    let values = to_f32(values.as_ref()).map_err(|e| bad(format!("unit values: {e}")))?;
                    list = Some((std::sync::Arc::new(values) as arrow_array::ArrayRef, offsets));
                }
                UnitColumns::Columns(_) => {
                    for (u, col) in batch.columns().iter().enumerate() {
                        if col.null_count() > 0 {
                            return Err(bad(format!(
                                "unit column {:?} holds nulls; fill or drop them before ingesting",
                                batch.schema().field(u).name()
                            )));
                        }
                        let name = batch.schema().field(u).name().clone();
                        let values = to_f32(col.as_ref()).map_err(|e| bad(format!("unit column {name:?}: {e}")))?;
                        cols.push(std::sync::Arc::new(values) as arrow_array::ArrayRef);
                    }
                }
            }
            let list_values = list.as_ref().map(|(v, o)| (v.as_primitive::<Float32Type>().values(), o));
            let col_values: Vec<&[f32]> = cols.iter().map(|c| &c.as_primitive::<Float32Type>().values()[..]).collect();
            for row in 0..n {
                let slot = self.slots[order[k + row]];
                if streaming && slot >= base + block_rows {
                    let next_len = block_rows.min(total - base - block_rows) * units;
                    sink(std::mem::replace(&mut out, vec![0f32; next_len]))?;
                    base += block_rows;
                }
                let dst = &mut out[(slot - base) * units..(slot - base + 1) * units];
                if let Some((values, offsets)) = &list_values {
                    let (a, b) = (offsets[row], offsets[row + 1]);
                    if b - a != units || b > values.len() {
                        return Err(bad(format!("a row's unit list has {} values, others have {units}", b - a)));
                    }
                    dst.copy_from_slice(&values[a..b]);
                } else {
                    for (u, c) in col_values.iter().enumerate() {
                        dst[u] = c[row];
                    }
                }
            }
            k += n;
        }
        if k != total {
            return Err(bad(format!("read {k} rows where {total} were selected; the file is damaged")));
        }
        sink(out)
    }
}

fn is_float(dt: &DataType) -> bool {
    matches!(dt, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

fn is_list_of_float(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => is_float(f.data_type()),
        _ => false,
    }
}

/// Rows of one recording in a long table: its key values, row numbers, (trial, time) per row.
type TableGroup = (Vec<(String, KeyValue)>, Vec<usize>, Vec<(i64, i64)>);

fn plan_parquet(path: &Path, opts: &IngestOptions) -> Result<Plan, StoreError> {
    let perr = StoreError::parquet(path);
    let file = File::open(path).map_err(StoreError::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    // (b) a dynsim recording file.
    if let Some(meta) = crate::recording::read_recording_meta(path)? {
        let layers = vec![meta.keys.clone().into_iter().collect::<Vec<_>>()];
        let keys = merge_keys(path, "/", &layers)?;
        return Ok(Plan {
            candidates: vec![Candidate {
                file: path.to_path_buf(),
                location: "/".into(),
                keys,
                shape: meta.shape,
                dtype: meta.dtype.clone(),
                source: Box::new(RecordingFileSource { path: path.to_path_buf() }),
            }],
            skipped: vec![],
        });
    }
    // (a) a long table.
    let bad = |detail: String| StoreError::BadInput { path: path.to_path_buf(), location: "table".into(), detail };
    let schema = builder.schema().clone();
    let fields = schema.fields();
    let index = |name: &str| fields.iter().position(|f| f.name() == name);
    let time_col = index("time").ok_or_else(|| {
        bad(format!(
            "a long table needs a 'time' column (and optionally 'trial'); columns are {:?}",
            fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>()
        ))
    })?;
    let trial_col = index("trial");
    for (c, name) in [(Some(time_col), "time"), (trial_col, "trial")] {
        if let Some(c) = c {
            if !fields[c].data_type().is_integer() {
                return Err(bad(format!("column {name:?} must be an integer, it is {}", fields[c].data_type())));
            }
        }
    }
    let forced: Vec<&str> = opts.key_columns.iter().map(String::as_str).collect();
    for k in &forced {
        if index(k).is_none() {
            return Err(bad(format!("--key-column {k:?} is not a column of the table")));
        }
    }
    let lists: Vec<usize> = (0..fields.len()).filter(|&i| is_list_of_float(fields[i].data_type())).collect();
    let mut key_cols = Vec::new();
    let mut unit_cols = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if Some(i) == trial_col || i == time_col || lists.contains(&i) {
            continue;
        }
        let name = f.name().as_str();
        let standard = crate::keys::standard_type(name).is_some();
        if forced.contains(&name) || standard || !is_float(f.data_type()) || !lists.is_empty() {
            key_cols.push(i);
        } else {
            unit_cols.push(i);
        }
    }
    let units_kind = match (lists.len(), unit_cols.len()) {
        (1, _) => UnitColumns::List(lists[0]),
        (0, n) if n > 0 => UnitColumns::Columns(unit_cols.clone()),
        (0, _) => {
            return Err(bad("no unit columns: give one float column per unit or one list-of-float column".into()))
        }
        _ => return Err(bad("several list columns; keep one list-of-float column of unit values".into())),
    };
    for &c in &key_cols {
        if sanitise_key_name(fields[c].name()).as_deref() != Some(fields[c].name().as_str()) {
            return Err(bad(format!(
                "column {:?} would be a key but is not a valid key name (letters, digits, '_'); rename it",
                fields[c].name()
            )));
        }
    }
    // Pass 1: key columns, trial and time only.
    let mut proj: Vec<usize> = key_cols.clone();
    proj.push(time_col);
    if let Some(t) = trial_col {
        proj.push(t);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), proj.iter().copied());
    let reader = builder.with_projection(mask).build().map_err(StoreError::parquet(path))?;
    // group key text -> (keys, rows, (trial, time) per row)
    let mut groups: BTreeMap<String, TableGroup> = BTreeMap::new();
    let mut row0 = 0usize;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(StoreError::arrow(path))?;
        let bs = batch.schema();
        let col = |name: &str| bs.index_of(name).ok().map(|i| batch.column(i).clone());
        let as_i64 = |name: &str| -> Result<Option<arrow_array::Int64Array>, StoreError> {
            match col(name) {
                None => Ok(None),
                Some(c) => {
                    if c.null_count() > 0 {
                        return Err(bad(format!("column {name:?} holds nulls")));
                    }
                    Ok(Some(to_i64(c.as_ref()).map_err(|e| bad(format!("column {name:?}: {e}")))?))
                }
            }
        };
        let time = as_i64("time")?.ok_or_else(|| bad("column time vanished".into()))?;
        let trial = as_i64("trial")?;
        let key_arrays: Vec<(String, KeyColumn)> = key_cols
            .iter()
            .map(|&c| {
                let name = fields[c].name().clone();
                let a = col(&name).ok_or_else(|| bad(format!("column {name} vanished")))?;
                let k = KeyColumn::new(&a).map_err(|d| bad(format!("column {name:?}: {d}")))?;
                Ok((name, k))
            })
            .collect::<Result<_, StoreError>>()?;
        for r in 0..batch.num_rows() {
            let mut kv = Vec::with_capacity(key_arrays.len());
            let mut text = String::new();
            for (name, a) in &key_arrays {
                if let Some(v) = a.value(r) {
                    text.push_str(name);
                    text.push('\u{1f}');
                    text.push_str(&v.to_text());
                    text.push('\u{1e}');
                    kv.push((name.clone(), v));
                }
            }
            let e = groups.entry(text).or_insert_with(|| (kv, Vec::new(), Vec::new()));
            e.1.push(row0 + r);
            e.2.push((trial.as_ref().map(|t| t.value(r)).unwrap_or(0), time.value(r)));
        }
        row0 += batch.num_rows();
    }
    let width = match &units_kind {
        UnitColumns::Columns(c) => Some(c.len()),
        UnitColumns::List(c) => match fields[*c].data_type() {
            DataType::FixedSizeList(_, w) => Some(*w as usize),
            _ => None,
        },
    };
    let mut candidates = Vec::new();
    for (_, (kv, rows, tt)) in groups {
        let location = if kv.is_empty() {
            "table".to_string()
        } else {
            kv.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
        };
        let here =
            |detail: String| StoreError::BadInput { path: path.to_path_buf(), location: location.clone(), detail };
        let mut trials: Vec<i64> = tt.iter().map(|p| p.0).collect();
        trials.sort_unstable();
        trials.dedup();
        let mut times: Vec<i64> = tt.iter().map(|p| p.1).collect();
        times.sort_unstable();
        times.dedup();
        let (nt, ns) = (trials.len(), times.len());
        let mut seen = vec![false; nt * ns];
        let mut slots = Vec::with_capacity(rows.len());
        let mut per_trial = vec![0usize; nt];
        for &(t, s) in &tt {
            let (ti, si) = (trials.binary_search(&t).unwrap_or(0), times.binary_search(&s).unwrap_or(0));
            let slot = ti * ns + si;
            if seen[slot] {
                return Err(here(format!("trial {t}, time {s} appears twice; each (trial, time) must be one row")));
            }
            seen[slot] = true;
            per_trial[ti] += 1;
            slots.push(slot);
        }
        if rows.len() != nt * ns {
            let (short, count) =
                per_trial.iter().enumerate().min_by_key(|(_, c)| **c).map(|(i, c)| (trials[i], *c)).unwrap_or((0, 0));
            return Err(here(format!(
                "ragged trials: trial {short} has {count} time steps but the table has {ns} distinct time steps; \
                 every trial needs a row for every time step"
            )));
        }
        let units = match width {
            Some(w) => w,
            None => {
                // Variable-length lists: take the length of the first row's list (checked per row when read).
                list_width(path, &units_kind, rows[0])?
            }
        };
        if units == 0 {
            return Err(here("rows hold no unit values".into()));
        }
        let dtype = match &units_kind {
            UnitColumns::Columns(c) => fields[c[0]].data_type().to_string(),
            UnitColumns::List(c) => match fields[*c].data_type() {
                DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => f.data_type().to_string(),
                other => other.to_string(),
            },
        };
        let dtype = match dtype.as_str() {
            "Float16" => "float16",
            "Float32" => "float32",
            _ => "float64",
        };
        let keys = merge_keys(path, &location, std::slice::from_ref(&kv))?;
        candidates.push(Candidate {
            file: path.to_path_buf(),
            location,
            keys,
            shape: [nt, ns, units],
            dtype: dtype.to_string(),
            source: Box::new(TableSource {
                path: path.to_path_buf(),
                rows,
                slots,
                unit_columns: units_kind.clone(),
                shape: [nt, ns, units],
            }),
        });
    }
    Ok(Plan { candidates, skipped: vec![] })
}

fn list_width(path: &Path, kind: &UnitColumns, row: usize) -> Result<usize, StoreError> {
    let UnitColumns::List(c) = kind else { return Ok(0) };
    let file = File::open(path).map_err(StoreError::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(StoreError::parquet(path))?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [*c]);
    let sel = RowSelection::from(vec![RowSelector::skip(row), RowSelector::select(1)]);
    let mut reader =
        builder.with_projection(mask).with_row_selection(sel).build().map_err(StoreError::parquet(path))?;
    let batch = reader.next().transpose().map_err(StoreError::arrow(path))?.ok_or_else(|| StoreError::Parquet {
        path: path.to_path_buf(),
        detail: "table shorter than expected".into(),
    })?;
    let col = batch.column(0);
    Ok(match col.data_type() {
        DataType::List(_) => col.as_list::<i32>().value_length(0) as usize,
        DataType::LargeList(_) => col.as_list::<i64>().value_length(0) as usize,
        _ => 0,
    })
}

/// A key column of one batch, converted once.
enum KeyColumn {
    Str(arrow_array::StringArray),
    Int(arrow_array::Int64Array),
    Float(arrow_array::Float64Array),
}

impl KeyColumn {
    fn new(a: &arrow_array::ArrayRef) -> Result<KeyColumn, String> {
        let dt = a.data_type();
        Ok(match dt {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                KeyColumn::Str(to_utf8(a.as_ref())?)
            }
            DataType::Boolean => KeyColumn::Int(to_i64(a.as_ref())?),
            dt if dt.is_integer() => KeyColumn::Int(to_i64(a.as_ref())?),
            dt if is_float(dt) => KeyColumn::Float(to_f64(a.as_ref())?),
            other => return Err(format!("type {other} cannot be a key (strings, integers, floats, booleans)")),
        })
    }

    fn value(&self, r: usize) -> Option<KeyValue> {
        match self {
            KeyColumn::Str(a) => (!a.is_null(r)).then(|| KeyValue::Str(a.value(r).to_string())),
            KeyColumn::Int(a) => (!a.is_null(r)).then(|| KeyValue::Int(a.value(r))),
            KeyColumn::Float(a) => (!a.is_null(r)).then(|| KeyValue::Float(a.value(r))),
        }
    }
}
