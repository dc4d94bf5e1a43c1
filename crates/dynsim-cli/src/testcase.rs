//! `dynsim testcase lorenz`: the seed study's Lorenz test case on a store.
//!
//! Test A (regimes: 9 systems compared all-pairs, within vs across regime), Test B (noise
//! and mixing shrinking over 3 epochs) and the motif compositions, simulated into the store
//! and compared with DSA, Procrustes and CKA through the result cache, summarised per
//! metric, with figures and a Markdown report. Each step has a progress bar; Ctrl-C stops
//! scheduling once the running step reaches its comparison, keeps the finished pairs and
//! exits with status 130.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use dynsim_query::CollectOptions;
use dynsim_store::Store;
use dynsim_testcases::regimes::{Preset, TestcaseError};
use dynsim_testcases::{motifs, noise, regimes};
use serde_json::json;

use crate::output::println;
use crate::progress::{cancel_on_signal, PairBar, INTERRUPTED};
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
    /// Compositional learning (the study's main result): networks that learned AntiPDMDelay
    /// through different curricula, compared with one trained on it directly.
    Compositional(Box<crate::compositional::CompositionalArgs>),
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
    /// Folder for the figures (SVG: matrices, box plots, lines with error bars) and
    /// report.md.
    #[arg(long, default_value = "lorenz-report")]
    out: std::path::PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Settings of the motif test: the seed study's (its line motif, DSA at rank 50; the
    /// paper preset's default) or dynsim's (straight lines, DSA rank 20; the small preset's).
    #[arg(long, value_enum, default_value = "auto")]
    motif_settings: MotifSettingsArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MotifSettingsArg {
    /// study for --preset paper, dynsim otherwise.
    Auto,
    /// dynsim's settings.
    Dynsim,
    /// The seed study's settings.
    Study,
}

/// `mean ± sem` for the three levels, then R² and the gap, as table cells.
fn course_cells(c: &dynsim_testcases::noise::Course, digits: usize, width: usize) -> String {
    let cell = |k: usize| format!("{:.digits$} ± {:.digits$}", c.mean[k], c.sem[k]);
    format!("{:>width$} {:>width$} {:>width$} {:>6.3} {:>7.digits$}", cell(0), cell(1), cell(2), c.r2, c.gap)
}

