//! Ingest, read back, dedupe, export and bad input on real files.

use std::path::{Path, PathBuf};

use dynsim_store::h5::H5File;
use dynsim_store::keys::parse_assignment;
use dynsim_store::{IngestOptions, KeyValue, Layout, Store, StoreError};

use crate::common::{checksum, data_dir, hdf5_dir, snapshot_without_lock, DAMAGED_HDF5};

fn ingest_dir() -> PathBuf {
    data_dir().join("ingest")
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::init(dir.path().join("store")).expect("init");
    (dir, store)
}

fn opts(layout: Option<&str>) -> IngestOptions {
    IngestOptions { layout: layout.map(|l| Layout::parse(l).expect("layout")), ..IngestOptions::default() }
}

fn ingest(store: &Store, files: &[PathBuf], o: &IngestOptions) -> Result<dynsim_store::IngestReport, StoreError> {
    store.ingest(files, o, &mut |_| {})
}

/// Ingest must fail with a message containing every `needles`, and leave the store as it was.
fn assert_rejected(store: &Store, files: &[PathBuf], o: &IngestOptions, needles: &[&str]) {
    let before = snapshot_without_lock(store.root());
    let err = ingest(store, files, o).expect_err("bad input was accepted");
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
    assert_eq!(snapshot_without_lock(store.root()), before, "the store changed after a failed ingest: {msg}");
}

#[test]
fn h5py_study_layout_maps_groups_to_keys_and_stacks_trials() {
    let (_d, store) = new_store();
    let file = ingest_dir().join("study.h5");
    let rep = ingest(&store, std::slice::from_ref(&file), &opts(Some("/{group}/checkpoint_{checkpoint}/{task}")))
        .expect("ingest");
    assert_eq!(rep.added.len(), 12, "2 groups x 3 checkpoints x 2 tasks");
    let h5 = H5File::open(&file).expect("open");
    for row in &rep.added {
        assert_eq!(row.shape, [4, 25, 6], "4 trial datasets of 25 x 6 stacked");
        let k = &row.keys;
        let group = k["group"].to_text();
        let ckpt = match k["checkpoint"] {
            KeyValue::Int(c) => c,
            ref other => panic!("checkpoint is {other:?}"),
        };
        assert!(["go", "anti"].contains(&k["task"].to_text().as_str()));
        assert_eq!(k["progress"], KeyValue::Float(ckpt as f64 / 200.0), "group attribute progress");
        assert_eq!(k["seed"], KeyValue::Int(if group == "pretrained" { 1 } else { 2 }), "attribute seed");
        assert_eq!(k["arch"], KeyValue::Str("leaky_rnn".into()), "root attribute");
        assert_eq!(k["lr"], KeyValue::Float(3e-4), "float32 attribute shown as written");
        let rec = store.read(&row.id).expect("read");
        for trial in 0..4 {
            let ds = format!("/{group}/checkpoint_{ckpt}/{}/trial_{trial}", k["task"]);
            let want = h5.read_f64(&ds).expect("read dataset");
            let got: Vec<f64> = rec.data.slice(ndarray::s![trial, .., ..]).iter().map(|&v| v as f64).collect();
            assert_eq!(got, want, "{ds}");
        }
    }
    // Same file again: same content and keys, nothing added, catalogue byte-identical.
    let before = snapshot_without_lock(store.root());
    let again = ingest(&store, &[file], &opts(Some("/{group}/checkpoint_{checkpoint}/{task}"))).expect("again");
    assert!(again.added.is_empty());
    assert_eq!(again.already_present.len(), 12);
    assert_eq!(snapshot_without_lock(store.root()), before);
    assert!(store.verify().expect("verify").problems.is_empty());
}

