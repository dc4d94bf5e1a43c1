//! The compositional test case's groups, run plan, shards and training.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use dynsim_nets::train::input_parameters;
use dynsim_nets::{checkpoint, Device, Rule};
use dynsim_testcases::compositional::training::is_finished;
use dynsim_testcases::compositional::{
    plan, record_runs, select, train_runs, Analysis, ArchChoice, Configuration, Group, Init, Pool, Preset, Run, Shard,
    TrainEvent,
};

/// The tiny RNN plan's runs of `groups` with `seeds` replicates, all groups of a seed from
/// one initialisation.
fn tiny_runs(groups: &[Group], seeds: usize) -> Vec<Run> {
    let all = plan(Preset::Tiny, ArchChoice::Rnn, seeds, Init::Shared).expect("plan");
    all.into_iter().filter(|r| groups.contains(&r.group)).collect()
}

/// [`tiny_runs`] trained and recorded (intended analysis, 8 trials) into a new store.
fn recorded_study(groups: &[Group], seeds: usize) -> (tempfile::TempDir, dynsim_store::Store, Vec<Run>) {
    let runs = tiny_runs(groups, seeds);
    let refs: Vec<&Run> = runs.iter().collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dynsim_store::Store::init(tmp.path().join("store")).expect("store");
    train_runs(&refs, store.root(), 2, &AtomicBool::new(false), &|_| {}).expect("train");
    record_runs(&refs, &store, Analysis::Intended, 8, &mut |_, _, _| {}).expect("record");
    (tmp, store, runs)
}

#[test]
fn groups_pretrain_freeze_and_pool_as_the_study() {
    use Rule::{AntiPdm, Pdm, PdmDelay};
    // (group, pretraining rules, frozen, trains) written out from the study's table.
    let table: [(&str, Vec<Rule>, bool, bool); 11] = [
        ("master", vec![], false, true),
        ("master_frozen", vec![], true, true),
        ("untrained", vec![], false, false),
        ("pretrain_frozen", vec![AntiPdm, Pdm, PdmDelay], true, true),
        ("pretrain_unfrozen", vec![AntiPdm, Pdm, PdmDelay], false, true),
        ("pretrain_basic_frozen", vec![Pdm], true, true),
        ("pretrain_anti_frozen", vec![AntiPdm], true, true),
        ("pretrain_delay_frozen", vec![PdmDelay], true, true),
        ("pretrain_basic_anti_frozen", vec![Pdm, AntiPdm], true, true),
        ("pretrain_basic_delay_frozen", vec![Pdm, PdmDelay], true, true),
        ("pretrain_anti_delay_frozen", vec![AntiPdm, PdmDelay], true, true),
    ];
    for (name, rules, frozen, trains) in table {
        let g = Group::parse(name).expect(name);
        assert_eq!(g.name(), name);
        assert_eq!((g.pretrain_rules(), g.frozen(), g.trains()), (rules.clone(), frozen, trains), "{name}");
        assert_eq!(g.pretrained_share(), rules.len() as f64 / 3.0);
        assert_eq!(g.pool() == Pool::Partial, (1..=2).contains(&rules.len()), "{name}");
    }
    assert!(Group::STUDY_PARTIAL.iter().all(|g| g.pool() == Pool::Partial));
    assert_eq!(Group::ALL.iter().filter(|g| g.pool() == Pool::Partial).count(), 6);
    let e = Group::parse("pretrain").expect_err("unknown").to_string();
    assert!(e.contains("pretrain") && e.contains("master_frozen"), "{e}");
}

