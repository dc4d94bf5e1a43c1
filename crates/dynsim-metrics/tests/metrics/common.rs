//! Shared helpers: fixture loading and seeded random data.

use ndarray::{Array2, Array3};
use serde_json::Value;

/// One golden case from `data/reference/` (copied from `shared/fixtures/reference`).
pub struct Golden {
    pub name: String,
    pub x: Array3<f64>,
    pub y: Array3<f64>,
    pub n_delays: usize,
    pub delay_interval: usize,
    pub rank: usize,
    pub lambda: f64,
    pub expected: Value,
}

/// The repository's `data/reference/` (found through the source tree at run time: a test
/// binary reused from a shared target folder may have been built from a clone elsewhere).
pub fn reference_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../data/reference")
}

pub fn golden_cases() -> Vec<Golden> {
    let dir = reference_dir();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("data/reference exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "expected the four reference fixtures in {}", dir.display());
    names
        .into_iter()
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let p = &v["dsa_params"];
            Golden {
                name: v["name"].as_str().unwrap().to_string(),
                x: array3(&v["x"]),
                y: array3(&v["y"]),
                n_delays: p["n_delays"].as_u64().unwrap() as usize,
                delay_interval: p["delay_interval"].as_u64().unwrap() as usize,
                rank: p["rank"].as_u64().unwrap() as usize,
                lambda: p["lamb"].as_f64().unwrap(),
                expected: v["expected"].clone(),
            }
        })
        .collect()
}

pub fn array3(v: &Value) -> Array3<f64> {
    let a = v.as_array().unwrap();
    let b = a[0].as_array().unwrap();
    let c = b[0].as_array().unwrap();
    let (n0, n1, n2) = (a.len(), b.len(), c.len());
    Array3::from_shape_fn((n0, n1, n2), |(i, j, k)| v[i][j][k].as_f64().unwrap())
}

pub fn array2(v: &Value) -> Array2<f64> {
    let a = v.as_array().unwrap();
    let (n0, n1) = (a.len(), a[0].as_array().unwrap().len());
    Array2::from_shape_fn((n0, n1), |(i, j)| v[i][j].as_f64().unwrap())
}

/// A small deterministic generator (SplitMix64) so tests need no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    pub fn matrix(&mut self, n: usize, m: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, m), |_| self.normal())
    }
    /// A random orthogonal matrix with the given determinant sign (QR by Gram-Schmidt).
    pub fn orthogonal(&mut self, n: usize, det: f64) -> Array2<f64> {
        let mut q = self.matrix(n, n);
        for j in 0..n {
            for k in 0..j {
                let d: f64 = (0..n).map(|i| q[[i, k]] * q[[i, j]]).sum();
                for i in 0..n {
                    q[[i, j]] -= d * q[[i, k]];
                }
            }
            let nrm: f64 = (0..n).map(|i| q[[i, j]] * q[[i, j]]).sum::<f64>().sqrt();
            for i in 0..n {
                q[[i, j]] /= nrm;
            }
        }
        if det_sign(&q) != det.signum() {
            for i in 0..n {
                q[[i, 0]] = -q[[i, 0]];
            }
        }
        q
    }
}

/// Sign of the determinant by Gaussian elimination with partial pivoting.
pub fn det_sign(a: &Array2<f64>) -> f64 {
    let mut m = a.clone();
    let n = m.nrows();
    let mut sign = 1.0;
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| m[[i, c]].abs().total_cmp(&m[[j, c]].abs())).unwrap();
        if m[[p, c]] == 0.0 {
            return 0.0;
        }
        if p != c {
            for k in 0..n {
                m.swap([p, k], [c, k]);
            }
            sign = -sign;
        }
        if m[[c, c]] < 0.0 {
            sign = -sign;
        }
        for i in c + 1..n {
            let f = m[[i, c]] / m[[c, c]];
            for k in c..n {
                m[[i, k]] -= f * m[[c, k]];
            }
        }
    }
    sign
}

/// A noisy stable linear system observed through `units` channels: a DMD-friendly recording.
pub fn linear_recording(
    rng: &mut Rng,
    trials: usize,
    time: usize,
    units: usize,
    dyn_matrix: &Array2<f64>,
) -> Array3<f64> {
    let n = dyn_matrix.nrows();
    let obs = rng.matrix(units, n);
    let mut out = Array3::zeros((trials, time, units));
    for k in 0..trials {
        let mut s: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        for t in 0..time {
            for u in 0..units {
                out[[k, t, u]] = (0..n).map(|i| obs[[u, i]] * s[i]).sum::<f64>();
            }
            s = (0..n).map(|i| (0..n).map(|j| dyn_matrix[[i, j]] * s[j]).sum::<f64>() + 0.01 * rng.normal()).collect();
        }
    }
    out
}

/// Multiply the units of a recording by an orthogonal matrix: `x_t -> Q x_t`.
pub fn rotate_units(x: &Array3<f64>, q: &Array2<f64>) -> Array3<f64> {
    let (tr, t, u) = x.dim();
    Array3::from_shape_fn((tr, t, u), |(k, s, i)| (0..u).map(|j| q[[i, j]] * x[[k, s, j]]).sum())
}

pub fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
