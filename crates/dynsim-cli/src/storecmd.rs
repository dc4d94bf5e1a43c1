//! Store commands: `store init|verify|gc`, `ingest`, `ls`, `show`, `export`.
//!
//! The store is `--store DIR`, else `$DYNSIM_STORE`, else `./dynsim-store`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use dynsim_query::Selection;
use dynsim_store::keys::parse_assignment;
use dynsim_store::{Catalog, CatalogRow, IngestEvent, IngestOptions, KeyValue, Layout, Store};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::output::println;

/// Where the store is.
#[derive(Debug, Args, Clone)]
pub struct StoreArg {
    /// The store folder (default: $DYNSIM_STORE, else ./dynsim-store).
    #[arg(long, env = "DYNSIM_STORE", default_value = "dynsim-store")]
    pub store: PathBuf,
}

/// `dynsim store ...`
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Create an empty store in DIR (new or empty folder).
    Init {
        /// The folder.
        dir: PathBuf,
    },
    /// Read every recording back and check its content hash.
    Verify(StoreArg),
    /// Remove leftovers of killed ingests (staging folders, unreferenced recording files).
    Gc(StoreArg),
}

/// `dynsim ingest`
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Input files: HDF5 (.h5), Parquet (.parquet), NumPy (.npy, .npz).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    store: StoreArg,
    /// Map paths inside HDF5 files (and array names in .npz files, as '/name') to keys,
    /// e.g. '/{group}/checkpoint_{checkpoint}/{task}'; `{_}` matches and drops a part.
    /// A matched group holding one rank-3 dataset, or rank-2 datasets (trials), is one
    /// recording; a matched dataset is one recording.
    #[arg(long)]
    layout: Option<String>,
    /// A constant key for every recording, NAME=VALUE (repeatable).
    #[arg(long = "key", value_name = "NAME=VALUE")]
    keys: Vec<String>,
    /// Keep NaN / Inf values instead of rejecting the input.
    #[arg(long)]
    allow_nonfinite: bool,
    /// Do not turn HDF5 attributes into keys.
    #[arg(long)]
    no_attributes: bool,
    /// Parquet long tables: treat this float column as a key, not a unit (repeatable).
    #[arg(long = "key-column", value_name = "COLUMN")]
    key_columns: Vec<String>,
    /// Keys every recording must have, comma separated (e.g. group,checkpoint); a recording
    /// without one is an error and nothing is ingested.
    #[arg(long, value_delimiter = ',', value_name = "KEYS")]
    require_keys: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `dynsim ls`
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    store: StoreArg,
    /// SQL condition on the catalogue columns, e.g. "\"group\" = 'a' AND checkpoint >= 100".
    #[arg(long = "where", value_name = "PREDICATE")]
    predicate: Option<String>,
    /// Print JSON lines (one object per recording) instead of a table.
    #[arg(long)]
    json: bool,
}

