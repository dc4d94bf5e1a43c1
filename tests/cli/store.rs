//! End-to-end tests of the store commands: ingest / ls / show / export, the Parquet round
//! trip through pyarrow, SIGKILL during ingest, concurrent ingests, bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

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
    let dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()))
            .join("../../target")
            .join(&folder);
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

/// Files directly inside `dir` (none when it does not exist).
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.flatten().filter(|e| e.path().is_file()).count()).unwrap_or(0)
}

/// Folders under `store/.staging`.
fn staging_folders(store: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store.join(".staging"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default()
}

/// Recording files under `store/recordings` that no catalogue row refers to.
fn unreferenced_recordings(store: &Path, cat: &Catalog) -> usize {
    let used: std::collections::HashSet<PathBuf> = cat.rows.iter().map(|r| store.join(&r.file)).collect();
    let Ok(shards) = std::fs::read_dir(store.join("recordings")) else { return 0 };
    shards
        .flatten()
        .flat_map(|s| std::fs::read_dir(s.path()).into_iter().flatten().flatten())
        .filter(|f| !used.contains(&f.path()))
        .count()
}

/// Where a round's kill is aimed, chosen from what the ingest has visibly done so far.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// Once `k` recordings (of `PER_RUN`) are in the ingest's staging folder.
    Staged(usize),
    /// As soon as the commit has renamed a first recording out of the staging folder into
    /// `recordings/` (before the catalogue is replaced, unless the kill arrives late).
    FirstRename,
}

#[test]
fn sigkill_during_ingest_never_damages_the_store() {
    const PER_RUN: usize = 8;
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    Store::init(&store).expect("init");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (mut committed, mut left_staging, mut mid_commit, mut finished_first) = (0, 0, 0, 0);
    let rounds = 24;
    for round in 0..rounds {
        // Fresh content every round, so every commit renames new files into place.
        let dir = tmp.path().join(format!("in{round}"));
        std::fs::create_dir(&dir).expect("mkdir");
        let files = make_inputs(&dir, PER_RUN, 100 + round as u64);
        let target = if round % 2 == 0 { KillAt::Staged(rng.random_range(1..=PER_RUN)) } else { KillAt::FirstRename };
        let before_staging = staging_folders(&store);
        let before_cat = Store::open(&store).expect("open").catalog().expect("catalogue");
        let before_unreferenced = unreferenced_recordings(&store, &before_cat);
        let mut child = spawn_ingest(&store, &files, round);
        // Watch the ingest's own staging folder (the one that was not there before).
        let (mut folder, mut most) = (None::<PathBuf>, 0);
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if folder.is_none() {
                folder = staging_folders(&store).into_iter().find(|p| !before_staging.contains(p));
            }
            let staged = folder.as_deref().map_or(0, count_files);
            most = most.max(staged);
            let fire = match target {
                KillAt::Staged(k) => staged >= k,
                KillAt::FirstRename => most == PER_RUN && staged < most,
            };
            if fire {
                let _ = child.kill(); // SIGKILL on Unix
                break child.wait().expect("wait");
            }
        };
        let cat = check_store(&store, PER_RUN);
        let run_rows = cat.rows.iter().filter(|r| r.keys["run"].to_text() == round.to_string()).count();
        if status.success() {
            finished_first += 1;
        }
        if run_rows == PER_RUN {
            committed += 1;
        } else if unreferenced_recordings(&store, &cat) > before_unreferenced {
            mid_commit += 1; // files renamed into place, catalogue not yet replaced
        } else if staging_folders(&store).len() > before_staging.len() {
            left_staging += 1;
        }
        assert!(cat.rows.len() >= committed * PER_RUN, "a committed ingest lost rows");
        eprintln!("round {round}: aimed at {target:?}, {run_rows} rows committed, exit {status}");
    }
    // The kills landed where they were aimed: some while staging, some between the renames
    // and the catalogue write.
    assert!(left_staging >= rounds / 4, "only {left_staging} rounds were killed while staging");
    assert!(mid_commit >= 2, "only {mid_commit} rounds were killed between the renames and the catalogue write");
    // Leftovers are never listed; gc removes them (staging folders older than 2 s whose
    // owner is dead, recording files no row refers to) and the store still verifies.
    let cat = check_store(&store, PER_RUN);
    let leftovers = staging_folders(&store).len() + unreferenced_recordings(&store, &cat);
    assert!(leftovers >= left_staging + mid_commit, "{leftovers} leftovers");
    std::thread::sleep(Duration::from_millis(2100));
    let out = ok(&["store", "gc", "--store", store.to_str().expect("utf8")], tmp.path());
    let removed: usize = out
        .trim()
        .strip_prefix("removed ")
        .and_then(|r| r.strip_suffix(" leftover files"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("gc printed {out:?}"));
    assert!(removed >= leftovers, "gc removed {removed} of {leftovers} leftovers");
    assert!(staging_folders(&store).is_empty(), "gc left staging folders");
    assert_eq!(unreferenced_recordings(&store, &cat), 0, "gc left unreferenced recordings");
    assert_eq!(check_store(&store, PER_RUN).rows.len(), cat.rows.len(), "gc changed the catalogue");
    let out = ok(&["store", "verify", "--store", store.to_str().expect("utf8")], tmp.path());
    assert!(out.contains("read back intact"), "{out}");
    // And the store still takes new data.
    let files = make_inputs(tmp.path(), PER_RUN, 1);
    assert!(spawn_ingest(&store, &files, 9999).wait().expect("wait").success());
    check_store(&store, PER_RUN);
    eprintln!(
        "{rounds} rounds: {left_staging} killed while staging, {mid_commit} between renames and catalogue, \
         {committed} committed ({finished_first} exited before the kill)"
    );
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

/// Makes a stored (read-only) file writable, to damage it.
fn make_writable(path: &Path) {
    let mut perms = std::fs::metadata(path).expect("stat").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).expect("chmod");
}

