//! Test B of the seed study: noise and mixing that shrink over three "epochs". A metric that
//! tracks how a computation develops should see the mixed model converge to the clean one.
//!
//! Patterns: the Lorenz systems with `r = 0.5` and the six two-attractor systems
//! (`r = 5, 10, 15, 30, 40, 50`). For every ordered pair of distinct patterns `(P, Q)` and
//! every epoch `e = 1, 2, 3`, three recordings are made (each with its own noise seed):
//!
//! ```text
//! noisy(X)  = sqrt(1 - s_e^2) X + s_e eps,   eps ~ N(0, 1),   s_e = 0.004, 0.002, 0.001
//! model1    = noisy(P)
//! model2    = noisy(P)                                   (independent noise)
//! model3    = noisy(P) + m_e (Q - Q[t = 0]),             m_e = 1, 0.5, 0.25
//! ```
//!
//! (`Q - Q[t = 0]` subtracts each trajectory's start point, so the admixture starts at 0.)
//! The recordings go into the store with `model = model1|model2|model3`,
//! `task = lorenz_noise`, `checkpoint = e`, `progress = (e - 1) / 2`, `pattern_r`,
//! `second_r`, `seed`, `trajectories`; model2 is compared with model1 and with model3 of the
//! same (P, Q, e) through a bipartite plan matched on those keys. Per metric and epoch the
//! result has the mean and SEM over the 42 ordered pairs, and per comparison the linear R²
//! of dissimilarity against epoch and the first-to-last gap.

use dynsim_query::polars::prelude::*;
use dynsim_query::stats::{linear_regression, mean_sem};
use dynsim_query::{CollectOptions, Comparison, QueryError};
use dynsim_store::Store;
use ndarray::{s, Array3};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::lorenz::simulate;
use crate::regimes::{collect, floats, metrics, put_all, recording, select, with_metrics, Preset, TestcaseError};

/// The patterns: `r` of the Lorenz systems used.
pub const PATTERNS: [f64; 7] = [0.5, 5.0, 10.0, 15.0, 30.0, 40.0, 50.0];
/// Noise scale per epoch.
pub const NOISE: [f64; 3] = [0.004, 0.002, 0.001];
/// Weight of the second pattern in model3 per epoch.
pub const MIXING: [f64; 3] = [1.0, 0.5, 0.25];

/// `sqrt(1 - s^2) x + s eps` elementwise, seeded.
pub fn noisy(x: &Array3<f64>, s: f64, seed: u64) -> Array3<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keep = (1.0 - s * s).sqrt();
    x.mapv(|v| keep * v + s * rng.sample::<f64, _>(StandardNormal))
}

/// `x + m (q - q[t = 0])`: `q` with each trajectory's start point subtracted, scaled by `m`.
pub fn mix(x: &Array3<f64>, q: &Array3<f64>, m: f64) -> Array3<f64> {
    let start = q.slice(s![.., 0..1, ..]).to_owned();
    x + &((q - &start) * m)
}

/// One comparison's course over the epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct Course {
    /// Mean dissimilarity per epoch (over the ordered pattern pairs).
    pub mean: [f64; 3],
    /// Standard error of that mean per epoch.
    pub sem: [f64; 3],
    /// R² of the least-squares line of dissimilarity against epoch (all values).
    pub r2: f64,
    /// Slope of that line (per epoch).
    pub slope: f64,
    /// `mean[epoch 1] - mean[epoch 3]`.
    pub gap: f64,
}

/// One metric's result.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseResult {
    /// The metric name.
    pub metric: String,
    /// model1 vs model2 (noise only).
    pub noise_only: Course,
    /// model2 vs model3 (noise and mixing).
    pub mixed: Course,
}

/// The outcome of Test B.
#[derive(Debug, Clone)]
pub struct TestB {
    /// One result per metric, in [`metrics`] order.
    pub results: Vec<NoiseResult>,
    /// Pairs x metrics answered from the cache.
    pub cached: usize,
    /// Pairs x metrics computed in this run.
    pub computed: usize,
}

