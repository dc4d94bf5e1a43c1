//! Every single-byte damage of a stored recording file and of `catalog.parquet`: a read
//! either fails with an error naming the file or returns exactly what was stored. Nothing
//! panics out of the Parquet decoder (it does panic inside on some damaged pages, see
//! `dynsim_store::caught_panics`; the store turns those into errors), and a damaged
//! recording is restored by deleting its file and ingesting its source again.

use std::path::Path;

use dynsim_store::{Catalog, IngestOptions, Store};
use ndarray::Array3;

/// A recording of 3 trials x 16 steps x 4 units with distinct values, ingested from `.npy`.
fn store_with_one_recording(dir: &Path) -> (Store, Array3<f32>, std::path::PathBuf) {
    let store = Store::init(dir.join("store")).expect("init");
    let x = Array3::from_shape_fn((3, 16, 4), |(t, s, u)| (t * 1000 + s * 10 + u) as f32 * 0.37 - 5.0);
    let src = dir.join("run.npy");
    dynsim_store::write_npy(&src, x.map(|&v| v as f64).view().into_dyn()).expect("npy");
    let rep = store.ingest(std::slice::from_ref(&src), &IngestOptions::default(), &mut |_| {}).expect("ingest");
    assert_eq!(rep.added.len(), 1);
    (store, x, src)
}

/// Each byte flipped in two ways (one bit, all bits): `read(bytes)` must be `Err` naming
/// `name` or `Ok` equal to `intact`. Returns (flips, detected, decoder panics caught).
fn every_flip<T: PartialEq + std::fmt::Debug, E: std::fmt::Display>(
    path: &Path,
    intact: &T,
    mut read: impl FnMut() -> Result<T, E>,
) -> (usize, usize, usize) {
    let name = path.file_name().expect("file name").to_string_lossy().into_owned();
    let good = std::fs::read(path).expect("read");
    let (mut flips, mut detected) = (0, 0);
    let panics_before = dynsim_store::caught_panics();
    for pos in 0..good.len() {
        for mask in [1u8 << (pos % 8), 0xff] {
            let mut bad = good.clone();
            bad[pos] ^= mask;
            std::fs::write(path, &bad).expect("write");
            flips += 1;
            match read() {
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains(&name), "byte {pos} ^ {mask:#x}: the error does not name {name}: {e}");
                    detected += 1;
                }
                Ok(v) => assert_eq!(&v, intact, "byte {pos} ^ {mask:#x} of {name} changed what was read, unnoticed"),
            }
        }
    }
    std::fs::write(path, &good).expect("restore");
    (flips, detected, dynsim_store::caught_panics() - panics_before)
}

#[test]
fn every_damaged_byte_of_a_recording_is_detected_or_harmless() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, x, _) = store_with_one_recording(tmp.path());
    let row = store.catalog().expect("catalogue").rows.remove(0);
    let file = store.root().join(&row.file);
    let (flips, detected, panics) = every_flip(&file, &x, || store.read_row(&row, true).map(|r| r.data));
    eprintln!(
        "recording file: {flips} damaged copies, {detected} detected, {panics} decoder panics turned into errors"
    );
    // The values are most of the file, and a changed value changes the content hash.
    assert!(detected * 2 > flips, "{detected} of {flips} detected");
    assert!(store.verify().expect("verify").problems.is_empty());
}

#[test]
fn every_damaged_byte_of_the_catalogue_is_detected_or_harmless() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, _, _) = store_with_one_recording(tmp.path());
    let intact = store.catalog().expect("catalogue");
    let path = store.root().join("catalog.parquet");
    let (flips, detected, panics) =
        every_flip(&path, &intact.rows, || Catalog::read_parquet(&path).map(|c: Catalog| c.rows));
    eprintln!("catalogue: {flips} damaged copies, {detected} detected, {panics} decoder panics turned into errors");
    assert!(detected * 2 > flips, "{detected} of {flips} detected");
}

#[test]
fn a_damaged_recording_is_restored_by_ingesting_its_source_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (store, x, src) = store_with_one_recording(tmp.path());
    let row = store.catalog().expect("catalogue").rows.remove(0);
    let file = store.root().join(&row.file);
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).expect("damage");
    let e = store.read_row(&row, true).expect_err("damage detected").to_string();
    assert!(e.contains("delete this file and ingest its source") && e.contains(&row.source), "{e}");
    // Ingesting again while the damaged file is there changes nothing (same content, same keys).
    let again = store.ingest(std::slice::from_ref(&src), &IngestOptions::default(), &mut |_| {}).expect("ingest");
    assert!(again.restored.is_empty() && again.added.is_empty());
    assert_eq!(store.verify().expect("verify").problems.len(), 1);
    // Deleting it and ingesting again restores it; the catalogue is unchanged.
    std::fs::remove_file(&file).expect("delete");
    let cat_before = std::fs::read(store.root().join("catalog.parquet")).expect("catalogue");
    let again = store.ingest(std::slice::from_ref(&src), &IngestOptions::default(), &mut |_| {}).expect("ingest");
    assert_eq!(again.restored, vec![row.id.clone()]);
    assert!(again.added.is_empty());
    assert_eq!(std::fs::read(store.root().join("catalog.parquet")).expect("catalogue"), cat_before);
    assert_eq!(store.read_row(&row, true).expect("restored").data, x);
    assert!(store.verify().expect("verify").problems.is_empty());
}
