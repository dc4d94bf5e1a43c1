//! The statistics the seed study reports, as plain functions on samples: group mean and
//! standard error, Welch's and Student's two-sample t-tests, Benjamini-Hochberg false-discovery-rate
//! correction, and least-squares regression of a dissimilarity against training progress.
//! Each follows the scipy function named in its docs (checked against scipy values in
//! the tests).

use crate::error::QueryError;

fn check(x: &[f64], what: &str, min: usize) -> Result<(), QueryError> {
    if x.len() < min {
        return Err(QueryError::Stats(format!("{what} needs at least {min} values, got {}", x.len())));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(QueryError::Stats(format!("{what}: value {i} is {}", x[i])));
    }
    Ok(())
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Sample variance with `n - 1` in the denominator.
fn var(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0)
}

/// Mean and standard error of the mean, `s / sqrt(n)` with the sample standard deviation
/// (`ddof = 1`), as `numpy.mean` and `scipy.stats.sem`. Needs two values.
pub fn mean_sem(x: &[f64]) -> Result<(f64, f64), QueryError> {
    check(x, "mean and SEM", 2)?;
    Ok((mean(x), (var(x) / x.len() as f64).sqrt()))
}

/// A two-sample t-test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    /// The t statistic (positive when the first sample's mean is larger).
    pub t: f64,
    /// Degrees of freedom (Welch-Satterthwaite for Welch's test, `na + nb - 2` for Student's).
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Welch's unequal-variance t-test, two-sided, as `scipy.stats.ttest_ind(a, b,
/// equal_var=False)`: `t = (mean a - mean b) / sqrt(va/na + vb/nb)`, `df = (va/na +
/// vb/nb)^2 / ((va/na)^2/(na-1) + (vb/nb)^2/(nb-1))`, `p = 2 P(T_df > |t|)`. Each sample
/// needs two values, and at least one must vary.
pub fn welch_t_test(a: &[f64], b: &[f64]) -> Result<TTest, QueryError> {
    check(a, "Welch's t-test, first sample", 2)?;
    check(b, "Welch's t-test, second sample", 2)?;
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (sa, sb) = (var(a) / na, var(b) / nb);
    let se2 = sa + sb;
    if se2 <= 0.0 {
        return Err(QueryError::Stats("Welch's t-test: both samples are constant, the test is undefined".into()));
    }
    let t = (mean(a) - mean(b)) / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    Ok(TTest { t, df, p: two_sided_p(t, df)? })
}

/// Student's pooled-variance t-test, two-sided, as `scipy.stats.ttest_ind(a, b)` (the seed
/// study's test): `s_p^2 = ((na-1) va + (nb-1) vb) / (na+nb-2)`, `t = (mean a - mean b) /
/// sqrt(s_p^2 (1/na + 1/nb))`, `df = na + nb - 2`, `p = 2 P(T_df > |t|)`. Each sample needs
/// two values, and at least one must vary. Prefer [`welch_t_test`] when the variances or the
/// sample sizes differ much; both are offered to compare with the study.
pub fn student_t_test(a: &[f64], b: &[f64]) -> Result<TTest, QueryError> {
    check(a, "Student's t-test, first sample", 2)?;
    check(b, "Student's t-test, second sample", 2)?;
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let df = na + nb - 2.0;
    let pooled = ((na - 1.0) * var(a) + (nb - 1.0) * var(b)) / df;
    if pooled <= 0.0 {
        return Err(QueryError::Stats("Student's t-test: both samples are constant, the test is undefined".into()));
    }
    let t = (mean(a) - mean(b)) / (pooled * (1.0 / na + 1.0 / nb)).sqrt();
    Ok(TTest { t, df, p: two_sided_p(t, df)? })
}

fn two_sided_p(t: f64, df: f64) -> Result<f64, QueryError> {
    if df.is_nan() || df <= 0.0 || t.is_nan() {
        return Err(QueryError::Stats(format!("t distribution: {df} degrees of freedom, t = {t}")));
    }
    // P(|T| > t) = I_{df / (df + t^2)}(df / 2, 1 / 2).
    Ok(regularized_beta(df / (df + t * t), df / 2.0, 0.5).clamp(0.0, 1.0))
}

