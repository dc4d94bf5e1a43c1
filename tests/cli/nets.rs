//! End-to-end tests of `dynsim train`, `record` and `forward`: a run through the binary, a
//! SIGKILL during training and its resume, checkpoints read by Python's safetensors, recordings
//! in the store, and bad input.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dynsim_nets::checkpoint;
use dynsim_nets::{DType, Device};
use dynsim_store::{KeyValue, Store};

use super::store::{bin, ok, python_with, run};

/// A small leaky RNN run; `extra` may override the batch and the samples per rule.
fn train_args<'a>(out: &'a str, epochs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--arch", "leaky_rnn", "--hidden", "12", "--eval-per-rule", "16", "--seed", "4"];
    a.extend(["--max-epochs", epochs, "--out", out]);
    for (flag, default) in [("--batch", "8"), ("--samples-per-rule", "16")] {
        if !extra.contains(&flag) {
            a.extend([flag, default]);
        }
    }
    a.extend(extra);
    a
}

fn checkpoint_files(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn train_record_forward_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let text = ok(&train_args("run", "2", &["--pretrain-rules", "pdm,anti_pdm", "--frozen"]), cwd);
    assert!(text.contains("6 checkpoints"), "{text}");
    let names: Vec<String> = checkpoint_files(&cwd.join("run")).into_iter().map(|f| f.0).collect();
    assert!(names.contains(&"train-002.safetensors".to_string()), "{names:?}");
    // Rerunning a finished run trains nothing and changes nothing.
    let before = checkpoint_files(&cwd.join("run"));
    ok(&train_args("run", "2", &["--pretrain-rules", "pdm,anti_pdm", "--frozen"]), cwd);
    assert_eq!(before, checkpoint_files(&cwd.join("run")));

    // Record the stimulus period of every checkpoint on 10 test trials.
    let text = ok(
        &["record", "--run", "run", "--window", "stimulus", "--trials", "10", "--store", "s", "--key", "study=cli"],
        cwd,
    );
    assert!(text.contains("6 recordings added"), "{text}");
    let again = ok(
        &["record", "--run", "run", "--window", "stimulus", "--trials", "10", "--store", "s", "--key", "study=cli"],
        cwd,
    );
    assert!(again.contains("0 recordings added") && again.contains("6 already there"), "{again}");
    let store = Store::open(cwd.join("s")).unwrap();
    let cat = store.catalog().unwrap();
    assert_eq!(cat.rows.len(), 6);
    for row in &cat.rows {
        assert_eq!(row.shape, [10, 200, 12], "10 trials x 200 stimulus steps x 12 units");
        assert_eq!(row.keys["model"], KeyValue::Str("leaky_rnn".into()));
        // the compositional study's name for this curriculum, as `testcase compositional` keys it
        assert_eq!(row.keys["group"], KeyValue::Str("pretrain_basic_anti_frozen".into()));
        assert_eq!(row.keys["task"], KeyValue::Str("anti_pdm_delay".into()));
        assert_eq!(row.keys["study"], KeyValue::Str("cli".into()));
        assert_eq!(row.keys["hidden"], KeyValue::Int(12));
        assert!(
            matches!(row.keys["config"], KeyValue::Str(ref s) if s.starts_with("leaky_rnn-relu-h12-lr")),
            "{row:?}"
        );
        assert!(matches!(row.keys["run"], KeyValue::Str(ref s) if s.len() == 16));
        assert_eq!(row.keys["trials"], KeyValue::Int(10));
        assert!(row.source.starts_with("dynsim record: run/checkpoints/"), "{}", row.source);
        assert!(
            row.source.contains("anti_pdm_delay test trials 0..10, window stimulus (steps 25..225)"),
            "{}",
            row.source
        );
    }
    let last = cat
        .rows
        .iter()
        .find(|r| r.keys["phase"] == KeyValue::Str("train".into()) && r.keys["checkpoint"] == KeyValue::Int(2))
        .expect("last checkpoint recorded");
    assert_eq!(last.keys["progress"], KeyValue::Float(1.0));
    let first = cat
        .rows
        .iter()
        .find(|r| r.keys["phase"] == KeyValue::Str("pretrain".into()) && r.keys["checkpoint"] == KeyValue::Int(1))
        .unwrap();
    assert_eq!(first.keys["progress"], KeyValue::Float(0.5));

    // `forward` on the same checkpoint and trials gives the same states as the recording.
    let test = dynsim_nets::Batch::test(&dynsim_nets::Rule::AntiPdmDelay, 0..10).unwrap();
    let x = ndarray::Array3::from_shape_vec((10, test.steps, 7), test.inputs.clone()).unwrap();
    dynsim_store::write_npy(cwd.join("x.npy"), x.view().into_dyn()).unwrap();
    let ckpt = "run/checkpoints/train-002.safetensors";
    ok(&["forward", "--checkpoint", ckpt, "--input", "x.npy", "--states", "s.npy", "--logits", "l.npy"], cwd);
    let states = dynsim_store::read_npy(cwd.join("s.npy")).unwrap().into_f64();
    assert_eq!(states.shape(), &[10, 350, 12]);
    let logits = dynsim_store::read_npy(cwd.join("l.npy")).unwrap().into_f64();
    assert_eq!(logits.shape(), &[10, 350, 3]);
    let rec = store.read_row(last, true).unwrap();
    let mut worst = 0.0f64;
    for t in 0..10 {
        for s in 0..200 {
            for u in 0..12 {
                worst = worst.max((f64::from(rec.data[[t, s, u]]) - states[[t, s + 25, u]]).abs());
            }
        }
    }
    assert!(worst < 1e-5, "forward and record disagree by {worst}");
    // With the architecture given explicitly (how a PyTorch checkpoint loads) the same result.
    ok(
        &[
            "forward",
            "--checkpoint",
            ckpt,
            "--arch",
            "leaky_rnn",
            "--hidden",
            "12",
            "--input",
            "x.npy",
            "--logits",
            "l2.npy",
        ],
        cwd,
    );
    assert_eq!(std::fs::read(cwd.join("l.npy")).unwrap(), std::fs::read(cwd.join("l2.npy")).unwrap());
}