#[test]
fn every_readable_fixture_ingests_with_exact_values() {
    let (_d, store) = new_store();
    let names = [
        "a_default.h5",
        "b_gzip_shuffle.h5",
        "c_dtypes.h5",
        "d_attrs.h5",
        "e_latest.h5",
        "e2_libver_v114.h5",
        "f1_fletcher32.h5",
        "f2_lzf.h5",
        "h_empty_fill.h5",
    ];
    let files: Vec<PathBuf> = names.iter().map(|n| hdf5_dir().join(n)).collect();
    let rep = ingest(&store, &files, &IngestOptions::default()).expect("ingest");
    assert!(rep.skipped.iter().any(|s| s.contains("/extra_i32") && s.contains("not a float")), "{:?}", rep.skipped);
    assert!(rep.skipped.iter().any(|s| s.contains("/empty_0x16") && s.contains("empty")), "{:?}", rep.skipped);
    assert!(rep.skipped.iter().any(|s| s.contains("/null_dataspace")), "{:?}", rep.skipped);
    // e and e2 hold identical data under identical paths: their rows differ only by source.
    let cat = store.catalog().expect("catalog");
    assert_eq!(cat.rows.len(), rep.added.len());
    for row in &cat.rows {
        let (file, ds) = row.source.rsplit_once(':').expect("file:dataset");
        let want = H5File::open(Path::new(file)).and_then(|f| f.read_f64(ds)).expect("h5 read");
        let rec = store.read_row(row, true).expect("read back with hash check");
        let got: Vec<f64> = rec.data.iter().map(|&v| v as f64).collect();
        let want32: Vec<f64> = want.iter().map(|&v| v as f32 as f64).collect();
        assert_eq!(got, want32, "{}", row.source);
        let expect_dtype = if ds == "/f16" {
            "float16"
        } else if ds == "/f64" {
            "float64"
        } else {
            "float32"
        };
        assert_eq!(row.dtype, expect_dtype, "{}", row.source);
    }
    // d_attrs: attributes of the root, the group and the dataset became keys.
    let d = cat.rows.iter().find(|r| r.source.ends_with("d_attrs.h5:/model/activations")).expect("d row");
    assert_eq!(d.keys["seed"], KeyValue::Int(7));
    assert_eq!(d.keys["arch"], KeyValue::Str("lstm".into()));
    assert_eq!(d.keys["title"], KeyValue::Str("activation dump ü".into()));
    assert_eq!(d.keys["layer_sizes"], KeyValue::Str("[16.0,32.0,64.0]".into()));
    assert_eq!(d.keys["bool_flag"], KeyValue::Int(1));
    // Layout on the default file: keys from the path, values unchanged.
    let (_d2, store2) = new_store();
    let rep = ingest(
        &store2,
        &[hdf5_dir().join("a_default.h5")],
        &opts(Some("/{model}/checkpoint_{checkpoint}/activations")),
    )
    .expect("layout ingest");
    let mut ckpts: Vec<_> = rep.added.iter().map(|r| r.keys["checkpoint"].clone()).collect();
    ckpts.sort_by_key(|k| k.to_text());
    assert_eq!(ckpts, [KeyValue::Int(0), KeyValue::Int(1)]);
}

