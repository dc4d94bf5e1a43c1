//! The notebook displays on a real store: the h5py-written study file, ingested and
//! compared through dynsim's public API, rendered the way a notebook cell shows it.

use dynsim_kernel::prelude::*;
use dynsim_kernel::{payload, recording_html, store_html, Matrix};

fn study(dir: &std::path::Path) -> Store {
    let store = Store::init(dir.join("store")).expect("init");
    let file = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../data/ingest/study.h5");
    let opts = IngestOptions {
        layout: Some(Layout::parse("/{group}/checkpoint_{checkpoint}/{task}").expect("layout")),
        ..IngestOptions::default()
    };
    store.ingest(&[file], &opts, &mut |_| {}).expect("ingest");
    store
}

#[test]
fn a_comparison_renders_as_table_heatmap_and_summaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = study(dir.path());
    let go = Selection::all(&store).expect("all").filter(col("task").eq(lit("go")));
    let out = Comparison::all_pairs(&store, go.clone())
        .metric(MetricSpec::parse("procrustes").expect("spec"))
        .collect_with(Default::default())
        .expect("collect");
    assert_eq!(out.frame.height(), 15);

    // The frame: every row and column, in HTML and text.
    let bundle = out.frame.bundle();
    assert_eq!(bundle.iter().map(|b| b.0).collect::<Vec<_>>(), ["text/html", "text/plain"]);
    assert!(bundle[0].1.contains("shape: (15,") && bundle[0].1.matches("<tr>").count() == 16);
    let summary = out.bundle();
    assert!(summary[0].1.starts_with("<p>15 results: 0 from the cache, 15 computed"), "{}", summary[0].1);

    // The matrix by id equals the frame's values; by checkpoint it is refused (two groups
    // share each checkpoint), and a selection of one group makes checkpoint a valid label.
    let m = Matrix::from_pairs(&out.frame, "id").expect("matrix");
    assert_eq!(m.labels.len(), 6);
    let (l, r, v) = (
        out.frame.column("left_id").expect("l"),
        out.frame.column("right_id").expect("r"),
        out.frame.column("value").expect("v"),
    );
    for i in 0..out.frame.height() {
        let (a, b) = (
            l.get(i).expect("l").get_str().expect("s").to_string(),
            r.get(i).expect("r").get_str().expect("s").to_string(),
        );
        let x = v.get(i).expect("v").extract::<f64>().expect("f64");
        let (ia, ib) =
            (m.labels.iter().position(|s| *s == a).expect("a"), m.labels.iter().position(|s| *s == b).expect("b"));
        assert_eq!((m.values[[ia, ib]], m.values[[ib, ia]]), (x, x));
    }
    let err = Matrix::from_pairs(&out.frame, "checkpoint").expect_err("ambiguous").to_string();
    assert!(err.starts_with("`checkpoint` = ") && err.contains("names two recordings"), "{err}");
    let scratch = out
        .frame
        .clone()
        .lazy()
        .filter(col("left_group").eq(lit("scratch")).and(col("right_group").eq(lit("scratch"))))
        .collect()
        .expect("filter");
    let m = Matrix::from_pairs(&scratch, "checkpoint").expect("by checkpoint");
    assert_eq!(m.labels, ["0", "100", "200"]);
    let svg = m.bundle();
    assert_eq!(svg[0].0, "image/svg+xml");
    assert!(svg[0].1.starts_with("<svg") && svg[0].1.contains(">100<"));

    // The store: 12 recordings, its keys and the 15 cached results.
    let html = store_html(&store).expect("store");
    assert!(html.contains("12 recordings") && html.contains("4 x 25 x 6"), "{html}");
    assert!(html.contains("pretrained, scratch") && html.contains("0, 100, 200") && html.contains("anti, go"));
    assert!(html.contains("15 cached results") && html.contains("procrustes"));

    // A recording: its keys, shape and statistics equal to its data's.
    let id = go.ids().expect("ids")[0].clone();
    let rec = store.read(&id).expect("read");
    let html = recording_html(&rec);
    let max = rec.data.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    assert!(html.contains(&id) && html.contains("4 x 25 x 6") && html.contains("key <b>task</b>"));
    assert!(html.contains(&format!("max {}", dynsim_kernel_float(f64::from(max)))), "{html}");
    assert_eq!(html.matches("<polyline").count(), 4, "four unit traces");

    // What evcxr reads: one block per rendering.
    let p = payload(&rec.bundle());
    assert_eq!(p.matches("EVCXR_BEGIN_CONTENT").count(), 2);
    assert!(p.ends_with("EVCXR_END_CONTENT\n"));
}

/// The kernel formats floats with 6 significant digits; the same rule, for the assertion.
fn dynsim_kernel_float(v: f64) -> String {
    let decimals = (5 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[test]
fn a_selection_that_cannot_be_read_shows_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = study(dir.path());
    let bad = Selection::all(&store).expect("all").filter(col("no_such_key").eq(lit(1)));
    let b = bad.bundle();
    assert!(b[1].1.contains("the selection cannot be read") && b[1].1.contains("no_such_key"), "{}", b[1].1);
}

/// A DSA comparison's summary line states the certified gaps, and they are the frame's.
#[test]
fn a_dsa_comparison_shows_its_certified_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = study(dir.path());
    let go = Selection::all(&store).expect("all").filter(col("task").eq(lit("go")));
    let out = Comparison::all_pairs(&store, go)
        .metric(MetricSpec::parse("dsa:n_delays=3,rank=6").expect("spec"))
        .collect_with(Default::default())
        .expect("collect");
    let gaps: Vec<f64> = out.frame.column("gap").expect("gap").f64().expect("f64").into_no_null_iter().collect();
    assert_eq!(gaps.len(), 15);
    let max = gaps.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let line = &out.bundle()[1].1;
    assert!(line.contains("DSA certified") && line.contains(&format!("max {max:.2e} over 15 pairs")), "{line}");
    assert!(out.frame.column("unit").expect("unit").str().expect("str").iter().all(|u| u == Some("rad")));
}