/// Flips one byte of `path` (in the middle of the file), making it writable first.
fn flip_byte(path: &Path) {
    make_writable(path);
    let mut bytes = std::fs::read(path).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

/// Damage is found and named: one flipped byte in a stored recording fails its hash-checked
/// read with an error naming the file, and `dynsim store verify` exits non-zero listing that
/// recording and no other; a truncated catalogue fails every command with an error naming it.
#[test]
fn damaged_recordings_and_catalogue_are_detected_and_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let s = store.to_str().expect("utf8");
    Store::init(&store).expect("init");
    let files = make_inputs(tmp.path(), 3, 77);
    let mut args = vec!["ingest", "--store", s];
    args.extend(files.iter().map(String::as_str));
    ok(&args, tmp.path());
    let st = Store::open(&store).expect("open");
    let cat = st.catalog().expect("catalogue");
    assert_eq!(cat.rows.len(), 3);
    let victim = &cat.rows[1];
    let file_name = Path::new(&victim.file).file_name().expect("file name").to_string_lossy().into_owned();
    flip_byte(&store.join(&victim.file));
    let e = st.read_row(victim, true).expect_err("a flipped byte went unnoticed").to_string();
    assert!(e.contains(&file_name), "the error names the damaged file: {e}");
    for row in cat.rows.iter().filter(|r| r.id != victim.id) {
        st.read_row(row, true).unwrap_or_else(|e| panic!("an intact recording failed: {e}"));
    }
    let out = run(&["store", "verify", "--store", s], tmp.path());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "verify passed a damaged store: {stdout}");
    assert!(stdout.contains(&victim.id) && stdout.contains(&file_name), "{stdout}");
    for row in cat.rows.iter().filter(|r| r.id != victim.id) {
        assert!(!stdout.contains(&row.id), "an intact recording was listed: {stdout}");
    }
    assert!(stderr.contains("1 of 3 recordings are damaged"), "{stderr}");
    // A truncated catalogue: every command that opens it says which file is damaged.
    let catalog = store.join("catalog.parquet");
    let bytes = std::fs::read(&catalog).expect("read catalogue");
    std::fs::write(&catalog, &bytes[..bytes.len() / 2]).expect("truncate");
    for cmd in [vec!["store", "verify", "--store", s], vec!["ls", "--store", s]] {
        let out = run(&cmd, tmp.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd:?} passed with a truncated catalogue");
        assert!(stderr.contains("catalog.parquet"), "{cmd:?}: {stderr}");
    }
}

