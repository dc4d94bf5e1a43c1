//! The study's statistics on the comparisons ([`super::comparisons`]):
//!
//! - dissimilarity to master (final networks, master itself left out) per architecture family
//!   (`family`: `rnn` for the leaky RNN and GRU, which the study pooled, or `mamba`), metric and
//!   group, and per pool (the six partial groups pooled as `partial`, see [`Group::pool`]):
//!   mean ± SEM;
//! - between pools, within each family and metric: Student's t-test (the study's) and
//!   Welch's, each with Benjamini-Hochberg over all its tests together (every family,
//!   metric and pair of pools: one family of tests);
//! - how strongly each metric separates the groups ([`Summary::separation`]): Cohen's d between the
//!   controls (untrained, master_frozen) and the pretrained groups, and η² over the ten groups;
//! - over learning (every checkpoint against master's at the nearest progress, master's own
//!   curve left out): least-squares regression of dissimilarity on the share of pretrained
//!   tasks (0, 1/3, 2/3, 1) and on progress, per family and metric.

use std::collections::BTreeMap;

use dynsim_query::polars::prelude::*;
use dynsim_query::stats::{cohen_d, eta_squared};
use dynsim_query::summary::{mean_sem_by, regression_by, student_by, welch_by};

use super::groups::Group;
use super::CompositionalError;

/// The statistics of a study (module docs). Every frame has the columns of the
/// `dynsim_query::summary` function that made it.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `family`, `metric`, `left_group`, `n`, `mean`, `sem`, `std`.
    pub by_group: DataFrame,
    /// `family`, `metric`, `pool`, `n`, `mean`, `sem`, `std`.
    pub by_pool: DataFrame,
    /// Student's t-tests between pools: `family`, `metric`, `a`, `b`, ..., `t`, `df`, `p`, `q`.
    pub student: DataFrame,
    /// Welch's t-tests between pools (same columns).
    pub welch: DataFrame,
    /// How strongly each metric separates the groups: `family`, `metric`, `n_controls`,
    /// `n_pretrained`, `cohen_d`, `eta2`: Cohen's d of the controls (untrained, master_frozen) against the
    /// pretrained groups, positive when the controls are further from master, and η² over the
    /// ten groups; both free of the metric's scale.
    pub separation: DataFrame,
    /// Over learning, dissimilarity on the pretrained share: `family`, `metric`, `n`,
    /// `slope`, `intercept`, `r2`, `p`, `stderr`.
    pub on_share: DataFrame,
    /// Over learning, dissimilarity on progress (same columns).
    pub on_progress: DataFrame,
}

/// The architecture family of a `model` key: `mamba`, or `rnn` for the recurrent cells
/// (leaky RNN and leaky GRU, pooled as the study's "RNN").
pub fn family(model: &str) -> &'static str {
    if model == dynsim_nets::Arch::Mamba.name() {
        "mamba"
    } else {
        "rnn"
    }
}

/// `frame` without master's own rows, with `family` (from `left_model`), `pool` (text) and
/// `share` (f64) columns derived from `left_group`. An unknown group name is an error.
fn annotate(frame: &DataFrame) -> Result<DataFrame, CompositionalError> {
    let groups = frame.column("left_group")?.str()?.clone();
    let models = frame.column("left_model")?.str()?.clone();
    let mut keep = Vec::with_capacity(frame.height());
    let (mut fam, mut pool, mut share) = (Vec::new(), Vec::new(), Vec::new());
    for (g, m) in groups.iter().zip(models.iter()) {
        let g = Group::parse(g.unwrap_or_default())?;
        keep.push(g != Group::Master);
        if g != Group::Master {
            fam.push(family(m.unwrap_or_default()));
            pool.push(g.pool().name());
            share.push(g.pretrained_share());
        }
    }
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    let mut out = frame.filter(&mask)?;
    out.with_column(Column::new("family".into(), fam))?;
    out.with_column(Column::new("pool".into(), pool))?;
    out.with_column(Column::new("share".into(), share))?;
    Ok(out)
}

/// Whether a group is a control of the separation analysis (untrained, master_frozen: no
/// pretraining), a pretrained group (one, two or three pretraining tasks), or neither
/// (master).
fn control(g: Group) -> Option<bool> {
    match g {
        Group::Master => None,
        Group::Untrained | Group::MasterFrozen => Some(true),
        _ => Some(false),
    }
}

/// How strongly each metric separates the groups, per `family` and `metric` of an annotated
/// to-master frame: Cohen's d of the controls (untrained and master_frozen) against the
/// pretrained groups (positive: controls further from master), and η² of the ten groups
/// (`dynsim_query::stats`). Both are free of the metric's scale, so metrics compare on them.
/// A cell that cannot be computed (too few values, constant values) is null.
fn separation(finals: &DataFrame) -> Result<DataFrame, CompositionalError> {
    let text = |c: &str| -> Result<Vec<String>, CompositionalError> {
        Ok(finals.column(c)?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let (fam, metric, group) = (text("family")?, text("metric")?, text("left_group")?);
    let value: Vec<Option<f64>> = finals.column("value")?.f64()?.iter().collect();
    // (family, metric) -> group -> values
    let mut cells: BTreeMap<(String, String), BTreeMap<Group, Vec<f64>>> = BTreeMap::new();
    for i in 0..finals.height() {
        let (Some(v), g) = (value[i], Group::parse(&group[i])?) else { continue };
        if v.is_finite() && g != Group::Master {
            cells.entry((fam[i].clone(), metric[i].clone())).or_default().entry(g).or_default().push(v);
        }
    }
    let (mut f, mut m, mut nc, mut np, mut d, mut eta) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for ((family, met), groups) in &cells {
        let pick = |want: bool| -> Vec<f64> {
            groups.iter().filter(|(g, _)| control(**g) == Some(want)).flat_map(|(_, v)| v.iter().copied()).collect()
        };
        let (controls, pretrained) = (pick(true), pick(false));
        let all: Vec<Vec<f64>> = groups.values().cloned().collect();
        f.push(family.clone());
        m.push(met.clone());
        nc.push(controls.len() as u32);
        np.push(pretrained.len() as u32);
        d.push(cohen_d(&controls, &pretrained).ok());
        eta.push(eta_squared(&all).ok());
    }
    Ok(DataFrame::new(
        f.len(),
        vec![
            Column::new("family".into(), f),
            Column::new("metric".into(), m),
            Column::new("n_controls".into(), nc),
            Column::new("n_pretrained".into(), np),
            Column::new("cohen_d".into(), d),
            Column::new("eta2".into(), eta),
        ],
    )?)
}

/// The statistics from the to-master and over-learning comparison frames.
pub fn summarize(to_master: &DataFrame, over_learning: &DataFrame) -> Result<Summary, CompositionalError> {
    let finals = annotate(to_master)?;
    let curves = annotate(over_learning)?;
    let by = ["family", "metric"];
    Ok(Summary {
        by_group: mean_sem_by(&finals, &["family", "metric", "left_group"], "value")?,
        by_pool: mean_sem_by(&finals, &["family", "metric", "pool"], "value")?,
        student: student_by(&finals, &by, "pool", "value")?,
        welch: welch_by(&finals, &by, "pool", "value")?,
        separation: separation(&finals)?,
        on_share: regression_by(&curves, &by, "share", "value")?,
        on_progress: regression_by(&curves, &by, "left_progress", "value")?,
    })
}
