//! Comparisons: results equal direct metric calls, the cache answers repeated questions,
//! content and parameter changes invalidate exactly their rows, shards partition the work,
//! cancellation keeps finished pairs, bad input is refused before any work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dynsim_metrics::{Cka, DmdParams, Dsa, DsaParams, RankSelection, ShapeMetric};
use dynsim_query::{CollectOptions, Comparison, MetricSpec, Progress, Selection, Shard};
use dynsim_store::Store;
use ndarray::Array3;

use crate::{floats, keys, put, recording, six, strs};

fn specs() -> Vec<MetricSpec> {
    ["dsa:n_delays=3,delay_interval=2,rank=5", "procrustes", "cka"]
        .iter()
        .map(|s| MetricSpec::parse(s).expect("spec"))
        .collect()
}

fn all_pairs<'s>(store: &'s Store, metrics: &[MetricSpec]) -> Comparison<'s> {
    let mut c = Comparison::all_pairs(store, Selection::all(store).expect("all"));
    for m in metrics {
        c = c.metric(m.clone());
    }
    c
}

fn data(store: &Store, id: &str) -> Array3<f64> {
    store.read(id).expect("read").data.mapv(f64::from)
}

/// The direct call, through the metrics' own types (not the metric objects), of one of
/// [`specs`]' metrics on a pair of arrays; checks that the spec is that metric.
fn direct_xy(spec: &MetricSpec, x: &Array3<f64>, y: &Array3<f64>) -> f64 {
    match spec.name() {
        "dsa" => {
            let dmd = DmdParams { n_delays: 3, delay_interval: 2, rank: RankSelection::Count(5), ..Default::default() };
            let dsa = Dsa::new(DsaParams { dmd, ..Default::default() }).expect("dsa");
            assert_eq!(spec.canonical(), MetricSpec::new(dsa).with_preprocess(spec.preprocess()).canonical());
            dsa.fit_score(x.view(), y.view()).expect("dsa").value
        }
        "procrustes" => ShapeMetric::default().distance(x.view(), y.view()).expect("procrustes"),
        "cka" => Cka::default().distance(x.view(), y.view()).expect("cka"),
        other => panic!("no direct call for {other}"),
    }
}

/// The direct metric call for one pair.
fn direct(store: &Store, spec: &MetricSpec, left: &str, right: &str) -> f64 {
    direct_xy(spec, &data(store, left), &data(store, right))
}

/// (left_id, right_id, metric) -> value.
fn values(df: &polars::prelude::DataFrame) -> BTreeMap<(String, String, String), f64> {
    let (l, r, m, v) = (strs(df, "left_id"), strs(df, "right_id"), strs(df, "metric"), floats(df, "value"));
    let mut out = BTreeMap::new();
    for i in 0..df.height() {
        assert!(out.insert((l[i].clone(), r[i].clone(), m[i].clone()), v[i]).is_none(), "row {i} twice");
    }
    out
}

#[test]
fn results_equal_direct_calls_and_a_second_collect_computes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = six(dir.path());
    let metrics = specs();
    let first = all_pairs(&store, &metrics).collect_with(CollectOptions::default()).expect("collect");
    assert_eq!((first.total, first.cached, first.computed, first.fits), (45, 0, 45, 6), "15 pairs x 3 metrics");
    assert!(!first.cancelled);
    let df = &first.frame;
    assert_eq!(df.height(), 45);
    for c in ["left_group", "right_group", "left_checkpoint", "right_progress", "left_config", "params", "cached"] {
        assert!(df.column(c).is_ok(), "missing column {c}: {:?}", df.get_column_names());
    }
    let vals = values(df);
    for ((l, r, m), v) in &vals {
        assert!(l < r, "all-pairs rows are oriented by id");
        let spec = metrics.iter().find(|s| s.name() == m).expect("spec");
        let want = direct(&store, spec, l, r);
        assert!((v - want).abs() <= 1e-9 * want.abs().max(1.0), "{m} {l} {r}: {v} vs direct {want}");
    }
    // Keys come from the catalogue.
    let cat = store.catalog().expect("catalog");
    let (lid, lg) = (strs(df, "left_id"), strs(df, "left_group"));
    for (id, g) in lid.iter().zip(&lg) {
        let row = cat.rows.iter().find(|r| &r.id == id).expect("row");
        assert_eq!(&row.keys["group"].to_text(), g);
    }

    let listing = |d: &std::path::Path| dynsim_store::fsutil::snapshot(d).expect("snapshot");
    let before = listing(&store.results_dir());
    let second = all_pairs(&store, &metrics).collect_with(CollectOptions::default()).expect("again");
    assert_eq!(listing(&store.results_dir()), before, "a fully cached question writes nothing");
    assert_eq!((second.cached, second.computed, second.fits), (45, 0, 0));
    assert_eq!(values(&second.frame), vals, "cached values are the computed ones");
    assert!(strs(&second.frame, "cached").iter().all(|c| c == "true"));
    assert!(strs(&first.frame, "cached").iter().all(|c| c == "false"));
}

