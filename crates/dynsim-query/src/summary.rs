//! The statistics of [`crate::stats`] over the groups of a frame (typically a comparison's
//! result): per-group mean and SEM, Welch's t-tests between the levels of a factor with
//! Benjamini-Hochberg correction, and regressions of a value against another column.
//!
//! Groups are the distinct value combinations of the `by` columns (nulls form their own
//! group), in order of first appearance; the output frames start with the `by` columns in
//! their original types.

use std::collections::HashMap;

use polars::prelude::*;

use crate::error::QueryError;
use crate::stats::{benjamini_hochberg, linear_regression, student_t_test, welch_t_test};

/// Row indexes per group of `by`, in order of first appearance.
fn groups(df: &DataFrame, by: &[&str]) -> Result<Vec<Vec<usize>>, QueryError> {
    let keys = by
        .iter()
        .map(|c| {
            let col = df.column(c).map_err(|_| unknown(df, c))?;
            Ok(col.cast(&DataType::String)?.str()?.clone())
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    let mut index: HashMap<Vec<Option<String>>, usize> = HashMap::new();
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in 0..df.height() {
        let k: Vec<Option<String>> = keys.iter().map(|c| c.get(i).map(str::to_string)).collect();
        let g = *index.entry(k).or_insert_with(|| {
            out.push(Vec::new());
            out.len() - 1
        });
        out[g].push(i);
    }
    Ok(out)
}

fn unknown(df: &DataFrame, c: &str) -> QueryError {
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    QueryError::Plan(format!("no column {c:?}; the columns are: {}", names.join(", ")))
}

fn floats(df: &DataFrame, c: &str) -> Result<Vec<Option<f64>>, QueryError> {
    let col = df.column(c).map_err(|_| unknown(df, c))?;
    let f = col.cast(&DataType::Float64).map_err(|e| QueryError::Plan(format!("column {c:?} is not numeric: {e}")))?;
    let f = f.f64()?;
    Ok((0..f.len()).map(|i| f.get(i)).collect())
}

/// The `by` columns at the first row of each group.
fn group_keys(df: &DataFrame, by: &[&str], groups: &[Vec<usize>]) -> Result<DataFrame, QueryError> {
    if by.is_empty() {
        return Ok(DataFrame::new(groups.len(), vec![])?);
    }
    let first: Vec<IdxSize> = groups.iter().map(|g| g[0] as IdxSize).collect();
    let cols: Vec<PlSmallStr> = by.iter().map(|c| PlSmallStr::from(*c)).collect();
    Ok(df.select(cols)?.take(&IdxCa::from_vec("idx".into(), first))?)
}

fn with_columns(mut df: DataFrame, cols: Vec<Column>) -> Result<DataFrame, QueryError> {
    for c in cols {
        df.with_column(c)?;
    }
    Ok(df)
}

/// Per group of `by`: `n`, `mean`, `sem` (standard error, `ddof = 1`, null for one value)
/// and `std` of the non-null values of `value`.
pub fn mean_sem_by(df: &DataFrame, by: &[&str], value: &str) -> Result<DataFrame, QueryError> {
    let gs = groups(df, by)?;
    let v = floats(df, value)?;
    let (mut n, mut mean, mut sem, mut std) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for g in &gs {
        let xs: Vec<f64> = g.iter().filter_map(|&i| v[i]).collect();
        let m = if xs.is_empty() { None } else { Some(xs.iter().sum::<f64>() / xs.len() as f64) };
        let s = m
            .filter(|_| xs.len() > 1)
            .map(|m| (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0)).sqrt());
        n.push(xs.len() as u32);
        mean.push(m);
        std.push(s);
        sem.push(s.map(|s| s / (xs.len() as f64).sqrt()));
    }
    with_columns(
        group_keys(df, by, &gs)?,
        vec![
            Column::new("n".into(), n),
            Column::new("mean".into(), mean),
            Column::new("sem".into(), sem),
            Column::new("std".into(), std),
        ],
    )
}

/// Welch's t-test between every two levels `a < b` of `factor`, within each group of `by`,
/// on the non-null values of `value`; the p-values of all tests together are corrected with
/// Benjamini-Hochberg (`q`). Columns: the `by` columns, `a`, `b` (the levels, as text),
/// `n_a`, `n_b`, `mean_a`, `mean_b`, `t`, `df`, `p`, `q`. A test with fewer than two values on
/// a side, or with both sides constant, is left out (it is undefined).
pub fn welch_by(df: &DataFrame, by: &[&str], factor: &str, value: &str) -> Result<DataFrame, QueryError> {
    t_tests_by(df, by, factor, value, welch_t_test)
}

/// As [`welch_by`], with Student's pooled-variance t-test ([`student_t_test`], the seed
/// study's `scipy.stats.ttest_ind`); `df` is then `n_a + n_b - 2`.
pub fn student_by(df: &DataFrame, by: &[&str], factor: &str, value: &str) -> Result<DataFrame, QueryError> {
    t_tests_by(df, by, factor, value, student_t_test)
}

fn t_tests_by(
    df: &DataFrame,
    by: &[&str],
    factor: &str,
    value: &str,
    test: fn(&[f64], &[f64]) -> Result<crate::stats::TTest, QueryError>,
) -> Result<DataFrame, QueryError> {
    let gs = groups(df, by)?;
    let f = df.column(factor).map_err(|_| unknown(df, factor))?.cast(&DataType::String)?;
    let f = f.str()?;
    let v = floats(df, value)?;
    struct Test {
        group: usize,
        a: String,
        b: String,
        na: u32,
        nb: u32,
        ma: f64,
        mb: f64,
        t: f64,
        df: f64,
        p: f64,
    }
    let mut tests = Vec::new();
    for (gi, g) in gs.iter().enumerate() {
        let mut levels: Vec<(String, Vec<f64>)> = Vec::new();
        for &i in g {
            let (Some(level), Some(x)) = (f.get(i), v[i]) else { continue };
            match levels.iter_mut().find(|(l, _)| l == level) {
                Some((_, xs)) => xs.push(x),
                None => levels.push((level.to_string(), vec![x])),
            }
        }
        levels.sort_by(|a, b| a.0.cmp(&b.0));
        for i in 0..levels.len() {
            for j in i + 1..levels.len() {
                let (a, b) = (&levels[i], &levels[j]);
                let Ok(t) = test(&a.1, &b.1) else { continue };
                let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
                tests.push(Test {
                    group: gi,
                    a: a.0.clone(),
                    b: b.0.clone(),
                    na: a.1.len() as u32,
                    nb: b.1.len() as u32,
                    ma: mean(&a.1),
                    mb: mean(&b.1),
                    t: t.t,
                    df: t.df,
                    p: t.p,
                });
            }
        }
    }
    let q = benjamini_hochberg(&tests.iter().map(|t| t.p).collect::<Vec<_>>())?;
    let rows: Vec<Vec<usize>> = tests.iter().map(|t| gs[t.group].clone()).collect();
    let keys = if tests.is_empty() {
        df.select(by.iter().map(|c| PlSmallStr::from(*c)).collect::<Vec<_>>())?.clear()
    } else {
        group_keys(df, by, &rows)?
    };
    with_columns(
        keys,
        vec![
            Column::new("a".into(), tests.iter().map(|t| t.a.clone()).collect::<Vec<_>>()),
            Column::new("b".into(), tests.iter().map(|t| t.b.clone()).collect::<Vec<_>>()),
            Column::new("n_a".into(), tests.iter().map(|t| t.na).collect::<Vec<_>>()),
            Column::new("n_b".into(), tests.iter().map(|t| t.nb).collect::<Vec<_>>()),
            Column::new("mean_a".into(), tests.iter().map(|t| t.ma).collect::<Vec<_>>()),
            Column::new("mean_b".into(), tests.iter().map(|t| t.mb).collect::<Vec<_>>()),
            Column::new("t".into(), tests.iter().map(|t| t.t).collect::<Vec<_>>()),
            Column::new("df".into(), tests.iter().map(|t| t.df).collect::<Vec<_>>()),
            Column::new("p".into(), tests.iter().map(|t| t.p).collect::<Vec<_>>()),
            Column::new("q".into(), q),
        ],
    )
}

/// Least-squares regression of `y` on `x` within each group of `by` (rows where either is
/// null are dropped): `n`, `slope`, `intercept`, `r2`, `p` (slope = 0, two-sided), `stderr`.
/// Groups with fewer than three points or a constant `x` get nulls.
pub fn regression_by(df: &DataFrame, by: &[&str], x: &str, y: &str) -> Result<DataFrame, QueryError> {
    let gs = groups(df, by)?;
    let (xs, ys) = (floats(df, x)?, floats(df, y)?);
    let mut cols: [Vec<Option<f64>>; 5] = Default::default();
    let mut n = Vec::new();
    for g in &gs {
        let (gx, gy): (Vec<f64>, Vec<f64>) = g.iter().filter_map(|&i| Some((xs[i]?, ys[i]?))).unzip();
        n.push(gx.len() as u32);
        let fit = linear_regression(&gx, &gy).ok();
        for (c, val) in cols.iter_mut().zip([
            fit.map(|f| f.slope),
            fit.map(|f| f.intercept),
            fit.map(|f| f.r2),
            fit.map(|f| f.p),
            fit.map(|f| f.stderr),
        ]) {
            c.push(val);
        }
    }
    let [slope, intercept, r2, p, stderr] = cols;
    with_columns(
        group_keys(df, by, &gs)?,
        vec![
            Column::new("n".into(), n),
            Column::new("slope".into(), slope),
            Column::new("intercept".into(), intercept),
            Column::new("r2".into(), r2),
            Column::new("p".into(), p),
            Column::new("stderr".into(), stderr),
        ],
    )
}