/// Run one test with its progress bar; returns its result and seconds. An interrupted test
/// exits with status 130 after saying that its finished pairs are cached.
fn step<T>(
    name: &str,
    waiting: &str,
    cancel: &Arc<AtomicBool>,
    run: impl FnOnce(CollectOptions<'_>) -> Result<T, TestcaseError>,
) -> Result<(T, f64)> {
    let mut bar = PairBar::new(name, waiting);
    let t = Instant::now();
    let r =
        run(CollectOptions { progress: Some(&mut |p| bar.on(p)), cancel: Some(cancel.clone()), ..Default::default() });
    bar.finish();
    match r {
        Err(TestcaseError::Cancelled) => {
            eprintln!("{INTERRUPTED}");
            std::process::exit(130);
        }
        r => Ok((r?, t.elapsed().as_secs_f64())),
    }
}

/// Run `dynsim testcase`.
pub fn run_testcase(args: TestcaseArgs) -> Result<()> {
    let a = match args.which {
        Which::Lorenz(a) => a,
        Which::Compositional(a) => return crate::compositional::run(*a),
    };
    let preset = match a.preset {
        PresetArg::Small => Preset::SMALL,
        PresetArg::Paper => Preset::PAPER,
    };
    let motif_settings = match a.motif_settings {
        MotifSettingsArg::Auto => motifs::MotifSettings::for_preset(preset),
        MotifSettingsArg::Dynsim => motifs::MotifSettings::Dynsim,
        MotifSettingsArg::Study => motifs::MotifSettings::Study,
    };
    let (store, created) = Store::open_or_init(&a.store.store)?;
    if created {
        eprintln!("created a new store in {}", a.store.store.display());
    }
    // A bar per step: a spinner while the step simulates and ingests, then the DMD fits and
    // the pairs (hidden when stderr is not a terminal). Ctrl-C keeps every finished pair.
    let cancel = cancel_on_signal()?;
    let t0 = Instant::now();
    let (test, seconds_a) =
        step("test A", "simulating 9 Lorenz systems", &cancel, |o| regimes::run_with(&store, preset, o))?;
    let (b, seconds_b) =
        step("test B", "simulating 378 noisy and mixed recordings", &cancel, |o| noise::run_with(&store, preset, o))?;
    let (motifs, seconds_m) = step("motifs", "composing 60 sequences of 3 motifs", &cancel, |o| {
        motifs::run_with(&store, preset, motif_settings, o)
    })?;
    let files = dynsim_testcases::report::write_report(&a.out, preset, &test, &b, &motifs)
        .with_context(|| format!("writing the report into {}", a.out.display()))?;
    let seconds = t0.elapsed().as_secs_f64();
    let course = |c: &dynsim_testcases::noise::Course| json!({"mean": c.mean, "sem": c.sem, "r2": c.r2, "slope": c.slope, "gap": c.gap});
    if a.json {
        let metrics: Vec<_> = test
            .results
            .iter()
            .map(|r| {
                let (scale, unit, study) = dynsim_testcases::report::study_scale(&r.metric);
                json!({
                    "metric": r.metric, "within": r.separation.within, "across": r.separation.across,
                    "ratio": r.separation.ratio, "auc": r.separation.auc,
                    "study_scale": { "unit": unit, "within": r.separation.within * scale,
                        "across": r.separation.across * scale, "study": study.map(|(w, x)| [w, x]) },
                    "certified_gaps": r.gaps,
                    "matrix": r.matrix.outer_iter().map(|row| row.to_vec()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let systems: Vec<_> = test.systems.iter().map(|(g, r)| json!({"regime": g.name(), "r": r})).collect();
        let noise: Vec<_> = b
            .results
            .iter()
            .map(|r| json!({"metric": r.metric, "noise_only": course(&r.noise_only), "mixed": course(&r.mixed)}))
            .collect();
        return println(
            &json!({
                "trajectories": preset.trajectories, "steps": preset.steps, "seconds": seconds,
                "report": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                "regimes": {
                    "systems": systems, "metrics": metrics, "computed": test.computed, "cached": test.cached,
                    "seconds": seconds_a,
                },
                "noise": { "metrics": noise, "computed": b.computed, "cached": b.cached, "seconds": seconds_b },
                "motifs": {
                    "settings": motifs.settings.name(),
                    "metrics": motifs.results.iter().map(|r| json!({
                        "metric": r.metric, "by_shared": course(&r.by_shared),
                        "three_shared_with_self_pairs": r.three_shared_with_self,
                    })).collect::<Vec<_>>(),
                    "pairs_by_shared": motifs.pairs, "computed": motifs.computed, "cached": motifs.cached,
                    "seconds": seconds_m,
                },
            })
            .to_string(),
        );
    }
    println(&format!(
        "Lorenz regimes (test A): 9 systems x {} trajectories x {} steps; {} pairs x metrics computed, {} cached, {seconds_a:.1} s",
        preset.trajectories, preset.steps, test.computed, test.cached
    ))?;
    println(&format!(
        "{:<12} {:>8} {:>8} {:>7} {:>6}   {:<28} {}",
        "metric", "within", "across", "ratio", "AUC", "on the study's scale", "the study's"
    ))?;
    for r in &test.results {
        let s = r.separation;
        let (scale, unit, study) = dynsim_testcases::report::study_scale(&r.metric);
        println(&format!(
            "{:<12} {:>8.3} {:>8.3} {:>7.2} {:>6.3}   {:<28} {}",
            r.metric,
            s.within,
            s.across,
            s.ratio,
            s.auc,
            format!("{:.3} / {:.3} {unit}", s.within * scale, s.across * scale),
            study.map_or_else(|| "-".to_string(), |(w, x)| format!("{w:.3} / {x:.3}"))
        ))?;
    }
    println("(within / across: mean dissimilarity of systems in the same / different regimes, radians; AUC: chance that an across pair is the more dissimilar)")?;
    for r in test.results.iter().filter(|r| !r.gaps.is_empty()) {
        println(&dynsim_testcases::report::gap_sentence(&r.metric, &r.gaps))?;
    }
    println(&format!(
        "\nNoise and mixing over epochs (test B): 7 patterns, 42 ordered pairs x 3 epochs; {} computed, {} cached, {seconds_b:.1} s",
        b.computed, b.cached
    ))?;
    println(&format!(
        "{:<12} {:<18} {:>15} {:>15} {:>15} {:>6} {:>7}",
        "metric", "comparison", "epoch 1", "epoch 2", "epoch 3", "R2", "gap"
    ))?;
    for r in &b.results {
        for (what, c) in [("model1 vs model2", &r.noise_only), ("model2 vs model3", &r.mixed)] {
            println(&format!("{:<12} {:<18} {}", r.metric, what, course_cells(c, 3, 15)))?;
        }
    }
    println(&format!(
        "\nMotif compositions: 60 sequences of 3 of 5 motifs, 1770 pairs ({} / {} / {} sharing 1 / 2 / 3 motifs); {} computed, {} cached, {seconds_m:.1} s",
        motifs.pairs[0], motifs.pairs[1], motifs.pairs[2], motifs.computed, motifs.cached
    ))?;
    println(&format!("settings: {}", motifs.settings.name()))?;
    println(&format!(
        "{:<12} {:>17} {:>17} {:>17} {:>6} {:>7} {:>12}",
        "metric", "1 shared", "2 shared", "3 shared", "R2", "gap", "3 incl. self"
    ))?;
    for r in &motifs.results {
        println(&format!("{:<12} {} {:>12.4}", r.metric, course_cells(&r.by_shared, 4, 17), r.three_shared_with_self))?;
    }
    if let Some(d) = motifs.results.iter().find(|r| r.metric == "dsa") {
        let s = dynsim_testcases::motifs::STUDY_DSA;
        println(&format!(
            "the study's DSA: {:.2} / {:.2} / {:.2} (its 3-shared mean includes the 60 self-pairs); here {:.3} / {:.3} / {:.3}",
            s[0], s[1], s[2], d.by_shared.mean[0], d.by_shared.mean[1], d.three_shared_with_self
        ))?;
    }
    println(&format!("\n{} figures and report.md in {}; total {seconds:.1} s", files.len() - 1, a.out.display()))
}