#[test]
fn parquet_long_tables_numpy_and_recording_files() {
    let (_d, store) = new_store();
    let long = ingest(&store, &[ingest_dir().join("long_table.parquet")], &IngestOptions::default()).expect("long");
    assert_eq!(long.added.len(), 4, "2 groups x 2 checkpoints");
    for r in &long.added {
        assert_eq!(r.shape, [3, 12, 8]);
        assert!(matches!(r.keys["checkpoint"], KeyValue::Int(0 | 10)));
    }
    // The same numbers as a list column: same content and keys -> same ids, nothing added.
    let list = ingest(&store, &[ingest_dir().join("list_table.parquet")], &IngestOptions::default()).expect("list");
    assert!(list.added.is_empty(), "{:?}", list.added);
    assert_eq!(list.already_present.len(), 4);
    // The rows were shuffled in the file; the recording is in (trial, time) order.
    let table = std::fs::File::open(ingest_dir().join("long_table.parquet")).expect("open");
    let batches: Vec<_> = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(table)
        .expect("reader")
        .build()
        .expect("build")
        .collect::<Result<_, _>>()
        .expect("batches");
    let row = long
        .added
        .iter()
        .find(|r| r.keys["group"].to_text() == "a" && r.keys["checkpoint"] == KeyValue::Int(10))
        .expect("a/10");
    let rec = store.read(&row.id).expect("read");
    let mut compared = 0;
    for b in &batches {
        use arrow_array::cast::AsArray;
        use arrow_array::Array;
        let g = b.column_by_name("group").expect("group");
        let g = dynsim_store::arrowcast::to_utf8(g.as_ref()).expect("strings");
        let c = b.column_by_name("checkpoint").expect("ckpt").as_primitive::<arrow_array::types::Int64Type>();
        let tr = b.column_by_name("trial").expect("trial").as_primitive::<arrow_array::types::Int64Type>();
        let tm = b.column_by_name("time").expect("time").as_primitive::<arrow_array::types::Int64Type>();
        let u3 = b.column_by_name("u3").expect("u3").as_primitive::<arrow_array::types::Float64Type>();
        for i in 0..b.num_rows() {
            if g.value(i) == "a" && c.value(i) == 10 && !u3.is_null(i) {
                assert_eq!(rec.data[[tr.value(i) as usize, tm.value(i) as usize, 3]], u3.value(i) as f32);
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 36);
    // npz: one recording per array; the layout reads keys from the array names.
    let npz = ingest(&store, &[ingest_dir().join("arrays.npz")], &opts(Some("/ckpt_{checkpoint}"))).expect("npz");
    let mut shapes: Vec<_> = npz.added.iter().map(|r| (r.keys["checkpoint"].to_text(), r.shape)).collect();
    shapes.sort();
    assert_eq!(shapes, [("0".to_string(), [2, 10, 3]), ("5".to_string(), [1, 10, 3])]);
    // And the values, against what numpy reads (data/make_npz_manifest.py): checksums of the
    // values as stored (f32, here widened to f64), and the first and last value.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ingest_dir().join("arrays.npz.manifest.json")).expect("manifest"),
    )
    .expect("manifest json");
    for row in &npz.added {
        let name = format!("ckpt_{}", row.keys["checkpoint"].to_text());
        let m = &manifest[&name];
        let rec = store.read(&row.id).expect("read");
        let bytes: Vec<u8> = rec.data.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
        assert_eq!(checksum(&bytes), m["stored_f64"].as_str().expect("checksum"), "{name}");
        let values: Vec<f32> = rec.data.iter().copied().collect();
        assert_eq!(values[0], m["first"].as_f64().expect("first") as f32, "{name}");
        assert_eq!(values[values.len() - 1], m["last"].as_f64().expect("last") as f32, "{name}");
    }
    // The same content under other keys: one file, two rows.
    let o = IngestOptions {
        keys: [("condition".to_string(), KeyValue::Str("copy".into()))].into(),
        ..IngestOptions::default()
    };
    let copy = ingest(&store, &[ingest_dir().join("long_table.parquet")], &o).expect("copy");
    assert_eq!(copy.added.len(), 4);
    assert_eq!(copy.shared_content, 4, "stored once");
    // A dynsim recording file (as exported) goes into another store with its keys.
    let out = tempfile::tempdir().expect("tempdir");
    let exported = out.path().join("export");
    store.export(&exported, None).expect("export");
    let (_d3, other) = new_store();
    let files: Vec<PathBuf> =
        std::fs::read_dir(exported.join("recordings")).expect("ls").flatten().map(|e| e.path()).collect();
    let rep = ingest(&other, &files, &IngestOptions::default()).expect("recording files");
    let mut a: Vec<_> = store.catalog().expect("cat").rows.into_iter().map(|r| (r.id, r.hash, r.keys)).collect();
    let mut b: Vec<_> = rep.added.into_iter().map(|r| (r.id, r.hash, r.keys)).collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a, b, "same ids, hashes and keys in the second store");
}

