//! The result cache: journals of killed runs are recovered (a torn last line is dropped),
//! parts are merged, a damaged part is a clear error.

use std::io::Write;

use dynsim_query::cache::{ResultCache, ResultRow};
use dynsim_query::Store;

fn row(i: usize) -> ResultRow {
    ResultRow {
        left_hash: format!("l{i}"),
        right_hash: format!("r{i}"),
        param_hash: "p".into(),
        metric: "cka".into(),
        params: "{}".into(),
        value: i as f64 * 0.25 + 1e-17,
        seconds: 0.5,
        extra: "{}".into(),
        left_id: format!("a{i}"),
        right_id: format!("b{i}"),
        dynsim_version: "0".into(),
        computed_at: 1_700_000_000_000 + i as i64,
    }
}

#[test]
fn a_killed_runs_journal_is_recovered_without_its_torn_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::init(dir.path().join("s")).expect("init");
    let cache = ResultCache::open(&store).expect("cache");
    let mut j = cache.journal().expect("journal");
    for i in 0..3 {
        j.append(row(i)).expect("append");
    }
    // A live journal is not touched by readers.
    assert_eq!(cache.load().expect("load").len(), 0);
    assert_eq!(cache.parts().expect("parts").len(), 0);
    // The process dies mid-write: the lock goes with it, a partial line stays.
    let jdir = cache.dir().join(".journal");
    let path = std::fs::read_dir(&jdir).expect("dir").flatten().next().expect("journal file").path();
    drop(j);
    std::fs::OpenOptions::new().append(true).open(&path).expect("open").write_all(b"{\"left_hash\":\"l9").expect("w");
    let got = cache.load().expect("recover");
    assert_eq!(got.len(), 3);
    for i in 0..3 {
        assert_eq!(got.values().find(|r| r.left_hash == format!("l{i}")), Some(&row(i)), "exact round trip");
    }
    assert!(!path.exists(), "the journal is folded into a part");
    assert_eq!(cache.parts().expect("parts").len(), 1);
    // The parts read as one Parquet table (what pyarrow or DuckDB would see).
    assert_eq!(dynsim_query::results(&store).expect("frame").height(), 3);
    // A temporary part left by a kill is removed by `store gc` once it is a minute old; a
    // fresh one (a run writing it now) is kept.
    let stale = cache.dir().join(".part-a.parquet.tmp-1-2-3");
    let fresh = cache.dir().join(".part-b.parquet.tmp-4-5-6");
    for p in [&stale, &fresh] {
        std::fs::write(p, b"half a part").expect("write");
    }
    let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    std::fs::File::options().write(true).open(&stale).expect("open").set_modified(two_minutes_ago).expect("mtime");
    store.gc().expect("gc");
    assert!(!stale.exists() && fresh.exists());
    assert_eq!(dynsim_query::results(&store).expect("frame").height(), 3);
}

#[test]
fn parts_merge_and_duplicates_collapse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::init(dir.path().join("s")).expect("init");
    let cache = ResultCache::open(&store).expect("cache");
    for i in 0..20 {
        // Every part holds row i and, as two racing shards would, row 0 again.
        cache.write_part(&[row(i), row(0)]).expect("part");
    }
    assert_eq!(cache.merge_parts(30).expect("no merge"), 0);
    assert_eq!(cache.merge_parts(16).expect("merge"), 20);
    assert_eq!(cache.parts().expect("parts").len(), 1);
    let all = cache.load().expect("load");
    assert_eq!(all.len(), 20);
    // A part that is not Parquet is an error naming it.
    let bad = cache.dir().join("part-zzz.parquet");
    std::fs::write(&bad, b"not parquet").expect("write");
    let e = cache.load().expect_err("damaged part").to_string();
    assert!(e.contains("part-zzz.parquet") && e.contains("move the file"), "{e}");
}
