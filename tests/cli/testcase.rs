//! `dynsim testcase lorenz`: Test A end to end on a fresh store, then from the cache.

use serde_json::Value;

use super::store::ok;

#[test]
fn lorenz_regimes_from_the_command_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("s").display().to_string();
    let out = tmp.path().join("report").display().to_string();
    let run = || -> Value {
        serde_json::from_str(ok(&["testcase", "lorenz", "--store", &store, "--out", &out, "--json"], tmp.path()).trim())
            .expect("json")
    };
    let v = run();
    let first = v["regimes"].clone();
    assert_eq!((first["computed"].as_u64(), first["cached"].as_u64()), (Some(108), Some(0)));
    assert_eq!((v["noise"]["computed"].as_u64(), v["noise"]["cached"].as_u64()), (Some(756), Some(0)));
    for m in v["noise"]["metrics"].as_array().expect("metrics") {
        let mean = &m["mixed"]["mean"];
        assert!(mean[0].as_f64() > mean[1].as_f64() && mean[1].as_f64() > mean[2].as_f64(), "{m}");
    }
    let m = |v: &Value, name: &str, field: &str| -> f64 {
        v["metrics"]
            .as_array()
            .and_then(|a| a.iter().find(|m| m["metric"] == name))
            .map_or(f64::NAN, |m| m[field].as_f64().unwrap_or(f64::NAN))
    };
    for other in ["procrustes", "cka"] {
        assert!(m(&first, "dsa", "ratio") > m(&first, other, "ratio"), "{first}");
        assert!(m(&first, "dsa", "auc") >= m(&first, other, "auc"), "{first}");
    }
    assert_eq!(first["systems"].as_array().map(Vec::len), Some(9));
    // The study's scale (angle / (pi/2) for Procrustes and CKA, radians for DSA) and DSA's
    // certified gaps, one per pair.
    let metric = |name: &str| -> Value {
        first["metrics"].as_array().and_then(|a| a.iter().find(|m| m["metric"] == name)).cloned().expect(name)
    };
    let p = metric("procrustes");
    let half_pi = std::f64::consts::FRAC_PI_2;
    assert!((p["study_scale"]["within"].as_f64().unwrap() - p["within"].as_f64().unwrap() / half_pi).abs() < 1e-12);
    assert_eq!(p["study_scale"]["study"], serde_json::json!([0.671, 0.775]));
    let d = metric("dsa");
    assert_eq!(d["study_scale"]["within"], d["within"]);
    let gaps = d["certified_gaps"].as_array().expect("gaps");
    assert_eq!(gaps.len(), 36);
    assert!(gaps.iter().all(|g| g.as_f64().is_some_and(|g| g > -1e-9 && g < 0.5)), "{gaps:?}");
    assert_eq!(p["certified_gaps"].as_array().map(Vec::len), Some(0));
    // 12 figures and the report, each complete.
    let files: Vec<String> =
        v["report"].as_array().expect("files").iter().filter_map(|f| f.as_str().map(String::from)).collect();
    assert_eq!(files.len(), 13);
    for f in &files {
        let text = std::fs::read_to_string(f).expect("report file");
        if f.ends_with(".svg") {
            assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>") && !text.contains("NaN"), "{f}");
        } else {
            assert!(text.contains("## Test A") && text.contains("## Test B") && text.contains("## Motif"), "{text}");
            for svg in files.iter().filter(|g| g.ends_with(".svg")) {
                let name = std::path::Path::new(svg).file_name().and_then(|n| n.to_str()).unwrap_or_default();
                assert!(text.contains(name), "report.md links {name}");
            }
        }
    }
    let v2 = run();
    let second = v2["regimes"].clone();
    assert_eq!((second["computed"].as_u64(), second["cached"].as_u64()), (Some(0), Some(108)));
    assert_eq!((v2["noise"]["computed"].as_u64(), v2["noise"]["cached"].as_u64()), (Some(0), Some(756)));
    assert_eq!(v["noise"]["metrics"], v2["noise"]["metrics"]);
    assert_eq!(first["metrics"], second["metrics"], "the cache gives the same matrices");
    // The table form names every metric.
    let table = ok(&["testcase", "lorenz", "--store", &store], tmp.path());
    assert!(table.contains("dsa") && table.contains("procrustes") && table.contains("cka") && table.contains("AUC"));
    assert!(table.contains("model2 vs model3") && table.contains("epoch 3"), "{table}");
    assert!(table.contains("3 shared") && table.contains("settings: dynsim"), "{table}");
    assert!(table.contains("on the study's scale") && table.contains("certified gap"), "{table}");
    assert_eq!(v["motifs"]["pairs_by_shared"], serde_json::json!([540, 1080, 150]));
    assert_eq!(v2["motifs"]["cached"].as_u64(), Some(1770 * 3));
}

