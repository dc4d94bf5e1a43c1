//! `dynsim bench dsa`: speed and optimiser quality of DSA at the seed paper's RNN settings.
//!
//! Recordings come from seeded leaky tanh RNNs (`h <- (1-a) h + a tanh(W h + noise)`, the
//! kind of network the seed study trains), each with its own perturbation of a shared `W`,
//! so pairs are related but not identical. Reported: DMD fit time per recording (one
//! thread), distance time per pair (one thread) with the achieved loss, the loss of a
//! reference-style optimiser (Adam on the Cayley parametrisation, as dsa-metric does:
//! 1500 iterations, lr 0.005, 3 seeds per determinant component) on the same operators, and
//! an all-pairs matrix on all cores.

use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use dynsim_metrics::prelude::*;
use dynsim_metrics::{DsaMatrix, Par};
use ndarray::{Array2, Array3};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde_json::json;

use crate::output::println;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchWhat {
    /// DSA: DMD fit, distance per pair, all-pairs matrix.
    Dsa,
    /// Store ingest: throughput and peak memory on ~500 MB HDF5 / Parquet inputs, against
    /// the h5py + pyarrow route.
    Ingest,
    /// All-pairs DSA through the store and the result cache (default 100 recordings,
    /// 4,950 pairs): cold, then again from the cache.
    Compare,
    /// Training speed: ms per batch (64 x 400 steps) of the study's networks, one network on
    /// one thread and two networks on two threads (`--pairs` timed batches each).
    Train,
}

/// Arguments of `dynsim bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to benchmark.
    what: BenchWhat,
    /// Recordings in the all-pairs matrix (default 20 for dsa, 100 for compare).
    #[arg(long)]
    pub recordings: Option<usize>,
    /// Trials per recording.
    #[arg(long, default_value_t = 200)]
    pub trials: usize,
    /// Time steps per trial.
    #[arg(long, default_value_t = 200)]
    pub time: usize,
    /// Units per recording.
    #[arg(long, default_value_t = 20)]
    pub units: usize,
    /// Number of delays.
    #[arg(long, default_value_t = 33)]
    pub n_delays: usize,
    /// Delay interval.
    #[arg(long, default_value_t = 6)]
    pub delay_interval: usize,
    /// DMD rank.
    #[arg(long, default_value_t = 50)]
    pub rank: usize,
    /// Pairs timed one by one (and compared with the reference-style optimiser); for
    /// `train`, batches timed per model.
    #[arg(long, default_value_t = 10)]
    pub pairs: usize,
    /// Pairs on which the (slow) reference-style optimiser also runs; 0 skips it.
    #[arg(long, default_value_t = 5)]
    baseline_pairs: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// ingest and compare: folder for the generated inputs (ingest: about 1.5 GB) and the
    /// stores (compare: a 320 MB store of the generated recordings, made once).
    #[arg(long, default_value = "/var/tmp/dynsim-bench")]
    pub dir: std::path::PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Seeded recordings of perturbed leaky tanh RNNs driven by noise.
