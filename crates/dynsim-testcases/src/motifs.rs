//! Motif compositions: does a metric see two trajectories as more alike the more building
//! blocks (motifs) they share, whatever the order?
//!
//! Five motifs, each `trajectories x steps x 3`, drawn once per motif (the same realisation
//! in every composition that uses it; seeds derived from the preset's seed):
//!
//! 1. `line`: `p0 + (t / (steps - 1)) v`, `p0` uniform in `[0, 1)^3`, `v` a uniform random
//!    direction of length 1.
//! 2. `curve`: a circular arc of radius 0.5 through 270 degrees around `p0`, in the plane of
//!    two random orthonormal directions (Gram-Schmidt of two Gaussian vectors).
//! 3. `lorenz_stable`: the Lorenz system with `r = 10` (two stable attractors).
//! 4. `lorenz_chaos`: the Lorenz system with `r = 28` (the chaotic butterfly).
//!    Both are simulated and scaled into the unit volume as in [`crate::lorenz::simulate`].
//! 5. `path`: line, quarter circle, line, quarter circle (a quarter of the steps each), each
//!    piece starting where the last one ended, with random directions.
//!
//! Two settings ([`MotifSettings`]): dynsim's (above; DSA as in Test A, rank 20), and the
//! seed study's, the paper preset's default: DSA with `n_delays 33`, `delay_interval 6`,
//! **rank 50** on the full `200 x 600 x 3` arrays (no trial averaging), and the study's
//! `line` motif ([`study_line`]), whose direction compounds in place in an integer array and
//! collapses to zero after a few trajectories, so most of its "lines" are static points. The
//! study's "3 shared" mean also counted the 60 zero self-pairs; both means are reported.
//! The study's settings also use its motif set and composition ([`study_motifs`],
//! [`attach`]): line, `curve` (Lorenz `r = 0.5`), `pattern1` (`r = 5`), `pattern2`
//! (`r = 15`) and `line_curve_line_curve` (line, curve and their trial-reversed copies
//! attached); a composition attaches its three motifs (each continuing from where the last
//! ended, by its increments), keeps every third point and rescales each trajectory into the
//! unit volume, so it is `trajectories x steps x 3` like its motifs.
//!
//! A composition is an ordered sequence of 3 distinct motifs (5 x 4 x 3 = 60), concatenated
//! in time (`3 x steps` points): each motif is translated so that it starts where the
//! previous one ended. Two compositions share 1, 2 or 3 motifs (as sets; any two sets of 3
//! out of 5 share at least one). All pairs of the 60 compositions (1,770) are compared, and
//! per metric the mean and SEM of the dissimilarity is reported per number of shared motifs,
//! with the least-squares R² and slope against that number.

use std::collections::HashMap;

use dynsim_query::{CollectOptions, Comparison};
use dynsim_store::Store;
use ndarray::{s, Array3, Axis};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::lorenz::simulate;
use crate::noise::{course, Course};
use dynsim_query::MetricSpec;

use crate::regimes::{collect, floats, metrics, put_all, recording, select, strings, Preset, TestcaseError};

/// Which motif test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotifSettings {
    /// dynsim's: straight lines, DSA as in Test A (rank 20). The small preset's default.
    Dynsim,
    /// The seed study's: its motif set ([`study_motifs`], with its line motif
    /// [`study_line`]), its composition ([`attach`]) and DSA at rank 50. The paper preset's
    /// default.
    Study,
}

impl MotifSettings {
    /// The default of a preset: the study's settings for [`Preset::PAPER`], dynsim's otherwise.
    pub fn for_preset(preset: Preset) -> MotifSettings {
        if preset == Preset::PAPER {
            MotifSettings::Study
        } else {
            MotifSettings::Dynsim
        }
    }