/// Simulate and ingest every recording of Test B for `preset` (already present ones add
/// nothing).
pub fn ingest(store: &Store, preset: Preset) -> Result<(), TestcaseError> {
    let mut all = Vec::new();
    let patterns: Vec<Array3<f64>> = PATTERNS
        .iter()
        .enumerate()
        .map(|(i, r)| simulate(*r, preset.trajectories, preset.steps, preset.seed * 1000 + 100 + i as u64))
        .collect();
    for (pi, p) in patterns.iter().enumerate() {
        for (qi, q) in patterns.iter().enumerate() {
            if pi == qi {
                continue;
            }
            for e in 0..3 {
                let base = preset.seed * 1_000_000 + 10_000 + 100 * (pi as u64 * 7 + qi as u64) + 10 * e as u64;
                let models = [
                    ("model1", noisy(p, NOISE[e], base + 1)),
                    ("model2", noisy(p, NOISE[e], base + 2)),
                    ("model3", mix(&noisy(p, NOISE[e], base + 3), q, MIXING[e])),
                ];
                for (name, x) in models {
                    let keys = [
                        format!("model={name}"),
                        "task=lorenz_noise".into(),
                        format!("checkpoint={}", e + 1),
                        format!("progress={}", e as f64 / 2.0),
                        format!("pattern_r={:?}", PATTERNS[pi]),
                        format!("second_r={:?}", PATTERNS[qi]),
                    ];
                    all.push(recording("Test B (noise and mixing)", &x, preset, &keys)?);
                }
            }
        }
    }
    put_all(store, all)
}

/// Mean and SEM of `value` at each level 1, 2, 3 of `epoch`, and the least-squares line of
/// `value` against `epoch` (R², slope); `gap` is level 1 minus level 3.
pub(crate) fn course(epoch: &[f64], value: &[f64]) -> Result<Course, TestcaseError> {
    let (mut mean, mut sem) = ([0.0; 3], [0.0; 3]);
    for e in 0..3 {
        let v: Vec<f64> = epoch.iter().zip(value).filter(|(x, _)| **x == (e + 1) as f64).map(|(_, y)| *y).collect();
        let (m, s) = mean_sem(&v)?;
        mean[e] = m;
        sem[e] = s;
    }
    let fit = linear_regression(epoch, value)?;
    Ok(Course { mean, sem, r2: fit.r2, slope: fit.slope, gap: mean[0] - mean[2] })
}

/// Run Test B on `store`: ingest (if needed), compare model2 with model1 and model3 of the
/// same patterns and epoch, and summarise per metric.
pub fn run(store: &Store, preset: Preset) -> Result<TestB, TestcaseError> {
    run_with(store, preset, CollectOptions::default())
}

/// [`run`] with a progress callback and a cancel flag for the comparison.
pub fn run_with(store: &Store, preset: Preset, options: CollectOptions<'_>) -> Result<TestB, TestcaseError> {
    ingest(store, preset)?;
    let base = select(store, "lorenz_noise", preset, preset.steps)?;
    let left = base.clone().filter_sql("model = 'model2'")?;
    let right = base.filter_sql("model IN ('model1', 'model3')")?;
    let cmp = with_metrics(Comparison::bipartite(store, left, right).on(["pattern_r", "second_r", "checkpoint"]));
    let specs = metrics();
    let out = collect(cmp, options)?;
    let mut results = Vec::new();
    for spec in &specs {
        let pick = |other: &str| -> Result<(Vec<f64>, Vec<f64>), TestcaseError> {
            let df = out
                .frame
                .clone()
                .lazy()
                .filter(col("param_hash").eq(lit(spec.param_hash())).and(col("right_model").eq(lit(other))))
                .collect()
                .map_err(QueryError::from)?;
            let (epoch, value) = (floats(&df, "left_checkpoint")?, floats(&df, "value")?);
            Ok(epoch.into_iter().zip(value).filter_map(|(e, v)| Some((e?, v?))).unzip())
        };
        let (e1, v1) = pick("model1")?;
        let (e3, v3) = pick("model3")?;
        results.push(NoiseResult {
            metric: spec.name().to_string(),
            noise_only: course(&e1, &v1)?,
            mixed: course(&e3, &v3)?,
        });
    }
    Ok(TestB { results, cached: out.cached, computed: out.computed })
}
