//! End-to-end tests of the store commands: ingest / ls / show / export, the Parquet round
//! trip through pyarrow, SIGKILL during ingest, concurrent ingests, bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dynsim_store::{Catalog, Store};
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use super::root;

pub(crate) fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dynsim"));
    c.env_remove("DYNSIM_STORE");
    c
}

pub(crate) fn run(args: &[&str], cwd: &Path) -> Output {
    bin().args(args).current_dir(cwd).output().expect("run dynsim")
}

pub(crate) fn ok(args: &[&str], cwd: &Path) -> String {
    let out = run(args, cwd);
    assert!(out.status.success(), "dynsim {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn ingest_data(name: &str) -> String {
    root().join("data/ingest").join(name).display().to_string()
}

fn hdf5_data(name: &str) -> String {
    root().join("data/hdf5").join(name).display().to_string()
}

/// Every file under `dir` except the lock file: relative path -> bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut s = dynsim_store::fsutil::snapshot(dir).expect("snapshot");
    s.remove(".lock");
    s
}

/// A python3 that can import pyarrow and numpy (see [`python_with`]).
fn python() -> Command {
    python_with(&["pyarrow", "numpy"])
}

/// A python3 that can import `modules` (pip packages of the same names): installs the
/// missing ones with pip into a folder under the target directory when the system python
/// lacks them (so that `cargo test` works on a fresh machine with only python3).
pub(crate) fn python_with(modules: &[&str]) -> Command {
    let import = format!("import {}", modules.join(", "));
    let probe = |pp: Option<&Path>| {
        let mut c = Command::new("python3");
        c.args(["-c", &import]);
        if let Some(p) = pp {
            c.env("PYTHONPATH", p);
        }
        c.output().map(|o| o.status.success()).unwrap_or(false)
    };
    if probe(None) {
        return Command::new("python3");
    }
    // One folder per set of modules, so that tests running at once never pip into one folder.
    let folder = format!("pydeps-{}", modules.join("-"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target").join(&folder);
    let dir = std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join(&folder)).unwrap_or(dir);
    if !probe(Some(&dir)) {
        let st = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&dir)
            .args(modules)
            .status()
            .expect("python3 -m pip");
        assert!(st.success(), "could not install {modules:?} with pip into {}", dir.display());
    }
    let mut c = Command::new("python3");
    c.env("PYTHONPATH", &dir);
    c
}

#[test]
fn ingest_ls_show_export_and_pyarrow_reads_the_same_numbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    // The default store is ./dynsim-store, created by the first ingest.
    let out = ok(
        &[
            "ingest",
            &ingest_data("study.h5"),
            "--layout",
            "/{group}/checkpoint_{checkpoint}/{task}",
            "--key",
            "model=rnn",
        ],
        cwd,
    );
    assert!(out.contains("added 12 recordings"), "{out}");
    assert!(cwd.join("dynsim-store/store.json").exists());
    let ls = ok(&["ls", "--where", "task = 'go' AND checkpoint >= 100"], cwd);
    assert!(ls.contains("4 of 12 recordings"), "{ls}");
    let header = ls.lines().next().expect("header");
    for col in ["id", "model", "group", "checkpoint", "progress", "task", "seed", "lr", "shape", "source"] {
        assert!(header.split_whitespace().any(|c| c == col), "ls header lacks {col}: {header}");
    }
    // SQL over the catalogue: printed, and written as CSV and Parquet.
    let printed =
        ok(&["sql", "SELECT \"group\", COUNT(*) AS n FROM recordings GROUP BY \"group\" ORDER BY \"group\""], cwd);
    assert!(printed.contains("pretrained") && printed.contains("scratch") && printed.contains("2 rows"), "{printed}");
    ok(&["sql", "SELECT task, COUNT(*) AS n FROM recordings GROUP BY task ORDER BY task", "-o", "tasks.csv"], cwd);
    let csv = std::fs::read_to_string(cwd.join("tasks.csv")).expect("csv");
    assert_eq!(csv.lines().collect::<Vec<_>>(), ["task,n", "anti,6", "go,6"]);
    let err = run(&["sql", "SELECT epoch FROM recordings"], cwd);
    assert_eq!(err.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&err.stderr).contains("epoch"));
    // DYNSIM_STORE points elsewhere: an empty store there.
    let other = cwd.join("other");
    ok(&["store", "init", other.to_str().expect("utf8")], cwd);
    let out = bin().args(["ls"]).env("DYNSIM_STORE", &other).current_dir(cwd).output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 of 0 recordings"));
    // show by prefix, as JSON: stats agree with the data.
    let first: Value = serde_json::from_str(ok(&["ls", "--json"], cwd).lines().next().expect("a row")).expect("json");
    let id = first["id"].as_str().expect("id").to_string();
    let show: Value = serde_json::from_str(&ok(&["show", &id[..6], "--json"], cwd)).expect("json");
    let store = Store::open(cwd.join("dynsim-store")).expect("open");
    let rec = store.read(&id).expect("read");
    let mean = rec.data.iter().map(|&v| v as f64).sum::<f64>() / rec.data.len() as f64;
    assert!((show["stats"]["mean"].as_f64().expect("mean") - mean).abs() < 1e-12);
    assert_eq!(show["shape"], serde_json::json!([4, 25, 6]));
    // Export as a folder and as one long table, then read both with pyarrow.
    ok(&["export", "--to", "exported"], cwd);
    ok(&["export", "--to", "long.parquet", "--where", "\"group\" = 'scratch'"], cwd);
    let script = r#"
