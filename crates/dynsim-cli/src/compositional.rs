//! `dynsim testcase compositional`: the seed study's compositional-learning test case on a
//! store: train every run of the plan (curriculum groups x configurations x seeds) into
//! `<store>/runs/<id>/`, record every training checkpoint, then compare (to master, group x
//! group, over learning) through the result cache and summarise dissimilarity to master per
//! group. A second run trains, records and computes nothing new; Ctrl-C keeps every finished
//! epoch, recording and pair.
//!
//! With `--shard i/n` the command trains and records only its share of the runs (a SLURM
//! array job) and stops; run it again without `--shard` once every shard has finished to
//! compare.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use dynsim_query::polars::prelude::*;
use dynsim_query::{CollectOptions, Preprocess};
use dynsim_store::Store;
use dynsim_testcases::compositional::report::{write_report, AnalysisOutcome, Setup};
use dynsim_testcases::compositional::{
    comparison, plan, record_runs, select, study_metrics, summarize, train_runs, unrecorded, Analysis, ArchChoice,
    Group, Init, Kind, Preset, RecordReport, Run, Shard, TrainEvent, TrainReport, STUDY_DELAY_INTERVAL, STUDY_N_DELAYS,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::output::println;
use crate::progress::{cancel_on_signal, PairBar, INTERRUPTED};
use crate::storecmd::StoreArg;

/// Arguments of `dynsim testcase compositional`.
#[derive(Debug, Args)]
pub struct CompositionalArgs {
    /// Architectures: rnn, mamba or all (default: rnn for small, all for tiny and paper). The
    /// small preset's Mamba does not fit its 20-minute budget on 2 cores: one seed of its eleven
    /// groups took 31 minutes of training here, and some networks stay under-trained (see
    /// SMALL_MAMBA in the docs of dynsim-testcases).
    #[arg(long)]
    arch: Option<String>,
    /// Size: tiny (minutes; for tests and the notebook), small (one 2-core machine) or paper
    /// (the study's grid, for a cluster).
    #[arg(long, default_value = "small")]
    preset: String,
    /// Replicates per configuration and group (default: 1 for tiny and paper, 3 for small).
    #[arg(long)]
    seeds: Option<usize>,
    /// Initial weights across the groups of a configuration and seed: independent (the
    /// study) or shared (every group starts from master's initial network).
    #[arg(long, default_value = "independent")]
    init: String,
    /// intended (stimulus period, trials x time x units), repal (the study's code: steps
    /// 0..200, time-major), whole_trial (as intended over the whole 350-step trial: fixation,
    /// stimulus, delay, decision), a comma-separated list of them, both (intended,repal) or
    /// all; several are recorded, compared and reported side by side. whole_trial stores
    /// 1.75x intended's data (about 18 MB per checkpoint at 200 trials and 64 units).
    #[arg(long, default_value = "intended")]
    analysis: String,
    /// Preprocess the over-learning comparisons as the study did: zscore_pca:K (every
    /// (trial, unit) series z-scored over time, then both networks projected onto the K
    /// leading principal axes of their stacked samples; the study used zscore_pca:20). Off by
    /// default: the joint PCA treats unit i of one network and unit i of the other as one
    /// coordinate, which only holds for shared initialisations, and the z-score removes each
    /// unit's scale, which the metrics are meant to see.
    #[arg(long)]
    preprocess: Option<String>,
    /// Test trials recorded per checkpoint (default: 16 for tiny with the intended analysis
    /// only, 200 otherwise, the study's; the repal analysis needs at least 194).
    #[arg(long)]
    trials: Option<usize>,
    /// Networks trained at once, one thread each (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Which steps: train (train and record the runs), compare (the comparisons; every run
    /// must be trained and recorded) or all (train, record, compare, statistics and report).
    #[arg(long, default_value = "all")]
    step: String,
    /// Shard i of n (0-based): with --step train (or all) train and record only this shard's
    /// runs, then stop; with --step compare compute only this shard's pairs. A SLURM array
    /// runs one shard per task; then the command without --shard collects (see
    /// crates/dynsim-cli/slurm/compositional.sh).
    #[arg(long)]
    shard: Option<String>,
    #[command(flatten)]
    store: StoreArg,
    /// Folder for the report: report.md and its SVG figures (box plots by group with the
    /// study's values, group x group matrices, over-learning curves, training accuracy).
    #[arg(long, default_value = "compositional-report")]
    out: std::path::PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run `dynsim testcase compositional`.
pub fn run(a: CompositionalArgs) -> Result<()> {
    let preset = Preset::parse(&a.preset)?;
    let arch = match a.arch.as_deref() {
        Some(text) => ArchChoice::parse(text)?,
        None if preset == Preset::Small => ArchChoice::Rnn,
        None => ArchChoice::All,
    };
    let init = Init::parse(&a.init)?;
    let analyses = Analysis::parse_list(&a.analysis)?;
    let seeds = a.seeds.unwrap_or(if preset == Preset::Small { 3 } else { 1 });
    let preprocess = a.preprocess.as_deref().map(Preprocess::parse).transpose()?;
    let repal = analyses.contains(&Analysis::Repal);
    let trials =
        a.trials.unwrap_or(if preset == Preset::Tiny && !repal { 16 } else { dynsim_nets::record::DEFAULT_TRIALS });
    if trials == 0 {
        bail!("--trials must be at least 1");
    }
    // The study's reading stores time-major arrays that DSA reads as trials x time, so its
    // delay embedding runs over the trials: 33 delays at interval 6 span 193 of them, and the
    // one-step-ahead fit needs one more.
    let span = (STUDY_N_DELAYS - 1) * STUDY_DELAY_INTERVAL + 2;
    if repal && trials < span {
        bail!(
            "--analysis {}: the study's reading embeds along the trials (time-major arrays read as trials x time), and \
             DSA's {STUDY_N_DELAYS} delays at interval {STUDY_DELAY_INTERVAL} need at least {span} of them; got --trials \
             {trials}: give --trials {span} or more (the study used 200, the default)",
            a.analysis
        );
    }
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1);
    let shard = match &a.shard {
        Some(s) => s.parse::<Shard>()?,
        None => Shard::ALL,
    };
    let (train_step, compare_step) = match a.step.as_str() {
        "train" => (true, false),
        "compare" => (false, true),
        "all" => (true, shard == Shard::ALL),
        other => bail!("--step {other}: give train, compare or all"),
    };
    let runs = plan(preset, arch, seeds, init)?;
    let every: Vec<&Run> = runs.iter().collect();
    // Training shards split the runs; comparison shards split the pairs of every run.
    let mine: Vec<&Run> = if train_step { select(&shard, &runs) } else { every.clone() };
    let (store, created) = Store::open_or_init(&a.store.store)?;
    if created {
        eprintln!("created a new store in {}", a.store.store.display());
    }
    let cancel = cancel_on_signal()?;
    let t0 = Instant::now();

    let (trained, recorded, [seconds_train, seconds_record]) = if train_step {
        train_and_record(&mine, &store, &analyses, trials, threads, &cancel)?
    } else {
        (TrainReport::default(), RecordReport::default(), [0.0, 0.0])
    };
    if train_step {
        if shard != Shard::ALL || !compare_step {
            let msg = format!(
                "{}{} runs trained ({} already finished), {} recordings added ({} already stored); \
                 once every shard has finished, run --step compare (or this command without --step and --shard)",
                if shard == Shard::ALL { String::new() } else { format!("shard {}/{}: ", shard.index, shard.count) },
                trained.trained.len(),
                trained.skipped.len(),
                recorded.added,
                recorded.present
            );
            return if a.json {
                println(&json!({"step": "train", "shard": [shard.index, shard.count], "trained": trained.trained.len(), "skipped": trained.skipped.len(), "recorded": recorded.added, "present": recorded.present}).to_string())
            } else {
                println(&msg)
            };
        }
    } else {
        for analysis in &analyses {
            let missing = unrecorded(&every, &store, *analysis, trials)?;
            if let Some(first) = missing.first() {
                bail!(
                    "{} of {} runs are not trained and recorded ({} analysis, {trials} trials), e.g. {} {} seed {} ({}): \
                     run --step train first (every shard of it)",
                    missing.len(),
                    every.len(),
                    analysis.name(),
                    first.configuration.name(),
                    first.group.name(),
                    first.seed,
                    first.dir(store.root()).display()
                );
            }
        }
    }

    // 3. Comparisons and statistics, per analysis.
    let metrics = study_metrics()?;
    let (mut computed, mut cached) = (0, 0);
    let mut outcomes = Vec::new();
    for analysis in &analyses {
        let mut frames = Vec::new();
        for (kind, name) in
            [(Kind::ToMaster, "to master"), (Kind::Matrix, "group x group"), (Kind::OverLearning, "over learning")]
        {
            let mut pb = PairBar::new(&format!("{name} ({})", analysis.name()), "planning");
            let mut c = comparison(&store, kind, &every, *analysis, trials, &metrics)?.shard(shard);
            if let (Kind::OverLearning, Some(p)) = (kind, preprocess) {
                c = c.preprocess(p);
            }
            let out = c.collect_with(CollectOptions {
                progress: Some(&mut |p| pb.on(p)),
                cancel: Some(cancel.clone()),
                ..Default::default()
            })?;
            pb.finish();
            if out.cancelled {
                eprintln!("{INTERRUPTED}");
                std::process::exit(130);
            }
            computed += out.computed;
            cached += out.cached;
            frames.push(out.frame);
        }
        let over_learning = frames.pop().unwrap_or_default();
        let matrix = frames.pop().unwrap_or_default();
        let to_master = frames.pop().unwrap_or_default();
        if shard == Shard::ALL {
            let summary = summarize(&to_master, &over_learning)?;
            outcomes.push(AnalysisOutcome { analysis: *analysis, to_master, matrix, over_learning, summary });
        }
    }
    if shard != Shard::ALL {
        let msg = format!(
            "shard {}/{} of the comparisons: {computed} pairs x metrics computed, {cached} cached; once every shard \
             has finished, run this command without --step and --shard for the statistics and the report",
            shard.index, shard.count
        );
        return if a.json {
            println(&json!({"step": "compare", "shard": [shard.index, shard.count], "computed": computed, "cached": cached}).to_string())
        } else {
            println(&msg)
        };
    }
    // 4. Report: figures and report.md.
    let setup = Setup { preset, seeds, init, trials, runs: &mine, store_root: store.root() };
    let files = write_report(&a.out, &setup, &outcomes)?;
    let seconds = t0.elapsed().as_secs_f64();

    if a.json {
        let mut per = Vec::new();
        for o in &outcomes {
            let rows = summary_rows(&o.summary.by_group)?;
            per.push(json!({
                "analysis": o.analysis.name(),
                "to_master": rows.iter().map(|r| json!({"family": r.family, "metric": r.metric, "group": r.group, "n": r.n, "mean_rad": r.mean, "sem_rad": r.sem})).collect::<Vec<_>>(),
                "by_pool": frame_json(&o.summary.by_pool)?,
                "student": frame_json(&o.summary.student)?,
                "welch": frame_json(&o.summary.welch)?,
                "separation": frame_json(&o.summary.separation)?,
                "over_learning_on_share": frame_json(&o.summary.on_share)?,
                "over_learning_on_progress": frame_json(&o.summary.on_progress)?,
            }));
        }
        return println(
            &json!({
                "preset": preset.name(), "seeds": seeds, "trials": trials,
                "runs": runs.len(), "trained": trained.trained.len(), "skipped": trained.skipped.len(),
                "recorded": recorded.added, "present": recorded.present,
                "computed": computed, "cached": cached,
                "seconds": {"train": seconds_train, "record": seconds_record, "total": seconds},
                "report": a.out.join("report.md"), "figures": files.len() - 1,
                "analyses": per,
            })
            .to_string(),
        );
    }
    println(&format!(
        "compositional ({} preset): {} runs ({} trained now, {} already finished) in {seconds_train:.0} s; \
         {} recordings added ({} already stored) in {seconds_record:.0} s; {computed} pairs x metrics computed, {cached} cached; total {seconds:.0} s",
        preset.name(),
        runs.len(),
        trained.trained.len(),
        trained.skipped.len(),
        recorded.added,
        recorded.present
    ))?;
    for o in &outcomes {
        let stats = &o.summary;
        println(&format!(
            "\n[{} analysis] dissimilarity to master (final networks; mean ± SEM over configurations and seeds; radians, and angle/(π/2) as the study reports CKA and Procrustes)",
            o.analysis.name()
        ))?;
        println(&format!("{:<8} {:<12} {:<28} {:>4} {:>18} {:>8}", "family", "metric", "group", "n", "rad", "/(π/2)"))?;
        for r in &summary_rows(&stats.by_group)? {
            let study = if r.metric == "dsa" {
                String::from("-")
            } else {
                format!("{:.3}", r.mean / std::f64::consts::FRAC_PI_2)
            };
            let sem = r.sem.map_or("-".to_string(), |s| format!("{s:.3}"));
            println(&format!(
                "{:<8} {:<12} {:<28} {:>4} {:>9.3} ± {sem:<6} {study:>8}",
                r.family, r.metric, r.group, r.n, r.mean
            ))?;
        }
        println("\nbetween pools (the six one- and two-task groups pooled as partial): Student's t-test (the study's) and Welch's, Benjamini-Hochberg q over all tests")?;
        println(&format!("{}", stats.student))?;
        println(&format!("{}", stats.welch))?;
        println("\nseparation of the groups (controls: untrained and master_frozen; Cohen's d against the pretrained groups, η² over the ten groups)")?;
        println(&format!("{}", stats.separation))?;
        println(
            "\nover learning: dissimilarity to master regressed on the share of pretrained tasks, and on progress",
        )?;
        println(&format!("{}", stats.on_share))?;
        println(&format!("{}", stats.on_progress))?;
    }
    println(&format!("\nreport: {} ({} figures)", a.out.join("report.md").display(), files.len() - 1))
}

/// Trains `runs` (one thread per network, `threads` at once) and records their checkpoints in
/// every analysis, with progress bars; exits with 130 when interrupted.
fn train_and_record(
    runs: &[&Run],
    store: &Store,
    analyses: &[Analysis],
    trials: usize,
    threads: usize,
    cancel: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(TrainReport, RecordReport, [f64; 2])> {
    // 1. Training: a bar over runs, its message the latest batch.
    let t0 = Instant::now();
    let bar = ProgressBar::new(runs.len() as u64).with_style(
        ProgressStyle::with_template("training {pos}/{len} runs {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let last_msg = Mutex::new(Instant::now());
    let trained = train_runs(runs, store.root(), threads, cancel, &|e| match e {
        TrainEvent::Skipped(_) | TrainEvent::Finished(_) => bar.inc(1),
        TrainEvent::Started(_) => {}
        TrainEvent::Batch(run, p) => {
            let mut last = last_msg.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed().as_millis() > 200 {
                *last = Instant::now();
                bar.set_message(format!(
                    "{} {} seed {}: {} epoch {}/{}",
                    run.configuration.name(),
                    run.group.name(),
                    run.seed,
                    p.phase,
                    p.epoch,
                    p.max_epochs
                ));
            }
        }
    })?;
    bar.finish_and_clear();
    let seconds_train = t0.elapsed().as_secs_f64();
    if trained.stopped || cancel.load(Ordering::SeqCst) {
        eprintln!("interrupted: every finished epoch is kept; run the same command again to resume");
        std::process::exit(130);
    }

    // 2. Recording, per analysis.
    let mut recorded = RecordReport::default();
    for analysis in analyses {
        let bar = ProgressBar::new(runs.len() as u64).with_style(
            ProgressStyle::with_template(&format!(
                "recording ({}) {{pos}}/{{len}} runs {{wide_bar}} {{msg}}",
                analysis.name()
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let mut current = String::new();
        let r = record_runs(runs, store, *analysis, trials, &mut |run, k, n| {
            if run.id() != current {
                if !current.is_empty() {
                    bar.inc(1);
                }
                current = run.id();
            }
            bar.set_message(format!("{} {} checkpoint {}/{n}", run.configuration.name(), run.group.name(), k + 1));
        })?;
        bar.finish_and_clear();
        recorded.added += r.added;
        recorded.present += r.present;
        if cancel.load(Ordering::SeqCst) {
            eprintln!("{INTERRUPTED}");
            std::process::exit(130);
        }
    }
    Ok((trained, recorded, [seconds_train, t0.elapsed().as_secs_f64() - seconds_train]))
}

/// A frame as a JSON array of row objects (numbers, text, booleans; null for missing and
/// non-finite values).
fn frame_json(df: &DataFrame) -> Result<serde_json::Value> {
    let mut rows = vec![serde_json::Map::new(); df.height()];
    for c in df.columns() {
        for (i, row) in rows.iter_mut().enumerate() {
            let v = match c.get(i)? {
                AnyValue::Null => serde_json::Value::Null,
                AnyValue::Boolean(b) => json!(b),
                AnyValue::String(t) => json!(t),
                AnyValue::StringOwned(t) => json!(t.as_str()),
                other => match other.extract::<f64>() {
                    Some(x) if x.is_finite() => json!(x),
                    _ => serde_json::Value::Null,
                },
            };
            row.insert(c.name().to_string(), v);
        }
    }
    Ok(serde_json::Value::Array(rows.into_iter().map(serde_json::Value::Object).collect()))
}

/// One row of the summary: dissimilarity to master of a group, per family and metric.
struct SummaryRow {
    family: String,
    metric: String,
    group: String,
    n: u32,
    mean: f64,
    sem: Option<f64>,
}

/// The rows of a `mean_sem_by(["family", "metric", "left_group"])` frame, by family (RNN,
/// Mamba), metric (DSA, Procrustes, CKA) and the study's group order.
fn summary_rows(df: &DataFrame) -> Result<Vec<SummaryRow>> {
    let s = |c: &str| -> Result<Vec<String>> {
        Ok(df.column(c)?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let (family, metric, group) = (s("family")?, s("metric")?, s("left_group")?);
    let n: Vec<u32> = df.column("n")?.u32()?.iter().map(|v| v.unwrap_or(0)).collect();
    let mean: Vec<f64> = df.column("mean")?.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    let sem: Vec<Option<f64>> = df.column("sem")?.f64()?.iter().collect();
    let mut rows: Vec<SummaryRow> = (0..family.len())
        .map(|i| SummaryRow {
            family: family[i].clone(),
            metric: metric[i].clone(),
            group: group[i].clone(),
            n: n[i],
            mean: mean[i],
            sem: sem[i],
        })
        .collect();
    let metric_order = |m: &str| ["dsa", "procrustes", "cka"].iter().position(|x| *x == m).unwrap_or(3);
    let family_order = |f: &str| ["rnn", "mamba"].iter().position(|x| *x == f).unwrap_or(2);
    let group_order = |g: &str| Group::parse(g).map_or(usize::MAX, |g| g as usize);
    rows.sort_by(|a, b| {
        (family_order(&a.family), metric_order(&a.metric), group_order(&a.group)).cmp(&(
            family_order(&b.family),
            metric_order(&b.metric),
            group_order(&b.group),
        ))
    });
    Ok(rows)
}
