//! `dynsim bench ingest`: ingest throughput and peak memory on ~500 MB inputs, against the
//! Python route (h5py / pyarrow read + pyarrow write).
//!
//! Inputs are made once by `data/bench/make_ingest_bench.py` (h5py, pyarrow) into `--dir`:
//! an uncompressed HDF5 file, a gzip + shuffle chunked HDF5 file and a Parquet long table,
//! each holding 5 recordings of 100 x 1000 x 256 float32 (102 MB each, 512 MB in all).
//! Each ingest runs in its own `dynsim ingest --json` process into a fresh store, so its
//! peak resident memory (VmHWM) is its own; the Python route runs
//! `data/bench/python_route.py` on the same file.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::output::println;

fn script(name: &str) -> PathBuf {
    // at run time when run through cargo (the source may have moved since the build)
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()))
        .join("../../data/bench")
        .join(name)
}

fn run_json(cmd: &mut Command, what: &str) -> Result<Value> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{what} printed no JSON: {text}"))
}

/// Run the ingest benchmark; `dir` holds (or receives) the inputs.
pub fn run(dir: &Path, json_out: bool) -> Result<()> {
    let inputs = ["plain.h5", "gzip.h5", "table.parquet"];
    if !inputs.iter().all(|f| dir.join(f).exists()) {
        eprintln!("making the inputs in {} (once; needs numpy, scipy, h5py, pyarrow)", dir.display());
        let st = Command::new("python3").arg(script("make_ingest_bench.py")).arg(dir).status()?;
        if !st.success() {
            bail!(
                "could not make the benchmark inputs; install the Python packages with \
                 `python3 -m pip install numpy scipy h5py pyarrow` and run again"
            );
        }
    }
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for f in inputs {
        let input = dir.join(f);
        let file_bytes = std::fs::metadata(&input)?.len();
        let store = dir.join(format!("store-{f}"));
        let _ = std::fs::remove_dir_all(&store);
        let ours = run_json(
            Command::new(&exe).arg("ingest").arg(&input).arg("--store").arg(&store).arg("--json"),
            &format!("dynsim ingest {f}"),
        )?;
        let py_out = dir.join(format!("python-{f}"));
        let _ = std::fs::remove_dir_all(&py_out);
        let py = run_json(
            Command::new("python3").arg(script("python_route.py")).arg(&input).arg(&py_out),
            &format!("python route on {f}"),
        )?;
        let _ = std::fs::remove_dir_all(&py_out);
        let store_bytes = dir_size(&store);
        let _ = std::fs::remove_dir_all(&store);
        let mb = ours["values"].as_f64().unwrap_or(0.0) * 4.0 / 1e6;
        let (s, ps) = (ours["seconds"].as_f64().unwrap_or(f64::NAN), py["seconds"].as_f64().unwrap_or(f64::NAN));
        rows.push(json!({
            "input": f, "file_mb": file_bytes as f64 / 1e6, "float32_mb": mb,
            "dynsim_seconds": s, "dynsim_mb_per_s": mb / s,
            "dynsim_peak_rss_mb": ours["peak_rss_bytes"].as_f64().unwrap_or(f64::NAN) / 1e6,
            "python_seconds": ps, "python_mb_per_s": mb / ps,
            "python_peak_rss_mb": py["peak_rss_bytes"].as_f64().unwrap_or(f64::NAN) / 1e6,
            "store_mb": store_bytes as f64 / 1e6,
            "largest_recording_mb": 102.4,
        }));
    }
    let catalog = catalog_scale()?;
    if json_out {
        return println(&json!({ "ingest": rows, "catalog": catalog }).to_string());
    }
    println("input           file MB  f32 MB   dynsim s  MB/s   peak MB | python s  MB/s   peak MB | store MB")?;
    for r in &rows {
        println(&format!(
            "{:<15} {:>7.0} {:>7.0} {:>9.2} {:>6.0} {:>8.0} | {:>8.2} {:>6.0} {:>8.0} | {:>7.0}",
            r["input"].as_str().unwrap_or(""),
            r["file_mb"].as_f64().unwrap_or(0.0),
            r["float32_mb"].as_f64().unwrap_or(0.0),
            r["dynsim_seconds"].as_f64().unwrap_or(0.0),
            r["dynsim_mb_per_s"].as_f64().unwrap_or(0.0),
            r["dynsim_peak_rss_mb"].as_f64().unwrap_or(0.0),
            r["python_seconds"].as_f64().unwrap_or(0.0),
            r["python_mb_per_s"].as_f64().unwrap_or(0.0),
            r["python_peak_rss_mb"].as_f64().unwrap_or(0.0),
            r["store_mb"].as_f64().unwrap_or(0.0),
        ))?;
    }
    Ok(())
}

/// A catalogue the size of a normal study (11 groups x 64 configurations x 50 checkpoints
/// x 4 tasks = 140,800 recordings): time to write it, read it, and filter it.
fn catalog_scale() -> Result<Value> {
    use dynsim_store::{Catalog, CatalogRow, KeyValue, Keys};
    let mut cat = Catalog::default();
    for g in 0..11 {
        for c in 0..64 {
            for k in 0..50i64 {
                for t in ["go", "anti", "dm1", "dm2"] {
                    let mut keys = Keys::new();
                    keys.insert("group".into(), KeyValue::Str(format!("group_{g}")));
                    keys.insert("config".into(), KeyValue::Int(c));
                    keys.insert("checkpoint".into(), KeyValue::Int(k * 100));
                    keys.insert("progress".into(), KeyValue::Float(k as f64 / 49.0));
                    keys.insert("task".into(), KeyValue::Str(t.into()));
                    keys.insert("lr".into(), KeyValue::Float(1e-3 * (1 + c % 4) as f64));
                    let hash = format!("{:064x}", cat.rows.len() * 7919);
                    cat.rows.push(CatalogRow {
                        id: dynsim_store::catalog::recording_id(&hash, &keys),
                        file: format!("recordings/{}/{hash}.parquet", &hash[..2]),
                        keys,
                        shape: [200, 200, 20],
                        dtype: "float32".into(),
                        hash,
                        source: format!("run_{g}_{c}.h5:/ckpt_{k}/{t}"),
                        ingested_at: 0,
                    });
                }
            }
        }
    }
    let dir = tempfile_dir()?;
    let p = dir.join("catalog.parquet");
    let t = std::time::Instant::now();
    cat.write_parquet(&p)?;
    let write_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let back = Catalog::read_parquet(&p)?;
    let read_s = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let hits = dynsim_query::Selection::from_catalog(&back)?
        .filter_sql("group = 'group_3' AND checkpoint >= 2500 AND task IN ('go', 'anti')")?
        .ids()?
        .len();
    let filter_s = t.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&p)?.len();
    let _ = std::fs::remove_dir_all(&dir);
    if back != cat {
        bail!("the catalogue did not read back equal");
    }
    println(&format!(
        "catalogue of {} rows: {:.1} MB, write {write_s:.2} s, read {read_s:.2} s, --where filter {filter_s:.3} s ({hits} rows)",
        cat.rows.len(),
        bytes as f64 / 1e6
    ))?;
    Ok(json!({"rows": cat.rows.len(), "mb": bytes as f64 / 1e6, "write_s": write_s, "read_s": read_s,
              "filter_s": filter_s, "hits": hits}))
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("dynsim-bench-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            n += if path.is_dir() { dir_size(&path) } else { e.metadata().map(|m| m.len()).unwrap_or(0) };
        }
    }
    n
}

/// Peak resident memory of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