/// A data budget smaller than the recordings runs the sample-wise metrics in chunks (one
/// task per chunk at 1 byte, a few at two recordings' size): the same values as one chunk,
/// every task computed once.
#[test]
fn a_small_data_budget_computes_the_same_values_in_chunks() {
    let metrics = specs();
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = values(&all_pairs(&six(dir.path()), &metrics).collect().expect("one chunk"));
    // a recording here is 3 trials x 40 steps x 3 units of f64
    for budget in [1, 2 * 3 * 40 * 3 * 8] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = six(dir.path());
        let mut computed = Vec::new();
        let mut progress = |p: Progress| {
            if let Progress::Computed { done, .. } = p {
                computed.push(done);
            }
        };
        let out = all_pairs(&store, &metrics)
            .collect_with(CollectOptions {
                data_budget: Some(budget),
                progress: Some(&mut progress),
                ..Default::default()
            })
            .expect("chunks");
        assert_eq!((out.computed, out.cached), (45, 0), "budget {budget}");
        assert_eq!(computed, (1..=45).collect::<Vec<_>>(), "every task reported once, budget {budget}");
        let got = values(&out.frame);
        assert_eq!(got.len(), reference.len());
        for (k, v) in &reference {
            assert!((got[k] - v).abs() <= 1e-12 * v.abs().max(1.0), "{k:?}: {} vs {v} (budget {budget})", got[k]);
        }
    }
}

/// A recording that cannot be read in a later chunk ends the run with an error naming it, and
/// what the earlier chunks computed stays in the cache.
#[test]
fn an_unreadable_recording_in_a_later_chunk_keeps_the_earlier_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = six(dir.path());
    let metrics: Vec<MetricSpec> = ["procrustes", "cka"].iter().map(|s| MetricSpec::parse(s).expect("spec")).collect();
    let cat = store.catalog().expect("catalog");
    // tasks run by right recording; the recording with the largest id is the right side of the
    // most pairs, so its chunks come last
    let last = cat.rows.iter().max_by_key(|r| r.id.clone()).expect("row");
    let file = store.root().join(&last.file);
    let saved = std::fs::read(&file).expect("read");
    std::fs::write(&file, &saved[..saved.len() / 2]).expect("truncate");
    let budget = 2 * 3 * 40 * 3 * 8;
    let err = all_pairs(&store, &metrics)
        .collect_with(CollectOptions { data_budget: Some(budget), ..Default::default() })
        .expect_err("damaged recording");
    assert!(err.to_string().contains(&last.file) || err.to_string().contains(&last.id), "{err}");
    std::fs::write(&file, &saved).expect("restore");
    let out = all_pairs(&store, &metrics).collect_with(CollectOptions::default()).expect("after repair");
    assert!(out.cached > 0 && out.cached + out.computed == 30, "kept {} of 30, computed {}", out.cached, out.computed);
}