    /// `dynsim` or `study`.
    pub fn name(&self) -> &'static str {
        match self {
            MotifSettings::Dynsim => "dynsim",
            MotifSettings::Study => "study",
        }
    }

    /// The store's task key of the compositions (the two settings' compositions differ).
    pub fn task(&self) -> &'static str {
        match self {
            MotifSettings::Dynsim => "lorenz_motifs",
            MotifSettings::Study => "lorenz_motifs_study",
        }
    }

    /// The motif names (the keys `motif1..3` of the compositions).
    pub fn names(&self) -> [&'static str; 5] {
        match self {
            MotifSettings::Dynsim => MOTIFS,
            MotifSettings::Study => STUDY_MOTIFS,
        }
    }

    /// Time steps of a composition of motifs of `steps` points.
    pub fn composition_steps(&self, steps: usize) -> usize {
        match self {
            MotifSettings::Dynsim => 3 * steps,
            MotifSettings::Study => (3 * steps).div_ceil(3),
        }
    }

    /// The metrics: Test A's, with DSA at rank 50 for the study's settings.
    pub fn metrics(&self) -> Vec<MetricSpec> {
        match self {
            MotifSettings::Dynsim => metrics(),
            MotifSettings::Study => ["dsa:n_delays=33,delay_interval=6,rank=50", "procrustes", "cka"]
                .iter()
                .filter_map(|s| MetricSpec::parse(s).ok())
                .collect(),
        }
    }
}

/// The seed study's motif names.
pub const STUDY_MOTIFS: [&str; 5] = ["line", "curve", "pattern1", "pattern2", "line_curve_line_curve"];

/// The seed study's five motifs ([`STUDY_MOTIFS`]), each `trajectories x steps x 3`;
/// motif `i < 4` drawn with `seed(i)`, the fifth attached from the line and the curve
/// themselves and their trial-reversed copies (as the study's notebook does).
pub fn study_motifs(trajectories: usize, steps: usize, seed: impl Fn(usize) -> u64) -> Vec<Array3<f64>> {
    let line = study_line(trajectories, steps, seed(0));
    let curve = simulate(0.5, trajectories, steps, seed(1));
    let flip = |a: &Array3<f64>| a.slice(s![..;-1, .., ..]).to_owned();
    let fifth = attach(&[&line, &curve, &flip(&line), &flip(&curve)]);
    vec![line, curve, simulate(5.0, trajectories, steps, seed(2)), simulate(15.0, trajectories, steps, seed(3)), fifth]
}

/// The seed study's `combine_simulations(..., method='attach')`: per trajectory, each part
/// continues from the end of the previous one by its own increments (the first step after a
/// junction is `0.0001` times the previous part's last increment), every `parts`-th point of
/// the joined trajectory is kept, and it is rescaled into the unit volume by its minimum and
/// maximum over all three coordinates.
pub fn attach(parts: &[&Array3<f64>]) -> Array3<f64> {
    let (trials, steps, dims) = parts[0].dim();
    let total: usize = parts.iter().map(|p| p.dim().1).sum();
    let kept = total.div_ceil(parts.len());
    let mut out = Array3::zeros((trials, kept, dims));
    for k in 0..trials {
        let mut joined: Vec<Vec<f64>> = (0..steps).map(|t| (0..dims).map(|c| parts[0][[k, t, c]]).collect()).collect();
        for part in &parts[1..] {
            let n = joined.len();
            let first: Vec<f64> =
                (0..dims).map(|c| joined[n - 1][c] + 0.0001 * (joined[n - 1][c] - joined[n - 2][c])).collect();
            joined.push(first);
            for i in 1..part.dim().1 {
                let prev = joined.len() - 1;
                let next: Vec<f64> =
                    (0..dims).map(|c| joined[prev][c] + part[[k, i, c]] - part[[k, i - 1, c]]).collect();
                joined.push(next);
            }
        }
        let rows: Vec<&Vec<f64>> = joined.iter().step_by(parts.len()).collect();
        let (lo, hi) = rows
            .iter()
            .flat_map(|r| r.iter())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        for (t, r) in rows.iter().enumerate() {
            for c in 0..dims {
                out[[k, t, c]] = (r[c] - lo) / span;
            }
        }
    }
    out
}

