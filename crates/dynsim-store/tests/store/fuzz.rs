//! Property tests of the ingest readers (HDF5, Parquet, npy, npz) on arbitrary bytes and on
//! damaged copies of real files: they return errors, never panic — not even a panic the
//! readers catch and turn into an error (`dynsim_store::caught_panics` counts those, and any
//! counts as a failure). 1,000 cases per property; failing inputs are kept in
//! `fuzz.proptest-regressions` beside this file and replayed first on every run.
//!
//! The cases come from a fixed seed (`FUZZ_SEED`), so a CI run is reproducible; to explore
//! new cases locally set `PROPTEST_RNG_SEED=<n>` (read by `config`). Known upstream
//! finding: with a random seed this test found panics in parquet 60.1.0 (first
//! `column/page.rs:365`, a DATA_PAGE header without its `data_page_header`); a scan of every
//! single-bit flip of `long_table.parquet` then found 127 panicking copies at 8 places (see
//! dynsim-store's `guard` module). Ingest, recording, catalogue and table reads go through it, so
//! users get an error naming the file (`damage.rs` and the CLI tests check this), but the
//! reader itself panics; it stays a known failure of random-seed runs until parquet
//! validates its pages.

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};

use crate::common::{data_dir, hdf5_dir};

/// The seed of the fuzz cases (see the module docs).
const FUZZ_SEED: u64 = 0x6479_6e73_696d;

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

/// Runs every reader on `bytes`; fails if any panicked, caught or not (an uncaught panic
/// fails the case by itself). Returns each reader's outcome (h5, parquet, npy, npz).
fn decode(bytes: &[u8]) -> Result<Vec<bool>, TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = dynsim_store::caught_panics();
    let out = dynsim_store::fuzz_readers(bytes, dir.path());
    let caught = dynsim_store::caught_panics() - before;
    prop_assert_eq!(caught, 0, "a decoder panicked on {} bytes (caught and turned into an error)", bytes.len());
    prop_assert_eq!(out.len(), 4, "every reader ran");
    Ok(out.iter().map(Result::is_ok).collect())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        rng_seed: std::env::var("PROPTEST_RNG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(RngSeed::Fixed(FUZZ_SEED), RngSeed::Fixed),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Bytes that start with no format's magic number are refused by every reader.
    #[test]
    fn arbitrary_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut bytes = bytes;
        if let Some(b) = bytes.first_mut() {
            if [0x89, b'P', 0x93].contains(b) {
                *b = 0;
            }
        }
        let ok = decode(&bytes)?;
        prop_assert_eq!(ok, vec![false; 4], "random bytes were accepted");
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_magic_never_panic(
        magic in 0usize..4,
        tail in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let heads: [&[u8]; 4] = [b"\x89HDF\r\n\x1a\n", b"PAR1", b"\x93NUMPY\x01\x00", b"PK\x03\x04"];
        let mut bytes = heads[magic].to_vec();
        bytes.extend(tail);
        decode(&bytes)?;
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
        decode(&bytes)?;
    }
}
