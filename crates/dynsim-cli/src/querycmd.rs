//! Query commands: `dynsim compare` (cached, sharded comparisons) and `dynsim sql`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use dynsim_query::io::{write_frame, FrameFormat};
use dynsim_query::{CollectOptions, Comparison, MetricSpec, Selection, Shard};
use dynsim_store::Store;
use polars::prelude::*;
use serde_json::json;

use crate::output::println;
use crate::progress::{cancel_on_signal, PairBar, INTERRUPTED};
use crate::storecmd::StoreArg;

/// `dynsim compare`
#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The left recordings: a SQL condition on the catalogue columns, e.g.
    /// "group = 'pretrained' AND progress >= 0.5" (default: every recording). Without
    /// --right, every pair within this selection is compared.
    #[arg(long, value_name = "SQL")]
    left: Option<String>,
    /// The right recordings: every left recording is compared with every right one.
    #[arg(long, value_name = "SQL")]
    right: Option<String>,
    /// Pair only recordings whose values of these keys are equal, e.g. --on config,task.
    #[arg(long, value_delimiter = ',', value_name = "KEY,...")]
    on: Vec<String>,
    /// A metric with parameters (repeatable): dsa[:n_delays=33,delay_interval=6,rank=50,...],
    /// procrustes[:alpha=1,score=angular], cka[:kernel=linear|rbf,debiased=true], rsa, cca,
    /// svcca, pwcca (`dynsim metric NAME --help` lists each one's parameters).
    #[arg(long = "metric", required = true, value_name = "NAME[:K=V,...]")]
    metrics: Vec<String>,
    /// Do only shard I of N (0 <= I < N), e.g. --shard $SLURM_ARRAY_TASK_ID/64. The N shards
    /// together cover every pair exactly once and write into the same results/ folder.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Write the result table to a file (.parquet or .csv) instead of printing it.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Threads for the pairs (default: all cores, or $RAYON_NUM_THREADS).
    #[arg(long)]
    threads: Option<usize>,
    /// Print a JSON summary (counts, seconds, output file) instead of the table.
    #[arg(long)]
    json: bool,
}

/// `dynsim sql`
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT \"group\", COUNT(*) FROM recordings GROUP BY \"group\"".
    /// Tables: recordings (the catalogue) and results (every cached metric result: left_hash,
    /// right_hash, param_hash, metric, params, value, seconds, extra, left_id, right_id,
    /// dynsim_version, computed_at).
    query: String,
    #[command(flatten)]
    store: StoreArg,
    /// Write the result to a file instead of printing it (.parquet or .csv).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Make polars print whole tables (up to 200 rows) unless the user set its variables.
fn table_format() {
    for (var, value) in [
        ("POLARS_FMT_MAX_ROWS", "200"),
        ("POLARS_FMT_MAX_COLS", "40"),
        ("POLARS_FMT_STR_LEN", "60"),
        ("POLARS_TABLE_WIDTH", "400"),
    ] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value);
        }
    }
}

/// The result table for a terminal: ids, metric, value, cached, and the key columns that
/// vary; key columns with one value on every row are named once above the table instead.
fn compact_table(df: &DataFrame) -> Result<String> {
    let mut keep: Vec<PlSmallStr> = Vec::new();
    let mut constant: Vec<String> = Vec::new();
    for c in df.columns() {
        let name = c.name().as_str();
        if matches!(name, "params" | "param_hash" | "extra" | "seconds") {
            continue;
        }
        // DSA's certified bound: shown when some row has one
        if matches!(name, "lower" | "gap") && c.null_count() == df.height() {
            continue;
        }
        let is_key = name.starts_with("left_") || name.starts_with("right_");
        if is_key && !name.ends_with("_id") && df.height() > 1 && c.n_unique()? == 1 {
            let v = c.get(0).map(|v| v.to_string()).unwrap_or_default();
            constant.push(format!("{name}={}", v.trim_matches('"')));
            continue;
        }
        keep.push(c.name().clone());
    }
    let mut text = String::new();
    if !constant.is_empty() {
        text.push_str(&format!("same on every row: {}\n", constant.join(", ")));
    }
    text.push_str(&format!("{}", df.select(keep)?));
    Ok(text)
}

