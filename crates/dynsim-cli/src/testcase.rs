//! `dynsim testcase lorenz`: the seed study's Lorenz test case on a store.
//!
//! So far Test A (regimes): the 9 systems are simulated into the store, compared all-pairs
//! with DSA, Procrustes and CKA through the result cache, and summarised per metric.

use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use dynsim_store::Store;
use dynsim_testcases::regimes::{run, Preset};
use serde_json::json;

use crate::output::println;
use crate::storecmd::StoreArg;

/// `dynsim testcase ...`
#[derive(Debug, Args)]
pub struct TestcaseArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, Subcommand)]
enum Which {
    /// Lorenz attractor regimes (Test A): does a metric put systems of one regime closer
    /// together than systems of different regimes?
    Lorenz(LorenzArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PresetArg {
    /// 50 trajectories per system: seconds.
    Small,
    /// The seed study's 200 trajectories per system.
    Paper,
}

#[derive(Debug, Args)]
struct LorenzArgs {
    /// Size of the run.
    #[arg(long, value_enum, default_value = "small")]
    preset: PresetArg,
    #[command(flatten)]
    store: StoreArg,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run `dynsim testcase`.
pub fn run_testcase(args: TestcaseArgs) -> Result<()> {
    let Which::Lorenz(a) = args.which;
    let preset = match a.preset {
        PresetArg::Small => Preset::SMALL,
        PresetArg::Paper => Preset::PAPER,
    };
    let (store, created) = Store::open_or_init(&a.store.store)?;
    if created {
        eprintln!("created a new store in {}", a.store.store.display());
    }
    let t0 = Instant::now();
    let test = run(&store, preset)?;
    let seconds = t0.elapsed().as_secs_f64();
    if a.json {
        let metrics: Vec<_> = test
            .results
            .iter()
            .map(|r| {
                json!({
                    "metric": r.metric, "within": r.separation.within, "across": r.separation.across,
                    "ratio": r.separation.ratio, "auc": r.separation.auc,
                    "matrix": r.matrix.outer_iter().map(|row| row.to_vec()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let systems: Vec<_> = test.systems.iter().map(|(g, r)| json!({"regime": g.name(), "r": r})).collect();
        return println(
            &json!({
                "test": "lorenz regimes (A)", "trajectories": preset.trajectories, "steps": preset.steps,
                "systems": systems, "metrics": metrics, "computed": test.computed, "cached": test.cached,
                "seconds": seconds,
            })
            .to_string(),
        );
    }
    println(&format!(
        "Lorenz regimes (test A): 9 systems x {} trajectories x {} steps; {} pairs x metrics computed, {} cached, {seconds:.1} s",
        preset.trajectories, preset.steps, test.computed, test.cached
    ))?;
    println(&format!("{:<12} {:>8} {:>8} {:>7} {:>6}", "metric", "within", "across", "ratio", "AUC"))?;
    for r in &test.results {
        let s = r.separation;
        println(&format!("{:<12} {:>8.3} {:>8.3} {:>7.2} {:>6.3}", r.metric, s.within, s.across, s.ratio, s.auc))?;
    }
    println("(within / across: mean dissimilarity of systems in the same / different regimes; AUC: chance that an across pair is the more dissimilar)")
}