/// The seed study's means (1, 2, 3 shared motifs; 3 shared including the 60 self-pairs) of
/// its motif test, DSA in radians.
pub const STUDY_DSA: [f64; 3] = [0.76, 0.63, 0.36];

/// The seed study's line motif (`Simulation.simulation_line` of its code): one direction
/// array `[1, 1, 1]` of integers is shared by all trajectories and updated in place for each
/// one (every axis times a normal draw `g`, one random axis of 1 and 2 negated, truncated
/// towards zero by the integer array), and the trajectory's direction is `g` times it; the
/// points are `x_{i+1} = x_i + i d`, then min-max normalised over the whole trajectory
/// (`(x - min) / (max - min + 1e-6)`). Once `|g| < 1` has truncated every axis to 0, every
/// later trajectory is one static point. Random draws come from this seed, not numpy's.
pub fn study_line(trajectories: usize, steps: usize, seed: u64) -> Array3<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Array3::zeros((trajectories, steps, 3));
    let mut direction = [1i64; 3];
    for k in 0..trajectories {
        let p0 = [rng.random::<f64>(), rng.random::<f64>(), rng.random::<f64>()];
        let g: f64 = rng.sample(StandardNormal);
        let flipped = 1 + (rng.random::<f64>() * 2.0) as usize; // numpy randint(1, 3)
        for (ax, d) in direction.iter_mut().enumerate() {
            let v = if ax == flipped { -(*d as f64) * g } else { *d as f64 * g };
            *d = v.trunc() as i64;
        }
        let d = direction.map(|v| g * v as f64);
        let mut pts = vec![p0; steps];
        for i in 0..steps.saturating_sub(1) {
            pts[i + 1] = [0, 1, 2].map(|c| pts[i][c] + i as f64 * d[c]);
        }
        let (lo, hi) =
            pts.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
        let scale = 1.0 / (hi - lo + 1e-6);
        for (t, p) in pts.iter().enumerate() {
            for c in 0..3 {
                out[[k, t, c]] = (p[c] - lo) * scale;
            }
        }
    }
    out
}

/// The motif names, in order.
pub const MOTIFS: [&str; 5] = ["line", "curve", "lorenz_stable", "lorenz_chaos", "path"];

fn unit(rng: &mut ChaCha8Rng) -> [f64; 3] {
    loop {
        let v: [f64; 3] = [rng.sample(StandardNormal), rng.sample(StandardNormal), rng.sample(StandardNormal)];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        if n > 1e-9 {
            return [v[0] / n, v[1] / n, v[2] / n];
        }
    }
}

/// Two orthonormal directions.
fn plane(rng: &mut ChaCha8Rng) -> ([f64; 3], [f64; 3]) {
    let a = unit(rng);
    loop {
        let b = unit(rng);
        let d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let c = [b[0] - d * a[0], b[1] - d * a[1], b[2] - d * a[2]];
        let n = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
        if n > 1e-6 {
            return (a, [c[0] / n, c[1] / n, c[2] / n]);
        }
    }
}

/// Points `0..n` of an arc of radius `rho` through `angle`, starting at `start`, in the plane
/// `(e1, e2)`: the centre is `start - rho e1`.
fn arc(start: [f64; 3], e: ([f64; 3], [f64; 3]), rho: f64, angle: f64, n: usize) -> Vec<[f64; 3]> {
    let (e1, e2) = e;
    (0..n)
        .map(|t| {
            let th = angle * t as f64 / (n.max(2) - 1) as f64;
            let (c, s) = (th.cos() - 1.0, th.sin());
            [0, 1, 2].map(|k| start[k] + rho * (c * e1[k] + s * e2[k]))
        })
        .collect()
}

fn line(start: [f64; 3], v: [f64; 3], len: f64, n: usize) -> Vec<[f64; 3]> {
    (0..n).map(|t| [0, 1, 2].map(|k| start[k] + len * v[k] * t as f64 / (n.max(2) - 1) as f64)).collect()
}