/// Run `dynsim sql`.
pub fn run_sql(args: SqlArgs) -> Result<()> {
    let store = Store::open(&args.store.store)?;
    let df = dynsim_query::sql(&store, &args.query)?;
    match args.output {
        Some(out) => {
            write_frame(&df, &out)?;
            println(&format!("wrote {} rows to {}", df.height(), out.display()))
        }
        None => {
            table_format();
            println(&format!("{df}"))?;
            println(&format!("{} rows", df.height()))
        }
    }
}

/// Run `dynsim compare`.
pub fn run_compare(args: CompareArgs) -> Result<()> {
    // Everything is validated before any work: metrics, shard, output, store, selections.
    let metrics = args.metrics.iter().map(|m| MetricSpec::parse(m)).collect::<Result<Vec<_>, _>>()?;
    let shard = match &args.shard {
        Some(s) => s.parse::<Shard>()?,
        None => Shard::ALL,
    };
    if let Some(out) = &args.output {
        FrameFormat::of(out)?;
    }
    if let Some(n) = args.threads {
        if n == 0 {
            bail!("--threads 0: give at least 1 (or leave it out to use every core)");
        }
        // Only fails when the global pool already exists, which it does not yet here.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let store = Store::open(&args.store.store)?;
    let all = Selection::all(&store)?;
    let select = |pred: &Option<String>, side: &str| -> Result<Selection> {
        match pred {
            Some(p) => all.clone().filter_sql(p).with_context(|| format!("--{side}")),
            None => Ok(all.clone()),
        }
    };
    let left = select(&args.left, "left")?;
    let mut cmp = match &args.right {
        Some(_) => Comparison::bipartite(&store, left, select(&args.right, "right")?),
        None => Comparison::all_pairs(&store, left),
    }
    .on(args.on.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
    .shard(shard);
    for m in metrics {
        cmp = cmp.metric(m);
    }

    let cancel = cancel_on_signal()?;
    let mut bar = PairBar::new("", "planning");
    let t0 = Instant::now();
    let outcome = cmp.collect_with(CollectOptions {
        progress: Some(&mut |p| bar.on(p)),
        cancel: Some(cancel),
        ..Default::default()
    });
    bar.finish();
    let outcome = outcome?;
    let seconds = t0.elapsed().as_secs_f64();
    let summary = format!(
        "{} tasks (pairs x metrics{}): {} cached, {} computed{}, {} recordings prepared up front (DMD fits, RDMs), {seconds:.1} s; results cached in {}",
        outcome.total,
        if shard.count > 1 { format!(", shard {shard}") } else { String::new() },
        outcome.cached,
        outcome.computed,
        if outcome.cancelled {
            format!(", {} left undone", outcome.total - outcome.cached - outcome.computed)
        } else {
            String::new()
        },
        outcome.fits,
        store.results_dir().display(),
    );
    if let Some(out) = &args.output {
        write_frame(&outcome.frame, out)?;
    }
    if args.json {
        println(&serde_json::to_string(&json!({
            "total": outcome.total, "cached": outcome.cached, "computed": outcome.computed,
            "fits": outcome.fits, "cancelled": outcome.cancelled, "seconds": seconds,
            "rows": outcome.frame.height(), "shard": shard.to_string(),
            "output": args.output.as_ref().map(|p| p.display().to_string()),
        }))?)?;
    } else {
        if args.output.is_none() {
            table_format();
            println(&compact_table(&outcome.frame)?)?;
        } else if let Some(out) = &args.output {
            println(&format!("wrote {} rows to {}", outcome.frame.height(), out.display()))?;
        }
        println(&summary)?;
    }
    if outcome.cancelled {
        eprintln!("{INTERRUPTED}");
        std::process::exit(130);
    }
    Ok(())
}