#[test]
fn new_content_or_parameters_recompute_exactly_the_affected_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = six(dir.path());
    let metrics = specs();
    all_pairs(&store, &metrics).collect().expect("first");
    // "Edit" recording a/1: its new content is ingested (same keys plus a version), the old
    // one is left out of the selection.
    let cat = store.catalog().expect("catalog");
    let old = cat
        .rows
        .iter()
        .find(|r| r.keys["group"].to_text() == "a" && r.keys["checkpoint"].to_text() == "1")
        .expect("a/1")
        .id
        .clone();
    let edited = recording(3, 40, 3, 0.9, 0.5, 99);
    let new = put(
        &store,
        &edited,
        keys(&[("group", "a"), ("checkpoint", "1"), ("progress", "0.5"), ("config", "c1"), ("version", "2")]),
    );
    let sel = Selection::all(&store).expect("all").filter_sql(&format!("id <> '{old}'")).expect("sel");
    let mut cmp = Comparison::all_pairs(&store, sel);
    for m in &metrics {
        cmp = cmp.metric(m.clone());
    }
    let out = cmp.collect_with(CollectOptions::default()).expect("edited");
    assert_eq!((out.total, out.computed, out.cached), (45, 15, 30), "5 pairs touch the new content, x 3 metrics");
    assert_eq!(out.fits, 6, "the recordings of the 5 missing DSA pairs, each fitted once");
    let (l, r, cached) = (strs(&out.frame, "left_id"), strs(&out.frame, "right_id"), strs(&out.frame, "cached"));
    for i in 0..out.frame.height() {
        assert_eq!(cached[i] == "false", l[i] == new || r[i] == new, "row {i}");
    }
    // A parameter change recomputes that metric only; an equivalent spelling does not.
    let changed = vec![
        MetricSpec::parse("dsa:n_delays=3,delay_interval=2,rank=4").expect("spec"),
        MetricSpec::parse("cka:debiased=false,kernel=linear").expect("spec"),
    ];
    let out = all_pairs(&store, &changed).collect_with(CollectOptions::default()).expect("changed");
    assert_eq!(out.total, 2 * 21, "7 recordings now");
    // dsa: every pair anew (7 fits); cka: only the one pair never asked before (the old
    // a/1 against its new content), the 15 + 5 others are in the cache.
    assert_eq!((out.computed, out.cached, out.fits), (21 + 1, 20, 7));
}

#[test]
fn shards_cover_every_pair_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = six(dir.path());
    let metrics = specs();
    let full = all_pairs(&store, &metrics).plan().expect("plan");
    let whole: BTreeSet<_> = full.tasks.iter().map(|t| full.key(t)).collect();
    let n = 4;
    let mut seen = BTreeMap::new();
    let mut rows = BTreeMap::new();
    for i in 0..n {
        let shard = Shard::new(i, n).expect("shard");
        let out = all_pairs(&store, &metrics).shard(shard).collect_with(CollectOptions::default()).expect("shard");
        assert_eq!(out.cached, 0, "shards share no task");
        for t in &all_pairs(&store, &metrics).shard(shard).plan().expect("plan").tasks {
            assert!(seen.insert(full.key(t), i).is_none(), "task in two shards");
        }
        for (k, v) in values(&out.frame) {
            assert!(rows.insert(k, v).is_none(), "row in two shards");
        }
    }
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), whole, "union of shards == plan");
    assert!(seen.values().collect::<BTreeSet<_>>().len() > 1, "the work is spread");
    // The union of the shard frames is the unsharded result, now entirely from the cache.
    let out = all_pairs(&store, &metrics).collect_with(CollectOptions::default()).expect("whole");
    assert_eq!((out.computed, out.cached), (0, 45));
    assert_eq!(values(&out.frame), rows);
    assert!("3/3".parse::<Shard>().is_err() && "1/0".parse::<Shard>().is_err() && "x".parse::<Shard>().is_err());
}