/// A damaged page on which the Parquet decoder itself panics (parquet 60.1.0 does on a few
/// single-byte changes of a recording file, see `dynsim_store::caught_panics`) is reported
/// like any other damage: `dynsim store verify` exits 1 listing the file, no "panicked at"
/// text reaches the user, and deleting the file and ingesting its source again restores it.
#[test]
fn a_damage_that_panics_the_parquet_decoder_is_reported_not_a_crash() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    let s = store.to_str().expect("utf8");
    Store::init(&store).expect("init");
    let src = tmp.path().join("small.npy");
    let a = ndarray::Array3::from_shape_fn((3, 16, 4), |(t, k, u)| (t * 100 + k * 4 + u) as f64 * 0.25);
    dynsim_store::write_npy(&src, a.view().into_dyn()).expect("npy");
    let src = src.display().to_string();
    ok(&["ingest", "--store", s, &src], tmp.path());
    let st = Store::open(&store).expect("open");
    let row = st.catalog().expect("catalogue").rows.remove(0);
    let file = store.join(&row.file);
    make_writable(&file);
    // Find a single-byte damage on which the decoder panics (the store turns it into an error).
    let good = std::fs::read(&file).expect("read");
    let panicking = (0..good.len()).flat_map(|p| [(p, 1u8 << (p % 8)), (p, 0xff)]).find(|&(p, mask)| {
        let mut bad = good.clone();
        bad[p] ^= mask;
        std::fs::write(&file, &bad).expect("damage");
        let before = dynsim_store::caught_panics();
        let read = st.read_row(&row, true);
        assert!(read.is_err() || read.as_ref().map(|r| r.data == a.mapv(|v| v as f32)).unwrap_or(false));
        dynsim_store::caught_panics() > before
    });
    let (p, mask) = panicking.expect(
        "no single-byte damage panics the Parquet decoder any more: the parquet crate was fixed or bumped; \
         update this test and the numbers in dynsim-store's guard module",
    );
    let mut bad = good.clone();
    bad[p] ^= mask;
    std::fs::write(&file, &bad).expect("damage");
    let out = run(&["store", "verify", "--store", s], tmp.path());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "byte {p} ^ {mask:#x}: {stdout}\n{stderr}");
    assert!(!stdout.contains("panicked at") && !stderr.contains("panicked at"), "{stdout}\n{stderr}");
    let name = file.file_name().expect("name").to_string_lossy().into_owned();
    assert!(stdout.contains(&row.id) && stdout.contains(&name), "{stdout}");
    assert!(
        stdout.contains("Parquet decoder failed on damaged data") && stdout.contains("delete this file"),
        "{stdout}"
    );
    assert!(stderr.contains("1 of 1 recordings are damaged"), "{stderr}");
    // Delete the damaged file and ingest the source again: restored, verify passes.
    std::fs::remove_file(&file).expect("delete");
    let again = ok(&["ingest", "--store", s, &src], tmp.path());
    assert!(again.contains(&format!("{}  restored", row.id)), "{again}");
    assert!(ok(&["store", "verify", "--store", s], tmp.path()).contains("1 recordings read back intact"));
    assert_eq!(std::fs::read(&file).expect("restored file"), good);
}
