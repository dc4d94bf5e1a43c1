//! Reading HDF5 files written by h5py, with the pure-Rust `hdf5-reader` crate (no libhdf5).
//!
//! What this adds to `hdf5-reader`:
//! - h5py's LZF filter (id 32000) is registered ([`lzf_decompress`]);
//! - float16 is decoded through the `half` crate;
//! - the file is read with positional reads into buffers, not memory-mapped, so a file
//!   truncated while it is open gives an error instead of a `SIGBUS`;
//! - every failure (and any panic inside the reader on a damaged file) becomes a
//!   [`StoreError::Hdf5`] naming the file and the dataset;
//! - attributes become key values ([`attribute_value`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdf5_reader::{ByteOrder, Datatype, FilterRegistry, H5Type, Hdf5File, OpenOptions, SliceInfo, SliceInfoElem};

use crate::error::StoreError;
use crate::keys::KeyValue;

/// h5py's LZF filter id.
pub const FILTER_LZF: u16 = 32000;
/// Deepest group nesting followed (guards against link cycles).
const MAX_DEPTH: usize = 64;

/// The element type of a dataset, as numpy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// IEEE float of this many bytes (2, 4, 8).
    Float(u8, ByteOrder),
    /// Integer of this many bytes.
    Int(u8, bool, ByteOrder),
    /// Anything else (strings, compounds, references, ...).
    Other,
}

impl ElementType {
    fn of(dt: &Datatype) -> ElementType {
        match dt {
            Datatype::FloatingPoint { size, byte_order } => ElementType::Float(*size, *byte_order),
            Datatype::FixedPoint { size, signed, byte_order } => ElementType::Int(*size, *signed, *byte_order),
            Datatype::Enum { base, .. } => match ElementType::of(base) {
                e @ ElementType::Int(..) => e,
                _ => ElementType::Other,
            },
            _ => ElementType::Other,
        }
    }

    /// numpy's dtype string (`<f4`, `>f4`, `<f2`, `<i8`, `|u1`, ...); `other` otherwise.
    pub fn numpy(&self) -> String {
        let order = |size: u8, bo: ByteOrder| match (size, bo) {
            (1, _) => '|',
            (_, ByteOrder::BigEndian) => '>',
            _ => '<',
        };
        match *self {
            ElementType::Float(s, bo) => format!("{}f{s}", order(s, bo)),
            ElementType::Int(s, signed, bo) => format!("{}{}{s}", order(s, bo), if signed { 'i' } else { 'u' }),
            ElementType::Other => "other".into(),
        }
    }

    /// The float dtype name (`float16`, `float32`, `float64`), `None` for non-floats.
    pub fn float_name(&self) -> Option<&'static str> {
        match self {
            ElementType::Float(2, _) => Some("float16"),
            ElementType::Float(4, _) => Some("float32"),
            ElementType::Float(8, _) => Some("float64"),
            _ => None,
        }
    }
}

/// A dataset found in a file.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    /// Absolute path (`/model/checkpoint_0/activations`).
    pub path: String,
    /// Shape; `None` for a null dataspace (h5py's `h5py.Empty`).
    pub shape: Option<Vec<usize>>,
    /// Element type.
    pub dtype: ElementType,
    /// Chunk shape, if chunked.
    pub chunks: Option<Vec<usize>>,
}

/// An attribute of a group or dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A number (integers and booleans as exact integers).
    Int(i64),
    /// A float64 (or float16) value.
    Float(f64),
    /// A float32 value (kept apart so that keys show `0.0003`, not `0.0003000000142492354`).
    Float32(f32),
    /// A string (variable- or fixed-length, UTF-8 or ASCII).
    Str(String),
    /// An array of numbers, flattened in C order, with its shape.
    NumArray(Vec<f64>, Vec<usize>),
    /// An array of strings.
    StrArray(Vec<String>),
}

/// Convert an attribute to a key value: numbers and strings as they are, arrays as JSON.
pub fn attribute_value(v: &AttrValue) -> KeyValue {
    match v {
        AttrValue::Int(i) => KeyValue::Int(*i),
        AttrValue::Float(f) => KeyValue::Float(*f),
        // The shortest decimal that reads back as this f32: what the user wrote in Python.
        AttrValue::Float32(f) => KeyValue::Float(f.to_string().parse().unwrap_or(*f as f64)),
        AttrValue::Str(s) => KeyValue::Str(s.clone()),
        AttrValue::NumArray(vals, _) => KeyValue::Str(serde_json::to_string(vals).unwrap_or_default()),
        AttrValue::StrArray(vals) => KeyValue::Str(serde_json::to_string(vals).unwrap_or_default()),
    }
}

/// An open HDF5 file.
pub struct H5File {
    file: Hdf5File,
    path: PathBuf,
}

