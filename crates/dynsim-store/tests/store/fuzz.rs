//! Property tests of the ingest readers (HDF5, Parquet, npy, npz) on arbitrary bytes and on
//! damaged copies of real files: they return errors, never panic.

use std::path::PathBuf;

use proptest::prelude::*;

use crate::common::{data_dir, hdf5_dir};

fn real_files() -> Vec<Vec<u8>> {
    let files: Vec<PathBuf> = vec![
        hdf5_dir().join("a_default.h5"),
        hdf5_dir().join("b_gzip_shuffle.h5"),
        hdf5_dir().join("e_latest.h5"),
        hdf5_dir().join("f2_lzf.h5"),
        data_dir().join("ingest/long_table.parquet"),
        data_dir().join("ingest/arrays.npz"),
        data_dir().join("examples/lorenz_x_trial0.npy"),
    ];
    files.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).collect()
}

fn no_panic(bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Errors are the expected outcome; reaching here without a panic is the property.
    let _ = dynsim_store::fuzz_readers(bytes, dir.path());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        no_panic(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_magic_never_panic(
        magic in 0usize..4,
        tail in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let heads: [&[u8]; 4] = [b"\x89HDF\r\n\x1a\n", b"PAR1", b"\x93NUMPY\x01\x00", b"PK\x03\x04"];
        let mut bytes = heads[magic].to_vec();
        bytes.extend(tail);
        no_panic(&bytes);
    }

    #[test]
    fn damaged_real_files_never_panic(
        which in 0usize..7,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let files = real_files();
        let mut bytes = files[which].clone();
        for (i, b) in flips {
            let k = i.index(bytes.len());
            bytes[k] ^= b | 1;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len()));
        }
        no_panic(&bytes);
    }
}