#[test]
fn bad_input_is_rejected_and_the_store_is_unchanged() {
    let (_d, store) = new_store();
    // Something already in the store, so "unchanged" is not trivially an empty store.
    ingest(&store, &[hdf5_dir().join("a_default.h5")], &IngestOptions::default()).expect("seed store");
    let nonfinite = ingest_dir().join("nonfinite.h5");
    assert_rejected(
        &store,
        std::slice::from_ref(&nonfinite),
        &IngestOptions::default(),
        &["nonfinite.h5", "/acts", "trial 1, time 4, unit 2", "NaN", "--allow-nonfinite"],
    );
    assert_rejected(
        &store,
        &[ingest_dir().join("ragged_table.parquet")],
        &IngestOptions::default(),
        &["ragged_table.parquet", "ragged trials", "trial 1"],
    );
    for damaged in DAMAGED_HDF5 {
        assert_rejected(&store, &[hdf5_dir().join(damaged)], &IngestOptions::default(), &[damaged]);
    }
    assert_rejected(
        &store,
        &[hdf5_dir().join("a_default.h5")],
        &opts(Some("/{group}/{checkpoint}/{task}/{x}")),
        &["matches nothing", "a_default.h5"],
    );
    assert_rejected(
        &store,
        &[hdf5_dir().join("c_dtypes.h5")],
        &opts(Some("/{name}")),
        &["/extra_i32", "not a float", "--layout"],
    );
    assert_rejected(
        &store,
        &[hdf5_dir().join("a_default.h5")],
        &opts(Some("/{model}/{checkpoint}")),
        &["checkpoint", "integer"],
    );
    assert_rejected(
        &store,
        &[ingest_dir().join("does_not_exist.h5")],
        &IngestOptions::default(),
        &["does_not_exist.h5"],
    );
    assert_rejected(
        &store,
        &[ingest_dir().join("study.h5")],
        &opts(Some("/{group}/checkpoint_{checkpoint}")),
        &["matches nothing", "datasets sit deeper"],
    );
    // A good file and a bad one together: nothing of the good one is committed either.
    assert_rejected(
        &store,
        &[ingest_dir().join("study.h5"), nonfinite.clone()],
        &IngestOptions::default(),
        &["nonfinite.h5"],
    );
    // A required key that a recording lacks.
    let o = IngestOptions { require_keys: vec!["checkpoint".into()], ..IngestOptions::default() };
    assert_rejected(
        &store,
        &[hdf5_dir().join("b_gzip_shuffle.h5")],
        &o,
        &["/acts", "required key checkpoint", "--key"],
    );
    // A text file is no recording.
    let dir = tempfile::tempdir().expect("tempdir");
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hello").expect("write");
    assert_rejected(&store, &[txt], &IngestOptions::default(), &["notes.txt", "unrecognised format"]);
    // --key values are checked before anything runs.
    assert!(parse_assignment("progress=2").is_err());
    assert!(parse_assignment("id=3").is_err());
    assert!(parse_assignment("novalue").is_err());
    // Non-finite values are kept on request.
    let o = IngestOptions { allow_nonfinite: true, ..IngestOptions::default() };
    let rep = ingest(&store, &[nonfinite], &o).expect("allowed");
    let rec = store.read(&rep.added[0].id).expect("read");
    assert!(rec.data[[1, 4, 2]].is_nan());
}

#[test]
fn concurrent_ingests_in_threads_keep_both() {
    let (_d, store) = new_store();
    let files = [ingest_dir().join("study.h5"), hdf5_dir().join("b_gzip_shuffle.h5")];
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| {
                let store = store.clone();
                s.spawn(move || {
                    ingest(&store, std::slice::from_ref(f), &IngestOptions::default()).map(|r| r.added.len())
                })
            })
            .collect();
        let added: Vec<usize> = handles.into_iter().map(|h| h.join().expect("thread").expect("ingest")).collect();
        assert_eq!(added, [48, 2]);
    });
    assert_eq!(store.catalog().expect("catalog").rows.len(), 50);
    assert!(store.verify().expect("verify").problems.is_empty());
}