/// One motif, `trajectories x steps x 3` (see the module docs).
pub fn motif(index: usize, trajectories: usize, steps: usize, seed: u64) -> Array3<f64> {
    match index {
        2 => return simulate(10.0, trajectories, steps, seed),
        3 => return simulate(28.0, trajectories, steps, seed),
        _ => {}
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Array3::zeros((trajectories, steps, 3));
    for k in 0..trajectories {
        let p0 = [rng.random::<f64>(), rng.random::<f64>(), rng.random::<f64>()];
        let pts = match index {
            0 => line(p0, unit(&mut rng), 1.0, steps),
            1 => arc(p0, plane(&mut rng), 0.5, 1.5 * std::f64::consts::PI, steps),
            _ => {
                let q = steps / 4;
                let sizes = [q, q, q, steps - 3 * q];
                let mut pts: Vec<[f64; 3]> = Vec::with_capacity(steps);
                let mut at = p0;
                for (piece, n) in sizes.into_iter().enumerate() {
                    let seg = if piece % 2 == 0 {
                        line(at, unit(&mut rng), 0.5, n)
                    } else {
                        arc(at, plane(&mut rng), 0.3, std::f64::consts::FRAC_PI_2, n)
                    };
                    if let Some(last) = seg.last() {
                        at = *last;
                    }
                    pts.extend(seg);
                }
                pts
            }
        };
        for (t, p) in pts.iter().enumerate().take(steps) {
            for c in 0..3 {
                out[[k, t, c]] = p[c];
            }
        }
    }
    out
}

/// Concatenate motifs in time, each translated to start where the previous one ended.
pub fn compose(parts: &[&Array3<f64>]) -> Array3<f64> {
    let (trials, steps, _) = parts[0].dim();
    let mut out = Array3::zeros((trials, steps * parts.len(), 3));
    for (i, m) in parts.iter().enumerate() {
        let mut piece = (*m).to_owned();
        if i > 0 {
            let end = out.slice(s![.., i * steps - 1, ..]).to_owned();
            let start = piece.index_axis(Axis(1), 0).to_owned();
            let shift = &end - &start;
            for mut t in piece.axis_iter_mut(Axis(1)) {
                t += &shift;
            }
        }
        out.slice_mut(s![.., i * steps..(i + 1) * steps, ..]).assign(&piece);
    }
    out
}

/// The 60 compositions: ordered triples of distinct motif indexes.
pub fn compositions() -> Vec<[usize; 3]> {
    let mut out = Vec::new();
    for a in 0..5 {
        for b in 0..5 {
            for c in 0..5 {
                if a != b && b != c && a != c {
                    out.push([a, b, c]);
                }
            }
        }
    }
    out
}

/// Motifs two compositions share (as sets).
pub fn shared(a: &[usize; 3], b: &[usize; 3]) -> usize {
    a.iter().filter(|m| b.contains(m)).count()
}

/// One metric's result: the dissimilarity per number of shared motifs (`mean[k]` for
/// `k + 1` shared; `gap` = 1 shared minus 3 shared).
#[derive(Debug, Clone, PartialEq)]
pub struct MotifResult {
    /// The metric name.
    pub metric: String,
    /// Mean, SEM, R², slope and gap against the number of shared motifs (distinct
    /// compositions only).
    pub by_shared: Course,
    /// The "3 shared" mean counting the 60 self-pairs (value 0) too, as the seed study did.
    pub three_shared_with_self: f64,
}

/// The outcome of the motif test.
#[derive(Debug, Clone)]
pub struct MotifTest {
    /// The settings it ran with.
    pub settings: MotifSettings,
    /// One result per metric, in [`MotifSettings::metrics`] order.
    pub results: Vec<MotifResult>,
    /// Pairs per number of shared motifs (1, 2, 3).
    pub pairs: [usize; 3],
    /// Pairs x metrics answered from the cache.
    pub cached: usize,
    /// Pairs x metrics computed in this run.
    pub computed: usize,
}

/// Make and ingest the 60 compositions (already present ones add nothing).
pub fn ingest(store: &Store, preset: Preset, settings: MotifSettings) -> Result<(), TestcaseError> {
    let mut all = Vec::new();
    let seed = |i: usize| preset.seed * 1000 + 500 + i as u64;
    let motifs: Vec<Array3<f64>> = match settings {
        MotifSettings::Study => study_motifs(preset.trajectories, preset.steps, seed),
        MotifSettings::Dynsim => (0..5).map(|i| motif(i, preset.trajectories, preset.steps, seed(i))).collect(),
    };
    let names = settings.names();
    for c in compositions().iter() {
        let parts = [&motifs[c[0]], &motifs[c[1]], &motifs[c[2]]];
        let x = match settings {
            MotifSettings::Study => attach(&parts),
            MotifSettings::Dynsim => compose(&parts),
        };
        let keys = [
            "model=motifs".to_string(),
            format!("task={}", settings.task()),
            format!("condition={}-{}-{}", names[c[0]], names[c[1]], names[c[2]]),
            format!("motif1={}", names[c[0]]),
            format!("motif2={}", names[c[1]]),
            format!("motif3={}", names[c[2]]),
        ];
        all.push(recording("motif test", &x, preset, &keys)?);
    }
    put_all(store, all)
}

/// Run the motif test on `store` with the preset's settings ([`MotifSettings::for_preset`]).
pub fn run(store: &Store, preset: Preset) -> Result<MotifTest, TestcaseError> {
    run_with(store, preset, MotifSettings::for_preset(preset), CollectOptions::default())
}

/// [`run`] with explicit settings, a progress callback and a cancel flag for the comparison.
pub fn run_with(
    store: &Store,
    preset: Preset,
    settings: MotifSettings,
    options: CollectOptions<'_>,
) -> Result<MotifTest, TestcaseError> {
    ingest(store, preset, settings)?;
    let sel = select(store, settings.task(), preset, settings.composition_steps(preset.steps))?;
    let specs = settings.metrics();
    let mut cmp = Comparison::all_pairs(store, sel);
    for m in &specs {
        cmp = cmp.metric(m.clone());
    }
    let out = collect(cmp, options)?;
    let df = &out.frame;
    let strs = |c: &str| strings(df, c);
    let index: HashMap<&str, usize> = settings.names().iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let side = |p: &str| -> Result<Vec<[usize; 3]>, TestcaseError> {
        let cols = [strs(&format!("{p}_motif1"))?, strs(&format!("{p}_motif2"))?, strs(&format!("{p}_motif3"))?];
        Ok((0..df.height())
            .map(|i| [0, 1, 2].map(|k| index.get(cols[k][i].as_str()).copied().unwrap_or(usize::MAX)))
            .collect())
    };
    let (left, right, hash) = (side("left")?, side("right")?, strs("param_hash")?);
    let value = floats(df, "value")?;
    let mut results = Vec::new();
    let mut pairs = [0; 3];
    for (mi, spec) in specs.iter().enumerate() {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..df.height() {
            if hash[i] != spec.param_hash() {
                continue;
            }
            let k = shared(&left[i], &right[i]);
            if let (1..=3, Some(v)) = (k, value[i]) {
                x.push(k as f64);
                y.push(v);
                if mi == 0 {
                    pairs[k - 1] += 1;
                }
            }
        }
        // The study's "3 shared" mean: its all-pairs matrix's zero diagonal (the 60 self-pairs)
        // counted too.
        let three: Vec<f64> = x.iter().zip(&y).filter(|(k, _)| **k == 3.0).map(|(_, v)| *v).collect();
        let three_shared_with_self = three.iter().sum::<f64>() / (three.len() + compositions().len()) as f64;
        results.push(MotifResult {
            metric: spec.name().to_string(),
            by_shared: course(&x, &y)?,
            three_shared_with_self,
        });
    }
    Ok(MotifTest { settings, results, pairs, cached: out.cached, computed: out.computed })
}
