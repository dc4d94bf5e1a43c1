//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0) of float32 or float64.
//!
//! Format: the magic `\x93NUMPY`, a major and minor version byte, the header length
//! (u16 LE for version 1, u32 LE for versions 2 and 3), then an ASCII Python dict literal
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces to a
//! multiple of 64 bytes, then the raw data. See numpy's `numpy.lib.format`.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD, IxDyn, ShapeBuilder};

use crate::error::StoreError;

const MAGIC: &[u8] = b"\x93NUMPY";

/// An array read from a `.npy` file, in its stored precision.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyArray {
    /// float32 data.
    F32(ArrayD<f32>),
    /// float64 data.
    F64(ArrayD<f64>),
}

impl NpyArray {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            NpyArray::F32(a) => a.shape(),
            NpyArray::F64(a) => a.shape(),
        }
    }

    /// The numpy dtype name (`float32` / `float64`).
    pub fn dtype(&self) -> &'static str {
        match self {
            NpyArray::F32(_) => "float32",
            NpyArray::F64(_) => "float64",
        }
    }

    /// The values as f64 (exact for float32).
    pub fn into_f64(self) -> ArrayD<f64> {
        match self {
            NpyArray::F32(a) => a.mapv(f64::from),
            NpyArray::F64(a) => a,
        }
    }
}

/// Read a `.npy` file of float32 or float64 values (either byte order, C or Fortran order).
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray, StoreError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
    parse_npy(&bytes, path)
}

/// Parse the bytes of a `.npy` file; `path` is only used in messages.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray, StoreError> {
    let err = |detail: String| StoreError::Npy { path: path.to_path_buf(), detail };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err(
            "not a NumPy .npy file (missing the \\x93NUMPY magic); save arrays with numpy.save(path, array)".into(),
        ));
    }
    let major = bytes[6];
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated .npy header".into()));
            }
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(err(format!("unsupported .npy format version {v}; numpy writes versions 1 to 3"))),
    };
    let data_start = start.checked_add(header_len).ok_or_else(|| err("corrupt .npy header length".into()))?;
    let header = bytes.get(start..data_start).ok_or_else(|| {
        err(format!("truncated: the header claims {header_len} bytes but the file has {}", bytes.len()))
    })?;
    let header = std::str::from_utf8(header).map_err(|_| err("the .npy header is not text".into()))?;
    let descr = dict_value(header, "descr").ok_or_else(|| err(format!("no 'descr' in the header {header:?}")))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| err(format!("no 'fortran_order' in the header {header:?}")))?
        .trim()
        .starts_with("True");
    let shape = parse_shape(header).ok_or_else(|| err(format!("cannot read the shape in the header {header:?}")))?;
    let count =
        shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| err("shape overflows".into()))?;
    let data = &bytes[data_start..];
    let (little, width) = match descr {
        "<f4" | "|f4" | "=f4" => (true, 4),
        "<f8" | "|f8" | "=f8" => (true, 8),
        ">f4" => (false, 4),
        ">f8" => (false, 8),
        other => {
            return Err(err(format!(
                "dtype {other:?} is not supported; convert with array.astype(numpy.float32) or float64 before saving"
            )))
        }
    };
    let need = count.checked_mul(width).ok_or_else(|| err("shape overflows".into()))?;
    if data.len() < need {
        return Err(err(format!(
            "truncated: shape {shape:?} of {descr} needs {need} data bytes but the file has {}; re-save the file",
            data.len()
        )));
    }
    let dim = IxDyn(&shape);
    let build_err = |e: ndarray::ShapeError| err(format!("shape {shape:?} does not fit the data: {e}"));
    Ok(if width == 4 {
        let v = decode(&data[..need], little, f32::from_le_bytes, f32::from_be_bytes);
        NpyArray::F32(shaped(v, dim, fortran).map_err(build_err)?)
    } else {
        let v = decode(&data[..need], little, f64::from_le_bytes, f64::from_be_bytes);
        NpyArray::F64(shaped(v, dim, fortran).map_err(build_err)?)
    })
}

