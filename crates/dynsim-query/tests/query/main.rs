//! Tests of dynsim-query on real stores (generated recordings ingested through `.npy`
//! files, and the h5py study example).

mod cache;
mod compare;
mod frames;
mod plans;
mod summary;

use std::path::Path;

use dynsim_store::keys::parse_assignment;
use dynsim_store::{IngestOptions, Keys, Store};
use ndarray::Array3;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded noisy linear system `x_{t+1} = A x_t + 0.1 e_t` with a rotation of angle
/// `theta` in the first two units and decay `decay` in the others, observed through a fixed
/// seeded mixing of the units: `trials x time x units`.
pub fn recording(trials: usize, time: usize, units: usize, theta: f64, decay: f64, seed: u64) -> Array3<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = move || -> f64 {
        let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let mut x = Array3::zeros((trials, time, units));
    for k in 0..trials {
        let mut s: Vec<f64> = (0..units).map(|_| normal()).collect();
        for t in 0..time {
            for u in 0..units {
                x[[k, t, u]] = s[u];
            }
            let (c, sn) = (theta.cos(), theta.sin());
            let mut next = s.clone();
            next[0] = c * s[0] - sn * s[1];
            next[1] = sn * s[0] + c * s[1];
            for (u, v) in next.iter_mut().enumerate().skip(2) {
                *v = decay * s[u];
            }
            for v in next.iter_mut() {
                *v += 0.1 * normal();
            }
            s = next;
        }
    }
    x
}

/// Keys from `name=value` pairs, as `--key name=value` reads them (standard keys get their
/// types: `progress=0` is a float).
pub fn keys(pairs: &[(&str, &str)]) -> Keys {
    pairs.iter().map(|(k, v)| parse_assignment(&format!("{k}={v}")).expect("key")).collect()
}

/// Ingest one array with keys (through a temporary `.npy` file).
pub fn put(store: &Store, x: &Array3<f64>, k: Keys) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("x.npy");
    dynsim_store::write_npy(&f, x.view().into_dyn()).expect("npy");
    let opts = IngestOptions { keys: k, ..IngestOptions::default() };
    let rep = store.ingest(&[f], &opts, &mut |_| {}).expect("ingest");
    rep.added.first().map(|r| r.id.clone()).or_else(|| rep.already_present.first().cloned()).expect("one recording")
}

/// A store of 6 recordings: groups a and b, checkpoints 0, 1, 2 (progress 0, 0.5, 1),
/// 3 trials x 40 steps x 3 units; the rotation speed depends on the group and checkpoint.
pub fn six(dir: &Path) -> Store {
    let store = Store::init(dir.join("store")).expect("init");
    for (gi, g) in ["a", "b"].iter().enumerate() {
        for c in 0..3 {
            let theta = 0.2 + 0.15 * gi as f64 + 0.05 * c as f64;
            let x = recording(3, 40, 3, theta, 0.8, 10 * gi as u64 + c as u64);
            let progress = format!("{}", c as f64 / 2.0);
            put(
                &store,
                &x,
                keys(&[("group", g), ("checkpoint", &c.to_string()), ("progress", &progress), ("config", "c1")]),
            );
        }
    }
    store
}

/// The strings of a column.
pub fn strs(df: &polars::prelude::DataFrame, c: &str) -> Vec<String> {
    let col = df.column(c).expect("column").cast(&polars::prelude::DataType::String).expect("cast");
    let s = col.str().expect("str");
    (0..s.len()).map(|i| s.get(i).unwrap_or("null").to_string()).collect()
}

/// The floats of a column.
pub fn floats(df: &polars::prelude::DataFrame, c: &str) -> Vec<f64> {
    let col = df.column(c).expect("column").cast(&polars::prelude::DataType::Float64).expect("cast");
    let s = col.f64().expect("f64");
    (0..s.len()).map(|i| s.get(i).unwrap_or(f64::NAN)).collect()
}