/// `ln Γ(x)` for `x > 0`: Lanczos approximation (g = 7, 9 terms; Numerical Recipes 3rd ed.,
/// §6.1), relative error below 1e-15, with the reflection formula below 0.5.
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function `I_x(a, b)`, by the continued fraction of
/// Numerical Recipes (3rd ed., §6.4) evaluated with the modified Lentz method, using the
/// symmetry `I_x(a, b) = 1 - I_{1-x}(b, a)` where the fraction converges slowly.
fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))] {
            d = 1.0 + aa * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + aa / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// Cohen's d of two samples with the pooled standard deviation: `d = (mean a - mean b) /
/// s_p`, `s_p^2 = ((na-1) va + (nb-1) vb) / (na+nb-2)` (Cohen 1988, eq. 2.5.2; the effect
/// size of [`student_t_test`], `t = d / sqrt(1/na + 1/nb)`). Each sample needs two values,
/// and at least one must vary.
pub fn cohen_d(a: &[f64], b: &[f64]) -> Result<f64, QueryError> {
    check(a, "Cohen's d, first sample", 2)?;
    check(b, "Cohen's d, second sample", 2)?;
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let pooled = ((na - 1.0) * var(a) + (nb - 1.0) * var(b)) / (na + nb - 2.0);
    if pooled <= 0.0 {
        return Err(QueryError::Stats("Cohen's d: both samples are constant, the effect size is undefined".into()));
    }
    Ok((mean(a) - mean(b)) / pooled.sqrt())
}

/// η², the share of the variance of all values that lies between the groups (one-way
/// analysis of variance): `SS_between / SS_total`, `SS_between = sum_g n_g (mean_g -
/// mean)^2`, `SS_total = sum (x - mean)^2`. Needs two non-empty groups and values that vary.
pub fn eta_squared(groups: &[Vec<f64>]) -> Result<f64, QueryError> {
    if groups.len() < 2 {
        return Err(QueryError::Stats(format!("eta squared needs at least 2 groups, got {}", groups.len())));
    }
    for (i, g) in groups.iter().enumerate() {
        check(g, &format!("eta squared, group {i}"), 1)?;
    }
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    let m = mean(&all);
    let total: f64 = all.iter().map(|v| (v - m).powi(2)).sum();
    if total <= 0.0 {
        return Err(QueryError::Stats("eta squared: every value is the same, the share is undefined".into()));
    }
    let between: f64 = groups.iter().map(|g| g.len() as f64 * (mean(g) - m).powi(2)).sum();
    Ok(between / total)
}

/// Benjamini-Hochberg adjusted p-values (q-values), in the input order, as
/// `scipy.stats.false_discovery_control(p, method='bh')` and statsmodels'
/// `multipletests(p, method='fdr_bh')`: with `p` sorted ascending, `q_(i) = min over j >= i
/// of p_(j) m / j`, capped at 1.
pub fn benjamini_hochberg(p: &[f64]) -> Result<Vec<f64>, QueryError> {
    check(p, "Benjamini-Hochberg", 0)?;
    if let Some(v) = p.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(QueryError::Stats(format!("Benjamini-Hochberg: {v} is not a p-value in [0, 1]")));
    }
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    Ok(q)
}

/// A least-squares line `y = intercept + slope x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearFit {
    /// Slope.
    pub slope: f64,
    /// Intercept.
    pub intercept: f64,
    /// Pearson correlation r.
    pub r: f64,
    /// Coefficient of determination r².
    pub r2: f64,
    /// Two-sided p-value of the slope (t-test with n - 2 degrees of freedom; H0: slope 0).
    pub p: f64,
    /// Standard error of the slope.
    pub stderr: f64,
}