#[test]
fn the_plan_covers_every_group_and_the_study_grid() {
    let tiny = plan(Preset::Tiny, ArchChoice::All, 2, Init::Independent).expect("plan");
    assert_eq!(tiny.len(), 2 * 11 * 2);
    let ids: BTreeSet<String> = tiny.iter().map(Run::id).collect();
    assert_eq!(ids.len(), tiny.len(), "run ids are unique");
    for r in &tiny {
        assert_eq!(r.config.train_rules, vec![Rule::AntiPdmDelay]);
        assert_eq!(r.config.pretrain_rules, r.group.pretrain_rules());
        assert_eq!(r.config.frozen, r.group.frozen());
        assert_eq!(r.config.max_epochs == 0, r.group == Group::Untrained);
        assert_eq!((r.config.lr, r.config.batch), (r.configuration.lr, r.configuration.batch));
        // a training configuration names its group and configuration back (`dynsim record` keys)
        assert_eq!(Group::of(&r.config), Some(r.group), "{:?}", r.group);
        assert_eq!(Configuration::of(&r.config).name(), r.configuration.name());
    }
    // pretraining order does not matter; another target, or frozen where the group is not, does
    let basic_anti = tiny.iter().find(|r| r.group == Group::PretrainBasicAntiFrozen).expect("run");
    let mut c = basic_anti.config.clone();
    c.pretrain_rules.reverse();
    assert_eq!(Group::of(&c), Some(Group::PretrainBasicAntiFrozen));
    c.train_rules = vec![Rule::Pdm];
    assert_eq!(Group::of(&c), None);
    let mut c = tiny.iter().find(|r| r.group == Group::PretrainUnfrozen).expect("run").config.clone();
    c.pretrain_rules.pop();
    assert_eq!(Group::of(&c), None, "two tasks and unfrozen is no group");
    let paper_rnn = Preset::Paper.configurations(ArchChoice::Rnn);
    let paper_mamba = Preset::Paper.configurations(ArchChoice::Mamba);
    assert_eq!((paper_rnn.len(), paper_mamba.len()), (32, 64));
    let names: BTreeSet<String> = paper_rnn.iter().chain(&paper_mamba).map(|c| c.name()).collect();
    assert_eq!(names.len(), 96, "configuration names are unique");
    assert!(names.contains("leaky_gru-softplus-h256-lr0.001-b128") && names.contains("mamba-d16-l2-lr0.0005-b16"));
    assert!(plan(Preset::Tiny, ArchChoice::Rnn, 0, Init::Shared).is_err());
}

/// A run's id is the hash of its training configuration: the same settings give the same id
/// in every version (a changed id would orphan every finished run of every user, so this one
/// is pinned), and any change of setting gives another.
#[test]
fn run_ids_are_stable_and_follow_every_setting() {
    let runs = plan(Preset::Tiny, ArchChoice::Rnn, 1, Init::Shared).expect("plan");
    let master = runs.iter().find(|r| r.group == Group::Master).expect("master");
    assert_eq!(master.id(), plan(Preset::Tiny, ArchChoice::Rnn, 1, Init::Shared).expect("again")[0].id());
    assert_eq!(master.id(), "883b5d5f63fc5208", "the tiny RNN master's id changed: {}", master.config.id());
    let mut other = master.config.clone();
    other.lr *= 2.0;
    assert_ne!(other.id(), master.id());
    // Shared: every group of a seed starts from the seed itself; independent: each its own.
    assert!(runs.iter().all(|r| r.config.seed == 0));
    let ind = plan(Preset::Tiny, ArchChoice::Rnn, 2, Init::Independent).expect("plan");
    let seeds: BTreeSet<u64> = ind.iter().map(|r| r.config.seed).collect();
    assert_eq!(seeds.len(), ind.len());
}