/// A sorted long table streams out in blocks of whole trials; a shuffled one is assembled
/// in memory. Both give the same arrays, whatever the block size, for both unit layouts
/// (one column per unit, one list column), and HDF5 trial blocks agree with whole reads.
#[test]
fn block_boundaries_do_not_change_the_values() {
    use arrow_array::{ArrayRef, FixedSizeListArray, Float64Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let (groups, trials, time, units) = (3usize, 10usize, 7usize, 5usize);
    let value = |g: usize, t: usize, s: usize, u: usize| (g * 1000 + t * 100 + s * 10 + u) as f64 * 0.25;
    let mut rows: Vec<(usize, usize, usize)> = Vec::new();
    for g in 0..groups {
        for t in 0..trials {
            for s in 0..time {
                rows.push((g, t, s));
            }
        }
    }
    for shuffled in [false, true] {
        let mut rows = rows.clone();
        if shuffled {
            rows.reverse();
            rows.swap(3, 50);
        }
        let group: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| format!("g{}", r.0))));
        let trial: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1 as i64)));
        let tm: ArrayRef = Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2 as i64)));
        let mut cols = vec![("group", group.clone()), ("trial", trial.clone()), ("time", tm.clone())];
        let unit_cols: Vec<ArrayRef> = (0..units)
            .map(|u| Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| value(r.0, r.1, r.2, u)))) as ArrayRef)
            .collect();
        let names: Vec<String> = (0..units).map(|u| format!("u{u}")).collect();
        for (n, c) in names.iter().zip(&unit_cols) {
            cols.push((n.as_str(), c.clone()));
        }
        let wide = RecordBatch::try_from_iter(cols).expect("batch");
        let flat =
            Float64Array::from_iter_values(rows.iter().flat_map(|r| (0..units).map(move |u| value(r.0, r.1, r.2, u))));
        let item = Arc::new(arrow_schema::Field::new("item", arrow_schema::DataType::Float64, false));
        let list: ArrayRef =
            Arc::new(FixedSizeListArray::try_new(item, units as i32, Arc::new(flat), None).expect("list"));
        let long =
            RecordBatch::try_from_iter([("group", group), ("trial", trial), ("time", tm), ("x", list)]).expect("batch");
        for (name, batch) in [("wide", wide), ("list", long)] {
            let p = dir.path().join(format!("{name}_{shuffled}.parquet"));
            let f = std::fs::File::create(&p).expect("create");
            let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).expect("writer");
            // Small batches and row groups, so that reading crosses many boundaries.
            for off in (0..batch.num_rows()).step_by(13) {
                w.write(&batch.slice(off, 13.min(batch.num_rows() - off))).expect("write");
                w.flush().expect("flush");
            }
            w.close().expect("close");
            for max_values in [1, units * time, units * time * 3 + 1, 1 << 20] {
                let got = dynsim_store::decode_file(&p, &IngestOptions::default(), max_values).expect("decode");
                assert_eq!(got.len(), groups);
                for (_, keys, a) in got {
                    let g: usize = keys["group"].to_text()[1..].parse().expect("g");
                    let want =
                        ndarray::Array3::from_shape_fn((trials, time, units), |(t, s, u)| value(g, t, s, u) as f32);
                    assert_eq!(a, want, "{name} shuffled={shuffled} max_values={max_values} group {g}");
                }
            }
        }
    }
    // HDF5: trial blocks of one dataset against a whole read.
    let file = hdf5_dir().join("b_gzip_shuffle.h5");
    let whole = H5File::open(&file).and_then(|f| f.read_f64("/acts_auto")).expect("whole");
    for max_values in [1, 100 * 32 * 3, 1 << 22] {
        let got = dynsim_store::decode_file(&file, &IngestOptions::default(), max_values).expect("decode");
        let (_, _, a) = got.into_iter().find(|(l, _, _)| l == "/acts_auto").expect("acts_auto");
        let flat: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        assert_eq!(flat, whole, "max_values {max_values}");
    }
}

#[test]
fn constant_keys_from_the_library_get_the_standard_types() {
    let (_dir, store) = new_store();
    let file = data_dir().join("examples/lorenz_x.npy");
    // Built by hand (not through `--key`): progress 0 as an integer, checkpoint as a float.
    let mut o = opts(None);
    o.keys.insert("progress".into(), KeyValue::Int(0));
    o.keys.insert("checkpoint".into(), KeyValue::Float(100.0));
    ingest(&store, std::slice::from_ref(&file), &o).expect("ingest");
    let row = &store.catalog().expect("catalog").rows[0];
    assert_eq!(row.keys["progress"], KeyValue::Float(0.0));
    assert_eq!(row.keys["checkpoint"], KeyValue::Int(100));
    // An impossible value is refused before anything is staged.
    let mut bad = opts(None);
    bad.keys.insert("progress".into(), KeyValue::Int(2));
    assert_rejected(&store, &[file], &bad, &["progress", "[0, 1]"]);
}