/// Ordinary least squares of `y` on `x`, as `scipy.stats.linregress`: slope `Sxy / Sxx`,
/// `r = Sxy / sqrt(Sxx Syy)`, `t = r sqrt((n - 2) / (1 - r²))`, stderr
/// `sqrt((1 - r²) Syy / Sxx / (n - 2))`. Needs three points and `x` that varies.
pub fn linear_regression(x: &[f64], y: &[f64]) -> Result<LinearFit, QueryError> {
    check(x, "linear regression, x", 3)?;
    check(y, "linear regression, y", 3)?;
    if x.len() != y.len() {
        return Err(QueryError::Stats(format!("linear regression: {} x values but {} y values", x.len(), y.len())));
    }
    let (mx, my) = (mean(x), mean(y));
    let sxx: f64 = x.iter().map(|v| (v - mx).powi(2)).sum();
    let syy: f64 = y.iter().map(|v| (v - my).powi(2)).sum();
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    if sxx <= 0.0 {
        return Err(QueryError::Stats("linear regression: every x is the same, the slope is undefined".into()));
    }
    let slope = sxy / sxx;
    let df = x.len() as f64 - 2.0;
    let (r, p) = if syy <= 0.0 {
        (0.0, 1.0)
    } else {
        let r = (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0);
        let p = if (1.0 - r.abs()) < 1e-15 { 0.0 } else { two_sided_p(r * (df / ((1.0 - r) * (1.0 + r))).sqrt(), df)? };
        (r, p)
    };
    let stderr = ((1.0 - r * r) * syy / sxx / df).max(0.0).sqrt();
    Ok(LinearFit { slope, intercept: my - slope * mx, r, r2: r * r, p, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cohen's d is Student's t scaled by sqrt(1/na + 1/nb), and η² is
    /// SS_between / SS_total written out for two groups (d² na nb / (n (n - 2) + d² na nb)).
    #[test]
    fn effect_sizes_follow_their_definitions() {
        let (a, b) = ([0.9, 1.1, 1.3, 0.8], [0.2, 0.5, 0.4, 0.1, 0.3]);
        let d = cohen_d(&a, &b).unwrap();
        let t = student_t_test(&a, &b).unwrap().t;
        assert!((d - t * (1.0 / 4.0 + 1.0 / 5.0f64).sqrt()).abs() < 1e-12);
        let (na, nb, n) = (4.0, 5.0, 9.0);
        let eta = eta_squared(&[a.to_vec(), b.to_vec()]).unwrap();
        let from_d = d * d * na * nb / (n * (n - 2.0) + d * d * na * nb);
        assert!((eta - from_d).abs() < 1e-12, "{eta} vs {from_d}");
        assert!(eta_squared(&[vec![1.0, 2.0], vec![1.0, 2.0]]).unwrap().abs() < 1e-15);
        assert!(cohen_d(&[1.0, 1.0], &[1.0, 1.0]).is_err());
        assert!(eta_squared(&[vec![1.0]]).is_err() && eta_squared(&[vec![1.0], vec![]]).is_err());
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    // Golden values from scipy 1.17.1 (Python 3.11):
    //
    //   import numpy as np, scipy.stats as st
    //   a = [0.61, 0.72, 0.55, 0.68, 0.74, 0.59, 0.66]
    //   b = [0.41, 0.52, 0.38, 0.47, 0.55, 0.44]
    //   np.mean(a), st.sem(a)                      # 0.65, 0.026367367999823095
    //   st.ttest_ind(a, b, equal_var=False)        # t 5.03699061761838, p 0.0003907702338321738, df 10.898087599293408
    //   st.ttest_ind([1., 2, 3, 4], [2.5, 3.5, 4.5, 5.5, 6.5], equal_var=False)
    //                                              # t -2.088931871468374, p 0.07519774959850842, df 6.980769230769231
    //   st.false_discovery_control([0.01, 0.04, 0.03, 0.005, 0.20, 0.04, 0.9], method='bh')
    //       # [0.035, 0.056, 0.056, 0.035, 0.23333333333333336, 0.056, 0.9]
    //   st.linregress([0, .1, .25, .5, .75, .9, 1], [.80, .74, .70, .55, .41, .37, .30])
    //       # slope -0.4978835978835978, intercept 0.8017989417989417, r -0.9972608134545018,
    //       # p 7.53130565349047e-07, stderr 0.016514379423737832
    const A: [f64; 7] = [0.61, 0.72, 0.55, 0.68, 0.74, 0.59, 0.66];
    const B: [f64; 6] = [0.41, 0.52, 0.38, 0.47, 0.55, 0.44];

    #[test]
    fn mean_sem_and_welch_match_scipy() {
        let (m, s) = mean_sem(&A).expect("sem");
        assert!(close(m, 0.65, 1e-12) && close(s, 0.026367367999823095, 1e-12));
        let t = welch_t_test(&A, &B).expect("welch");
        assert!(close(t.t, 5.03699061761838, 1e-12), "{t:?}");
        assert!(close(t.df, 10.898087599293408, 1e-12), "{t:?}");
        assert!(close(t.p, 0.0003907702338321738, 1e-9), "{t:?}");
        let t = welch_t_test(&[1.0, 2.0, 3.0, 4.0], &[2.5, 3.5, 4.5, 5.5, 6.5]).expect("welch");
        assert!(close(t.t, -2.088931871468374, 1e-12) && close(t.df, 6.980769230769231, 1e-12), "{t:?}");
        assert!(close(t.p, 0.07519774959850842, 1e-9), "{t:?}");
        let swapped = welch_t_test(&B, &A).expect("welch");
        assert_eq!((swapped.t, swapped.p), (-welch_t_test(&A, &B).expect("w").t, welch_t_test(&A, &B).expect("w").p));
    }

    // scipy 1.17.1: scipy.stats.ttest_ind(a, b) (equal_var=True) -> (statistic, pvalue, df).
    #[test]
    fn student_matches_scipy() {
        let t = student_t_test(&A, &B).expect("student");
        assert!(close(t.t, 5.006848780774821, 1e-12) && t.df == 11.0, "{t:?}");
        assert!(close(t.p, 0.0003982070523146327, 1e-9), "{t:?}");
        let t = student_t_test(&[1.0, 2.0, 3.0, 4.0], &[2.5, 3.5, 4.5, 5.5, 6.5]).expect("student");
        assert!(close(t.t, -2.0367003088692623, 1e-12) && t.df == 7.0, "{t:?}");
        assert!(close(t.p, 0.08110686974738579, 1e-9), "{t:?}");
        // Equal sizes: the same t as Welch's (the dfs differ unless the variances are equal).
        let (x, y) = ([1.0, 2.5, 3.0, 4.5], [2.0, 2.2, 5.0, 6.1]);
        assert!(close(student_t_test(&x, &y).expect("s").t, welch_t_test(&x, &y).expect("w").t, 1e-12));
        assert!(student_t_test(&[1.0, 1.0], &[2.0, 2.0]).is_err() && student_t_test(&[1.0], &B).is_err());
    }

    #[test]
    fn benjamini_hochberg_and_regression_match_scipy() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, 0.20, 0.04, 0.9]).expect("bh");
        let want =
            [0.035, 0.055999999999999994, 0.055999999999999994, 0.035, 0.23333333333333336, 0.055999999999999994, 0.9];
        for (g, w) in q.iter().zip(want) {
            assert!(close(*g, w, 1e-12), "{q:?}");
        }
        let x = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0];
        let y = [0.80, 0.74, 0.70, 0.55, 0.41, 0.37, 0.30];
        let l = linear_regression(&x, &y).expect("fit");
        assert!(close(l.slope, -0.4978835978835978, 1e-12) && close(l.intercept, 0.8017989417989417, 1e-12), "{l:?}");
        assert!(close(l.r, -0.9972608134545018, 1e-12) && close(l.r2, 0.9972608134545018f64.powi(2), 1e-12));
        assert!(close(l.p, 7.53130565349047e-07, 1e-7), "{l:?}");
        assert!(close(l.stderr, 0.016514379423737832, 1e-10), "{l:?}");
    }

    // scipy 1.17.1: 2 * scipy.stats.t.sf(t, df) for each (t, df) below.
    #[test]
    fn t_distribution_tail_matches_scipy() {
        let cases = [
            (0.5, 1.0, 0.7048327646991335),
            (2.0, 3.0, 0.13932596855884305),
            (1.3, 10.898, 0.22042373661614573),
            (4.2, 2.5, 0.034964308725681334),
            (0.01, 100.0, 0.9920412102344285),
            (30.0, 5.0, 7.718648620496053e-07),
            (2.5, 1000.0, 0.012578567801090807),
            (8.0, 40.0, 7.905084110104538e-10),
        ];
        for (t, df, want) in cases {
            let got = two_sided_p(t, df).expect("p");
            assert!(close(got, want, 1e-10), "t {t} df {df}: {got} vs scipy {want}");
            assert_eq!(two_sided_p(-t, df).expect("p"), got, "symmetric");
        }
        assert_eq!(two_sided_p(0.0, 4.0).expect("p"), 1.0);
        assert!(two_sided_p(1.0, 0.0).is_err() && two_sided_p(f64::NAN, 3.0).is_err());
    }

    #[test]
    fn undefined_statistics_are_errors() {
        assert!(mean_sem(&[1.0]).is_err());
        assert!(mean_sem(&[1.0, f64::NAN]).is_err());
        assert!(welch_t_test(&[1.0, 1.0], &[2.0, 2.0]).is_err(), "both constant");
        assert!(benjamini_hochberg(&[0.5, 1.5]).is_err());
        assert_eq!(benjamini_hochberg(&[]).expect("empty"), Vec::<f64>::new());
        assert!(linear_regression(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_err(), "x constant");
        assert!(linear_regression(&[1.0, 2.0], &[1.0, 2.0]).is_err(), "two points");
        assert!(linear_regression(&[1.0, 2.0, 3.0], &[1.0, 2.0]).is_err(), "lengths");
    }
}