#[test]
fn cancelling_keeps_finished_pairs_and_the_next_run_does_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = six(dir.path());
    let metrics = specs();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let mut progress = |p: Progress| {
        if let Progress::Computed { done: 5, .. } = p {
            flag.store(true, Ordering::Relaxed);
        }
    };
    let out = all_pairs(&store, &metrics)
        .collect_with(CollectOptions { progress: Some(&mut progress), cancel: Some(cancel), ..Default::default() })
        .expect("cancelled run");
    // Tasks already running when the flag is seen still finish and are kept; on a fast machine
    // that can be all of them (workers run ahead of the thread that journals and reports), so
    // the counts, not the timing, are asserted: everything computed is kept and reused.
    assert!(out.computed >= 5, "{}", out.computed);
    assert_eq!(out.cancelled, out.computed < 45);
    assert_eq!(out.frame.height(), out.computed);
    let rest = all_pairs(&store, &metrics).collect_with(CollectOptions::default()).expect("rest");
    assert_eq!((rest.cached, rest.computed), (out.computed, 45 - out.computed));

    // Cancelled before any pair is scheduled (deterministic): nothing is computed, the run
    // says it was cancelled, and the next run computes every pair.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let store2 = six(dir2.path());
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let mut progress = |p: Progress| {
        if let Progress::Planned { .. } = p {
            flag.store(true, Ordering::Relaxed);
        }
    };
    let none = all_pairs(&store2, &metrics)
        .collect_with(CollectOptions { progress: Some(&mut progress), cancel: Some(cancel), ..Default::default() })
        .expect("cancelled run");
    assert!(none.cancelled);
    assert_eq!((none.computed, none.frame.height()), (0, 0));
    let all = all_pairs(&store2, &metrics).collect_with(CollectOptions::default()).expect("all");
    assert_eq!((all.cached, all.computed), (0, 45));
}

#[test]
fn bipartite_and_matched_plans_label_both_sides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = six(dir.path());
    let all = Selection::all(&store).expect("all");
    let early = all.clone().filter_sql("checkpoint < 2").expect("early");
    let last = all.clone().filter_sql("checkpoint = 2").expect("last");
    let cka = MetricSpec::parse("cka").expect("cka");
    let df = Comparison::bipartite(&store, early.clone(), last.clone()).metric(cka.clone()).collect().expect("x");
    assert_eq!(df.height(), 4 * 2);
    // Matched on group: every early checkpoint against the last checkpoint of its group.
    let df = Comparison::bipartite(&store, early, last).on(["group"]).metric(cka).collect().expect("on");
    assert_eq!(df.height(), 4);
    assert_eq!(strs(&df, "left_group"), strs(&df, "right_group"));
    assert!(strs(&df, "right_checkpoint").iter().all(|c| c == "2"));
    let mut lc = strs(&df, "left_checkpoint");
    lc.sort();
    assert_eq!(lc, ["0", "0", "1", "1"]);
}

#[test]
fn bad_plans_are_refused_before_any_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = six(dir.path());
    let all = Selection::all(&store).expect("all");
    let cka = MetricSpec::parse("cka").expect("cka");
    let err = |c: Comparison<'_>| c.collect().expect_err("must fail").to_string();
    // Empty selection.
    let none = all.clone().filter_sql("checkpoint > 10").expect("sel");
    let e = err(Comparison::all_pairs(&store, none).metric(cka.clone()));
    assert!(e.contains("matches no recording") && e.contains("checkpoint > 10"), "{e}");
    // One recording has no pairs.
    let one = all.clone().filter_sql("group = 'a' AND checkpoint = 0").expect("sel");
    let e = err(Comparison::all_pairs(&store, one).metric(cka.clone()));
    assert!(e.contains("no pairs"), "{e}");
    // Unknown --on key.
    let e = err(Comparison::all_pairs(&store, all.clone()).on(["epoch"]).metric(cka.clone()));
    assert!(e.contains("\"epoch\"") && e.contains("group"), "{e}");
    // No metric.
    assert!(err(Comparison::all_pairs(&store, all.clone())).contains("no metric"));
    // A rank larger than the embedding is wide (3 units x 3 delays = 9 columns).
    let big = MetricSpec::parse("dsa:n_delays=3,rank=20").expect("spec");
    let typed = Comparison::all_pairs(&store, all.clone()).metric(big).collect().expect_err("rank 20");
    assert!(
        matches!(&typed, dynsim_query::QueryError::Prepare { recording, source, .. } if !recording.is_empty() && matches!(**source, dynsim_metrics::MetricError::RankTooLarge { rank: 20, .. })),
        "{typed:?}"
    );
    let e = typed.to_string();
    assert!(e.contains("rank 20") && e.contains("cannot prepare recording") && e.contains("3 units"), "{e}");
    // Delays longer than the recordings.
    let long = MetricSpec::parse("dsa:n_delays=30,delay_interval=2").expect("spec");
    let e = err(Comparison::all_pairs(&store, all.clone()).metric(long));
    assert!(e.contains("40 time steps"), "{e}");
    // Sample-wise metrics need recordings of one length.
    let short = put(&store, &recording(3, 30, 3, 0.3, 0.8, 7), keys(&[("group", "c")]));
    let e = err(Comparison::all_pairs(&store, Selection::all(&store).expect("all")).metric(cka));
    assert!(e.contains("cka") && e.contains(&short) && e.contains("30"), "{e}");
    // Nothing was computed or cached by the refused plans.
    assert!(dynsim_query::results(&store).expect("results").height() == 0);
    // A recording a metric cannot digest (all zeros) fails with the pair named; the pairs
    // finished before are kept.
    let zero = put(&store, &Array3::zeros((3, 40, 3)), keys(&[("group", "z")]));
    let sel = Selection::all(&store).expect("all").filter_sql("n_time = 40").expect("sel");
    let e = err(Comparison::all_pairs(&store, sel).metric(MetricSpec::parse("procrustes").expect("p")));
    assert!(e.contains(&zero) && e.contains("procrustes"), "{e}");
}