fn array(values: Vec<f32>, shape: [usize; 3], keys: &[&str], source: &str) -> dynsim_store::ArrayRecording {
    let keys = keys.iter().map(|kv| parse_assignment(kv).expect("key")).collect();
    dynsim_store::ArrayRecording { values, shape, keys, source: source.into() }
}

#[test]
fn arrays_from_memory_are_stored_with_their_keys_and_source() {
    let (_d, store) = new_store();
    let a: Vec<f32> = (0..2 * 5 * 3).map(|i| (i as f32).sin()).collect();
    let b: Vec<f32> = (0..4 * 2).map(|i| i as f32 * 0.25 - 1.0).collect();
    let report = store
        .ingest_arrays(
            vec![
                array(a.clone(), [2, 5, 3], &["model=rnn", "checkpoint=3", "progress=1", "lr=0.001"], "run a, epoch 3"),
                array(b.clone(), [4, 2, 1], &["model=gru", "seed=7"], "run b, epoch 0"),
            ],
            &IngestOptions {
                keys: [parse_assignment("task=pdm").unwrap()].into_iter().collect(),
                ..Default::default()
            },
            &mut |_| {},
        )
        .expect("ingest");
    assert_eq!(report.added.len(), 2);
    let cat = store.catalog().expect("catalogue");
    for (values, shape, source) in [(a, [2, 5, 3], "run a, epoch 3"), (b, [4, 2, 1], "run b, epoch 0")] {
        let row = cat.rows.iter().find(|r| r.source == source).expect("source kept");
        assert_eq!(row.shape, shape);
        assert_eq!(row.keys.get("task"), Some(&KeyValue::Str("pdm".into())), "constant keys added");
        let rec = store.read_row(row, true).expect("read back, hash checked");
        assert_eq!(rec.data.iter().copied().collect::<Vec<f32>>(), values, "values round-trip bit-exactly");
    }
    let row = cat.rows.iter().find(|r| r.source == "run a, epoch 3").unwrap();
    assert_eq!(row.keys.get("progress"), Some(&KeyValue::Float(1.0)), "standard keys take their types");
    assert_eq!(row.keys.get("checkpoint"), Some(&KeyValue::Int(3)));
    // The same values and keys again add nothing.
    let b_again = array(
        (0..4 * 2).map(|i| i as f32 * 0.25 - 1.0).collect(),
        [4, 2, 1],
        &["model=gru", "seed=7", "task=pdm"],
        "run b, epoch 0, again",
    );
    let again = store.ingest_arrays(vec![b_again], &IngestOptions::default(), &mut |_| {}).expect("ingest");
    assert_eq!((again.added.len(), again.already_present.len()), (0, 1));
}

#[test]
fn bad_arrays_are_refused_and_leave_the_store_untouched() {
    let (_d, store) = new_store();
    store
        .ingest_arrays(
            vec![array(vec![0.5; 6], [1, 2, 3], &["model=x"], "first")],
            &IngestOptions::default(),
            &mut |_| {},
        )
        .unwrap();
    let cases: Vec<(dynsim_store::ArrayRecording, &str)> = vec![
        (array(vec![1.0; 5], [1, 2, 3], &[], "short"), "needs 6 values but 5"),
        (array(vec![], [0, 2, 3], &[], "empty"), "empty dimension"),
        (array(vec![1.0, f32::NAN], [1, 2, 1], &[], "nan"), "NaN"),
        (
            dynsim_store::ArrayRecording {
                values: vec![1.0; 2],
                shape: [1, 2, 1],
                keys: [("checkpoint".to_string(), KeyValue::Str("late".into()))].into_iter().collect(),
                source: "bad key".into(),
            },
            "checkpoint",
        ),
        (array(vec![1.0; 2], [1, 2, 1], &[], " "), "source description"),
    ];
    for (bad, needle) in cases {
        let before = snapshot_without_lock(store.root());
        // A good recording in the same call is not committed either.
        let good = array(vec![2.0; 2], [1, 2, 1], &["model=y"], "good");
        let err = store.ingest_arrays(vec![good, bad], &IngestOptions::default(), &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        assert_eq!(snapshot_without_lock(store.root()), before, "{err}");
    }
}