pub fn rnn_recordings(n: usize, trials: usize, time: usize, units: usize, seed: u64) -> Vec<Array3<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = move || -> f64 { rng.sample(StandardNormal) };
    let scale = 1.0 / (units as f64).sqrt();
    let base = Array2::from_shape_fn((units, units), |_| 1.4 * scale * normal());
    let leak = 0.2;
    (0..n)
        .map(|_| {
            let w = &base + &Array2::from_shape_fn((units, units), |_| 0.4 * scale * normal());
            let mut x = Array3::zeros((trials, time, units));
            for k in 0..trials {
                let mut h: Vec<f64> = (0..units).map(|_| 0.5 * normal()).collect();
                for t in 0..time {
                    for u in 0..units {
                        x[[k, t, u]] = h[u];
                    }
                    let pre: Vec<f64> = (0..units)
                        .map(|i| (0..units).map(|j| w[[i, j]] * h[j]).sum::<f64>() + 0.1 * normal())
                        .collect();
                    for u in 0..units {
                        h[u] = (1.0 - leak) * h[u] + leak * pre[u].tanh();
                    }
                }
            }
            x
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

pub fn run(a: BenchArgs) -> Result<()> {
    if let BenchWhat::Ingest = a.what {
        return crate::bench_ingest::run(&a.dir, a.json);
    }
    if let BenchWhat::Train = a.what {
        return crate::bench_train::run(&a);
    }
    let recordings = a.recordings.unwrap_or(if let BenchWhat::Compare = a.what { 100 } else { 20 });
    if recordings < 2 {
        bail!("--recordings must be at least 2 to form a pair");
    }
    if let BenchWhat::Compare = a.what {
        return crate::bench_compare::run(&a, recordings);
    }
    let t0 = Instant::now();
    let recs = rnn_recordings(recordings, a.trials, a.time, a.units, a.seed);
    let gen_s = t0.elapsed().as_secs_f64();
    let params = DsaParams {
        dmd: DmdParams {
            n_delays: a.n_delays,
            delay_interval: a.delay_interval,
            rank: RankSelection::Count(a.rank),
            ..Default::default()
        },
        ..Default::default()
    };
    let dsa = Dsa::new(params)?;
    // 1. DMD fit per recording, one thread (faer's decompositions too)
    dynsim_metrics::set_global_parallelism(Par::Seq);
    let mut fit_ms = vec![];
    let mut fits = vec![];
    for r in &recs {
        let t = Instant::now();
        fits.push(DmdFit::fit(r.view(), &params.dmd, Par::Seq)?);
        fit_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // 2. distance per pair, one thread
    let sim = SimilarityTransformDist::new(params.similarity);
    let npairs = a.pairs.min(recordings - 1);
    let mut dist_ms = vec![];
    let mut losses = vec![];
    let mut iters = vec![];
    for i in 0..npairs {
        let t = Instant::now();
        let f = sim.fit_faer(fits[i].a_v_faer(), fits[i + 1].a_v_faer())?;
        dist_ms.push(t.elapsed().as_secs_f64() * 1e3);
        losses.push(f.loss);
        iters.push(f.iterations);
    }
    // 3. reference-style optimiser on the first pairs
    let mut baseline = vec![];
    for i in 0..a.baseline_pairs.min(npairs) {
        let t = Instant::now();
        let l = adam_cayley_reference(&fits[i].a_v(), &fits[i + 1].a_v(), 1500, 0.005, 3);
        baseline.push((l, t.elapsed().as_secs_f64()));
    }
    // 4. all pairs on all cores (fits + distances)
    dynsim_metrics::set_global_parallelism(Par::rayon(0));
    let views: Vec<_> = recs.iter().map(|r| r.view()).collect();
    let t = Instant::now();
    let m: DsaMatrix = dsa.pairwise(&views, Parallelism::Global)?;
    let all_s = t.elapsed().as_secs_f64();
    let n_all = recordings * (recordings - 1) / 2;
    let threads = rayon::current_num_threads();

    let fit_med = median(&mut fit_ms.clone());
    let dist_med = median(&mut dist_ms.clone());
    let ours_vs_ref: Vec<(f64, f64)> = baseline.iter().enumerate().map(|(i, b)| (losses[i], b.0)).collect();
    let worse = ours_vs_ref.iter().filter(|(o, r)| *o > r + 1e-9).count();
    let out = json!({
        "settings": {"recordings": recordings, "trials": a.trials, "time": a.time, "units": a.units,
                     "n_delays": a.n_delays, "delay_interval": a.delay_interval, "rank": a.rank, "seed": a.seed},
        "generate_seconds": gen_s,
        "dmd_fit_ms": {"median": fit_med, "all": fit_ms},
        "distance_ms_one_thread": {"median": dist_med, "all": dist_ms},
        "loss": losses,
        "iterations": iters,
        "reference_style_loss": baseline.iter().map(|b| b.0).collect::<Vec<_>>(),
        "reference_style_seconds": baseline.iter().map(|b| b.1).collect::<Vec<_>>(),
        "pairs_where_ours_is_worse": worse,
        "all_pairs": {"pairs": n_all, "seconds": all_s, "threads": threads,
                      "mean_value": m.values.iter().sum::<f64>() / (recordings * recordings - recordings) as f64},
    });
    if a.json {
        return println(&serde_json::to_string_pretty(&out)?);
    }
    println(&format!(
        "DSA benchmark: {} recordings of {} x {} x {}, n_delays {}, delay_interval {}, rank {}",
        recordings, a.trials, a.time, a.units, a.n_delays, a.delay_interval, a.rank
    ))?;
    println(&format!("  DMD fit, one thread:           median {fit_med:8.1} ms per recording"))?;
    println(&format!("  distance, one thread:          median {dist_med:8.1} ms per pair (over {npairs} pairs)"))?;
    for (i, l) in losses.iter().enumerate() {
        let r = baseline.get(i).map_or(String::new(), |b| format!("   reference-style {:.6} ({:.2} s)", b.0, b.1));
        println(&format!("    pair {i}: loss {l:.6} in {} iterations, {:.1} ms{r}", iters[i], dist_ms[i]))?;
    }
    if !baseline.is_empty() {
        println(&format!(
            "  pairs where our loss exceeds the reference-style optimiser's: {worse} of {}",
            baseline.len()
        ))?;
    }
    println(&format!("  all pairs ({n_all} pairs, fits included) on {threads} threads: {all_s:.2} s"))
}

/// The reference implementation's optimiser, re-implemented for comparison: Adam on the
/// parameter `W`, `X = triu(W,1) - triu(W,1)^T`, `C = (I + X)^-1 (I - X)`, loss
/// `|A - C B C^T|_F` of the unit-norm operators; for O(n) the reflected problem
/// (`B -> P B P`, `P = diag(-1, 1, ..)`) is solved too; best of `seeds` random starts.
pub fn adam_cayley_reference(a: &Array2<f64>, b: &Array2<f64>, iters: usize, lr: f64, seeds: u64) -> f64 {
    let n = a.nrows();
    let an = a / a.iter().map(|v| v * v).sum::<f64>().sqrt();
    let bn = b / b.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut p = Array2::<f64>::eye(n);
    p[[0, 0]] = -1.0;
    let reflected = p.dot(&bn).dot(&p);
    let mut best = f64::INFINITY;
    for bb in [&bn, &reflected] {
        for seed in 0..seeds {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut w = Array2::from_shape_fn((n, n), |_| rng.sample::<f64, _>(StandardNormal));
            let (mut m1, mut m2) = (Array2::<f64>::zeros((n, n)), Array2::<f64>::zeros((n, n)));
            let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
            for it in 1..=iters {
                let x = Array2::from_shape_fn((n, n), |(i, j)| {
                    if j > i {
                        w[[i, j]]
                    } else if i > j {
                        -w[[j, i]]
                    } else {
                        0.0
                    }
                });
                let ipx = Array2::<f64>::eye(n) + &x;
                let imx = Array2::<f64>::eye(n) - &x;
                let pinv = invert(&ipx);
                let c = pinv.dot(&imx);
                let mm = c.dot(bb).dot(&c.t());
                let r = &an - &mm;
                let loss = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                best = best.min(loss);
                if loss == 0.0 {
                    break;
                }
                let gm = -&r / loss;
                let gc = gm.dot(&c).dot(&bb.t()) + gm.t().dot(&c).dot(bb);
                let cpi = &c + &Array2::<f64>::eye(n);
                let gx = -pinv.t().dot(&gc).dot(&cpi.t());
                let gw = Array2::from_shape_fn((n, n), |(i, j)| if j > i { gx[[i, j]] - gx[[j, i]] } else { 0.0 });
                m1 = &m1 * b1 + &gw * (1.0 - b1);
                m2 = &m2 * b2 + &(&gw * &gw) * (1.0 - b2);
                let (c1, c2) = (1.0 - b1.powi(it as i32), 1.0 - b2.powi(it as i32));
                w = &w
                    - &(Array2::from_shape_fn((n, n), |(i, j)| {
                        lr * (m1[[i, j]] / c1) / ((m2[[i, j]] / c2).sqrt() + eps)
                    }));
            }
        }
    }
    best
}

/// Gauss-Jordan inverse with partial pivoting (I + X is always invertible for skew X).
fn invert(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut m = a.clone();
    let mut inv = Array2::<f64>::eye(n);
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| m[[i, c]].abs().total_cmp(&m[[j, c]].abs())).unwrap_or(c);
        for k in 0..n {
            m.swap([p, k], [c, k]);
            inv.swap([p, k], [c, k]);
        }
        let d = m[[c, c]];
        for k in 0..n {
            m[[c, k]] /= d;
            inv[[c, k]] /= d;
        }
        for i in 0..n {
            if i != c {
                let f = m[[i, c]];
                if f != 0.0 {
                    for k in 0..n {
                        m[[i, k]] -= f * m[[c, k]];
                        inv[[i, k]] -= f * inv[[c, k]];
                    }
                }
            }
        }
    }
    inv
}