/// With the study's preprocessing, every value equals the metric on the pair's preprocessed
/// arrays (`joint_zscore_pca`, then the metric; DSA fitted on those); the results are cached
/// apart from the plain metrics' (the plain specs keep their hash), and a second run
/// computes nothing.
#[test]
fn preprocessed_comparisons_equal_the_metric_on_the_preprocessed_pair() {
    use dynsim_query::Preprocess;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = six(dir.path());
    let metrics = specs();
    let plain = all_pairs(&store, &metrics).collect_with(CollectOptions::default()).expect("plain");
    let pre = Preprocess::ZscoreJointPca(2);
    let first = all_pairs(&store, &metrics).preprocess(pre).collect_with(CollectOptions::default()).expect("pre");
    assert_eq!((first.cached, first.computed, first.fits), (0, 45, 0), "cached apart; DSA fits per pair");
    let vals = values(&first.frame);
    let plain_vals = values(&plain.frame);
    for ((l, r, m), v) in &vals {
        let spec = metrics.iter().find(|s| s.name() == m).expect("spec");
        let (x, y) = dynsim_metrics::joint_zscore_pca(data(&store, l).view(), data(&store, r).view(), 2).expect("pca");
        assert_eq!(x.dim().2, 2);
        let want = direct_xy(spec, &x, &y);
        assert!((v - want).abs() <= 1e-9 * want.abs().max(1.0), "{m} {l} {r}: {v} vs direct {want}");
        let unprocessed = plain_vals[&(l.clone(), r.clone(), m.clone())];
        assert!((v - unprocessed).abs() > 1e-9, "{m} {l} {r}: preprocessing changed nothing");
    }
    let params = strs(&first.frame, "params");
    assert!(params.iter().all(|p| p.contains("preprocess=zscore_joint_pca:2")), "{params:?}");
    let again = all_pairs(&store, &metrics).preprocess(pre).collect_with(CollectOptions::default()).expect("again");
    assert_eq!((again.cached, again.computed), (45, 0));
    // The text form gives the same question; the plain spec's hash is what it always was.
    let text = MetricSpec::parse("procrustes:preprocess=zscore_pca:2").expect("spec");
    assert_eq!(text, MetricSpec::parse("procrustes").expect("spec").with_preprocess(Some(pre)));
    assert_eq!(MetricSpec::parse("cka").expect("spec").with_preprocess(None).param_hash(), metrics[2].param_hash());
    for bad in ["cka:preprocess=pca", "cka:preprocess=zscore_pca:0", "cka:preprocess=zscore_pca:x"] {
        let e = MetricSpec::parse(bad).expect_err(bad).to_string();
        assert!(e.contains("zscore_pca:K"), "{bad}: {e}");
    }
    // More components than units: named, with the limit.
    let e = all_pairs(&store, &metrics[1..2])
        .preprocess(Preprocess::ZscoreJointPca(4))
        .collect_with(CollectOptions::default())
        .expect_err("too many components")
        .to_string();
    assert!(e.contains("components") && e.contains("(3)"), "{e}");
}
