//! Agreement with the published Python implementations (dsa-metric 2.0.2, numpy), from the
//! golden JSON files in `data/reference/`.

use crate::common::{array2, golden_cases, max_abs_diff};
use dynsim_metrics::prelude::*;
use dynsim_metrics::{similarity_scores, Complex64, Par};
use ndarray::Array2;

fn dmd_params(g: &crate::common::Golden) -> DmdParams {
    DmdParams {
        n_delays: g.n_delays,
        delay_interval: g.delay_interval,
        rank: RankSelection::Count(g.rank),
        lambda: g.lambda,
        ..Default::default()
    }
}

fn eig_pairs(v: &serde_json::Value) -> Vec<Complex64> {
    v.as_array().unwrap().iter().map(|p| Complex64::new(p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect()
}

#[test]
fn cka_linear_matches_reference() {
    for g in golden_cases() {
        let cka = Cka::default().similarity(g.x.view(), g.y.view()).unwrap();
        let want = g.expected["cka_linear"].as_f64().unwrap();
        assert!((cka - want).abs() < 1e-6, "{}: {cka} vs {want}", g.name);
    }
}

#[test]
fn procrustes_angular_matches_reference() {
    for g in golden_cases() {
        let d = ShapeMetric::procrustes(Score::Angular).distance(g.x.view(), g.y.view()).unwrap();
        let want = g.expected["procrustes_angular"].as_f64().unwrap();
        assert!((d - want).abs() < 1e-6, "{}: {d} vs {want}", g.name);
    }
}

/// The reference ran in float32 (epsilon 1.2e-7). Where every retained singular value is
/// well above that (`s_r / s_0 >= 1e-5`: both linear cases and the Lorenz `y` of the
/// other-regime case) we agree to 1e-3 relative. The shared Lorenz `x` and the same-regime
/// `y` keep directions with `s_r / s_0 ~ 2e-7`, where the reference's operator is float32
/// noise (its eigenvalues there move by up to 0.15); for those we assert that our operator
/// predicts the data at least as well as the reference's (one-step residual), that the
/// dominant eigenvalue agrees, and that the eigenvalue clouds are close.
#[test]
fn dmd_matches_reference_operator_and_eigenvalues() {
    for g in golden_cases() {
        let ref_full = array2(&g.expected["a_havok_x"]);
        for (side, data, key) in [("x", &g.x, "eig_a_v_x"), ("y", &g.y, "eig_a_v_y")] {
            let fit = DmdFit::fit(data.view(), &dmd_params(&g), Par::Seq).unwrap();
            assert_eq!(fit.rank(), g.expected[format!("rank_{side}")].as_u64().unwrap() as usize);
            let s = fit.singular_values();
            let well_conditioned = s[g.rank - 1] / s[0] >= 1e-5;
            let eig = fit.eigenvalues().unwrap();
            let want = eig_pairs(&g.expected[key]);
            assert_eq!(eig.len(), want.len());
            let scale = want.iter().map(|z| z.norm()).fold(0.0, f64::max);
            let eig_err = eig.iter().zip(&want).map(|(a, b)| (a - b).norm()).fold(0.0, f64::max);
            if well_conditioned {
                assert!(eig_err <= 1e-3 * scale, "{} {side}: eigenvalue error {eig_err}", g.name);
            } else {
                let dominant = |e: &[Complex64]| e.iter().map(|z| z.norm()).fold(0.0, f64::max);
                assert!((dominant(&eig) - dominant(&want)).abs() < 1e-3, "{} {side}", g.name);
                let w = eigenvalue_wasserstein(&eig, &want).unwrap();
                assert!(w < 5e-3, "{} {side}: eigenvalue clouds W2^2 = {w}", g.name);
            }
            if side == "x" {
                let a_full = fit.a_full();
                let rel = max_abs_diff(&a_full, &ref_full) / max_abs(&ref_full);
                if well_conditioned {
                    assert!(rel <= 1e-3, "{}: A_full relative error {rel}", g.name);
                } else {
                    let emb = DelayEmbedding { n_delays: g.n_delays, delay_interval: g.delay_interval };
                    let (ours, theirs) =
                        (one_step_residual(data, emb, &a_full), one_step_residual(data, emb, &ref_full));
                    assert!(ours <= theirs * (1.0 + 1e-9), "{}: residual {ours} vs reference {theirs}", g.name);
                }
            }
        }
    }
}

#[test]
fn wasserstein_of_reference_eigenvalues_matches_reference_score() {
    // The transport solver alone, on the reference's own eigenvalues.
    for g in golden_cases() {
        let a = eig_pairs(&g.expected["eig_a_v_x"]);
        let b = eig_pairs(&g.expected["eig_a_v_y"]);
        let w = eigenvalue_wasserstein(&a, &b).unwrap();
        let want = g.expected["wasserstein_eig"].as_f64().unwrap();
        assert!((w - want).abs() <= 1e-5 * want.max(1e-3), "{}: {w} vs {want}", g.name);
    }
}

#[test]
fn dsa_wasserstein_on_linear_cases_matches_reference() {
    for g in golden_cases().into_iter().filter(|g| g.name.contains("linear")) {
        let dsa =
            Dsa::new(DsaParams { dmd: dmd_params(&g), score: DsaScore::Wasserstein, ..Default::default() }).unwrap();
        let c = dsa.fit_score(g.x.view(), g.y.view()).unwrap();
        let want = g.expected["wasserstein_eig"].as_f64().unwrap();
        assert!((c.value - want).abs() <= 1e-4 * want, "{}: {} vs {want}", g.name, c.value);
    }
}

#[test]
fn dsa_angular_at_least_as_good_as_reference_with_certificate() {
    for g in golden_cases() {
        let dsa = Dsa::new(DsaParams { dmd: dmd_params(&g), ..Default::default() }).unwrap();
        let fx = dsa.fit(g.x.view()).unwrap();
        let fy = dsa.fit(g.y.view()).unwrap();
        let c = dsa.compare(&fx, &fy).unwrap();
        let want = g.expected["dsa_angular"].as_f64().unwrap();
        assert!(c.value <= want + 0.02, "{}: {} vs reference {want}", g.name, c.value);
        let t = c.transform.expect("angular score fits C");
        // C is orthogonal
        let ctc = t.c.t().dot(&t.c);
        let eye = Array2::<f64>::eye(ctc.nrows());
        assert!(max_abs_diff(&ctc, &eye) < 1e-8, "{}: C^T C - I = {}", g.name, max_abs_diff(&ctc, &eye));
        // and reproduces the score
        let (ang, euc) = similarity_scores(fx.a_v().view(), fy.a_v().view(), t.c.view());
        assert!((ang - c.value).abs() < 1e-9, "{}: recomputed {ang} vs {}", g.name, c.value);
        assert!((euc - t.euclidean).abs() < 1e-9);
        eprintln!("{}: dsa angular {} (reference {want}), det {}", g.name, c.value, t.det);
    }
}

/// `sum_t |h_{t+1} - A h_t|^2` over the embedded trials.
fn one_step_residual(x: &ndarray::Array3<f64>, emb: DelayEmbedding, a: &Array2<f64>) -> f64 {
    let h = emb.embed(x.view()).unwrap();
    let mut r = 0.0;
    for k in 0..h.dim().0 {
        for t in 0..h.dim().1 - 1 {
            let cur = h.slice(ndarray::s![k, t, ..]);
            let pred = a.dot(&cur);
            r += pred.iter().zip(h.slice(ndarray::s![k, t + 1, ..])).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
        }
    }
    r
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}