import sys, json, numpy as np, pyarrow.parquet as pq
out = sys.argv[1]
cat = pq.read_table("exported/catalog.parquet").to_pylist()
for row in cat:
    t = pq.read_table("exported/" + row["file"])
    x = np.asarray(t.column("x").combine_chunks().flatten(), dtype=np.float32)
    x = x.reshape(row["n_trials"], row["n_time"], row["n_units"])
    assert list(t.column("trial").to_pylist()[:2]) == [0, 0]
    np.save(f"{out}/folder_{row['id']}.npy", x)
t = pq.read_table("long.parquet")
ids = t.column("id").to_pylist()
for rid in sorted(set(ids)):
    rows = [i for i, v in enumerate(ids) if v == rid]
    sub = t.take(rows)
    n_tr, n_t, n_u = sub.column("n_trials")[0].as_py(), sub.column("n_time")[0].as_py(), sub.column("n_units")[0].as_py()
    order = np.lexsort((np.asarray(sub.column("time")), np.asarray(sub.column("trial"))))
    x = np.stack([np.asarray(v, dtype=np.float32) for v in sub.column("x").to_pylist()])[order]
    np.save(f"{out}/long_{rid}.npy", x.reshape(n_tr, n_t, n_u))
print(json.dumps({"catalog": len(cat), "long": len(set(ids))}))
"#;
    let npys = cwd.join("npys");
    std::fs::create_dir_all(&npys).expect("mkdir");
    let out = python().args(["-c", script]).arg(&npys).current_dir(cwd).output().expect("python3");
    assert!(out.status.success(), "pyarrow script failed: {}", String::from_utf8_lossy(&out.stderr));
    let counts: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(counts["catalog"], 12);
    assert_eq!(counts["long"], 6);
    let cat = store.catalog().expect("catalog");
    let mut compared = 0;
    for row in &cat.rows {
        let want = store.read_row(row, true).expect("read").data;
        for prefix in ["folder", "long"] {
            let p = npys.join(format!("{prefix}_{}.npy", row.id));
            if !p.exists() {
                assert!(prefix == "long" && row.keys["group"].to_text() != "scratch", "{p:?} missing");
                continue;
            }
            let got = match dynsim_store::read_npy(&p).expect("npy") {
                dynsim_store::NpyArray::F32(a) => a,
                other => panic!("expected float32, got {}", other.dtype()),
            };
            assert_eq!(got.shape(), want.shape());
            assert!(got.iter().zip(want.iter()).all(|(a, b)| a.to_bits() == b.to_bits()), "{prefix} {}", row.id);
            compared += 1;
        }
    }
    assert_eq!(compared, 18, "12 folder + 6 long-table recordings compared bit for bit");
}

