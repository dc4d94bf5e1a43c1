//! The study's comparisons, as lazy, cached `dynsim-query` comparisons over the recordings of
//! [`super::recording`]:
//!
//! - [`Kind::ToMaster`]: every group's final network against master's final network of the
//!   same configuration and seed (bipartite, matched on `config`, `seed`, `trials`,
//!   `analysis`; master against itself is one of the pairs, at distance 0 when the
//!   initialisations are shared or independent alike, since it is one recording);
//! - [`Kind::Matrix`]: every pair of final networks of one configuration and seed (the group
//!   x group matrix);
//! - [`Kind::OverLearning`]: every checkpoint of every group against master's checkpoint at
//!   the nearest relative progress of training (`progress` = epoch / last epoch of the
//!   training phase; nearest `|p_master - p|`, ties to the earlier checkpoint), giving
//!   dissimilarity-to-master curves over progress.
//!
//! Metrics ([`study_metrics`]): DSA with the study's settings (33 delays at interval 6, rank
//! 50, angular, radians), Procrustes and CKA, both as angles in radians.

use dynsim_query::{Comparison, MetricSpec, Selection};
use dynsim_store::Store;

use super::plan::Run;
use super::recording::Analysis;
use super::CompositionalError;

/// Which comparison of the study (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Final networks against master's final network.
    ToMaster,
    /// Final networks, every pair within a configuration and seed.
    Matrix,
    /// Every checkpoint against master's at the nearest progress.
    OverLearning,
}

/// The study's DSA delays.
pub const STUDY_N_DELAYS: usize = 33;
/// The study's DSA delay interval (steps between delays).
pub const STUDY_DELAY_INTERVAL: usize = 6;
/// The study's DSA rank.
pub const STUDY_RANK: usize = 50;

/// The study's metric specs: `dsa:n_delays=33,delay_interval=6,rank=50`, `procrustes`, `cka`.
pub fn study_metrics() -> Result<Vec<MetricSpec>, CompositionalError> {
    let dsa = format!("dsa:n_delays={STUDY_N_DELAYS},delay_interval={STUDY_DELAY_INTERVAL},rank={STUDY_RANK}");
    [dsa.as_str(), "procrustes", "cka"].into_iter().map(|s| Ok(MetricSpec::parse(s)?)).collect()
}

/// SQL text of a string literal (quotes doubled).
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The comparison `kind` over the recordings in `store` of `runs` (a plan: other runs' recordings
/// in the store, e.g. of another initialisation or more seeds, are left out), for one
/// analysis and number of trials, with `metrics`.
pub fn comparison<'s>(
    store: &'s Store,
    kind: Kind,
    runs: &[&Run],
    analysis: Analysis,
    trials: usize,
    metrics: &[MetricSpec],
) -> Result<Comparison<'s>, CompositionalError> {
    if runs.is_empty() {
        return Err(CompositionalError::Config("no run to compare".into()));
    }
    let base = format!(
        "task = 'anti_pdm_delay' AND analysis = {} AND trials = {trials} AND run IN ({})",
        quoted(analysis.name()),
        runs.iter().map(|r| quoted(&r.id())).collect::<Vec<_>>().join(", ")
    );
    let select = |extra: &str| -> Result<Selection, CompositionalError> {
        Selection::all(store).and_then(|s| s.filter_sql(&format!("{base}{extra}"))).map_err(Into::into)
    };
    let on = ["config", "seed", "trials", "analysis"];
    let mut c = match kind {
        Kind::ToMaster => Comparison::bipartite(
            store,
            select(" AND progress = 1")?,
            select(" AND progress = 1 AND \"group\" = 'master'")?,
        )
        .on(on),
        Kind::Matrix => Comparison::all_pairs(store, select(" AND progress = 1")?).on(on),
        Kind::OverLearning => {
            Comparison::bipartite(store, select("")?, select(" AND \"group\" = 'master'")?).on(on).nearest("progress")
        }
    };
    for m in metrics {
        c = c.metric(m.clone());
    }
    Ok(c)
}
