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
use dynsim_query::CollectOptions;
use dynsim_store::Store;
use dynsim_testcases::compositional::{
    comparison, plan, record_runs, select, study_metrics, summarize, train_runs, Analysis, ArchChoice, Group, Init,
    Kind, Preset, Run, Shard, TrainEvent,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::output::println;
use crate::progress::{cancel_on_signal, PairBar, INTERRUPTED};
use crate::storecmd::StoreArg;

/// Arguments of `dynsim testcase compositional`.
#[derive(Debug, Args)]
pub struct CompositionalArgs {
    /// Architectures: rnn, mamba or all.
    #[arg(long, default_value = "all")]
    arch: String,
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
    /// intended (stimulus period, trials x time x units) or repal (the study's code: steps
    /// 0..200, time-major).
    #[arg(long, default_value = "intended")]
    analysis: String,
    /// Test trials recorded per checkpoint (default: 16 for tiny, 200 otherwise, the study's).
    #[arg(long)]
    trials: Option<usize>,
    /// Networks trained at once, one thread each (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Train and record only shard i of n (0-based) of the runs, then stop.
    #[arg(long)]
    shard: Option<String>,
    #[command(flatten)]
    store: StoreArg,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Run `dynsim testcase compositional`.
pub fn run(a: CompositionalArgs) -> Result<()> {
    let preset = Preset::parse(&a.preset)?;
    let arch = ArchChoice::parse(&a.arch)?;
    let init = Init::parse(&a.init)?;
    let analysis = Analysis::parse(&a.analysis)?;
    let seeds = a.seeds.unwrap_or(if preset == Preset::Small { 3 } else { 1 });
    let trials = a.trials.unwrap_or(if preset == Preset::Tiny { 16 } else { dynsim_nets::record::DEFAULT_TRIALS });
    if trials == 0 {
        bail!("--trials must be at least 1");
    }
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1);
    let shard = match &a.shard {
        Some(s) => s.parse::<Shard>()?,
        None => Shard::ALL,
    };
    let runs = plan(preset, arch, seeds, init)?;
    let mine: Vec<&Run> = select(&shard, &runs);
    let (store, created) = Store::open_or_init(&a.store.store)?;
    if created {
        eprintln!("created a new store in {}", a.store.store.display());
    }
    let cancel = cancel_on_signal()?;
    let t0 = Instant::now();

    // 1. Training: a bar over runs, its message the latest batch.
    let bar = ProgressBar::new(mine.len() as u64).with_style(
        ProgressStyle::with_template("training {pos}/{len} runs {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let last_msg = Mutex::new(Instant::now());
    let trained = train_runs(&mine, store.root(), threads, &cancel, &|e| match e {
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

    // 2. Recording.
    let t1 = Instant::now();
    let bar = ProgressBar::new(mine.len() as u64).with_style(
        ProgressStyle::with_template("recording {pos}/{len} runs {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut current = String::new();
    let recorded = record_runs(&mine, &store, analysis, trials, &mut |run, k, n| {
        if run.id() != current {
            if !current.is_empty() {
                bar.inc(1);
            }
            current = run.id();
        }
        bar.set_message(format!("{} {} checkpoint {}/{n}", run.configuration.name(), run.group.name(), k + 1));
    })?;
    bar.finish_and_clear();
    let seconds_record = t1.elapsed().as_secs_f64();
    if shard != Shard::ALL {
        let msg = format!(
            "shard {}/{}: {} runs trained ({} already finished), {} recordings added ({} already stored); \
             once every shard has finished, run this command without --shard to compare",
            shard.index,
            shard.count,
            trained.trained.len(),
            trained.skipped.len(),
            recorded.added,
            recorded.present
        );
        return if a.json {
            println(&json!({"shard": [shard.index, shard.count], "trained": trained.trained.len(), "skipped": trained.skipped.len(), "recorded": recorded.added, "present": recorded.present}).to_string())
        } else {
            println(&msg)
        };
    }

    // 3. Comparisons.
    let metrics = study_metrics()?;
    let mut outcomes = Vec::new();
    for (kind, name) in
        [(Kind::ToMaster, "to master"), (Kind::Matrix, "group x group"), (Kind::OverLearning, "over learning")]
    {
        let mut pb = PairBar::new(name, "planning");
        let c = comparison(&store, kind, &mine, analysis, trials, &metrics)?;
        let out = c.collect_with(CollectOptions { progress: Some(&mut |p| pb.on(p)), cancel: Some(cancel.clone()) })?;
        pb.finish();
        if out.cancelled {
            eprintln!("{INTERRUPTED}");
            std::process::exit(130);
        }
        outcomes.push((name, out));
    }
    let seconds = t0.elapsed().as_secs_f64();

    // 4. Summary: dissimilarity to master per metric and group (master itself left out).
    let stats = summarize(&outcomes[0].1.frame, &outcomes[2].1.frame)?;
    let summary = &stats.by_group;
    let computed: usize = outcomes.iter().map(|(_, o)| o.computed).sum();
    let cached: usize = outcomes.iter().map(|(_, o)| o.cached).sum();
    let rows = summary_rows(summary)?;
    if a.json {
        return println(
            &json!({
                "preset": preset.name(), "seeds": seeds, "analysis": analysis.name(), "trials": trials,
                "runs": runs.len(), "trained": trained.trained.len(), "skipped": trained.skipped.len(),
                "recorded": recorded.added, "present": recorded.present,
                "computed": computed, "cached": cached,
                "seconds": {"train": seconds_train, "record": seconds_record, "total": seconds},
                "to_master": rows.iter().map(|r| json!({"model": r.model, "metric": r.metric, "group": r.group, "n": r.n, "mean_rad": r.mean, "sem_rad": r.sem})).collect::<Vec<_>>(),
                "by_pool": frame_json(&stats.by_pool)?,
                "student": frame_json(&stats.student)?,
                "welch": frame_json(&stats.welch)?,
                "over_learning_on_share": frame_json(&stats.on_share)?,
                "over_learning_on_progress": frame_json(&stats.on_progress)?,
            })
            .to_string(),
        );
    }
    println(&format!(
        "compositional ({} preset, {} analysis): {} runs ({} trained now, {} already finished) in {seconds_train:.0} s; \
         {} recordings added ({} already stored) in {seconds_record:.0} s; {computed} pairs x metrics computed, {cached} cached; total {seconds:.0} s",
        preset.name(),
        analysis.name(),
        runs.len(),
        trained.trained.len(),
        trained.skipped.len(),
        recorded.added,
        recorded.present
    ))?;
    println("\ndissimilarity to master (final networks; mean ± SEM over configurations and seeds; radians, and angle/(π/2) as the study reports CKA and Procrustes)")?;
    println(&format!("{:<10} {:<12} {:<28} {:>4} {:>18} {:>8}", "model", "metric", "group", "n", "rad", "/(π/2)"))?;
    for r in &rows {
        let study =
            if r.metric == "dsa" { String::from("-") } else { format!("{:.3}", r.mean / std::f64::consts::FRAC_PI_2) };
        let sem = r.sem.map_or("-".to_string(), |s| format!("{s:.3}"));
        println(&format!(
            "{:<10} {:<12} {:<28} {:>4} {:>9.3} ± {sem:<6} {study:>8}",
            r.model, r.metric, r.group, r.n, r.mean
        ))?;
    }
    println("\nbetween pools (the six one- and two-task groups pooled as partial): Student's t-test (the study's) and Welch's, Benjamini-Hochberg q over all tests")?;
    println(&format!("{}", stats.student))?;
    println(&format!("{}", stats.welch))?;
    println("\nover learning: dissimilarity to master regressed on the share of pretrained tasks, and on progress")?;
    println(&format!("{}", stats.on_share))?;
    println(&format!("{}", stats.on_progress))?;
    Ok(())
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

/// One row of the summary: dissimilarity to master of a group, per architecture and metric.
struct SummaryRow {
    model: String,
    metric: String,
    group: String,
    n: u32,
    mean: f64,
    sem: Option<f64>,
}

/// The rows of a `mean_sem_by(["left_model", "metric", "left_group"])` frame, by model,
/// metric (DSA, Procrustes, CKA) and the study's group order.
fn summary_rows(df: &DataFrame) -> Result<Vec<SummaryRow>> {
    let s = |c: &str| -> Result<Vec<String>> {
        Ok(df.column(c)?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let (model, metric, group) = (s("left_model")?, s("metric")?, s("left_group")?);
    let n: Vec<u32> = df.column("n")?.u32()?.iter().map(|v| v.unwrap_or(0)).collect();
    let mean: Vec<f64> = df.column("mean")?.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    let sem: Vec<Option<f64>> = df.column("sem")?.f64()?.iter().collect();
    let mut rows: Vec<SummaryRow> = (0..model.len())
        .map(|i| SummaryRow {
            model: model[i].clone(),
            metric: metric[i].clone(),
            group: group[i].clone(),
            n: n[i],
            mean: mean[i],
            sem: sem[i],
        })
        .collect();
    let metric_order = |m: &str| ["dsa", "procrustes", "cka"].iter().position(|x| *x == m).unwrap_or(3);
    let group_order = |g: &str| Group::parse(g).map_or(usize::MAX, |g| g as usize);
    rows.sort_by(|a, b| {
        (a.model.as_str(), metric_order(&a.metric), group_order(&a.group)).cmp(&(
            b.model.as_str(),
            metric_order(&b.metric),
            group_order(&b.group),
        ))
    });
    Ok(rows)
}
