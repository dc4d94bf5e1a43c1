//! Selections and SQL over a real store (the h5py study example ingested with a layout).

use std::path::Path;

use dynsim_query::frames::{recordings, sql};
use dynsim_query::Selection;
use dynsim_store::{IngestOptions, Layout, Store};
use polars::prelude::*;

fn study_store(dir: &Path) -> Store {
    let store = Store::init(dir.join("store")).expect("init");
    let file = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../../data/ingest/study.h5");
    let opts = IngestOptions {
        layout: Some(Layout::parse("/{group}/checkpoint_{checkpoint}/{task}").expect("layout")),
        ..IngestOptions::default()
    };
    store.ingest(&[file], &opts, &mut |_| {}).expect("ingest");
    store
}

#[test]
fn sql_and_lazy_frames_over_the_catalogue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = study_store(dir.path());
    let df = sql(
        &store,
        "SELECT \"group\", COUNT(*) AS n, MAX(progress) AS last FROM recordings \
         WHERE checkpoint >= 100 GROUP BY \"group\" ORDER BY \"group\"",
    )
    .expect("sql");
    assert_eq!(df.height(), 2);
    let g = df.column("group").expect("group").str().expect("str").clone();
    let groups: Vec<Option<&str>> = (0..g.len()).map(|i| g.get(i)).collect();
    assert_eq!(groups, [Some("pretrained"), Some("scratch")]);
    let n = df.column("n").expect("n").cast(&DataType::UInt32).expect("cast");
    let n = n.u32().expect("u32");
    let n: Vec<Option<u32>> = (0..n.len()).map(|i| n.get(i)).collect();
    assert_eq!(n, [Some(4), Some(4)], "2 checkpoints x 2 tasks per group");
    // The same selection through the lazy API agrees with the catalogue.
    let lf = recordings(&store).expect("scan");
    let go = lf.filter(col("task").eq(lit("go"))).select([col("id")]).collect().expect("collect");
    let want = store.catalog().expect("catalog").rows.iter().filter(|r| r.keys["task"].to_text() == "go").count();
    assert_eq!(go.height(), want);
    // Unknown columns and bad syntax are errors naming the query.
    let err = sql(&store, "SELECT epoch FROM recordings").expect_err("unknown column");
    assert!(err.to_string().contains("epoch"), "{err}");
    assert!(sql(&store, "SELEC * FROM recordings").is_err());
}

#[test]
fn selections_filter_with_polars_expressions_and_sql_predicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = study_store(dir.path());
    let cat = store.catalog().expect("catalog");
    let all = Selection::all(&store).expect("all");
    assert_eq!(all.ids().expect("ids").len(), cat.rows.len());
    // A bare `group` works in SQL predicates, as in `dynsim ls --where`.
    let sel = all.clone().filter_sql("group = 'pretrained' AND checkpoint IN (100, 200)").expect("sql");
    let mut want: Vec<String> = cat
        .rows
        .iter()
        .filter(|r| r.keys["group"].to_text() == "pretrained" && r.keys["checkpoint"].to_text() != "0")
        .map(|r| r.id.clone())
        .collect();
    want.sort();
    assert_eq!(sel.ids().expect("ids"), want);
    assert_eq!(want.len(), 4);
    // The same through a polars expression, chained with a SQL predicate.
    let sel2 = all
        .clone()
        .filter(col("group").eq(lit("pretrained")))
        .filter_sql("progress >= 0.5 AND task LIKE 'g%' OR task = 'anti' AND progress > 0.4")
        .expect("sql");
    assert_eq!(sel2.ids().expect("ids"), want);
    assert!(sel2.description().contains("progress >= 0.5"), "{}", sel2.description());
    // An unknown column names itself and the columns that exist.
    let err = all.clone().filter_sql("epoch > 3").expect_err("unknown").to_string();
    assert!(err.contains("\"epoch\"") && err.contains("checkpoint") && err.contains("progress"), "{err}");
    let err = all.clone().filter_sql("checkpoint >").expect_err("syntax").to_string();
    assert!(err.contains("checkpoint >"), "{err}");
    // Every catalogue column can be filtered on (the predicates `ls --where` and
    // `export --where` take, now through the same polars SQL).
    let n = |p: &str| all.clone().filter_sql(p).and_then(|s| s.ids()).map(|ids| ids.len());
    assert_eq!(n("\"group\" = 'pretrained' AND checkpoint >= 100").expect("p1"), 4);
    assert_eq!(n("task IN ('go') AND progress = 1").expect("p2"), 2);
    assert_eq!(n("n_trials = 4 AND source LIKE '%study.h5:%'").expect("p3"), 12);
    assert_eq!(n("n_units > 1000").expect("p4"), 0);
}

#[test]
fn the_catalogue_frame_is_the_catalogue_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = study_store(dir.path());
    let from_file = dynsim_query::io::read_parquet(&store.root().join("catalog.parquet")).expect("read file");
    let frame = dynsim_query::frames::catalog_frame(&store.catalog().expect("catalog")).expect("frame");
    assert_eq!(frame.height(), 12);
    assert!(frame.equals_missing(&from_file), "{frame}\n{from_file}");
    assert_eq!(frame.column("n_trials").expect("n_trials").dtype(), &DataType::UInt32);
    assert_eq!(frame.column("checkpoint").expect("checkpoint").dtype(), &DataType::Int64);
    assert_eq!(frame.column("progress").expect("progress").dtype(), &DataType::Float64);
    assert_eq!(frame.column("group").expect("group").dtype(), &DataType::String);
}
