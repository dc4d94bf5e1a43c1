//! Pairing plans (which recordings are compared with which) and shards.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use dynsim_store::{CatalogRow, KeyValue};

use crate::error::QueryError;

/// How the recordings of a comparison are paired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairing {
    /// Every unordered pair of distinct recordings of one selection, oriented by id
    /// (`left.id < right.id`): `n (n - 1) / 2` pairs.
    AllPairs,
    /// Every left recording against every right recording (`n x m` ordered pairs; a
    /// recording selected on both sides is compared with itself too).
    Bipartite,
    /// Each left recording against the one right recording (of those matching `on`) whose
    /// numeric key `key` is nearest to its own: `|r - l|` smallest, ties to the smaller `r`,
    /// then to the first right row. A left recording without a numeric `key` (or without a
    /// right match) gets no pair. E.g. `key = "progress"`: every checkpoint of a network
    /// against the reference network's checkpoint at the nearest point of training.
    Nearest {
        /// The numeric key to align on.
        key: String,
    },
}

/// A pair of recordings: indexes into the plan's `left` and `right` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PairIndex {
    /// Index into the left rows.
    pub left: usize,
    /// Index into the right rows.
    pub right: usize,
}

/// The value of `key` in `row` as a join value; `None` (missing) never matches, as NULL in
/// SQL. Integers and floats that are equal match (`1` and `1.0`).
fn join_value(row: &CatalogRow, key: &str) -> Option<String> {
    row.keys.get(key).map(|v| match v {
        KeyValue::Int(i) => format!("n:{}", *i as f64),
        KeyValue::Float(f) => format!("n:{f}"),
        KeyValue::Str(s) => format!("s:{s}"),
    })
}

/// The value of `key` in `row` as a finite number, if it is one.
fn numeric(row: &CatalogRow, key: &str) -> Option<f64> {
    row.keys.get(key).and_then(KeyValue::as_f64).filter(|v| v.is_finite())
}

/// The pairs of a plan. `left` and `right` rows are taken as given (sorted by id by the
/// caller for a stable order). `on` restricts pairs to recordings whose keys in `on` are
/// all equal (and present): with [`Pairing::AllPairs`] the pairs within each group, with
/// [`Pairing::Bipartite`] the left x right pairs that match. Pairs come out sorted by
/// (left index, right index).
pub fn pair_indexes(left: &[CatalogRow], right: &[CatalogRow], pairing: &Pairing, on: &[String]) -> Vec<PairIndex> {
    let signature = |r: &CatalogRow| -> Option<Vec<String>> { on.iter().map(|k| join_value(r, k)).collect() };
    let mut out = Vec::new();
    match pairing {
        Pairing::AllPairs => {
            let mut groups: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
            for (i, r) in left.iter().enumerate() {
                if let Some(s) = signature(r) {
                    groups.entry(s).or_default().push(i);
                }
            }
            for members in groups.values() {
                for (a, &i) in members.iter().enumerate() {
                    for &j in &members[a + 1..] {
                        out.push(PairIndex { left: i, right: j });
                    }
                }
            }
        }
        Pairing::Nearest { key } => {
            let mut by_sig: BTreeMap<Vec<String>, Vec<(f64, usize)>> = BTreeMap::new();
            for (j, r) in right.iter().enumerate() {
                if let (Some(s), Some(v)) = (signature(r), numeric(r, key)) {
                    by_sig.entry(s).or_default().push((v, j));
                }
            }
            for (i, r) in left.iter().enumerate() {
                let (Some(s), Some(x)) = (signature(r), numeric(r, key)) else { continue };
                let Some(cands) = by_sig.get(&s) else { continue };
                let best = cands.iter().min_by(|(a, ja), (b, jb)| {
                    (a - x).abs().total_cmp(&(b - x).abs()).then(a.total_cmp(b)).then(ja.cmp(jb))
                });
                if let Some(&(_, j)) = best {
                    out.push(PairIndex { left: i, right: j });
                }
            }
        }
        Pairing::Bipartite => {
            let mut by_sig: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
            for (j, r) in right.iter().enumerate() {
                if let Some(s) = signature(r) {
                    by_sig.entry(s).or_default().push(j);
                }
            }
            for (i, r) in left.iter().enumerate() {
                if let Some(js) = signature(r).and_then(|s| by_sig.get(&s)) {
                    out.extend(js.iter().map(|&j| PairIndex { left: i, right: j }));
                }
            }
        }
    }
    out.sort();
    out
}

/// One shard of a plan: `index` of `count` (`--shard i/n`, `0 <= i < n`).
///
/// A task (pair x metric) belongs to shard `h mod n`, where `h` is the first 8 bytes of
/// BLAKE3 over the two content hashes and the parameter hash. The assignment depends only
/// on the task itself, not on the order or size of the plan, so `n` shards started at
/// different times over the same store cover every task exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole plan.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Check `index < count` and `count >= 1`.
    pub fn new(index: usize, count: usize) -> Result<Shard, QueryError> {
        if count == 0 || index >= count {
            return Err(QueryError::Plan(format!(
                "shard {index}/{count}: the index must be in 0..{count} and the count at least 1 \
                 (e.g. --shard $SLURM_ARRAY_TASK_ID/64)"
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether the task keyed by the two content hashes and the parameter hash is ours.
    pub fn owns(&self, left_hash: &str, right_hash: &str, param_hash: &str) -> bool {
        if self.count == 1 {
            return true;
        }
        let mut h = blake3::Hasher::new();
        for part in [left_hash, right_hash, param_hash] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        let bytes = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes.as_bytes()[..8]);
        (u64::from_le_bytes(first) % self.count as u64) as usize == self.index
    }
}

impl FromStr for Shard {
    type Err = QueryError;

    /// `i/n`.
    fn from_str(s: &str) -> Result<Shard, QueryError> {
        let bad = || QueryError::Plan(format!("shard {s:?}: write it as i/n, e.g. 3/64 (0 <= i < n)"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}
