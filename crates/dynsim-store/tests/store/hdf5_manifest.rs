//! Every dataset and attribute of the h5py fixtures against `manifest.json` (written by
//! h5py 3.16 when the files were made): groups, dtypes, shapes, chunks, two checksums of
//! the values and the first / last value; attributes by kind and value. Then the damaged
//! files: each gives a clean error, never a panic.

use dynsim_store::h5::{AttrValue, H5File};
use serde_json::Value;

use crate::common::{checksum, hdf5_dir, DAMAGED_HDF5};

/// The raw little-endian bytes of values of a numpy dtype (values are exact in f64).
fn raw_le(values: &[f64], dtype: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for &v in values {
        match &dtype[1..] {
            "f2" => out.extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
            "f4" => out.extend_from_slice(&(v as f32).to_le_bytes()),
            "f8" => out.extend_from_slice(&v.to_le_bytes()),
            "i8" => out.extend_from_slice(&(v as i64).to_le_bytes()),
            "i4" => out.extend_from_slice(&(v as i32).to_le_bytes()),
            "u1" => out.push(v as u8),
            other => panic!("dtype {other} not covered by this test"),
        }
    }
    out
}

fn manifest() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(hdf5_dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest parses")
}

#[test]
fn every_dataset_matches_the_manifest() {
    let mut checked = 0;
    for (name, entry) in manifest() {
        let path = hdf5_dir().join(&name);
        if !path.exists() {
            // g_large.h5 (200 MB) is not shipped; the ingest benchmark makes its own.
            assert_eq!(name, "g_large.h5", "fixture {name} missing from data/hdf5");
            continue;
        }
        let f = H5File::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (groups, datasets) = f.walk().unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut want_groups: Vec<String> =
            entry["groups"].as_array().expect("groups").iter().map(|g| g.as_str().expect("str").to_string()).collect();
        want_groups.sort();
        let mut got_groups = groups.clone();
        got_groups.sort();
        assert_eq!(got_groups, want_groups, "{name}: groups");
        let want = entry["datasets"].as_array().expect("datasets");
        assert_eq!(datasets.len(), want.len(), "{name}: dataset count");
        for d in want {
            let dpath = d["path"].as_str().expect("path");
            let info = datasets.iter().find(|x| x.path == dpath).unwrap_or_else(|| panic!("{name}: {dpath} not found"));
            let dtype = d["dtype"].as_str().expect("dtype");
            assert_eq!(info.dtype.numpy(), dtype, "{name}{dpath}: dtype");
            let shape: Option<Vec<usize>> =
                d["shape"].as_array().map(|s| s.iter().map(|v| v.as_u64().expect("dim") as usize).collect());
            assert_eq!(info.shape, shape, "{name}{dpath}: shape");
            let chunks: Option<Vec<usize>> =
                d["chunks"].as_array().map(|s| s.iter().map(|v| v.as_u64().expect("dim") as usize).collect());
            assert_eq!(info.chunks, chunks, "{name}{dpath}: chunks");
            if shape.is_none() {
                continue; // null dataspace: no values
            }
            let values = f.read_f64(dpath).unwrap_or_else(|e| panic!("{name}{dpath}: {e}"));
            let n: usize = shape.as_ref().map(|s| s.iter().product()).unwrap_or(0);
            assert_eq!(values.len(), n, "{name}{dpath}: element count");
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            assert_eq!(checksum(&bytes), d["f64"].as_str().expect("f64"), "{name}{dpath}: f64 checksum");
            assert_eq!(
                checksum(&raw_le(&values, dtype)),
                d["raw"].as_str().expect("raw"),
                "{name}{dpath}: raw checksum"
            );
            if let (Some(first), Some(last)) = (d["first"].as_f64(), d["last"].as_f64()) {
                // serde_json's default float parsing may be 1 ulp off; the checksums are exact.
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 * b.abs().max(1e-300);
                assert!(close(values[0], first), "{name}{dpath}: first {} vs {first}", values[0]);
                assert!(close(values[n - 1], last), "{name}{dpath}: last {} vs {last}", values[n - 1]);
            }
            checked += 1;
        }
        for a in entry["attrs"].as_array().expect("attrs") {
            let (object, aname, kind) = (
                a["object"].as_str().expect("object"),
                a["name"].as_str().expect("name"),
                a["kind"].as_str().expect("kind"),
            );
            let attrs = f.attributes(object).unwrap_or_else(|e| panic!("{name}{object}: {e}"));
            let got =
                &attrs.iter().find(|(n, _)| n == aname).unwrap_or_else(|| panic!("{name}{object}@{aname} missing")).1;
            let what = format!("{name}{object}@{aname}");
            match kind {
                "num_scalar" => {
                    let v = a["value"].as_f64().expect("value");
                    match got {
                        AttrValue::Int(i) => assert_eq!(*i as f64, v, "{what}"),
                        AttrValue::Float(f) => assert_eq!(*f, v, "{what}"),
                        AttrValue::Float32(f) => {
                            assert_eq!(*f as f64, v, "{what}");
                            assert_eq!(a["dtype"], "<f4", "{what}: only float32 attributes are Float32");
                        }
                        other => panic!("{what}: got {other:?}"),
                    }
                    let int_dtype = a["dtype"].as_str().is_some_and(|d| d.contains('i') || d.contains('b'));
                    assert_eq!(matches!(got, AttrValue::Int(_)), int_dtype, "{what}: integer-ness");
                }
                "str" | "bytes" => assert_eq!(got, &AttrValue::Str(a["value"].as_str().expect("s").into()), "{what}"),
                "num_array" => {
                    let v: Vec<f64> =
                        a["value"].as_array().expect("arr").iter().map(|x| x.as_f64().expect("f")).collect();
                    let s: Vec<usize> =
                        a["shape"].as_array().expect("shape").iter().map(|x| x.as_u64().expect("u") as usize).collect();
                    assert_eq!(got, &AttrValue::NumArray(v, s), "{what}");
                }
                "str_array" => {
                    let v: Vec<String> = a["value"]
                        .as_array()
                        .expect("arr")
                        .iter()
                        .map(|x| x.as_str().expect("s").to_string())
                        .collect();
                    assert_eq!(got, &AttrValue::StrArray(v), "{what}");
                }
                other => panic!("{what}: manifest kind {other} not covered"),
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} datasets and attributes checked");
}

#[test]
fn damaged_files_give_clean_errors() {
    for name in DAMAGED_HDF5 {
        let path = hdf5_dir().join(name);
        let result = std::panic::catch_unwind(|| -> Result<(), dynsim_store::StoreError> {
            let f = H5File::open(&path)?;
            let (_, datasets) = f.walk()?;
            for d in datasets {
                if d.shape.is_some() {
                    f.read_f64(&d.path)?;
                }
            }
            Ok(())
        });
        let result = result.unwrap_or_else(|_| panic!("{name}: the reader panicked"));
        let err = result.expect_err(&format!("{name}: a damaged file read without error"));
        let msg = err.to_string();
        assert!(msg.contains(name), "{name}: the message names the file: {msg}");
    }
}