#[test]
fn shards_partition_the_plan_whatever_its_order() {
    let runs = plan(Preset::Tiny, ArchChoice::All, 3, Init::Independent).expect("plan");
    let reversed: Vec<Run> = runs.iter().rev().cloned().collect();
    for count in 1..=7 {
        let mut seen = BTreeSet::new();
        let mut sizes = Vec::new();
        for index in 0..count {
            let shard: Shard = format!("{index}/{count}").parse().expect("shard");
            let mine: Vec<String> = select(&shard, &runs).iter().map(|r| r.id()).collect();
            let again: Vec<String> = select(&shard, &reversed).iter().map(|r| r.id()).collect();
            assert_eq!(mine, again, "shard {index}/{count} depends on the plan's order");
            sizes.push(mine.len());
            for id in mine {
                assert!(seen.insert(id), "a run in two shards of {count}");
            }
        }
        assert_eq!(seen.len(), runs.len(), "the shards of {count} miss runs");
        assert!(sizes.iter().max().expect("sizes") - sizes.iter().min().expect("sizes") <= 1, "{sizes:?}");
    }
    for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walk(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p.strip_prefix(dir).expect("prefix").display().to_string(), bytes)
        })
        .collect();
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("list") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Four groups of the tiny RNN with a shared initialisation, two at a time: `untrained` is
/// master's starting network bit for bit, `master_frozen` keeps every non-input weight of
/// it; a second call trains nothing; a call stopped mid-way and resumed ends with the same
/// files as the uninterrupted one.
#[test]
fn training_runs_groups_skips_finished_runs_and_resumes() {
    let all = tiny_runs(&[Group::Master, Group::MasterFrozen, Group::Untrained, Group::PretrainBasicFrozen], 1);
    let runs: Vec<&Run> = all.iter().collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let never = AtomicBool::new(false);
    let rep = train_runs(&runs, tmp.path(), 2, &never, &|_| {}).expect("train");
    assert_eq!((rep.trained.len(), rep.skipped.len(), rep.stopped), (4, 0, false));
    for r in &runs {
        assert!(is_finished(&r.dir(tmp.path())).expect("finished?"), "{}", r.group.name());
    }
    let load = |g: Group, name: &str| {
        let r = runs.iter().find(|r| r.group == g).expect("run");
        checkpoint::read(&r.dir(tmp.path()).join("checkpoints").join(name), &Device::Cpu).expect("checkpoint").0
    };
    let untrained = load(Group::Untrained, "train-000.safetensors");
    let master_start = load(Group::Master, "train-000.safetensors");
    let frozen_end = load(Group::MasterFrozen, "train-003.safetensors");
    let inputs = input_parameters(&runs[0].config.net);
    for (name, t) in &untrained {
        let bits = |t: &dynsim_nets::Tensor| -> Vec<u32> {
            t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32").iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(t), bits(&master_start[name]), "untrained = master's start: {name}");
        assert_eq!(bits(t) == bits(&frozen_end[name]), !inputs.contains(name), "master_frozen: {name}");
    }
    // Nothing to do the second time.
    let events = Mutex::new(Vec::new());
    let rep = train_runs(&runs, tmp.path(), 2, &never, &|e| {
        if matches!(e, TrainEvent::Batch(..)) {
            events.lock().expect("lock").push(());
        }
    })
    .expect("again");
    assert_eq!((rep.trained.len(), rep.skipped.len()), (0, 4));
    assert!(events.lock().expect("lock").is_empty(), "a finished run trained again");
    // Stopped after a few batches, then resumed: the same files as the uninterrupted run.
    let other = tempfile::tempdir().expect("tempdir");
    let stop = AtomicBool::new(false);
    let batches = std::sync::atomic::AtomicUsize::new(0);
    let rep = train_runs(&runs, other.path(), 1, &stop, &|e| {
        if matches!(e, TrainEvent::Batch(..)) && batches.fetch_add(1, Ordering::SeqCst) == 5 {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .expect("stopped");
    assert!(rep.stopped && rep.trained.len() < 4, "{rep:?}");
    let rep = train_runs(&runs, other.path(), 2, &never, &|_| {}).expect("resume");
    assert!(!rep.stopped && rep.trained.len() + rep.skipped.len() == 4, "{rep:?}");
    assert_eq!(files(&other.path().join("runs")), files(&tmp.path().join("runs")));
}

/// Recording: every training checkpoint once, with its keys; the untrained network of a
/// shared initialisation is master's checkpoint 0; the study's reading holds the same states
/// time-major from step 0, the whole trial all 350 steps; a second call computes nothing; an
/// untrained run is an error.
#[test]
fn recording_every_checkpoint_in_every_analysis() {
    let all = tiny_runs(&[Group::Master, Group::Untrained], 1);
    let runs: Vec<&Run> = all.iter().collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dynsim_store::Store::init(tmp.path().join("store")).expect("store");
    let never = AtomicBool::new(false);
    let not_yet = record_runs(&runs, &store, Analysis::Intended, 8, &mut |_, _, _| {}).expect_err("untrained");
    assert!(not_yet.to_string().contains("train the run first"), "{not_yet}");
    // A stopped run is not recorded either (its progress values would be wrong).
    let stop = AtomicBool::new(false);
    let stopped = train_runs(&runs[..1], store.root(), 1, &stop, &|e| {
        if matches!(e, TrainEvent::Batch(..)) {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .expect("stopped");
    assert!(stopped.stopped);
    let partial = record_runs(&runs[..1], &store, Analysis::Intended, 8, &mut |_, _, _| {}).expect_err("stopped run");
    assert!(partial.to_string().contains("not finished"), "{partial}");
    train_runs(&runs, store.root(), 2, &never, &|_| {}).expect("train");
    let rep = record_runs(&runs, &store, Analysis::Intended, 8, &mut |_, _, _| {}).expect("record");
    assert_eq!((rep.added, rep.present), (5, 0), "master's train-000..003 and untrained's start");
    let rep = record_runs(&runs, &store, Analysis::Repal, 8, &mut |_, _, _| {}).expect("record repal");
    assert_eq!((rep.added, rep.present), (5, 0));
    let again = record_runs(&runs, &store, Analysis::Intended, 8, &mut |_, _, _| {}).expect("again");
    assert_eq!((again.added, again.present), (0, 5));
    let cat = store.catalog().expect("catalogue");
    let find = |group: &str, checkpoint: i64, analysis: &str| {
        let row = cat
            .rows
            .iter()
            .find(|r| {
                r.keys["group"].to_text() == group
                    && r.keys["checkpoint"] == dynsim_store::KeyValue::Int(checkpoint)
                    && r.keys["analysis"].to_text() == analysis
            })
            .unwrap_or_else(|| panic!("{group} {checkpoint} {analysis}"));
        (row.clone(), store.read_row(row, true).expect("read").data)
    };
    let (m0, master0) = find("master", 0, "intended");
    let (m3, _) = find("master", 3, "intended");
    let (u, untrained) = find("untrained", 0, "intended");
    assert_eq!(m0.shape, [8, 200, 16]);
    assert_eq!(untrained, master0, "shared initialisation: untrained = master's start");
    let progress = |r: &dynsim_store::CatalogRow| r.keys["progress"].to_text();
    assert_eq!((progress(&m0), progress(&m3), progress(&u)), ("0".into(), "1".into(), "1".into()));
    let (r0, repal0) = find("master", 0, "repal");
    assert_eq!(r0.shape, [200, 8, 16]);
    // Stimulus steps 25..200 of the trial are at time 0..175 of the intended recording.
    for s in 25..200 {
        for trial in 0..8 {
            for k in 0..16 {
                assert_eq!(repal0[[s, trial, k]], master0[[trial, s - 25, k]]);
            }
        }
    }
    // The whole trial: all 350 steps, trials first; its steps 0..200 are repal's, 25..225
    // intended's.
    let rep = record_runs(&runs, &store, Analysis::WholeTrial, 8, &mut |_, _, _| {}).expect("record whole");
    assert_eq!((rep.added, rep.present), (5, 0));
    let cat = store.catalog().expect("catalogue");
    let row = cat
        .rows
        .iter()
        .find(|r| {
            r.keys["group"].to_text() == "master"
                && r.keys["checkpoint"] == dynsim_store::KeyValue::Int(0)
                && r.keys["analysis"].to_text() == "whole_trial"
        })
        .expect("whole-trial row");
    assert_eq!(row.shape, [8, 350, 16]);
    let whole0 = store.read_row(row, true).expect("read").data;
    for trial in 0..8 {
        for k in 0..16 {
            assert!((0..200).all(|s| whole0[[trial, s, k]] == repal0[[s, trial, k]]));
            assert!((25..225).all(|s| whole0[[trial, s, k]] == master0[[trial, s - 25, k]]));
        }
    }
}

#[test]
fn analyses_parse_alone_in_lists_and_as_both_or_all() {
    use Analysis::{Intended, Repal, WholeTrial};
    assert_eq!(Analysis::parse_list("intended").expect("one"), vec![Intended]);
    assert_eq!(Analysis::parse_list("both").expect("both"), vec![Intended, Repal]);
    assert_eq!(Analysis::parse_list("all").expect("all"), vec![Intended, Repal, WholeTrial]);
    assert_eq!(Analysis::parse_list("whole_trial, repal,both").expect("list"), vec![WholeTrial, Repal, Intended]);
    for a in Analysis::ALL {
        assert_eq!(Analysis::parse(a.name()).expect("name"), a);
    }
    let e = Analysis::parse_list("intended,whole").expect_err("unknown").to_string();
    assert!(e.contains("whole") && e.contains("whole_trial") && e.contains("both or all"), "{e}");
}

/// The three comparisons on a tiny study of three groups: how many pairs each has, master
/// against itself at 0, the over-learning pairs aligned by progress, nothing recomputed on a
/// second run.
#[test]
fn comparisons_to_master_between_groups_and_over_learning() {
    use dynsim_query::polars::prelude::*;
    use dynsim_testcases::compositional::{comparison, study_metrics, Kind};
    let (_tmp, store, all) = recorded_study(&[Group::Master, Group::Untrained, Group::PretrainBasicFrozen], 1);
    let runs: Vec<&Run> = all.iter().collect();
    let metrics = study_metrics().expect("metrics");
    let run = |kind| {
        comparison(&store, kind, &runs, Analysis::Intended, 8, &metrics)
            .expect("comparison")
            .collect_with(Default::default())
            .expect("collect")
    };
    let strs = |df: &DataFrame, c: &str| -> Vec<String> {
        let col = df.column(c).expect(c).cast(&DataType::String).expect("cast");
        col.str().expect("str").iter().map(|v| v.unwrap_or_default().to_string()).collect()
    };
    let floats = |df: &DataFrame, c: &str| -> Vec<f64> {
        df.column(c).expect(c).cast(&DataType::Float64).expect("cast").f64().expect("f64").into_no_null_iter().collect()
    };
    let to_master = run(Kind::ToMaster);
    assert_eq!((to_master.total, to_master.computed), (9, 9), "3 groups x 3 metrics");
    let (lg, rg, v) = (
        strs(&to_master.frame, "left_group"),
        strs(&to_master.frame, "right_group"),
        floats(&to_master.frame, "value"),
    );
    for i in 0..v.len() {
        assert_eq!(rg[i], "master");
        if lg[i] == "master" {
            assert!(v[i].abs() < 1e-6, "master against itself: {}", v[i]);
        } else {
            assert!(v[i] > 1e-3, "{} against master: {}", lg[i], v[i]);
        }
    }
    assert_eq!(run(Kind::Matrix).total, 9, "3 pairs of groups x 3 metrics");
    let over = run(Kind::OverLearning);
    assert_eq!(over.total, 27, "(4 + 4 + 1 checkpoints) x 3 metrics");
    let f = &over.frame;
    let (lp, rp, rc) = (floats(f, "left_progress"), floats(f, "right_progress"), floats(f, "right_checkpoint"));
    let master_progress = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0];
    for i in 0..lp.len() {
        let nearest = master_progress.iter().copied().fold(f64::NAN, |b, p| {
            if b.is_nan() || (p - lp[i]).abs() < (b - lp[i]).abs() {
                p
            } else {
                b
            }
        });
        assert_eq!(rp[i], nearest, "row {i}");
        assert_eq!(rc[i], (rp[i] * 3.0).round(), "row {i}");
    }
    for kind in [Kind::ToMaster, Kind::Matrix, Kind::OverLearning] {
        assert_eq!(run(kind).computed, 0, "{kind:?} again");
    }
}

/// The statistics against direct computations on the comparison frames: pooled means, the
/// Student and Welch tests between pools, the over-learning regression on the pretrained
/// share.
#[test]
fn statistics_follow_their_definitions() {
    use dynsim_query::polars::prelude::*;
    use dynsim_query::stats::{linear_regression, student_t_test, welch_t_test};
    use dynsim_query::MetricSpec;
    use dynsim_testcases::compositional::{comparison, summarize, Kind};
    let groups = [Group::Master, Group::Untrained, Group::PretrainBasicFrozen, Group::PretrainAntiFrozen];
    let (_tmp, store, all) = recorded_study(&groups, 2);
    let runs: Vec<&Run> = all.iter().collect();
    let metrics = vec![MetricSpec::parse("procrustes").expect("spec"), MetricSpec::parse("cka").expect("spec")];
    let frame = |kind| {
        comparison(&store, kind, &runs, Analysis::Intended, 8, &metrics)
            .expect("comparison")
            .collect_with(Default::default())
            .expect("collect")
            .frame
    };
    let (to_master, over) = (frame(Kind::ToMaster), frame(Kind::OverLearning));
    let s = summarize(&to_master, &over).expect("summary");
    // The values of one metric, for rows whose left_group is in `groups`.
    let values = |df: &DataFrame, metric: &str, groups: &[&str]| -> Vec<(f64, f64, String)> {
        let col = |c: &str| df.column(c).expect(c).clone();
        let (m, g, v) = (col("metric"), col("left_group"), col("value"));
        let p = df.column("left_progress").expect("progress").cast(&DataType::Float64).expect("f64");
        let (m, g, v, p) = (m.str().expect("s"), g.str().expect("s"), v.f64().expect("f"), p.f64().expect("f"));
        (0..df.height())
            .filter(|&i| m.get(i) == Some(metric) && groups.contains(&g.get(i).unwrap_or_default()))
            .map(|i| (v.get(i).expect("v"), p.get(i).expect("p"), g.get(i).expect("g").to_string()))
            .collect()
    };
    let cell = |df: &DataFrame, filter: &[(&str, &str)], c: &str| -> f64 {
        let mut mask = BooleanChunked::full("m".into(), true, df.height());
        for (k, v) in filter {
            mask = &mask & &df.column(k).expect(k).str().expect("s").equal(*v);
        }
        let rows = df.filter(&mask).expect("filter");
        assert_eq!(rows.height(), 1, "{filter:?}: {rows}");
        rows.column(c).expect(c).cast(&DataType::Float64).expect("f64").f64().expect("f").get(0).expect("value")
    };
    for metric in ["procrustes", "cka"] {
        let partial: Vec<f64> = values(&to_master, metric, &["pretrain_basic_frozen", "pretrain_anti_frozen"])
            .iter()
            .map(|x| x.0)
            .collect();
        let untrained: Vec<f64> = values(&to_master, metric, &["untrained"]).iter().map(|x| x.0).collect();
        assert_eq!((partial.len(), untrained.len()), (4, 2));
        let mean = partial.iter().sum::<f64>() / 4.0;
        assert!((cell(&s.by_pool, &[("metric", metric), ("pool", "partial")], "mean") - mean).abs() < 1e-12);
        assert_eq!(cell(&s.by_pool, &[("metric", metric), ("pool", "partial")], "n"), 4.0);
        let key = [("metric", metric), ("a", "partial"), ("b", "untrained")];
        let st = student_t_test(&partial, &untrained).expect("student");
        let we = welch_t_test(&partial, &untrained).expect("welch");
        assert!((cell(&s.student, &key, "t") - st.t).abs() < 1e-9 && cell(&s.student, &key, "df") == st.df);
        assert!((cell(&s.welch, &key, "t") - we.t).abs() < 1e-9 && (cell(&s.welch, &key, "df") - we.df).abs() < 1e-9);
        assert!(cell(&s.student, &key, "q") >= cell(&s.student, &key, "p"));
        // Separation: controls (here untrained) against the pretrained groups, and η² over groups.
        let sep = [("metric", metric)];
        let d = dynsim_query::stats::cohen_d(&untrained, &partial).expect("d");
        assert!((cell(&s.separation, &sep, "cohen_d") - d).abs() < 1e-12);
        let by_group = |g: &str| -> Vec<f64> { values(&to_master, metric, &[g]).iter().map(|x| x.0).collect() };
        let eta = dynsim_query::stats::eta_squared(&[
            by_group("untrained"),
            by_group("pretrain_basic_frozen"),
            by_group("pretrain_anti_frozen"),
        ])
        .expect("eta");
        assert!((cell(&s.separation, &sep, "eta2") - eta).abs() < 1e-12);
        assert_eq!((cell(&s.separation, &sep, "n_controls"), cell(&s.separation, &sep, "n_pretrained")), (2.0, 4.0));
        // Over learning on the pretrained share: every non-master checkpoint.
        let curve = values(&over, metric, &["untrained", "pretrain_basic_frozen", "pretrain_anti_frozen"]);
        let share: Vec<f64> =
            curve.iter().map(|(_, _, g)| Group::parse(g).expect("group").pretrained_share()).collect();
        let y: Vec<f64> = curve.iter().map(|x| x.0).collect();
        let fit = linear_regression(&share, &y).expect("fit");
        assert!((cell(&s.on_share, &[("metric", metric)], "slope") - fit.slope).abs() < 1e-12);
        let progress: Vec<f64> = curve.iter().map(|x| x.1).collect();
        let fit = linear_regression(&progress, &y).expect("fit");
        assert!((cell(&s.on_progress, &[("metric", metric)], "slope") - fit.slope).abs() < 1e-12);
    }
}

/// The report on a tiny study in both analyses: its sections, the study table's cells against
/// values computed here from the comparison frames (mean ± SEM on the study's scale), the
/// training table against the checkpoints, and every figure written and linked.
#[test]
fn report_tables_match_the_frames_and_every_figure_is_written() {
    use dynsim_query::MetricSpec;
    use dynsim_testcases::compositional::report::{
        sections, study_value, write_report, AnalysisOutcome, Setup, StudyRow,
    };
    use dynsim_testcases::compositional::{comparison, summarize, Kind};
    let groups =
        [Group::Master, Group::Untrained, Group::MasterFrozen, Group::PretrainBasicFrozen, Group::PretrainFrozen];
    let (tmp, store, all) = recorded_study(&groups, 2);
    let runs: Vec<&Run> = all.iter().collect();
    record_runs(&runs, &store, Analysis::Repal, 8, &mut |_, _, _| {}).expect("record repal");
    let metrics = vec![MetricSpec::parse("procrustes").expect("spec"), MetricSpec::parse("cka").expect("spec")];
    let outcomes: Vec<AnalysisOutcome> = [Analysis::Intended, Analysis::Repal]
        .into_iter()
        .map(|analysis| {
            let frame = |kind| {
                comparison(&store, kind, &runs, analysis, 8, &metrics)
                    .expect("comparison")
                    .collect_with(Default::default())
                    .expect("collect")
                    .frame
            };
            let (to_master, matrix, over_learning) =
                (frame(Kind::ToMaster), frame(Kind::Matrix), frame(Kind::OverLearning));
            let summary = summarize(&to_master, &over_learning).expect("summary");
            AnalysisOutcome { analysis, to_master, matrix, over_learning, summary }
        })
        .collect();
    let setup =
        Setup { preset: Preset::Tiny, seeds: 2, init: Init::Shared, trials: 8, runs: &runs, store_root: store.root() };
    let secs = sections(&setup, &outcomes).expect("sections");
    let titles: Vec<&str> = secs.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles.len(), 2 + 2 * 3, "{titles:?}");
    assert!(titles[2].contains("intended") && titles[5].contains("repal"), "{titles:?}");

    // The study table: CKA in the intended and repal columns, on the study's scale.
    let study = &secs[1];
    let col = |name: &str| {
        study.columns.iter().position(|c| c == name).unwrap_or_else(|| panic!("{name}: {:?}", study.columns))
    };
    let row = |g: &str| study.rows.iter().find(|r| r[0] == "rnn" && r[1] == g).unwrap_or_else(|| panic!("{g}"));
    let direct = |o: &AnalysisOutcome, metric: &str, groups: &[&str]| -> (f64, f64) {
        let df = &o.to_master;
        let (m, g, v) =
            (df.column("metric").expect("m"), df.column("left_group").expect("g"), df.column("value").expect("v"));
        let (m, g, v) = (m.str().expect("s"), g.str().expect("s"), v.f64().expect("f"));
        let x: Vec<f64> = (0..df.height())
            .filter(|&i| m.get(i) == Some(metric) && groups.contains(&g.get(i).unwrap_or_default()))
            .map(|i| v.get(i).expect("value") * std::f64::consts::FRAC_2_PI)
            .collect();
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        (mean, (x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt())
    };
    for (k, o) in outcomes.iter().enumerate() {
        let name = format!("CKA {} (angle/(π/2))", o.analysis.name());
        for (g, label) in [("untrained", "untrained"), ("pretrain_frozen", "full (pretrain_frozen)")] {
            let (mean, sem) = direct(o, "cka", &[g]);
            assert_eq!(row(label)[col(&name)], format!("{mean:.3} ± {sem:.3}"), "{g}, analysis {k}");
        }
        // partial pools the one- and two-task groups; here only pretrain_basic_frozen.
        let (mean, sem) = direct(o, "cka", &["pretrain_basic_frozen"]);
        let one = format!("{:.3}", mean);
        assert_eq!(row("partial")[col(&name)], format!("{mean:.3} ± {sem:.3} ({one}–{one})"));
    }
    assert_eq!(
        row("untrained")[col("CKA study")],
        format!("{:.3}", study_value("rnn", "cka", StudyRow::Untrained).expect("v").0)
    );
    assert_eq!(row("partial")[col("DSA study")], "0.292–0.367");
    assert_eq!(row("untrained")[col("DSA intended (rad)")], "–", "no DSA computed");

    // The groups table reads the summary: every CKA cell is by_group's mean ± SEM.
    for (o, sec) in outcomes.iter().zip([&secs[2], &secs[5]]) {
        let c = sec.columns.iter().position(|c| c == "CKA (rad)").expect("CKA column");
        let by = &o.summary.by_group;
        for r in &sec.rows {
            let pick = |name: &str| {
                let (m, g, x) = (by.column("metric").expect("m"), by.column("left_group").expect("g"), by.column(name));
                let (m, g, x) = (m.str().expect("s"), g.str().expect("s"), x.expect("x").f64().expect("f").clone());
                (0..by.height()).find(|&i| m.get(i) == Some("cka") && g.get(i) == Some(r[1].as_str())).map(|i| x.get(i))
            };
            match (pick("mean"), pick("sem")) {
                (Some(Some(mean)), Some(Some(sem))) => assert_eq!(r[c], format!("{mean:.3} ± {sem:.3}"), "{r:?}"),
                _ => assert_eq!(r[c], "–", "{r:?}: a group without networks"),
            }
        }
    }

    // The training table: final accuracy of master against its last checkpoints.
    let training = &secs[0];
    let master = training.rows.iter().find(|r| r[1] == "master").expect("master row");
    assert_eq!(master[2], "2");
    // The tiny preset trains 3 epochs per phase (its accuracy never reaches the stopping rule).
    assert_eq!((master[4].as_str(), master[5].as_str()), ("0.0", "3.0"), "{master:?}");
    let full = training.rows.iter().find(|r| r[1] == "pretrain_frozen").expect("full row");
    assert_eq!((full[4].as_str(), full[5].as_str()), ("3.0", "3.0"), "{full:?}");
    let finals: Vec<f64> = runs
        .iter()
        .filter(|r| r.group == Group::Master)
        .map(|r| {
            let last = dynsim_nets::train::checkpoints(&r.dir(store.root())).expect("list").pop().expect("last");
            checkpoint::read_meta(&last).expect("meta").expect("meta").accuracy[0].1
        })
        .collect();
    let m = (finals[0] + finals[1]) / 2.0;
    assert!(master[3].starts_with(&format!("{m:.3} ± ")), "{master:?} vs {finals:?}");

    // Files: every figure written and linked from report.md.
    let out = tmp.path().join("report");
    let files = write_report(&out, &setup, &outcomes).expect("write");
    let md = std::fs::read_to_string(out.join("report.md")).expect("md");
    let svgs: Vec<&std::path::PathBuf> = files.iter().filter(|f| f.extension().is_some_and(|e| e == "svg")).collect();
    // training + per analysis and metric: box plot, matrix, curves (RNN only)
    assert_eq!(svgs.len(), 1 + 2 * 2 * 3);
    for f in svgs {
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        assert!(md.contains(&format!("]({name})")), "{name} not linked");
        let text = std::fs::read_to_string(f).expect("svg");
        assert!(text.starts_with("<svg") && !text.contains("NaN"), "{name}");
    }
    let boxes = std::fs::read_to_string(out.join("intended_rnn_cka_to_master.svg")).expect("box plot");
    assert!(boxes.contains("the study"), "the study's values are marked");
}