#[test]
fn ctrl_c_keeps_the_finished_pairs_and_the_next_run_computes_the_rest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("s").display().to_string();
    let out = tmp.path().join("report").display().to_string();
    let args = ["testcase", "lorenz", "--store", &store, "--out", &out, "--json"];
    let mut child = super::store::bin()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Interrupt once some pairs are journaled (Test A's first results). No clock: the wait ends
    // when pairs appear or when the run ends without any (a failure, reported with its stderr).
    while super::query::journal_lines(&store) == 0 {
        if child.try_wait().expect("poll the run").is_some() {
            let done = child.wait_with_output().expect("wait");
            panic!("the run ended before journaling a pair: {}", String::from_utf8_lossy(&done.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let done = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: every finished pair is kept in the cache"), "{stderr}");
    assert!(!std::path::Path::new(&out).join("report.md").exists(), "no report from part of the pairs");
    ok(&["sql", "--store", &store, "SELECT COUNT(*) AS n FROM results", "-o", "n.csv"], tmp.path());
    let kept: u64 = std::fs::read_to_string(tmp.path().join("n.csv"))
        .expect("csv")
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("a count");
    assert!(kept > 0);
    // The next run answers the kept pairs from the cache and computes exactly the others.
    let v: Value = serde_json::from_str(ok(&args, tmp.path()).trim()).expect("json");
    let (mut cached, mut computed) = (0, 0);
    for step in ["regimes", "noise", "motifs"] {
        cached += v[step]["cached"].as_u64().expect("cached");
        computed += v[step]["computed"].as_u64().expect("computed");
    }
    assert_eq!(cached, kept, "every kept pair is reused");
    assert_eq!(cached + computed, 108 + 756 + 1770 * 3);
}

/// Files of every run's checkpoints under a store: run id/file -> bytes.
fn run_files(store: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(runs) = std::fs::read_dir(store.join("runs")) else { return out };
    for run in runs.flatten() {
        for f in std::fs::read_dir(run.path().join("checkpoints")).expect("checkpoints").flatten() {
            let name = format!("{}/{}", run.file_name().to_string_lossy(), f.file_name().to_string_lossy());
            out.insert(name, std::fs::read(f.path()).expect("read"));
        }
    }
    out
}

/// How many checkpoint files the runs under a store have so far, while a process is still
/// writing them: a run folder whose `checkpoints` folder does not exist yet, or a file that
/// is renamed while being listed, is skipped rather than an error (`run_files` is for a
/// store at rest).
fn checkpoints_so_far(store: &std::path::Path) -> usize {
    let Ok(runs) = std::fs::read_dir(store.join("runs")) else { return 0 };
    runs.flatten()
        .filter_map(|run| std::fs::read_dir(run.path().join("checkpoints")).ok())
        .map(|files| files.flatten().count())
        .sum()
}

/// `dynsim testcase compositional` on the tiny RNN preset: one uninterrupted run; the same
/// study in two shards and then unsharded (the shards partition the runs, the result is the
/// same, bit for bit); and a run killed with SIGKILL once some networks had trained, then
/// resumed (the same checkpoints as the uninterrupted run). A second run trains, records and
/// computes nothing.
#[test]
fn compositional_tiny_end_to_end_sharded_and_after_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = |store: &str| -> Vec<String> {
        ["testcase", "compositional", "--preset", "tiny", "--arch", "rnn", "--trials", "8", "--store", store, "--json"]
            .map(String::from)
            .to_vec()
    };
    let run = |extra: &[&str], store: &str| -> Value {
        let mut a = args(store);
        a.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        serde_json::from_str(ok(&a, tmp.path()).trim()).expect("json")
    };
    let whole = tmp.path().join("whole");
    let w = whole.display().to_string();
    let v = run(&[], &w);
    assert_eq!((v["runs"].as_u64(), v["trained"].as_u64(), v["skipped"].as_u64()), (Some(11), Some(11), Some(0)));
    let rows = v["analyses"][0]["to_master"].as_array().expect("rows");
    assert_eq!(v["analyses"][0]["analysis"], "intended");
    assert_eq!(rows.len(), 10 * 3, "10 groups other than master x 3 metrics");
    assert!(rows.iter().all(|r| r["mean_rad"].as_f64().is_some_and(|x| x.is_finite() && x >= 0.0)), "{v}");
    // The report: report.md links every figure written, and gives the study's values.
    let report = std::fs::read_to_string(tmp.path().join("compositional-report/report.md")).expect("report.md");
    let figures: Vec<String> = std::fs::read_dir(tmp.path().join("compositional-report"))
        .expect("report folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg"))
        .collect();
    // training accuracy + per metric: box plot, matrix, over-learning curves
    assert_eq!((figures.len() as u64, v["figures"].as_u64()), (1 + 3 * 3, Some(1 + 3 * 3)), "{figures:?}");
    for f in &figures {
        assert!(report.contains(&format!("]({f})")), "report.md does not link {f}");
    }
    assert!(report.contains("| rnn | untrained |") && report.contains("0.607"), "{report}");
    let again = run(&[], &w);
    assert_eq!(
        (again["trained"].as_u64(), again["recorded"].as_u64(), again["computed"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(again["analyses"], v["analyses"]);
    // The study's preprocessing of the over-learning comparisons: only those are computed
    // (anew, cached apart), the final-network comparisons stay as they were.
    let pre = run(&["--preprocess", "zscore_pca:4"], &w);
    assert_eq!((pre["trained"].as_u64(), pre["recorded"].as_u64()), (Some(0), Some(0)));
    let over_learning_pairs = 4 + 9 * 4 + 1; // master's, nine groups', untrained's checkpoints
    assert_eq!(pre["computed"].as_u64(), Some(over_learning_pairs * 3), "{pre}");
    assert_eq!(pre["analyses"][0]["to_master"], v["analyses"][0]["to_master"]);
    assert_ne!(pre["analyses"][0]["over_learning_on_share"], v["analyses"][0]["over_learning_on_share"]);
    let report = std::fs::read_to_string(tmp.path().join("compositional-report/report.md")).expect("report.md");
    assert!(report.contains("preprocessed as the study did (zscore_joint_pca:4"), "{report}");
    let bad = super::store::run(
        &["testcase", "compositional", "--preset", "tiny", "--preprocess", "pca", "--store", &w],
        tmp.path(),
    );
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("zscore_pca:K"));

    // Two shards, then the comparisons: the same runs, the same numbers.
    let sharded = tmp.path().join("sharded");
    let s = sharded.display().to_string();
    let a = run(&["--shard", "0/2"], &s);
    let b = run(&["--shard", "1/2"], &s);
    let (na, nb) = (a["trained"].as_u64().expect("a"), b["trained"].as_u64().expect("b"));
    assert_eq!((na + nb, a["skipped"].as_u64(), b["skipped"].as_u64()), (11, Some(0), Some(0)), "{a} {b}");
    let c = run(&[], &s);
    assert_eq!((c["trained"].as_u64(), c["recorded"].as_u64()), (Some(0), Some(0)), "{c}");
    assert_eq!(c["analyses"], v["analyses"]);
    assert_eq!(run_files(&sharded), run_files(&whole));

    // SIGKILL once a few runs have checkpoints, then the same command again.
    let killed = tmp.path().join("killed");
    let k = killed.display().to_string();
    let a = args(&k);
    let mut child = super::store::bin()
        .args(&a)
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let t0 = std::time::Instant::now();
    while checkpoints_so_far(&killed) < 6 && t0.elapsed().as_secs() < 600 {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed_early = child.try_wait().expect("wait").is_none();
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(killed_early, "the run finished before it could be killed");
    let r = run(&[], &k);
    assert!(r["trained"].as_u64().expect("trained") >= 1, "{r}");
    assert_eq!(r["analyses"], v["analyses"]);
    assert_eq!(run_files(&killed), run_files(&whole));
}

/// A stand-in for `sbatch`: runs each job (each array task in turn) at once, with the
/// variables SLURM sets, writing its output where `--output` says; prints a job id. A job
/// that fails makes the submission fail.
const FAKE_SBATCH: &str = r#"#!/usr/bin/env bash
array=""; out=""; wrap=""
for a in "$@"; do
  case $a in
    --array=*) array=${a#--array=};;
    --output=*) out=${a#--output=};;
    --wrap=*) wrap=${a#--wrap=};;
  esac
done
id=$((1000 + RANDOM))
if [[ -n "$array" ]]; then
  for i in $(seq "${array%-*}" "${array#*-}"); do
    o=${out//%A/$id}; o=${o//%a/$i}
    SLURM_ARRAY_TASK_ID=$i SLURM_CPUS_PER_TASK=1 bash -c "$wrap" > "$o" 2>&1 || { cat "$o" >&2; exit 1; }
  done
else
  o=${out//%j/$id}
  bash -c "$wrap" > "$o" 2>&1 || { cat "$o" >&2; exit 1; }
fi
echo "$id"
"#;

/// The example SLURM script end to end with a stand-in `sbatch`: three training tasks, two
/// comparison tasks, then the collecting job, which trains, records and computes nothing
/// (every run, recording and pair came from the arrays) and writes the report. The
/// comparison step refuses to run before the runs are trained.
#[test]
fn slurm_script_trains_compares_and_collects_in_shards() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = tmp.path().join("sbatch");
    std::fs::write(&fake, FAKE_SBATCH).expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let store = tmp.path().join("store");
    let opts = ["--preset", "tiny", "--arch", "rnn", "--trials", "8"];

    // The study's reading embeds along the trials: too few trials for DSA is refused up front.
    let s = store.display().to_string();
    let few = ["testcase", "compositional", "--preset", "tiny", "--analysis", "both", "--trials", "8", "--store", &s];
    let out = super::store::run(&few, tmp.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("need at least 194") && err.contains("--trials 8"), "{err}");
    assert!(!store.exists(), "nothing is created");

    // Comparing before training names what is missing and computes nothing.
    let mut early = vec!["testcase", "compositional", "--step", "compare", "--store"];
    early.push(&s);
    early.extend(opts);
    let out = super::store::run(&early, tmp.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("11 of 11 runs are not trained and recorded"), "{err}");
    assert!(err.contains("--step train"), "{err}");

    let script = super::root().join("crates/dynsim-cli/slurm/compositional.sh");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(&script).arg(&store).args(["3", "2", "--"]).args(opts);
    cmd.env("SBATCH", &fake).env("DYNSIM", env!("CARGO_BIN_EXE_dynsim")).current_dir(tmp.path());
    let out = cmd.output().expect("run the script");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("training array") && stdout.contains("(3 tasks)"), "{stdout}");
    let logs: Vec<(String, String)> = std::fs::read_dir(store.join("slurm-logs"))
        .expect("logs")
        .map(|e| {
            let p = e.expect("entry").path();
            (p.file_name().expect("name").to_string_lossy().into_owned(), std::fs::read_to_string(&p).expect("log"))
        })
        .collect();
    let of =
        |prefix: &str| logs.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, t)| t.clone()).collect::<Vec<_>>();
    let (train, compare, collect) = (of("train-"), of("compare-"), of("collect-"));
    assert_eq!((train.len(), compare.len(), collect.len()), (3, 2, 1), "{logs:?}");
    let trained: usize = train
        .iter()
        .map(|t| {
            let n = t.split(" runs trained").next().and_then(|h| h.rsplit(' ').next()).expect("count");
            n.parse::<usize>().expect("number")
        })
        .sum();
    assert_eq!(trained, 11, "the training shards partition the runs: {train:?}");
    let computed: Vec<usize> = compare
        .iter()
        .map(|t| {
            let n = t.split(" pairs x metrics computed").next().and_then(|h| h.rsplit(' ').next()).expect("count");
            n.parse().expect("number")
        })
        .collect();
    assert!(computed.iter().all(|c| *c > 0), "each comparison shard computes its share: {compare:?}");
    let c = &collect[0];
    assert!(c.contains("11 runs (0 trained now, 11 already finished)"), "{c}");
    assert!(c.contains(" 0 recordings added") && c.contains(" 0 pairs x metrics computed"), "{c}");
    assert!(store.join("compositional-report/report.md").exists(), "{c}");
}