/// An array of `dim` from values in C or Fortran order.
fn shaped<T>(v: Vec<T>, dim: IxDyn, fortran: bool) -> Result<ArrayD<T>, ndarray::ShapeError> {
    if fortran {
        ArrayD::from_shape_vec(dim.f(), v)
    } else {
        ArrayD::from_shape_vec(dim, v)
    }
}

/// Decode fixed-width values of either byte order.
fn decode<T, const W: usize>(data: &[u8], little: bool, le: fn([u8; W]) -> T, be: fn([u8; W]) -> T) -> Vec<T> {
    data.chunks_exact(W)
        .map(|c| {
            let mut b = [0u8; W];
            b.copy_from_slice(c);
            if little {
                le(b)
            } else {
                be(b)
            }
        })
        .collect()
}

/// The text after `'key':` up to the next top-level comma (or the closing brace).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}'");
    let pat2 = format!("\"{key}\"");
    let pos = header.find(&pat1).map(|p| p + pat1.len()).or_else(|| header.find(&pat2).map(|p| p + pat2.len()))?;
    let rest = header[pos..].trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, ch) in rest.char_indices() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    Some(rest)
}

fn parse_shape(header: &str) -> Option<Vec<usize>> {
    let v = dict_value(header, "shape")?.trim();
    let inner = v.strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.trim_end_matches('L').parse().ok()).collect()
}

/// Write a float64 array as a version-1.0 `.npy` file (C order, little-endian), atomically:
/// the data goes to a temporary file in the same folder that is renamed into place.
pub fn write_npy(path: impl AsRef<Path>, a: ArrayViewD<'_, f64>) -> Result<(), StoreError> {
    let path = path.as_ref();
    let shape = a.shape();
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let total = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 8 * a.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in a.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let io = |source| StoreError::Io { path: path.to_path_buf(), source };
    let tmp: PathBuf = {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        path.with_file_name(name)
    };
    std::fs::write(&tmp, &out).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("dynsim-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f64 + 0.5);
        let p = dir.join("a.npy");
        write_npy(&p, a.view().into_dyn()).unwrap();
        let back = read_npy(&p).unwrap();
        assert_eq!(back.dtype(), "float64");
        assert_eq!(back.into_f64(), a.clone().into_dyn());
        // truncated
        let bytes = std::fs::read(&p).unwrap();
        let e = parse_npy(&bytes[..bytes.len() - 3], Path::new("t.npy")).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        // garbage
        let e = parse_npy(b"hello world, not numpy", Path::new("g.npy")).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        // header length past the end
        let mut bad = bytes[..10].to_vec();
        bad[8] = 0xff;
        bad[9] = 0xff;
        assert!(parse_npy(&bad, Path::new("h.npy")).unwrap_err().to_string().contains("truncated"));
        // missing file names the path
        let e = read_npy(dir.join("missing.npy")).unwrap_err();
        assert!(e.to_string().contains("missing.npy"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn fortran_order_and_big_endian_f32() {
        // shape (2, 3), Fortran order, big-endian float32: column-major values 0..6
        let mut header = "{'descr': '>f4', 'fortran_order': True, 'shape': (2, 3), }".to_string();
        let total = 10 + header.len() + 1;
        header.push_str(&" ".repeat((64 - total % 64) % 64));
        header.push('\n');
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in 0..6 {
            bytes.extend_from_slice(&(v as f32).to_be_bytes());
        }
        let a = parse_npy(&bytes, Path::new("f.npy")).unwrap().into_f64();
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(a[[1, 0]], 1.0); // column-major: (1,0) is the second value
        assert_eq!(a[[0, 1]], 2.0);
    }

    #[test]
    fn unsupported_dtype_suggests_conversion() {
        let mut header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }".to_string();
        header.push('\n');
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        let e = parse_npy(&bytes, Path::new("i.npy")).unwrap_err();
        assert!(e.to_string().contains("astype"), "{e}");
    }
}
