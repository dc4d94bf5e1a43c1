//! Shared helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository's `data/` folder.
pub fn data_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()))
        .join("../../data")
}

/// The h5py-written fixtures (copied from the shared fixtures, with their manifest).
pub fn hdf5_dir() -> PathBuf {
    data_dir().join("hdf5")
}

/// The damaged h5py fixtures (truncated, flipped, garbage, empty): each must give a clean
/// error naming the file.
pub const DAMAGED_HDF5: [&str; 6] = [
    "i1_truncated_half.h5",
    "i2_truncated_1k.h5",
    "i3_truncated_tail64.h5",
    "i4_flip_chunkdata.h5",
    "i6_garbage.h5",
    "i7_empty_file.h5",
];

/// Snapshot of every file under `dir`: relative path -> contents.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    dynsim_store::fsutil::snapshot(dir).expect("snapshot")
}

/// Snapshot without the lock file (created by the first writer, empty, harmless).
pub fn snapshot_without_lock(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut s = snapshot(dir);
    s.remove(".lock");
    s
}

/// The manifest's checksum: bytes zero-padded to a multiple of 8, read as u64 LE words;
/// `s1 = sum(w)`, `s2 = sum((i + 1) w[i])`, both mod 2^64, as `s1:s2` in hex.
pub fn checksum(bytes: &[u8]) -> String {
    let (mut s1, mut s2) = (0u64, 0u64);
    for (i, c) in bytes.chunks(8).enumerate() {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        s1 = s1.wrapping_add(w);
        s2 = s2.wrapping_add(w.wrapping_mul(i as u64 + 1));
    }
    format!("{s1:016x}:{s2:016x}")
}