#[test]
fn sigkill_during_training_then_resume_gives_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    // Enough batches per epoch (32) that a kill lands inside training, not after it.
    let more = ["--samples-per-rule", "512", "--batch", "16"];
    ok(&train_args("whole", "4", &more), cwd);
    let whole = checkpoint_files(&cwd.join("whole"));
    assert_eq!(whole.iter().filter(|f| !f.0.contains(".optim")).count(), 5, "epochs 0..=4");
    // Kill at observed progress: once the k-th checkpoint exists, for k = 1, 2, 3.
    for k in 1..=3usize {
        let out = format!("killed{k}");
        let mut child = bin()
            .args(train_args(&out, "4", &more))
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let n = checkpoint_files(&cwd.join(&out))
                .iter()
                .filter(|f| !f.0.contains(".optim") && !f.0.starts_with('.'))
                .count();
            if n >= k || Instant::now() > deadline {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before the kill (k = {k})");
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        let left = checkpoint_files(&cwd.join(&out))
            .iter()
            .filter(|f| !f.0.contains(".optim") && !f.0.starts_with('.'))
            .count();
        assert!(left >= k && left < 5, "killed mid-run: {left} checkpoints on disk (k = {k})");
        // Whatever is on disk is valid: every checkpoint loads.
        for (name, _) in checkpoint_files(&cwd.join(&out)) {
            if name.starts_with('.') || name.contains(".optim") {
                continue;
            }
            checkpoint::load(&cwd.join(&out).join("checkpoints").join(&name), DType::F32, &Device::Cpu)
                .unwrap_or_else(|e| panic!("after SIGKILL, {name} does not load: {e}"));
        }
        ok(&train_args(&out, "4", &more), cwd);
        let resumed: Vec<(String, Vec<u8>)> =
            checkpoint_files(&cwd.join(&out)).into_iter().filter(|f| !f.0.starts_with('.')).collect();
        assert_eq!(
            whole.iter().map(|f| &f.0).collect::<Vec<_>>(),
            resumed.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "killed after {k} checkpoints"
        );
        for (a, b) in whole.iter().zip(&resumed) {
            assert!(a.1 == b.1, "killed after {k} checkpoints: {} differs from the uninterrupted run", a.0);
        }
    }
}

#[test]
fn python_safetensors_reads_our_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    ok(&train_args("run", "1", &[]), cwd);
    let path = cwd.join("run/checkpoints/train-001.safetensors");
    let (ours, meta) = checkpoint::read(&path, &Device::Cpu).unwrap();
    let meta = meta.unwrap();
    let script = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
with safe_open(sys.argv[1], framework="np") as f:
    meta = json.loads(f.metadata()["dynsim"])
