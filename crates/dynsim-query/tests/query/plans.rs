//! Pairing plans and shards on random catalogues, against their definitions.

use std::collections::BTreeSet;

use dynsim_query::plan::{pair_indexes, PairIndex, Pairing, Shard};
use dynsim_store::{CatalogRow, KeyValue, Keys};
use proptest::prelude::*;

fn row(i: usize, group: Option<u8>, config: Option<u8>) -> CatalogRow {
    let mut keys = Keys::new();
    if let Some(g) = group {
        keys.insert("group".into(), KeyValue::Str(format!("g{g}")));
    }
    if let Some(c) = config {
        // Ints and floats that are equal match.
        let v = if c % 2 == 0 { KeyValue::Int(c as i64) } else { KeyValue::Float(c as f64) };
        keys.insert("config".into(), v);
    }
    CatalogRow {
        id: format!("{i:04}"),
        keys,
        shape: [1, 10, 2],
        dtype: "float32".into(),
        hash: format!("h{i}"),
        file: String::new(),
        source: String::new(),
        ingested_at: 0,
    }
}

fn rows() -> impl Strategy<Value = Vec<CatalogRow>> {
    prop::collection::vec((prop::option::weighted(0.8, 0u8..3), prop::option::weighted(0.8, 0u8..3)), 0..14)
        .prop_map(|v| v.into_iter().enumerate().map(|(i, (g, c))| row(i, g, c)).collect())
}

fn matches(a: &CatalogRow, b: &CatalogRow, on: &[String]) -> bool {
    on.iter().all(|k| match (a.keys.get(k), b.keys.get(k)) {
        (Some(x), Some(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(p), Some(q)) => p == q,
            _ => x == y,
        },
        _ => false,
    })
}

fn on_keys() -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(vec!["group".to_string(), "config".to_string()], 0..=2)
}

proptest! {
    #[test]
    fn all_pairs_are_the_unordered_pairs_that_match(left in rows(), on in on_keys()) {
        let got = pair_indexes(&left, &left, &Pairing::AllPairs, &on);
        let mut want = Vec::new();
        for i in 0..left.len() {
            for j in i + 1..left.len() {
                if matches(&left[i], &left[j], &on) {
                    want.push(PairIndex { left: i, right: j });
                }
            }
        }
        prop_assert_eq!(&got, &want);
        if on.is_empty() {
            prop_assert_eq!(got.len(), left.len() * left.len().saturating_sub(1) / 2);
        }
    }

    #[test]
    fn bipartite_pairs_are_left_x_right_that_match(left in rows(), right in rows(), on in on_keys()) {
        let got = pair_indexes(&left, &right, &Pairing::Bipartite, &on);
        let mut want = Vec::new();
        for (i, l) in left.iter().enumerate() {
            for (j, r) in right.iter().enumerate() {
                if matches(l, r, &on) {
                    want.push(PairIndex { left: i, right: j });
                }
            }
        }
        prop_assert_eq!(&got, &want);
        let unique: BTreeSet<_> = got.iter().collect();
        prop_assert_eq!(unique.len(), got.len());
    }

    /// Each left row with a progress value pairs with the matching right row nearest in
    /// progress (ties to the smaller value, then the first row), against a brute force.
    #[test]
    fn nearest_pairs_align_each_left_row_with_the_closest_right_row(
        left in rows(), right in rows(), on in on_keys(),
        lp in prop::collection::vec(prop::option::weighted(0.9, 0u8..=10), 14),
        rp in prop::collection::vec(prop::option::weighted(0.9, 0u8..=10), 14),
    ) {
        let with_progress = |rows: &[CatalogRow], p: &[Option<u8>]| -> Vec<CatalogRow> {
            rows.iter().zip(p).map(|(r, p)| {
                let mut r = r.clone();
                if let Some(p) = p {
                    r.keys.insert("progress".into(), KeyValue::Float(f64::from(*p) / 10.0));
                }
                r
            }).collect()
        };
        let (left, right) = (with_progress(&left, &lp), with_progress(&right, &rp));
        let got = pair_indexes(&left, &right, &Pairing::Nearest { key: "progress".into() }, &on);
        let p = |r: &CatalogRow| r.keys.get("progress").and_then(KeyValue::as_f64);
        let mut want = Vec::new();
        for (i, l) in left.iter().enumerate() {
            let Some(x) = p(l) else { continue };
            let mut best: Option<(f64, f64, usize)> = None;
            for (j, r) in right.iter().enumerate() {
                let Some(y) = p(r) else { continue };
                if !matches(l, r, &on) {
                    continue;
                }
                let d = (y - x).abs();
                if best.is_none_or(|(bd, by, _)| d < bd || (d == bd && y < by)) {
                    best = Some((d, y, j));
                }
            }
            if let Some((_, _, j)) = best {
                want.push(PairIndex { left: i, right: j });
            }
        }
        prop_assert_eq!(&got, &want);
    }

    #[test]
    fn exactly_one_shard_owns_each_task(n in 1usize..12, keys in prop::collection::vec(("[0-9a-f]{8}", "[0-9a-f]{8}", "[0-9a-f]{4}"), 1..50)) {
        for (l, r, p) in &keys {
            let owners = (0..n).filter(|&i| Shard::new(i, n).map(|s| s.owns(l, r, p)).unwrap_or(false)).count();
            prop_assert_eq!(owners, 1);
        }
    }
}
