//! `dynsim bench compare`: an all-pairs DSA comparison through the store and the result
//! cache, cold (every pair computed) and warm (every pair from the cache).
//!
//! The store (`<dir>/compare-store`) holds `--recordings` seeded leaky-tanh RNN recordings
//! (see [`crate::bench::rnn_recordings`]) of `--trials x --time x --units`; it is made once
//! and reused. Before the cold run the store's `results/` folder is emptied.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use dynsim_query::{CollectOptions, Comparison, MetricSpec, Selection};
use dynsim_store::{IngestOptions, KeyValue, Store};
use serde_json::json;

use crate::bench::{rnn_recordings, BenchArgs};
use crate::output::println;

/// Run the benchmark.
pub fn run(a: &BenchArgs, recordings: usize) -> Result<()> {
    let root = a.dir.join("compare-store");
    let store = prepare(&root, a, recordings)?;
    let spec =
        MetricSpec::parse(&format!("dsa:n_delays={},delay_interval={},rank={}", a.n_delays, a.delay_interval, a.rank))?;
    let results = store.results_dir();
    if results.exists() {
        std::fs::remove_dir_all(&results).with_context(|| format!("emptying {}", results.display()))?;
    }
    let run = || -> Result<(f64, dynsim_query::Outcome)> {
        let t = Instant::now();
        let out = Comparison::all_pairs(&store, Selection::all(&store)?)
            .metric(spec.clone())
            .collect_with(CollectOptions::default())?;
        Ok((t.elapsed().as_secs_f64(), out))
    };
    let (cold_s, cold) = run()?;
    let (warm_s, warm) = run()?;
    let pairs = recordings * (recordings - 1) / 2;
    let threads = rayon::current_num_threads();
    let v = json!({
        "recordings": recordings, "shape": [a.trials, a.time, a.units], "metric": spec.label(),
        "pairs": pairs, "threads": threads,
        "cold": { "seconds": cold_s, "computed": cold.computed, "cached": cold.cached, "fits": cold.fits,
                  "ms_per_pair_per_thread": 1e3 * cold_s * threads as f64 / pairs as f64 },
        "warm": { "seconds": warm_s, "computed": warm.computed, "cached": warm.cached },
    });
    if a.json {
        return println(&v.to_string());
    }
    println(&format!(
        "all-pairs {} over {} recordings of {}x{}x{} ({pairs} pairs, {threads} threads)\n\
         cold: {cold_s:.1} s ({} computed, {} DMD fits; {:.1} ms per pair per thread)\n\
         warm: {warm_s:.3} s ({} from the cache, {} computed)",
        spec.label(),
        recordings,
        a.trials,
        a.time,
        a.units,
        cold.computed,
        cold.fits,
        1e3 * cold_s * threads as f64 / pairs as f64,
        warm.cached,
        warm.computed
    ))
}

/// Open the benchmark store, or make it: generated recordings through `.npy` files.
fn prepare(root: &Path, a: &BenchArgs, recordings: usize) -> Result<Store> {
    if let Ok(store) = Store::open(root) {
        let cat = store.catalog()?;
        let want = [a.trials, a.time, a.units];
        let seed = KeyValue::Int(a.seed as i64);
        if cat.rows.len() == recordings && cat.rows.iter().all(|r| r.shape == want && r.keys.get("seed") == Some(&seed))
        {
            return Ok(store);
        }
        std::fs::remove_dir_all(root).with_context(|| format!("replacing {}", root.display()))?;
    }
    eprintln!("making {} recordings in {} (once)", recordings, root.display());
    let store = Store::init(root)?;
    let tmp = tempfile::tempdir()?;
    let recs = rnn_recordings(recordings, a.trials, a.time, a.units, a.seed);
    let mut files = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        let p = tmp.path().join(format!("net_{i:03}.npy"));
        dynsim_store::write_npy(&p, r.view().into_dyn())?;
        files.push(p);
    }
    let mut opts = IngestOptions::default();
    opts.keys.insert("seed".into(), KeyValue::Int(a.seed as i64));
    opts.layout = None;
    store.ingest(&files, &opts, &mut |_| {})?;
    Ok(store)
}
