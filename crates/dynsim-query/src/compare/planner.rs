//! Planning: selections resolved against the catalogue, pairs built, every metric checked
//! against every pair it gets, tasks assigned to this shard.

use std::collections::{HashMap, HashSet};

use dynsim_store::CatalogRow;

use super::{Comparison, Plan, Task};
use crate::error::QueryError;
use crate::frames::Selection;
use crate::plan::{pair_indexes, Pairing};
use crate::spec::MetricSpec;

impl Comparison<'_> {
    /// Resolve the selections and build the pairs and this shard's tasks; checks that
    /// every metric can apply to every pair it gets. Reads only the catalogue.
    pub fn plan(&self) -> Result<Plan, QueryError> {
        if self.metrics.is_empty() {
            return Err(QueryError::NoMetric);
        }
        let mut seen = HashSet::new();
        if let Some(m) = self.metrics.iter().find(|m| !seen.insert(m.param_hash())) {
            return Err(QueryError::DuplicateMetric(m.label()));
        }
        let catalog = self.store.catalog()?;
        let by_id: HashMap<&str, &CatalogRow> = catalog.rows.iter().map(|r| (r.id.as_str(), r)).collect();
        let rows = |sel: &Selection, side: &'static str| -> Result<Vec<CatalogRow>, QueryError> {
            let ids = sel.ids()?;
            if ids.is_empty() {
                return Err(QueryError::EmptySelection {
                    side,
                    selection: sel.description().to_string(),
                    recordings: catalog.rows.len(),
                });
            }
            ids.iter()
                .map(|id| by_id.get(id.as_str()).map(|r| (*r).clone()).ok_or_else(|| QueryError::Vanished(id.clone())))
                .collect()
        };
        let known: Vec<String> = catalog.key_columns().into_iter().map(|(k, _)| k).collect();
        if let Some(k) = self.on.iter().find(|k| !known.contains(k)) {
            return Err(QueryError::UnknownKey { option: "--on", key: k.clone(), known });
        }
        if let Some(k) = self.nearest.as_ref().filter(|k| !known.contains(k)) {
            return Err(QueryError::UnknownKey { option: "nearest", key: k.clone(), known });
        }
        let left = rows(&self.left, "left")?;
        let (right, pairing) = match &self.right {
            Some(sel) => {
                let pairing = match &self.nearest {
                    Some(key) => Pairing::Nearest { key: key.clone() },
                    None => Pairing::Bipartite,
                };
                (rows(sel, "right")?, pairing)
            }
            None if self.nearest.is_some() => {
                return Err(QueryError::Plan(
                    "nearest pairing needs two sides: use Comparison::bipartite(store, left, right)".into(),
                ))
            }
            None => (left.clone(), Pairing::AllPairs),
        };
        let pairs = pair_indexes(&left, &right, &pairing, &self.on);
        if pairs.is_empty() {
            let why = match (&pairing, self.on.is_empty()) {
                (Pairing::AllPairs, true) => "all pairs of one recording is no pair; select at least two".to_string(),
                _ => format!("no left and right recordings share their values of {}", self.on.join(", ")),
            };
            return Err(QueryError::NoPairs(why));
        }
        for m in &self.metrics {
            let need = m.matching();
            if let Some(p) = pairs.iter().find(|p| !need.allows(left[p.left].shape, right[p.right].shape)) {
                let (l, r) = (&left[p.left], &right[p.right]);
                return Err(QueryError::Incompatible {
                    metric: m.name(),
                    requirement: need,
                    left: l.id.clone(),
                    left_shape: l.shape,
                    right: r.id.clone(),
                    right_shape: r.shape,
                });
            }
        }
        let metrics: Vec<MetricSpec> = match self.preprocess {
            Some(p) => self.metrics.iter().map(|m| m.clone().with_preprocess(Some(p))).collect(),
            None => self.metrics.clone(),
        };
        let mut tasks = Vec::new();
        for p in &pairs {
            for (mi, m) in metrics.iter().enumerate() {
                if self.shard.owns(&left[p.left].hash, &right[p.right].hash, m.param_hash()) {
                    tasks.push(Task { pair: *p, metric: mi });
                }
            }
        }
        Ok(Plan { left, right, pairs, metrics, tasks })
    }
}