/// `dynsim show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Recording id (or a unique prefix of at least 4 characters).
    id: String,
    #[command(flatten)]
    store: StoreArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `dynsim export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreArg,
    /// A new folder (catalog.parquet + recordings/<id>.parquet) or a file ending in
    /// .parquet (one long table: keys, trial, time, x).
    #[arg(long)]
    to: PathBuf,
    /// Export only the recordings this SQL condition keeps.
    #[arg(long = "where", value_name = "PREDICATE")]
    predicate: Option<String>,
}

fn open(s: &StoreArg) -> Result<Store> {
    Ok(Store::open(&s.store)?)
}

/// Run `dynsim store ...`.
pub fn run_store(args: StoreArgs) -> Result<()> {
    match args.command {
        StoreCommand::Init { dir } => {
            Store::init(&dir)?;
            println(&format!("created an empty store in {}", dir.display()))
        }
        StoreCommand::Verify(s) => {
            let store = open(&s)?;
            let rep = store.verify()?;
            for (id, p) in &rep.problems {
                println(&format!("{id}: {p}"))?;
            }
            if !rep.problems.is_empty() {
                bail!("{} of {} recordings are damaged (listed above)", rep.problems.len(), rep.checked);
            }
            println(&format!("{} recordings read back intact", rep.checked))
        }
        StoreCommand::Gc(s) => {
            let n = open(&s)?.gc()?;
            println(&format!("removed {n} leftover files"))
        }
    }
}

/// Run `dynsim ingest`.
pub fn run_ingest(args: IngestArgs) -> Result<()> {
    let mut keys = dynsim_store::Keys::new();
    for k in &args.keys {
        let (name, value) = parse_assignment(k).with_context(|| format!("--key {k}"))?;
        keys.insert(name, value);
    }
    let layout = args.layout.as_deref().map(Layout::parse).transpose()?;
    let opts = IngestOptions {
        layout,
        keys,
        allow_nonfinite: args.allow_nonfinite,
        no_attributes: args.no_attributes,
        key_columns: args.key_columns.clone(),
        require_keys: args.require_keys.clone(),
    };
    // A missing input is an error before anything is created (no empty store left behind).
    for f in &args.files {
        std::fs::metadata(f).map_err(dynsim_store::StoreError::io(f))?;
    }
    let (store, created) = Store::open_or_init(&args.store.store)?;
    if created && !args.json {
        eprintln!("created a new store in {}", args.store.store.display());
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t0 = Instant::now();
    let result = store.ingest(&args.files, &opts, &mut |e| match e {
        IngestEvent::Planned { values, recordings } => {
            bar.set_length(values * 4);
            bar.set_message(format!("{recordings} recordings"));
        }
        IngestEvent::Values(n) => bar.inc(n * 4),
        IngestEvent::RecordingDone { source } => bar.set_message(source),
        IngestEvent::Committing => bar.set_message("updating the catalogue"),
    });
    bar.finish_and_clear();
    let rep = result?;
    let secs = t0.elapsed().as_secs_f64();
    if args.json {
        return println(
            &json!({
                "store": args.store.store,
                "added": rep.added.iter().map(|r| &r.id).collect::<Vec<_>>(),
                "already_present": rep.already_present,
                "restored": rep.restored,
                "shared_content": rep.shared_content,
                "skipped": rep.skipped,
                "values": rep.values,
                "seconds": secs,
                "peak_rss_bytes": crate::bench_ingest::peak_rss_bytes(),
            })
            .to_string(),
        );
    }
    for s in &rep.skipped {
        eprintln!("left out: {s}");
    }
    let mb = rep.values as f64 * 4.0 / 1e6;
    println(&format!(
        "added {} recording{} ({} already in the store) to {}: {mb:.1} MB of float32 in {secs:.2} s",
        rep.added.len(),
        if rep.added.len() == 1 { "" } else { "s" },
        rep.already_present.len(),
        args.store.store.display()
    ))?;
    for r in &rep.added {
        println(&format!("  {}  {}  {}", r.id, shape_text(r), dynsim_store::store::keys_text(&r.keys)))?;
    }
    for id in &rep.restored {
        println(&format!("  {id}  restored (its file was missing)"))?;
    }
    Ok(())
}

fn shape_text(r: &CatalogRow) -> String {
    format!("{}x{}x{}", r.shape[0], r.shape[1], r.shape[2])
}

/// Run `dynsim ls`.
pub fn run_ls(args: LsArgs) -> Result<()> {
    let store = open(&args.store)?;
    let cat = store.catalog()?;
    let rows: Vec<&CatalogRow> = match &args.predicate {
        Some(p) => {
            let keep: std::collections::HashSet<String> = where_ids(&cat, p)?.into_iter().collect();
            cat.rows.iter().filter(|r| keep.contains(&r.id)).collect()
        }
        None => cat.rows.iter().collect(),
    };
    if args.json {
        for r in &rows {
            let keys: serde_json::Map<String, serde_json::Value> =
                r.keys.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            println(
                &json!({"id": r.id, "keys": keys, "shape": r.shape, "dtype": r.dtype, "hash": r.hash,
                        "file": r.file, "source": r.source})
                .to_string(),
            )?;
        }
        return Ok(());
    }
    // Key columns that any selected row has, in catalogue order.
    let cols: Vec<String> =
        cat.key_columns().into_iter().map(|(n, _)| n).filter(|n| rows.iter().any(|r| r.keys.contains_key(n))).collect();
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["id".to_string()];
    header.extend(cols.iter().cloned());
    header.extend(["shape", "dtype", "source"].map(String::from));
    table.push(header);
    for r in &rows {
        let mut line = vec![r.id.clone()];
        line.extend(cols.iter().map(|c| r.keys.get(c).map(cell).unwrap_or_default()));
        line.extend([shape_text(r), r.dtype.clone(), r.source.clone()]);
        table.push(line);
    }
    print_table(&table)?;
    println(&format!("{} of {} recordings", rows.len(), cat.rows.len()))
}

/// The ids of the recordings a `--where` condition keeps: polars SQL over the catalogue,
/// the same dialect as `compare --left` and `dynsim sql` (unknown columns are an error
/// that lists the columns).
fn where_ids(cat: &Catalog, predicate: &str) -> Result<Vec<String>> {
    Ok(Selection::from_catalog(cat)?.filter_sql(predicate).context("--where")?.ids()?)
}

fn cell(v: &KeyValue) -> String {
    let t = v.to_text();
    if t.chars().count() > 40 {
        format!("{}…", t.chars().take(39).collect::<String>())
    } else {
        t
    }
}

fn print_table(rows: &[Vec<String>]) -> Result<()> {
    let n = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..n).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        let line: Vec<String> = r.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
        println(line.join("  ").trim_end())?;
    }
    Ok(())
}

/// Run `dynsim show`.
pub fn run_show(args: ShowArgs) -> Result<()> {
    let store = open(&args.store)?;
    let rec = store.read(&args.id)?;
    let r = &rec.row;
    let x = &rec.data;
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let nonfinite = x.iter().filter(|v| !v.is_finite()).count();
    let bytes = std::fs::metadata(store.root().join(&r.file)).map(|m| m.len()).unwrap_or(0);
    if args.json {
        return println(
            &json!({"id": r.id, "keys": r.keys, "shape": r.shape, "dtype": r.dtype, "hash": r.hash,
                    "file": r.file, "file_bytes": bytes, "source": r.source,
                    "stats": {"mean": mean, "std": var.sqrt(), "min": min, "max": max, "nonfinite": nonfinite}})
            .to_string(),
        );
    }
    println(&format!("recording {}", r.id))?;
    let w = r.keys.keys().map(|k| k.len()).max().unwrap_or(0).max(6);
    println(&format!(
        "  {:<w$}  {} (trials x time x units), stored as float32, {} in the source",
        "shape",
        shape_text(r),
        r.dtype
    ))?;
    for (k, v) in &r.keys {
        println(&format!("  {k:<w$}  {v}"))?;
    }
    println(&format!("  {:<w$}  {}", "source", r.source))?;
    println(&format!("  {:<w$}  {} ({:.1} kB)", "file", r.file, bytes as f64 / 1e3))?;
    println(&format!("  {:<w$}  {}", "hash", r.hash))?;
    println(&format!(
        "  {:<w$}  mean {mean:.6}  std {:.6}  min {min}  max {max}{}",
        "values",
        var.sqrt(),
        if nonfinite > 0 { format!("  non-finite {nonfinite}") } else { String::new() }
    ))
}

/// Run `dynsim export`.
pub fn run_export(args: ExportArgs) -> Result<()> {
    let store = open(&args.store)?;
    let ids = match &args.predicate {
        Some(p) => Some(where_ids(&store.catalog()?, p)?),
        None => None,
    };
    let rep = store.export(&args.to, ids.as_deref())?;
    println(&format!("exported {} recordings to {}", rep.recordings, args.to.display()))
}
