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

/// Benjamini–Hochberg over the whole family: two metrics x three levels give six Welch tests,
/// and every row's `q` equals the step-up correction computed here independently over all six
/// p-values (not per metric), with each row's p that of its own pair of samples.
#[test]
fn welch_by_corrects_all_tests_of_all_groups_together() {
    let samples: [(&str, &str, [f64; 5]); 6] = [
        ("cka", "a", [0.50, 0.52, 0.47, 0.55, 0.51]),
        ("cka", "b", [0.49, 0.56, 0.50, 0.53, 0.48]),
        ("cka", "c", [0.40, 0.44, 0.39, 0.45, 0.42]),
        ("dsa", "a", [0.30, 0.35, 0.28, 0.33, 0.31]),
        ("dsa", "b", [0.36, 0.41, 0.33, 0.40, 0.37]),
        ("dsa", "c", [0.62, 0.58, 0.66, 0.60, 0.64]),
    ];
    let (mut metric, mut group, mut value) = (Vec::new(), Vec::new(), Vec::new());
    // Rows interleaved across groups and levels, so nothing relies on input order.
    for k in 0..5 {
        for (m, g, xs) in samples.iter().rev() {
            metric.push(*m);
            group.push(*g);
            value.push(xs[k]);
        }
    }
    let df = DataFrame::new(
        value.len(),
        vec![
            Column::new("metric".into(), metric),
            Column::new("group".into(), group),
            Column::new("value".into(), value),
        ],
    )
    .expect("frame");
    let w = welch_by(&df, &["metric"], "group", "value").expect("welch");
    assert_eq!(w.height(), 6);
    let (ms, a_s, b_s, ps, qs) = (strs(&w, "metric"), strs(&w, "a"), strs(&w, "b"), floats(&w, "p"), floats(&w, "q"));
    let of = |m: &str, g: &str| samples.iter().find(|s| s.0 == m && s.1 == g).expect("sample").2;
    for i in 0..6 {
        let t = welch_t_test(&of(&ms[i], &a_s[i]), &of(&ms[i], &b_s[i])).expect("t");
        assert_eq!(ps[i], t.p, "row {i}: {} {} vs {}", ms[i], a_s[i], b_s[i]);
    }
    // Step-up BH over all six: q_(k) = min over j >= k of p_(j) * m / j, at most 1.
    let mut order: Vec<usize> = (0..6).collect();
    order.sort_by(|&i, &j| ps[i].total_cmp(&ps[j]));
    let mut want = [0.0; 6];
    let mut running = 1.0_f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(ps[i] * 6.0 / (rank + 1) as f64);
        want[i] = running;
    }
    for i in 0..6 {
        assert!((qs[i] - want[i]).abs() < 1e-15, "row {i}: q {} vs {}", qs[i], want[i]);
    }
}
