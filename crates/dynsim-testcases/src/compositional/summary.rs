//! The study's statistics on the comparisons ([`super::comparisons`]):
//!
//! - dissimilarity to master (final networks, master itself left out) per architecture
//!   (`left_model`), metric and group, and per pool (the six partial groups pooled as
//!   `partial`, see [`Group::pool`]): mean ± SEM;
//! - between pools, within each architecture and metric: Student's t-test (the study's) and
//!   Welch's, each with Benjamini-Hochberg over all its tests together (every architecture,
//!   metric and pair of pools: one family);
//! - over learning (every checkpoint against master's at the nearest progress, master's own
//!   curve left out): least-squares regression of dissimilarity on the share of pretrained
//!   tasks (0, 1/3, 2/3, 1) and on progress, per architecture and metric.

use dynsim_query::polars::prelude::*;
use dynsim_query::summary::{mean_sem_by, regression_by, student_by, welch_by};

use super::groups::Group;
use super::CompositionalError;

/// The statistics of a study (module docs). Every frame has the columns of the
/// `dynsim_query::summary` function that made it.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `left_model`, `metric`, `left_group`, `n`, `mean`, `sem`, `std`.
    pub by_group: DataFrame,
    /// `left_model`, `metric`, `pool`, `n`, `mean`, `sem`, `std`.
    pub by_pool: DataFrame,
    /// Student's t-tests between pools: `left_model`, `metric`, `a`, `b`, ..., `t`, `df`, `p`, `q`.
    pub student: DataFrame,
    /// Welch's t-tests between pools (same columns).
    pub welch: DataFrame,
    /// Over learning, dissimilarity on the pretrained share: `left_model`, `metric`, `n`,
    /// `slope`, `intercept`, `r2`, `p`, `stderr`.
    pub on_share: DataFrame,
    /// Over learning, dissimilarity on progress (same columns).
    pub on_progress: DataFrame,
}

/// `frame` without master's own rows, with `pool` (text) and `share` (f64) columns derived
/// from `left_group`. An unknown group name is an error.
fn annotate(frame: &DataFrame) -> Result<DataFrame, CompositionalError> {
    let groups = frame.column("left_group")?;
    let groups = groups.str()?;
    let mut keep = Vec::with_capacity(frame.height());
    let (mut pool, mut share) = (Vec::new(), Vec::new());
    for g in groups.iter() {
        let g = Group::parse(g.unwrap_or_default())?;
        keep.push(g != Group::Master);
        if g != Group::Master {
            pool.push(g.pool().name());
            share.push(g.pretrained_share());
        }
    }
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    let mut out = frame.filter(&mask)?;
    out.with_column(Column::new("pool".into(), pool))?;
    out.with_column(Column::new("share".into(), share))?;
    Ok(out)
}

/// The statistics from the to-master and over-learning comparison frames.
pub fn summarize(to_master: &DataFrame, over_learning: &DataFrame) -> Result<Summary, CompositionalError> {
    let finals = annotate(to_master)?;
    let curves = annotate(over_learning)?;
    let by = ["left_model", "metric"];
    Ok(Summary {
        by_group: mean_sem_by(&finals, &["left_model", "metric", "left_group"], "value")?,
        by_pool: mean_sem_by(&finals, &["left_model", "metric", "pool"], "value")?,
        student: student_by(&finals, &by, "pool", "value")?,
        welch: welch_by(&finals, &by, "pool", "value")?,
        on_share: regression_by(&curves, &by, "share", "value")?,
        on_progress: regression_by(&curves, &by, "left_progress", "value")?,
    })
}