print(json.dumps({"tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype), "bytes": v.astype("<f4").tobytes().hex()} for k, v in t.items()}, "meta": meta}))
"#;
    let out = python_with(&["safetensors", "numpy"]).args(["-c", script]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tensors = v["tensors"].as_object().unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    assert_eq!(names, ["bias", "readout.weight", "weight_hh", "weight_ih"]);
    for (name, t) in tensors {
        let mine = &ours[name];
        let shape: Vec<usize> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(shape, mine.dims(), "{name}");
        assert_eq!(t["dtype"], "float32");
        // Bit for bit: numpy's little-endian float32 bytes against ours.
        let mine: Vec<f32> = mine.flatten_all().unwrap().to_vec1().unwrap();
        let hex: String = mine.iter().flat_map(|x| x.to_le_bytes()).map(|b| format!("{b:02x}")).collect();
        assert_eq!(t["bytes"].as_str().unwrap(), hex, "{name}: values");
    }
    assert_eq!(v["meta"]["phase"], "train");
    assert_eq!(v["meta"]["epoch"], 1);
    assert_eq!(v["meta"]["net"]["hidden"], 12);
    assert_eq!(meta.epoch, 1);
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--arch", "lstm", "--out", "r"], "unknown architecture `lstm`"),
        (vec!["train", "--arch", "leaky_rnn", "--activation", "gelu", "--out", "r"], "unknown activation `gelu`"),
        (vec!["train", "--arch", "leaky_rnn", "--hidden", "0", "--out", "r"], "hidden must be at least 1"),
        (vec!["train", "--arch", "leaky_rnn", "--lr", "0", "--out", "r"], "learning rate"),
        (vec!["train", "--arch", "leaky_rnn", "--lr", "-0.1", "--out", "r"], "learning rate"),
        (vec!["train", "--arch", "leaky_rnn", "--train-rules", "pdm,xyz", "--out", "r"], "unknown task `xyz`"),
        (vec!["train", "--out", "r"], "--arch is required"),
        (vec!["train", "--arch", "leaky_rnn", "--batch", "0", "--out", "r"], "batch size must be at least 1"),
    ];
    for (args, needle) in cases {
        let out = run(&args, cwd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle), "{args:?}: {err}");
        assert!(!cwd.join("r").exists(), "{args:?} wrote a run folder");
    }
    // A config file with an unknown field.
    std::fs::write(cwd.join("bad.toml"), "arch = \"leaky_rnn\"\nlearning_rate = 0.1\n").unwrap();
    let out = run(&["train", "--config", "bad.toml", "--out", "r"], cwd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bad.toml") && err.contains("learning_rate"), "{err}");
    assert!(!cwd.join("r").exists());
    // A good config file trains.
    std::fs::write(
        cwd.join("good.toml"),
        "arch = \"leaky_gru\"\nhidden = 6\nbatch = 8\nsamples_per_rule = 8\neval_per_rule = 8\nmax_epochs = 1\ntrain_rules = [\"pdm\"]\n",
    )
    .unwrap();
    ok(&["train", "--config", "good.toml", "--out", "g"], cwd);
    // Checkpoints that are truncated, foreign or of another architecture.
    let good = cwd.join("g/checkpoints/train-001.safetensors");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(cwd.join("cut.safetensors"), &bytes[..bytes.len() - 10]).unwrap();
    std::fs::write(cwd.join("x.npy"), b"").unwrap();
    let x = ndarray::Array3::<f64>::zeros((2, 5, 7));
    dynsim_store::write_npy(cwd.join("x.npy"), x.view().into_dyn()).unwrap();
    for (args, needle) in [
        (
            vec!["forward", "--checkpoint", "cut.safetensors", "--input", "x.npy", "--logits", "o.npy"],
            "cut.safetensors",
        ),
        (vec!["forward", "--checkpoint", "x.npy", "--input", "x.npy", "--logits", "o.npy"], "not a safetensors file"),
        (
            vec![
                "forward",
                "--checkpoint",
                "g/checkpoints/train-001.safetensors",
                "--arch",
                "leaky_rnn",
                "--hidden",
                "6",
                "--input",
                "x.npy",
                "--logits",
                "o.npy",
            ],
            "weight_ih",
        ),
        (
            vec![
                "forward",
                "--checkpoint",
                "g/checkpoints/train-001.safetensors",
                "--input",
                "g/run.json",
                "--logits",
                "o.npy",
            ],
            "run.json",
        ),
        (
            vec!["forward", "--checkpoint", "g/checkpoints/train-001.safetensors", "--input", "x.npy"],
            "nothing to write",
        ),
    ] {
        let out = run(&args, cwd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(needle), "{args:?}: {err}");
        assert!(!cwd.join("o.npy").exists());
    }
    let out = run(&["record", "--run", "g", "--window", "delay", "--task", "pdm", "--store", "s"], cwd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fixation, stimulus, decision"), "{err}");
    assert!(!cwd.join("s").exists(), "no store made for a failed record");
}
