//! Frame assembly: one row per task with a result, with the left and right recordings' keys.

use std::collections::{BTreeMap, HashMap, HashSet};

use dynsim_store::keys::KeyType;
use dynsim_store::{CatalogRow, KeyValue};
use polars::prelude::*;

use super::{Plan, Task};
use crate::cache::{ResultKey, ResultRow};
use crate::error::QueryError;

/// The outcome frame: one row per task of the plan that has a result, in plan order.
pub(super) fn result_frame(
    plan: &Plan,
    found: &HashMap<ResultKey, ResultRow>,
    computed_now: &HashSet<ResultKey>,
) -> Result<DataFrame, QueryError> {
    let mut tasks: Vec<(&Task, &ResultRow, bool)> = Vec::new();
    for t in &plan.tasks {
        let key = plan.key(t);
        if let Some(row) = found.get(&key) {
            tasks.push((t, row, !computed_now.contains(&key)));
        }
    }
    let n = tasks.len();
    let str_col = |name: &str, f: &dyn Fn(&(&Task, &ResultRow, bool)) -> String| -> Column {
        Column::new(name.into(), tasks.iter().map(f).collect::<Vec<String>>())
    };
    // Each row's extras, parsed once for the columns taken from them.
    let extras: Vec<Option<serde_json::Value>> =
        tasks.iter().map(|(_, r, _)| serde_json::from_str(&r.extra).ok()).collect();
    let mut cols = vec![
        str_col("left_id", &|(t, _, _)| plan.left[t.pair.left].id.clone()),
        str_col("right_id", &|(t, _, _)| plan.right[t.pair.right].id.clone()),
        str_col("metric", &|(t, _, _)| plan.metrics[t.metric].name().to_string()),
        str_col("params", &|(t, _, _)| plan.metrics[t.metric].label()),
        str_col("param_hash", &|(t, _, _)| plan.metrics[t.metric].param_hash().to_string()),
        Column::new("value".into(), tasks.iter().map(|(_, r, _)| r.value).collect::<Vec<f64>>()),
        str_col("unit", &|(t, _, _)| plan.metrics[t.metric].unit().to_string()),
        Column::new("lower".into(), extra(&extras, "lower")),
        Column::new("gap".into(), extra(&extras, "gap")),
        Column::new("seconds".into(), tasks.iter().map(|(_, r, _)| r.seconds).collect::<Vec<f64>>()),
        Column::new("cached".into(), tasks.iter().map(|(_, _, c)| *c).collect::<Vec<bool>>()),
        str_col("extra", &|(_, r, _)| r.extra.clone()),
    ];
    for (side, rows, pick) in [
        ("left", &plan.left, (|t: &Task| t.pair.left) as fn(&Task) -> usize),
        ("right", &plan.right, (|t: &Task| t.pair.right) as fn(&Task) -> usize),
    ] {
        for (key, ty) in key_columns(rows) {
            let name = format!("{side}_{key}");
            let vals = tasks.iter().map(|(t, _, _)| rows[pick(t)].keys.get(&key));
            cols.push(match ty {
                KeyType::Int => Column::new(
                    name.into(),
                    vals.map(|v| match v {
                        Some(KeyValue::Int(i)) => Some(*i),
                        _ => None,
                    })
                    .collect::<Vec<Option<i64>>>(),
                ),
                KeyType::Float => {
                    Column::new(name.into(), vals.map(|v| v.and_then(KeyValue::as_f64)).collect::<Vec<Option<f64>>>())
                }
                KeyType::Str => {
                    Column::new(name.into(), vals.map(|v| v.map(KeyValue::to_text)).collect::<Vec<Option<String>>>())
                }
            });
        }
    }
    Ok(DataFrame::new(n, cols)?)
}

/// A numeric extra (e.g. DSA's certified `lower` bound and `gap`) of every row, null where
/// a result has none.
fn extra(extras: &[Option<serde_json::Value>], name: &str) -> Vec<Option<f64>> {
    extras.iter().map(|v| v.as_ref().and_then(|v| v.get(name)).and_then(serde_json::Value::as_f64)).collect()
}

/// The keys present in `rows`, standard keys first (in their fixed order), then user keys
/// by name, each with the type that holds all its values.
fn key_columns(rows: &[CatalogRow]) -> Vec<(String, KeyType)> {
    let mut user: BTreeMap<String, KeyType> = BTreeMap::new();
    let mut standard: Vec<(String, KeyType)> = Vec::new();
    for (name, ty) in dynsim_store::keys::STANDARD_KEYS {
        if rows.iter().any(|r| r.keys.contains_key(name)) {
            standard.push((name.to_string(), ty));
        }
    }
    for r in rows {
        for (k, v) in &r.keys {
            if dynsim_store::keys::standard_type(k).is_none() {
                let t = KeyType::of(v);
                user.entry(k.clone()).and_modify(|u| *u = u.unify(t)).or_insert(t);
            }
        }
    }
    standard.extend(user);
    standard
}