/// float16 as read from HDF5 (bits converted with `half`).
#[derive(Clone, Copy)]
struct F16(half::f16);

impl H5Type for F16 {
    fn hdf5_type() -> Datatype {
        Datatype::FloatingPoint { size: 2, byte_order: ByteOrder::LittleEndian }
    }

    fn from_bytes(bytes: &[u8], dtype: &Datatype) -> hdf5_reader::error::Result<Self> {
        match dtype {
            Datatype::FloatingPoint { size: 2, byte_order } if bytes.len() >= 2 => {
                let b = [bytes[0], bytes[1]];
                let bits = match byte_order {
                    ByteOrder::BigEndian => u16::from_be_bytes(b),
                    _ => u16::from_le_bytes(b),
                };
                Ok(F16(half::f16::from_bits(bits)))
            }
            other => Err(hdf5_reader::error::Error::TypeMismatch {
                expected: "float16".into(),
                actual: format!("{other:?}"),
            }),
        }
    }

    fn element_size(_dtype: &Datatype) -> usize {
        2
    }
}

/// Decompress one LZF block (liblzf format, as written by h5py's filter 32000) into at most
/// `max_out` bytes. Every back reference and length is bounds-checked.
pub fn lzf_decompress(input: &[u8], max_out: usize) -> Result<Vec<u8>, String> {
    let mut out: Vec<u8> = Vec::with_capacity(max_out.min(input.len().saturating_mul(4)).max(16));
    let mut i = 0usize;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let len = ctrl + 1;
            let lit = input.get(i..i + len).ok_or("LZF literal run past the end of the input")?;
            if out.len() + len > max_out {
                return Err("LZF output larger than the chunk".into());
            }
            out.extend_from_slice(lit);
            i += len;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i).ok_or("LZF length byte past the end of the input")? as usize;
                i += 1;
            }
            let low = *input.get(i).ok_or("LZF offset byte past the end of the input")? as usize;
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            if back > out.len() {
                return Err("LZF back reference before the start of the output".into());
            }
            len += 2;
            if out.len() + len > max_out {
                return Err("LZF output larger than the chunk".into());
            }
            let start = out.len() - back;
            for k in 0..len {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    Ok(out)
}

fn registry() -> FilterRegistry {
    let mut r = FilterRegistry::new();
    r.register(
        FILTER_LZF,
        Box::new(|desc, data, _elem| {
            // h5py stores the uncompressed chunk size in client data slot 2.
            let max = desc.client_data.get(2).map(|&n| n as usize).filter(|&n| n > 0).unwrap_or(64 << 20);
            lzf_decompress(data, max).map_err(hdf5_reader::error::Error::InvalidData)
        }),
    );
    r
}

/// Run reader code, turning both errors and panics into a `StoreError::Hdf5`.
fn guarded<T>(
    path: &Path,
    dataset: Option<&str>,
    f: impl FnOnce() -> hdf5_reader::error::Result<T>,
) -> Result<T, StoreError> {
    let err =
        |detail: String| StoreError::Hdf5 { path: path.to_path_buf(), dataset: dataset.map(str::to_string), detail };
    match crate::guard::catch_decoder_panic(f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(err(format!("{e}; the file may be truncated or damaged, re-export it with h5py"))),
        Err(why) => Err(err(format!(
            "the HDF5 reader failed on damaged data ({why}); the file is damaged, re-export it with h5py"
        ))),
    }
}

