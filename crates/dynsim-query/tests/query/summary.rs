//! Statistics over frames agree with the sample functions (themselves checked against
//! scipy in the unit tests).

use dynsim_query::polars::prelude::*;
use dynsim_query::stats::{linear_regression, mean_sem, welch_t_test};
use dynsim_query::summary::{mean_sem_by, regression_by, welch_by};

use crate::{floats, strs};

#[test]
fn group_statistics_match_the_sample_functions() {
    let a = [0.61, 0.72, 0.55, 0.68, 0.74, 0.59, 0.66];
    let b = [0.41, 0.52, 0.38, 0.47, 0.55, 0.44];
    let mut factor: Vec<&str> = vec!["pre"; a.len()];
    factor.extend(vec!["scratch"; b.len()]);
    let value: Vec<f64> = a.iter().chain(&b).copied().collect();
    let progress: Vec<f64> = (0..value.len()).map(|i| (i % 4) as f64 / 3.0).collect();
    let df = DataFrame::new(
        value.len(),
        vec![
            Column::new("metric".into(), vec!["dsa"; value.len()]),
            Column::new("group".into(), factor),
            Column::new("value".into(), value.clone()),
            Column::new("progress".into(), progress.clone()),
        ],
    )
    .expect("frame");
    let m = mean_sem_by(&df, &["group"], "value").expect("mean");
    assert_eq!(strs(&m, "group"), ["pre", "scratch"]);
    let (ma, sa) = mean_sem(&a).expect("a");
    assert_eq!(floats(&m, "mean")[0], ma);
    assert!((floats(&m, "sem")[0] - sa).abs() < 1e-15);
    let w = welch_by(&df, &["metric"], "group", "value").expect("welch");
    assert_eq!(w.height(), 1);
    let t = welch_t_test(&a, &b).expect("t");
    assert_eq!((floats(&w, "t")[0], floats(&w, "p")[0]), (t.t, t.p));
    assert_eq!(floats(&w, "q")[0], t.p, "one test: q = p");
    assert_eq!((strs(&w, "a")[0].as_str(), strs(&w, "b")[0].as_str()), ("pre", "scratch"));
    let r = regression_by(&df, &["group"], "progress", "value").expect("regression");
    let fit = linear_regression(&progress[..a.len()], &a).expect("fit");
    assert_eq!(floats(&r, "slope")[0], fit.slope);
    assert_eq!(floats(&r, "r2")[0], fit.r2);
    // Unknown columns name themselves.
    let e = mean_sem_by(&df, &["grp"], "value").expect_err("unknown").to_string();
    assert!(e.contains("grp") && e.contains("group"), "{e}");
    // No grouping: one row over everything.
    let all = mean_sem_by(&df, &[], "value").expect("all");
    assert_eq!(floats(&all, "n"), [13.0]);
}
