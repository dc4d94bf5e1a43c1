//! `dynsim metric`: one metric between two `.npy` recordings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use dynsim_metrics::prelude::*;
use ndarray::{Array3, Ix2, Ix3};
use serde_json::json;

use crate::output::println;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MetricName {
    /// Dynamical Similarity Analysis (delay embedding + DMD + similarity-transform distance).
    Dsa,
    /// Procrustes / generalised shape metric (see --alpha).
    Procrustes,
    /// Centred kernel alignment.
    Cka,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScoreArg {
    Angular,
    Euclidean,
    Wasserstein,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KernelArg {
    Linear,
    Rbf,
}

/// Arguments of `dynsim metric`.
#[derive(Debug, Args)]
pub struct MetricArgs {
    /// Which metric.
    metric: MetricName,
    /// Left recording (.npy, float32 or float64, trials x time x units or time x units).
    left: PathBuf,
    /// Right recording.
    right: PathBuf,
    /// DSA: number of delays of the Hankel embedding.
    #[arg(long, default_value_t = 1)]
    n_delays: usize,
    /// DSA: spacing of the delays, in time steps.
    #[arg(long, default_value_t = 1)]
    delay_interval: usize,
    /// DSA: DMD rank (a count).
    #[arg(long, group = "rank_rule")]
    rank: Option<usize>,
    /// DSA: keep singular values above this fraction of the largest.
    #[arg(long, group = "rank_rule")]
    rank_thresh: Option<f64>,
    /// DSA: smallest rank explaining this fraction of the variance.
    #[arg(long, group = "rank_rule")]
    rank_explained_variance: Option<f64>,
    /// DSA: ridge penalty of the DMD regression.
    #[arg(long, default_value_t = 0.0)]
    lambda: f64,
    /// DSA: use reduced-rank regression instead of principal-component regression.
    #[arg(long)]
    reduced_rank: bool,
    /// Score form (wasserstein: DSA only; euclidean: DSA and procrustes).
    #[arg(long, value_enum, default_value = "angular")]
    score: ScoreArg,
    /// Procrustes: partial whitening, 1 = Procrustes, 0 = CCA-like.
    #[arg(long)]
    alpha: Option<f64>,
    /// CKA: kernel.
    #[arg(long, value_enum)]
    kernel: Option<KernelArg>,
    /// CKA: use the debiased (unbiased HSIC) estimator.
    #[arg(long)]
    debiased: bool,
    /// DSA: seed of the optimiser's random restarts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// DSA: random restarts per determinant component (on top of the spectral starts).
    #[arg(long, default_value_t = SimilarityParams::default().restarts)]
    restarts: usize,
    /// DSA: run every starting point to convergence instead of racing them (slower, the
    /// most careful search).
    #[arg(long)]
    thorough: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The validated configuration: one variant per metric.
enum Config {
    Dsa(Dsa),
    Shape(ShapeMetric),
    Cka(Cka),
}

fn validate(a: &MetricArgs) -> Result<Config> {
    let dsa_only = a.thorough
        || a.n_delays != 1
        || a.delay_interval != 1
        || a.rank.is_some()
        || a.rank_thresh.is_some()
        || a.rank_explained_variance.is_some()
        || a.lambda != 0.0
        || a.reduced_rank;
    Ok(match a.metric {
        MetricName::Dsa => {
            if a.thorough && a.restarts != SimilarityParams::default().restarts {
                bail!("--thorough sets its own restarts; drop --restarts or --thorough");
            }
            if a.alpha.is_some() || a.kernel.is_some() || a.debiased {
                bail!("--alpha, --kernel and --debiased do not apply to dsa; drop them");
            }
            let rank = match (a.rank, a.rank_thresh, a.rank_explained_variance) {
                (Some(r), _, _) => RankSelection::Count(r),
                (_, Some(t), _) => RankSelection::Threshold(t),
                (_, _, Some(v)) => RankSelection::ExplainedVariance(v),
                _ => RankSelection::Full,
            };
            let params = DsaParams {
                dmd: DmdParams {
                    n_delays: a.n_delays,
                    delay_interval: a.delay_interval,
                    rank,
                    lambda: a.lambda,
                    regression: if a.reduced_rank { Regression::ReducedRank } else { Regression::PrincipalComponent },
                    ..Default::default()
                },
                similarity: if a.thorough {
                    SimilarityParams { seed: a.seed, ..SimilarityParams::thorough() }
                } else {
                    SimilarityParams { seed: a.seed, restarts: a.restarts, ..Default::default() }
                },
                score: match a.score {
                    ScoreArg::Angular => DsaScore::Angular,
                    ScoreArg::Euclidean => DsaScore::Euclidean,
                    ScoreArg::Wasserstein => DsaScore::Wasserstein,
                },
            };
            Config::Dsa(Dsa::new(params).context("invalid DSA parameters")?)
        }
        MetricName::Procrustes => {
            if dsa_only || a.kernel.is_some() || a.debiased {
                bail!("procrustes takes only --alpha and --score; drop the DSA / CKA options");
            }
            let score = match a.score {
                ScoreArg::Angular => Score::Angular,
                ScoreArg::Euclidean => Score::Euclidean,
                ScoreArg::Wasserstein => bail!("--score wasserstein applies to dsa only; use angular or euclidean"),
            };
            let m = ShapeMetric { alpha: a.alpha.unwrap_or(1.0), score };
            m.validate().context("invalid procrustes parameters")?;
            Config::Shape(m)
        }
        MetricName::Cka => {
            if dsa_only || a.alpha.is_some() {
                bail!("cka takes only --kernel and --debiased; drop the DSA / procrustes options");
            }
            if !matches!(a.score, ScoreArg::Angular) {
                bail!("cka reports the similarity and the angular distance arccos(CKA); drop --score");
            }
            Config::Cka(Cka {
                kernel: match a.kernel.unwrap_or(KernelArg::Linear) {
                    KernelArg::Linear => Kernel::Linear,
                    KernelArg::Rbf => Kernel::Rbf { threshold: 1.0 },
                },
                estimator: if a.debiased { HsicEstimator::Debiased } else { HsicEstimator::Biased },
            })
        }
    })
}

/// Read a recording as `trials x time x units` f64.
pub fn load_recording(path: &Path) -> Result<Array3<f64>> {
    let arr = dynsim_store::read_npy(path)?;
    let shape = arr.shape().to_vec();
    let a = arr.into_f64();
    match shape.len() {
        3 => Ok(a.into_dimensionality::<Ix3>().with_context(|| format!("{}: not a 3-d array", path.display()))?),
        2 => {
            let a = a.into_dimensionality::<Ix2>().with_context(|| format!("{}: not a 2-d array", path.display()))?;
            Ok(a.insert_axis(ndarray::Axis(0)))
        }
        _ => bail!(
            "{}: array of shape {shape:?} has rank {}; a recording is trials x time x units (or time x units)",
            path.display(),
            shape.len()
        ),
    }
}

pub fn run(args: MetricArgs) -> Result<()> {
    let config = validate(&args)?;
    let x = load_recording(&args.left)?;
    let y = load_recording(&args.right)?;
    let where_ = || format!("comparing {} with {}", args.left.display(), args.right.display());
    let start = Instant::now();
    let mut out = json!({
        "left": args.left.display().to_string(),
        "right": args.right.display().to_string(),
        "left_shape": x.shape(),
        "right_shape": y.shape(),
    });
    let (name, value) = match config {
        Config::Dsa(dsa) => {
            let fx = dsa.fit(x.view()).with_context(|| format!("fitting DMD to {}", args.left.display()))?;
            let fy = dsa.fit(y.view()).with_context(|| format!("fitting DMD to {}", args.right.display()))?;
            let c = dsa.compare(&fx, &fy).with_context(where_)?;
            out["metric"] = json!("dsa");
            out["score"] = json!(format!("{:?}", c.score).to_lowercase());
            out["ranks"] = json!([c.ranks.0, c.ranks.1]);
            out["fallback_to_wasserstein"] = json!(c.fallback);
            if let Some(t) = &c.transform {
                out["angular"] = json!(t.angular);
                out["euclidean"] = json!(t.euclidean);
                out["loss"] = json!(t.loss);
                out["iterations"] = json!(t.iterations);
                out["det"] = json!(t.det);
            }
            let p = dsa.params();
            out["params"] = json!({
                "n_delays": p.dmd.n_delays, "delay_interval": p.dmd.delay_interval,
                "rank": format!("{:?}", p.dmd.rank), "lambda": p.dmd.lambda,
                "reduced_rank": p.dmd.regression == Regression::ReducedRank,
                "seed": p.similarity.seed, "restarts": p.similarity.restarts,
            });
            ("dsa", c.value)
        }
        Config::Shape(m) => {
            let v = m.distance(x.view(), y.view()).with_context(where_)?;
            out["metric"] = json!("procrustes");
            out["score"] = json!(format!("{:?}", m.score).to_lowercase());
            out["params"] = json!({"alpha": m.alpha});
            ("procrustes", v)
        }
        Config::Cka(c) => {
            let s = c.similarity(x.view(), y.view()).with_context(where_)?;
            out["metric"] = json!("cka");
            out["score"] = json!("angular");
            out["similarity"] = json!(s);
            out["params"] = json!({
                "kernel": format!("{:?}", c.kernel), "debiased": c.estimator == HsicEstimator::Debiased,
            });
            ("cka", s.clamp(-1.0, 1.0).acos())
        }
    };
    out["value"] = json!(value);
    out["seconds"] = json!(start.elapsed().as_secs_f64());
    if args.json {
        println(&serde_json::to_string(&out)?)
    } else {
        let mut line = format!("{name} {} = {value:.6}", out["score"].as_str().unwrap_or(""));
        if let Some(s) = out.get("similarity").and_then(|v| v.as_f64()) {
            line.push_str(&format!("  (similarity {s:.6})"));
        }
        if let Some(r) = out.get("ranks") {
            line.push_str(&format!("  ranks {r}"));
        }
        if out.get("fallback_to_wasserstein").and_then(|v| v.as_bool()) == Some(true) {
            line.push_str("  [ranks differ: eigenvalue-Wasserstein score]");
        }
        if let (Some(l), Some(d)) = (out.get("loss"), out.get("det")) {
            line.push_str(&format!("  loss {:.6} det {d}", l.as_f64().unwrap_or(f64::NAN)));
        }
        line.push_str(&format!("  {:.3}s", start.elapsed().as_secs_f64()));
        println(&line)
    }
}
