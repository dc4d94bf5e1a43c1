//! End-to-end tests of `dynsim compare` and `dynsim sql`: the cache across processes,
//! shards, output files, bad input, and SIGKILL during a comparison.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Instant;

use polars::prelude::*;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use super::store::{bin, ingest_data, ok, run};

/// A store holding the h5py study example: 2 groups x 3 checkpoints x 2 tasks, 4 trials x
/// 25 steps x 6 units each.
fn study(cwd: &Path) -> String {
    let store = cwd.join("s").display().to_string();
    ok(
        &["ingest", "--store", &store, "--layout", "/{group}/checkpoint_{checkpoint}/{task}", &ingest_data("study.h5")],
        cwd,
    );
    store
}

fn json(args: &[&str], cwd: &Path) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(ok(&a, cwd).trim()).expect("one JSON object")
}

fn counts(v: &Value) -> (u64, u64, u64) {
    (v["total"].as_u64().unwrap_or(0), v["cached"].as_u64().unwrap_or(0), v["computed"].as_u64().unwrap_or(0))
}

fn parts(store: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(Path::new(store).join("results"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "parquet")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn read_parquet(p: &Path) -> DataFrame {
    dynsim_query::io::read_parquet(p).expect("a complete Parquet file")
}

#[test]
fn compare_caches_across_runs_shards_and_sql_reads_the_results() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    let s = study(cwd);
    let go =
        ["compare", "--store", &s, "--left", "task = 'go'", "--metric", "cka", "--metric", "dsa:n_delays=3,rank=6"];
    assert_eq!(counts(&json(&go, cwd)), (30, 0, 30), "6 recordings: 15 pairs x 2 metrics");
    assert_eq!(counts(&json(&go, cwd)), (30, 30, 0), "a second process answers from the cache");
    // Shards of another plan: disjoint, and together the whole plan.
    let anti = |shard: Option<&str>| {
        let mut a = vec!["compare", "--store", &s, "--left", "task = 'anti'", "--metric", "cka"];
        if let Some(sh) = shard {
            a.extend(["--shard", sh]);
        }
        counts(&json(&a, cwd))
    };
    let (t0, c0, n0) = anti(Some("0/2"));
    let (t1, c1, n1) = anti(Some("1/2"));
    assert_eq!((t0 + t1, c0 + c1, n0 + n1), (15, 0, 15));
    assert_eq!(anti(None), (15, 15, 0));
    // Output files: Parquet with both sides' keys, and CSV.
    let out = cwd.join("go.parquet");
    let mut a = go.to_vec();
    a.extend(["-o", out.to_str().expect("utf8")]);
    let printed = ok(&a, cwd);
    assert!(printed.contains("wrote 30 rows") && printed.contains("30 cached, 0 computed"), "{printed}");
    let df = read_parquet(&out);
    assert_eq!(df.height(), 30);
    for c in ["left_id", "right_id", "metric", "value", "left_group", "right_checkpoint", "left_lr", "right_task"] {
        assert!(df.column(c).is_ok(), "no {c} in {:?}", df.get_column_names());
    }
    let csv = cwd.join("go.csv");
    a.pop();
    a.push(csv.to_str().expect("utf8"));
    ok(&a, cwd);
    assert_eq!(std::fs::read_to_string(&csv).expect("csv").lines().count(), 31);
    // The printed table shows keys and values.
    let table = ok(&go, cwd);
    assert!(table.contains("left_group") && table.contains("value") && table.contains("pretrained"), "{table}");
    // Matched plan: checkpoint 0 against checkpoint 200 of the same group and task.
    let m = json(
        &[
            "compare",
            "--store",
            &s,
            "--left",
            "checkpoint = 0",
            "--right",
            "checkpoint = 200",
            "--on",
            "group,task",
            "--metric",
            "procrustes",
        ],
        cwd,
    );
    assert_eq!(counts(&m), (4, 0, 4));
    // SQL over results joined with the catalogue.
    let q = "SELECT r.metric, COUNT(*) AS n FROM results r JOIN recordings l ON r.left_id = l.id \
             GROUP BY r.metric ORDER BY r.metric";
    let csvq = cwd.join("q.csv");
    ok(&["sql", "--store", &s, q, "-o", csvq.to_str().expect("utf8")], cwd);
    let lines: Vec<String> = std::fs::read_to_string(&csvq).expect("csv").lines().map(str::to_string).collect();
    assert_eq!(lines, ["metric,n", "cka,30", "dsa,15", "procrustes,4"]);
    // Every part is a complete Parquet file with the documented columns.
    for p in parts(&s) {
        let df = read_parquet(&p);
        for c in ["left_hash", "right_hash", "param_hash", "metric", "params", "value", "seconds", "extra"] {
            assert!(df.column(c).is_ok(), "{}: no {c}", p.display());
        }
    }
}

#[test]
fn bad_compare_input_fails_before_any_work() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    let s = study(cwd);
    let cases: [(&[&str], &str); 9] = [
        (&["--metric", "dsx"], "unknown metric"),
        (&["--metric", "dsa:rank=x"], "not a non-negative integer"),
        (&["--metric", "cka", "--shard", "2/2"], "shard"),
        (&["--metric", "cka", "--left", "epoch = 1"], "unknown column \"epoch\""),
        (&["--metric", "cka", "--left", "checkpoint = 7"], "matches no recording"),
        (&["--metric", "dsa:n_delays=2,rank=40"], "rank 40"),
        (&["--metric", "cka", "-o", "out.txt"], "use .parquet or .csv"),
        (&["--metric", "cka", "--on", "epoch"], "no such key"),
        (&["--metric", "cka", "--threads", "0"], "--threads 0"),
    ];
    for (extra, want) in cases {
        let mut a = vec!["compare", "--store", &s];
        a.extend(extra);
        let out = run(&a, cwd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{a:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(want), "{a:?}: {err}");
    }
    assert!(parts(&s).is_empty(), "nothing was computed");
    // Not a store.
    let out = run(&["compare", "--store", cwd.to_str().expect("utf8"), "--metric", "cka"], cwd);
    assert_eq!(out.status.code(), Some(1));
}

/// 10 recordings of 10 trials x 120 steps x 8 units (noise through a stable linear
/// system whose coupling differs between recordings).
fn slow_store(dir: &Path) -> String {
    let store = dir.join("slow").display().to_string();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut files = Vec::new();
    for i in 0..10 {
        let mut x = ndarray::Array3::<f64>::zeros((10, 120, 8));
        for k in 0..10 {
            for t in 1..120 {
                for u in 0..8 {
                    let prev = x[[k, t - 1, (u + i % 3 + 1) % 8]];
                    x[[k, t, u]] = 0.9 * prev + rng.random::<f64>() - 0.5;
                }
            }
        }
        let p = dir.join(format!("r{i}.npy"));
        dynsim_store::write_npy(&p, x.view().into_dyn()).expect("npy");
        files.push(p.display().to_string());
    }
    let mut a = vec!["ingest", "--store", &store];
    a.extend(files.iter().map(String::as_str));
    ok(&a, dir);
    store
}

fn spawn_compare(store: &str) -> Child {
    bin()
        .args([
            "compare",
            "--store",
            store,
            "--threads",
            "1",
            "--metric",
            "dsa:n_delays=4,rank=16,restarts=2",
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// Complete lines in the journals of `store`.
pub(crate) fn journal_lines(store: &str) -> usize {
    let dir = Path::new(store).join("results/.journal");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten().filter_map(|e| std::fs::read_to_string(e.path()).ok()).map(|t| t.matches('\n').count()).sum()
        })
        .unwrap_or(0)
}

#[test]
fn sigkill_during_compare_loses_only_the_pairs_in_flight() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = slow_store(tmp.path());
    let total = 45;
    // Time an uninterrupted run on a copy, to spread the kills over the whole run.
    let t0 = Instant::now();
    let reference = tmp.path().join("reference");
    std::fs::create_dir(&reference).expect("mkdir");
    let copy = |from: &Path, to: &Path| {
        let st = std::process::Command::new("cp").arg("-r").arg(from).arg(to).status().expect("cp");
        assert!(st.success());
    };
    copy(Path::new(&store), &reference.join("s"));
    let ref_store = reference.join("s").display().to_string();
    assert!(spawn_compare(&ref_store).wait().expect("wait").success());
    let full = t0.elapsed();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut have = 0;
    for round in 0..8 {
        let mut child = spawn_compare(&store);
        std::thread::sleep(full.mul_f64(0.05 + rng.random::<f64>() * 0.3));
        // Freeze the process, count what it has journaled, then kill it.
        let pid = child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-STOP", &pid]).status();
        let journaled = journal_lines(&store);
        let _ = child.kill();
        let finished = child.wait().map(|s| s.success()).unwrap_or(false);
        // The results folder reads as a table at once, and after recovery every journaled
        // pair is there.
        for p in parts(&store) {
            read_parquet(&p);
        }
        let out = ok(&["sql", "--store", &store, "SELECT COUNT(*) AS n FROM results"], tmp.path());
        let n: usize = out
            .lines()
            .filter_map(|l| l.trim_matches(|c: char| c == '│' || c == '|' || c.is_whitespace()).parse().ok())
            .next()
            .unwrap_or_else(|| panic!("no count in {out}"));
        if finished {
            assert_eq!(n, total, "round {round}: the run finished before the kill");
        } else {
            assert_eq!(n, have + journaled, "round {round}: results after the kill = before + journaled");
        }
        assert!(n <= total);
        have = n;
    }
    assert!(have > 0, "some pairs finished before the kills");
    // A final run computes exactly the rest, and the values equal the uninterrupted run's.
    let v = json(&["compare", "--store", &store, "--metric", "dsa:n_delays=4,rank=16,restarts=2"], tmp.path());
    assert_eq!(counts(&v), (total as u64, have as u64, (total - have) as u64));
    let q = "SELECT left_hash, right_hash, value FROM results ORDER BY left_hash, right_hash";
    let a = tmp.path().join("a.parquet");
    let b = tmp.path().join("b.parquet");
    ok(&["sql", "--store", &store, q, "-o", a.to_str().expect("utf8")], tmp.path());
    ok(&["sql", "--store", &ref_store, q, "-o", b.to_str().expect("utf8")], tmp.path());
    let (da, db) = (read_parquet(&a), read_parquet(&b));
    assert_eq!(da.height(), total);
    // Same pairs; values equal up to the last bits (faer's SIMD kernels may sum in another
    // order depending on how a buffer happens to be aligned, so runs agree to ~1e-15, not
    // bit for bit).
    for c in ["left_hash", "right_hash"] {
        assert!(da.column(c).expect("c").equals(db.column(c).expect("c")), "{c}");
    }
    let (va, vb) =
        (da.column("value").expect("v").f64().expect("f64"), db.column("value").expect("v").f64().expect("f64"));
    for i in 0..total {
        let (x, y) = (va.get(i).expect("x"), vb.get(i).expect("y"));
        assert!((x - y).abs() <= 1e-12 * y.abs().max(1e-3), "pair {i}: {x} vs uninterrupted {y}");
    }
}