#[test]
fn bad_input_fails_cleanly_and_leaves_the_store_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cwd = tmp.path();
    ok(&["ingest", &hdf5_data("a_default.h5"), "--store", "s"], cwd);
    let before = snapshot(&cwd.join("s"));
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec![ingest_data("nonfinite.h5")], vec!["nonfinite.h5", "/acts", "--allow-nonfinite"]),
        (vec![ingest_data("ragged_table.parquet")], vec!["ragged_table.parquet", "ragged trials"]),
        (vec![hdf5_data("i1_truncated_half.h5")], vec!["i1_truncated_half.h5"]),
        (vec![hdf5_data("i7_empty_file.h5")], vec!["i7_empty_file.h5", "empty"]),
        (vec![hdf5_data("a_default.h5"), "--layout".into(), "/{a}/{b}/{c}/{d}".into()], vec!["matches nothing"]),
        (vec![hdf5_data("a_default.h5"), "--layout".into(), "{a}".into()], vec!["must start with '/'"]),
        (vec![hdf5_data("a_default.h5"), "--key".into(), "progress=3".into()], vec!["progress", "[0, 1]"]),
        (vec![hdf5_data("a_default.h5"), "--key".into(), "id=3".into()], vec!["id", "rename"]),
        (vec!["missing.h5".into()], vec!["missing.h5"]),
        (
            vec![hdf5_data("a_default.h5"), "--require-keys".into(), "group,task".into()],
            vec!["required keys group, task"],
        ),
    ];
    for (args, needles) in cases {
        let mut a: Vec<&str> = vec!["ingest", "--store", "s"];
        a.extend(args.iter().map(String::as_str));
        let out = run(&a, cwd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{a:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        for n in needles {
            assert!(err.contains(n), "{a:?}: {err:?} lacks {n:?}");
        }
        assert_eq!(snapshot(&cwd.join("s")), before, "{a:?} changed the store");
    }
    for (args, needle) in [
        (vec!["ls", "--store", "s", "--where", "epoch > 1"], "unknown column \"epoch\""),
        (vec!["ls", "--store", "s", "--where", "checkpoint >"], "predicate"),
        (vec!["show", "--store", "s", "zzzzzz"], "no such recording"),
        (vec!["ls", "--store", "nowhere"], "not a dynsim store"),
        (vec!["store", "init", "s"], "already a dynsim store"),
    ] {
        let out = run(&args, cwd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(snapshot(&cwd.join("s")), before);
}

/// Inputs big enough that an ingest takes a while: `n` .npy files of 20 x 200 x 64.
fn make_inputs(dir: &Path, n: usize, seed: u64) -> Vec<String> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let a = ndarray::Array3::from_shape_fn((20, 200, 64), |_| rng.random::<f64>() - 0.5);
            let p = dir.join(format!("in_{seed}_{i}.npy"));
            dynsim_store::write_npy(&p, a.view().into_dyn()).expect("write npy");
            p.display().to_string()
        })
        .collect()
}

fn spawn_ingest(store: &Path, files: &[String], run_key: usize) -> Child {
    let mut c = bin();
    c.arg("ingest").arg("--store").arg(store).args(files).args(["--key", &format!("run={run_key}")]);
    c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn")
}

/// Every catalogued recording reads back with its hash; rows of one ingest are all there
/// or none is.
fn check_store(store: &Path, per_run: usize) -> Catalog {
    let s = Store::open(store).expect("the store opens after a crash");
    let cat = s.catalog().expect("the catalogue reads after a crash");
    for row in &cat.rows {
        s.read_row(row, true).unwrap_or_else(|e| panic!("recording {} damaged: {e}", row.id));
    }
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for r in &cat.rows {
        *runs.entry(r.keys["run"].to_text()).or_default() += 1;
    }
    for (run, n) in runs {
        assert_eq!(n, per_run, "run {run} committed {n} of {per_run} recordings");
    }
    cat
}

#[test]
fn sigkill_during_ingest_never_damages_the_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    Store::init(&store).expect("init");
    let files = make_inputs(tmp.path(), 12, 1);
    // Time one uninterrupted ingest to spread the kills over its whole duration.
    let t0 = Instant::now();
    assert!(spawn_ingest(&store, &files, 1000).wait().expect("wait").success());
    let full = t0.elapsed();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut committed = 1;
    let rounds = 40;
    for round in 0..rounds {
        let mut child = spawn_ingest(&store, &files, round);
        let delay = full.mul_f64(rng.random::<f64>() * 1.2);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL on Unix
        let status = child.wait().expect("wait");
        if status.success() {
            committed += 1;
        }
        let cat = check_store(&store, 12);
        assert!(cat.rows.len() >= committed * 12, "a successful ingest lost rows");
    }
    // Leftovers are never listed; gc removes them (staging folders older than 2 s whose
    // owner is dead) and the store still verifies.
    std::thread::sleep(Duration::from_millis(2100));
    ok(&["store", "gc", "--store", store.to_str().expect("utf8")], tmp.path());
    assert!(
        !store.join(".staging").exists() || std::fs::read_dir(store.join(".staging")).expect("ls").next().is_none()
    );
    let out = ok(&["store", "verify", "--store", store.to_str().expect("utf8")], tmp.path());
    assert!(out.contains("read back intact"), "{out}");
    // And the store still takes new data.
    assert!(spawn_ingest(&store, &files, 9999).wait().expect("wait").success());
    check_store(&store, 12);
    eprintln!("ingest takes {full:?}; {committed} of {} runs committed before the kill", rounds + 1);
}

#[test]
fn concurrent_ingest_processes_keep_every_row() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    Store::init(&store).expect("init");
    let a = make_inputs(tmp.path(), 3, 2);
    let b = make_inputs(tmp.path(), 3, 3);
    for round in 0..3 {
        let mut p1 = spawn_ingest(&store, &a, 10 * round);
        let mut p2 = spawn_ingest(&store, &b, 10 * round + 1);
        assert!(p1.wait().expect("wait").success());
        assert!(p2.wait().expect("wait").success());
    }
    let cat = check_store(&store, 3);
    assert_eq!(cat.rows.len(), 18, "3 rounds x 2 processes x 3 recordings");
}