impl H5File {
    /// Open an HDF5 file.
    pub fn open(path: &Path) -> Result<H5File, StoreError> {
        let len = std::fs::metadata(path).map_err(StoreError::io(path))?.len();
        if len == 0 {
            return Err(StoreError::Hdf5 {
                path: path.to_path_buf(),
                dataset: None,
                detail: "the file is empty (0 bytes); it was not written completely".into(),
            });
        }
        let storage = hdf5_reader::FileStorage::open(path).map_err(|e| StoreError::Hdf5 {
            path: path.to_path_buf(),
            dataset: None,
            detail: e.to_string(),
        })?;
        // Ingest reads each chunk once, in whole-trial blocks: a small chunk cache keeps
        // peak memory near one block instead of the reader's 64 MiB default.
        let options = OpenOptions::default().with_filter_registry(registry()).with_chunk_cache_bytes(8 << 20);
        let file = guarded(path, None, || Hdf5File::from_storage_with_options(Arc::new(storage), options))?;
        Ok(H5File { file, path: path.to_path_buf() })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every group path (starting with `/`) and every dataset, depth first, children in
    /// name order.
    pub fn walk(&self) -> Result<(Vec<String>, Vec<DatasetInfo>), StoreError> {
        let mut groups = Vec::new();
        let mut datasets = Vec::new();
        let mut visited = std::collections::HashSet::new();
        self.walk_group("/", 0, &mut groups, &mut datasets, &mut visited)?;
        Ok((groups, datasets))
    }

    fn walk_group(
        &self,
        path: &str,
        depth: usize,
        groups: &mut Vec<String>,
        datasets: &mut Vec<DatasetInfo>,
        visited: &mut std::collections::HashSet<u64>,
    ) -> Result<(), StoreError> {
        let group = guarded(&self.path, Some(path), || self.file.group(path))?;
        if depth > MAX_DEPTH || !visited.insert(group.address()) {
            return Ok(());
        }
        groups.push(path.to_string());
        let (mut gnames, mut dnames) = guarded(&self.path, Some(path), || group.member_names())?;
        gnames.sort();
        dnames.sort();
        for d in dnames {
            let full = join(path, &d);
            let ds = guarded(&self.path, Some(&full), || group.dataset(&d))?;
            let n = guarded(&self.path, Some(&full), || ds.num_elements())?;
            let shape: Vec<usize> = ds.shape().iter().map(|&s| s as usize).collect();
            let shape = if shape.is_empty() && n == 0 { None } else { Some(shape) };
            datasets.push(DatasetInfo {
                path: full,
                shape,
                dtype: ElementType::of(ds.dtype()),
                chunks: ds.chunks().map(|c| c.iter().map(|&v| v as usize).collect()),
            });
        }
        for g in gnames {
            self.walk_group(&join(path, &g), depth + 1, groups, datasets, visited)?;
        }
        Ok(())
    }

    /// The attributes of the group or dataset at `path`, in name order. Attributes of
    /// unsupported types (compound, references, ...) are left out.
    pub fn attributes(&self, path: &str) -> Result<Vec<(String, AttrValue)>, StoreError> {
        let attrs = guarded(&self.path, Some(path), || match self.file.dataset(path) {
            Ok(ds) => Ok(ds.attributes()),
            Err(_) => self.file.group(path).and_then(|g| g.attributes()),
        })?;
        let mut out: Vec<(String, AttrValue)> = attrs
            .iter()
            .filter_map(|a| {
                // An attribute the reader cannot convert (it panicked) is left out, as an
                // unsupported type is; the panic is counted (see `crate::guard`).
                let v = crate::guard::catch_decoder_panic(|| convert_attribute(a)).ok()??;
                Some((a.name.clone(), v))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Read trials `start..end` of a rank-3 dataset (or the whole of a rank-2 dataset,
    /// as one trial, when `start..end` is `0..1`) as f32 in C order. float64 values are
    /// rounded to f32; float16 values are exact.
    pub fn read_f32_trials(&self, path: &str, start: usize, end: usize) -> Result<Vec<f32>, StoreError> {
        let ds = guarded(&self.path, Some(path), || self.file.dataset(path))?;
        let sel = if ds.ndim() == 3 {
            let mut s = SliceInfo::all(3);
            s.selections[0] = SliceInfoElem::Slice { start: start as u64, end: end as u64, step: 1 };
            s
        } else {
            SliceInfo::all(ds.ndim())
        };
        match ElementType::of(ds.dtype()) {
            ElementType::Float(4, _) => {
                let a = guarded(&self.path, Some(path), || ds.read_slice::<f32>(&sel))?;
                Ok(a.into_raw_vec_and_offset().0)
            }
            ElementType::Float(8, _) => {
                let a = guarded(&self.path, Some(path), || ds.read_slice::<f64>(&sel))?;
                Ok(a.iter().map(|&v| v as f32).collect())
            }
            ElementType::Float(2, _) => {
                let a = guarded(&self.path, Some(path), || ds.read_slice::<F16>(&sel))?;
                Ok(a.iter().map(|v| v.0.to_f32()).collect())
            }
            other => Err(StoreError::BadInput {
                path: self.path.clone(),
                location: path.to_string(),
                detail: format!(
                    "dtype {} is not a float; dynsim stores activations as float32 (cast with \
                     dataset.astype('f4') in h5py, or leave the dataset out of --layout)",
                    other.numpy()
                ),
            }),
        }
    }

    /// Read a whole numeric dataset as f64, in C order (any float or integer type).
    pub fn read_f64(&self, path: &str) -> Result<Vec<f64>, StoreError> {
        let ds = guarded(&self.path, Some(path), || self.file.dataset(path))?;
        let bad = |t: ElementType| StoreError::BadInput {
            path: self.path.clone(),
            location: path.to_string(),
            detail: format!("dtype {} is not numeric", t.numpy()),
        };
        let g = |f: &dyn Fn() -> hdf5_reader::error::Result<Vec<f64>>| guarded(&self.path, Some(path), f);
        macro_rules! ints {
            ($t:ty) => {
                g(&|| ds.read_array::<$t>().map(|a| a.iter().map(|&v| v as f64).collect()))
            };
        }
        match ElementType::of(ds.dtype()) {
            ElementType::Float(2, _) => g(&|| ds.read_array::<F16>().map(|a| a.iter().map(|v| v.0.to_f64()).collect())),
            ElementType::Float(4, _) => g(&|| ds.read_array::<f32>().map(|a| a.iter().map(|&v| v as f64).collect())),
            ElementType::Float(8, _) => g(&|| ds.read_array::<f64>().map(|a| a.iter().copied().collect())),
            ElementType::Int(1, true, _) => ints!(i8),
            ElementType::Int(1, false, _) => ints!(u8),
            ElementType::Int(2, true, _) => ints!(i16),
            ElementType::Int(2, false, _) => ints!(u16),
            ElementType::Int(4, true, _) => ints!(i32),
            ElementType::Int(4, false, _) => ints!(u32),
            ElementType::Int(8, true, _) => ints!(i64),
            ElementType::Int(8, false, _) => ints!(u64),
            t => Err(bad(t)),
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn convert_attribute(a: &hdf5_reader::Attribute) -> Option<AttrValue> {
    let n: usize = a.shape.iter().map(|&d| d as usize).product();
    let scalar = a.shape.is_empty();
    match ElementType::of(&a.datatype) {
        ElementType::Float(..) | ElementType::Int(..) => {
            let vals = numeric_values(a)?;
            if scalar {
                let v = *vals.first()?;
                return Some(match ElementType::of(&a.datatype) {
                    ElementType::Int(..) => AttrValue::Int(v as i64),
                    ElementType::Float(4, _) => AttrValue::Float32(v as f32),
                    _ => AttrValue::Float(v),
                });
            }
            (vals.len() == n).then(|| AttrValue::NumArray(vals, a.shape.iter().map(|&d| d as usize).collect()))
        }
        ElementType::Other => match &a.datatype {
            Datatype::String { .. } | Datatype::VarLen { .. } => {
                if scalar {
                    a.read_string().ok().map(|s| AttrValue::Str(s.trim_end_matches('\0').to_string()))
                } else {
                    a.read_strings()
                        .ok()
                        .map(|v| AttrValue::StrArray(v.into_iter().map(|s| s.trim_end_matches('\0').into()).collect()))
                }
            }
            _ => None,
        },
    }
}

fn numeric_values(a: &hdf5_reader::Attribute) -> Option<Vec<f64>> {
    let dt = match &a.datatype {
        Datatype::Enum { base, .. } => base.as_ref().clone(),
        d => d.clone(),
    };
    let size = match &dt {
        Datatype::FloatingPoint { size, .. } | Datatype::FixedPoint { size, .. } => *size as usize,
        _ => return None,
    };
    if size == 0 || !a.raw_data.len().is_multiple_of(size) {
        return None;
    }
    a.raw_data.chunks_exact(size).map(|b| decode_number(b, &dt)).collect()
}

fn decode_number(b: &[u8], dt: &Datatype) -> Option<f64> {
    let mut bytes = b.to_vec();
    let bo = match dt {
        Datatype::FloatingPoint { byte_order, .. } | Datatype::FixedPoint { byte_order, .. } => *byte_order,
        _ => return None,
    };
    if bo == ByteOrder::BigEndian {
        bytes.reverse();
    }
    let mut w = [0u8; 8];
    w[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    Some(match dt {
        Datatype::FloatingPoint { size: 2, .. } => half::f16::from_le_bytes([w[0], w[1]]).to_f64(),
        Datatype::FloatingPoint { size: 4, .. } => f32::from_le_bytes([w[0], w[1], w[2], w[3]]) as f64,
        Datatype::FloatingPoint { size: 8, .. } => f64::from_le_bytes(w),
        Datatype::FixedPoint { size, signed, .. } => {
            let bits = (*size as u32) * 8;
            let u = u64::from_le_bytes(w);
            if *signed && bits < 64 && (u >> (bits - 1)) & 1 == 1 {
                (u as i64 - (1i64 << bits)) as f64
            } else if *signed {
                u as i64 as f64
            } else {
                u as f64
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lzf_literals_and_back_references() {
        // "abcabcabc": literal run of 3, then a back reference of length 6 at distance 3.
        let input = [2u8, b'a', b'b', b'c', (4 << 5), 2];
        assert_eq!(lzf_decompress(&input, 100).as_deref(), Ok(&b"abcabcabc"[..]));
        assert!(lzf_decompress(&[(1 << 5), 5], 100).is_err(), "reference before the start");
        assert!(lzf_decompress(&[5u8, b'a'], 100).is_err(), "literal past the end");
        assert!(lzf_decompress(&input, 4).is_err(), "output limit");
    }
}
