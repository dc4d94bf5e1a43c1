//! Properties every metric must have, as proptests over the seeds of the data: each
//! property holds for every recording the generators can draw, not for one lucky seed.

use crate::common::{golden_cases, linear_recording, max_abs_diff, rotate_units, Rng};
use dynsim_metrics::prelude::*;
use dynsim_metrics::{Par, SimilarityFit};
use ndarray::{Array2, Array3};
use proptest::prelude::*;

/// One fixed system (a damped rotation plus a slow mode, seen through 5 units); the seed
/// draws the observation map, the initial states and the noise.
fn recording(seed: u64) -> Array3<f64> {
    let mut rng = Rng::new(seed);
    let a = ndarray::array![[0.95, -0.25, 0.0], [0.25, 0.95, 0.0], [0.0, 0.0, 0.9]];
    linear_recording(&mut rng, 6, 80, 5, &a)
}

/// A random stable system of dimension `2 * blocks`: damped rotations with radii in
/// [0.8, 0.97] and angles in [0.05, 0.8] rad, in a random orthonormal basis.
fn random_system(rng: &mut Rng, blocks: usize) -> Array2<f64> {
    let n = 2 * blocks;
    let mut d = Array2::zeros((n, n));
    for b in 0..blocks {
        let (r, th) = (0.8 + 0.17 * rng.uniform(), 0.05 + 0.75 * rng.uniform());
        let i = 2 * b;
        d[[i, i]] = r * th.cos();
        d[[i, i + 1]] = -r * th.sin();
        d[[i + 1, i]] = r * th.sin();
        d[[i + 1, i + 1]] = r * th.cos();
    }
    let q = rng.orthogonal(n, 1.0);
    q.dot(&d).dot(&q.t())
}

/// A recording of a system drawn from the seed (so two seeds are two different systems).
fn system_recording(seed: u64) -> Array3<f64> {
    let mut rng = Rng::new(seed);
    let a = random_system(&mut rng, 2);
    linear_recording(&mut rng, 6, 80, 5, &a)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn small_dsa() -> Dsa {
    Dsa::new(DsaParams {
        dmd: DmdParams { n_delays: 4, delay_interval: 1, rank: RankSelection::Count(6), ..Default::default() },
        ..Default::default()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn identical_inputs_give_zero(seed in any::<u64>(), fixed in any::<bool>()) {
        let x = if fixed { recording(seed) } else { system_recording(seed) };
        identical_inputs_give_zero_for(&x);
    }

    #[test]
    fn metrics_are_symmetric(sx in any::<u64>(), sy in any::<u64>()) {
        metrics_are_symmetric_for(&system_recording(sx), &system_recording(sy));
    }

    #[test]
    fn cka_and_procrustes_invariant_to_rotation_and_scaling_of_units(
        sx in any::<u64>(), sy in any::<u64>(), sq in any::<u64>(), scale in 0.01f64..100.0
    ) {
        invariance_for(&system_recording(sx), &system_recording(sy), sq, scale);
    }

    #[test]
    fn narrower_side_is_zero_padded(seed in any::<u64>()) {
        narrower_side_is_zero_padded_for(&system_recording(seed));
    }

    #[test]
    fn cca_shape_metric_invariant_to_invertible_maps(seed in any::<u64>(), sm in any::<u64>()) {
        cca_invariance_for(&system_recording(seed), sm);
    }

    /// Three recordings of three different systems, plus a fourth on the way from the first
    /// to the third (a blend), so that some triangles are close to tight.
    #[test]
    fn procrustes_angular_satisfies_triangle_inequality(
        s1 in any::<u64>(), s2 in any::<u64>(), s3 in any::<u64>(), t in 0.0f64..1.0
    ) {
        let (a, c) = (system_recording(s1), system_recording(s3));
        let blend = &a * (1.0 - t) + &c * t;
        let xs = [a, system_recording(s2), c, blend];
        let m = ShapeMetric::procrustes(Score::Angular);
        let d = Array2::from_shape_fn((4, 4), |(i, j)| m.distance(xs[i].view(), xs[j].view()).unwrap());
        for i in 0..4 {
            for j in 0..4 {
                for k in 0..4 {
                    prop_assert!(d[[i, k]] <= d[[i, j]] + d[[j, k]] + 1e-9, "d({i},{k}) = {} > d({i},{j}) + d({j},{k}) = {}", d[[i, k]], d[[i, j]] + d[[j, k]]);
                }
            }
        }
    }

    #[test]
    fn dsa_is_zero_for_orthogonally_mapped_units(seed in any::<u64>(), sq in any::<u64>()) {
        dsa_zero_for(&system_recording(seed), sq);
    }

    #[test]
    fn optimiser_recovers_planted_transform(seed in any::<u64>(), n in 3usize..24, reflect in any::<bool>()) {
        planted_recovery(n, if reflect { -1.0 } else { 1.0 }, seed, 1e-6);
    }
}

/// Across the triangles the proptest draws, the blends make some nearly tight: the
/// inequality is tested where it can fail, not only with a wide margin.
#[test]
fn some_procrustes_triangles_are_nearly_tight() {
    let m = ShapeMetric::procrustes(Score::Angular);
    let mut tightest = f64::INFINITY;
    for seed in 0..6u64 {
        let (a, c) = (system_recording(2 * seed), system_recording(2 * seed + 1));
        let blend = &a * 0.5 + &c * 0.5;
        let (ab, bc, ac) = (
            m.distance(a.view(), blend.view()).unwrap(),
            m.distance(blend.view(), c.view()).unwrap(),
            m.distance(a.view(), c.view()).unwrap(),
        );
        assert!(ac > 0.05, "seed {seed}: two systems at distance {ac}");
        tightest = tightest.min((ab + bc - ac) / ac);
    }
    eprintln!("tightest triangle: slack {tightest:.4} of the long side");
    assert!(tightest < 0.1, "slack {tightest}");
}

fn identical_inputs_give_zero_for(x: &Array3<f64>) {
    assert!(small_dsa().fit_score(x.view(), x.view()).unwrap().value < 1e-6);
    assert!(ShapeMetric::procrustes(Score::Angular).distance(x.view(), x.view()).unwrap() < 1e-6);
    assert!(ShapeMetric::procrustes(Score::Euclidean).distance(x.view(), x.view()).unwrap() < 1e-6);
    assert!(ShapeMetric { alpha: 0.0, score: Score::Angular }.distance(x.view(), x.view()).unwrap() < 1e-6);
    for cka in all_ckas() {
        assert!(cka.distance(x.view(), x.view()).unwrap() < 1e-6, "{cka:?}");
    }
}

fn all_ckas() -> Vec<Cka> {
    let mut v = vec![];
    for kernel in [Kernel::Linear, Kernel::Rbf { threshold: 1.0 }] {
        for estimator in [HsicEstimator::Biased, HsicEstimator::Debiased] {
            v.push(Cka { kernel, estimator });
        }
    }
    v
}

fn metrics_are_symmetric_for(x: &Array3<f64>, y: &Array3<f64>) {
    for alpha in [0.0, 0.5, 1.0] {
        let m = ShapeMetric { alpha, score: Score::Angular };
        let (a, b) = (m.distance(x.view(), y.view()).unwrap(), m.distance(y.view(), x.view()).unwrap());
        assert!((a - b).abs() < 1e-10, "alpha {alpha}: {a} vs {b}");
    }
    for cka in all_ckas() {
        let (a, b) = (cka.similarity(x.view(), y.view()).unwrap(), cka.similarity(y.view(), x.view()).unwrap());
        assert!((a - b).abs() < 1e-10);
    }
    let (a, b) =
        (small_dsa().fit_score(x.view(), y.view()).unwrap(), small_dsa().fit_score(y.view(), x.view()).unwrap());
    assert_eq!(a.value, b.value, "DSA must be exactly symmetric");
}

#[test]
fn dsa_is_exactly_symmetric_on_the_golden_cases() {
    for g in golden_cases() {
        let dsa = Dsa::new(DsaParams {
            dmd: DmdParams {
                n_delays: g.n_delays,
                delay_interval: g.delay_interval,
                rank: RankSelection::Count(g.rank),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
        let (a, b) = (dsa.fit_score(g.x.view(), g.y.view()).unwrap(), dsa.fit_score(g.y.view(), g.x.view()).unwrap());
        assert_eq!(a.value, b.value, "{}: DSA must be exactly symmetric", g.name);
    }
}

fn invariance_for(x: &Array3<f64>, y: &Array3<f64>, sq: u64, scale: f64) {
    let mut rng = Rng::new(sq);
    let q = rng.orthogonal(5, -1.0);
    let y3 = rotate_units(y, &q);
    let y2 = y3.mapv(|v| scale * v);
    let m = ShapeMetric::procrustes(Score::Angular);
    let (a, b) = (m.distance(x.view(), y.view()).unwrap(), m.distance(x.view(), y2.view()).unwrap());
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    // the euclidean form is invariant to rotations (not to scaling: it carries units)
    let e = ShapeMetric::procrustes(Score::Euclidean);
    let (a, b) = (e.distance(x.view(), y.view()).unwrap(), e.distance(x.view(), y3.view()).unwrap());
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    for cka in all_ckas() {
        let (a, b) = (cka.similarity(x.view(), y.view()).unwrap(), cka.similarity(x.view(), y2.view()).unwrap());
        assert!((a - b).abs() < 1e-9, "{cka:?}: {a} vs {b}");
    }
    // Procrustes is also translation invariant, and a rotated copy is at distance 0
    let shifted = y2.mapv(|v| v + 10.0);
    assert!((m.distance(x.view(), shifted.view()).unwrap() - m.distance(x.view(), y.view()).unwrap()).abs() < 1e-9);
    assert!(m.distance(y.view(), y3.view()).unwrap() < 1e-6);
}

fn narrower_side_is_zero_padded_for(x: &Array3<f64>) {
    // y = x with an extra silent unit: the same representation
    let (tr, t, u) = x.dim();
    let y = Array3::from_shape_fn((tr, t, u + 1), |(k, s, i)| if i < u { x[[k, s, i]] } else { 0.0 });
    for alpha in [1.0, 0.5] {
        let m = ShapeMetric { alpha, score: Score::Angular };
        assert!(m.distance(x.view(), y.view()).unwrap() < 1e-6, "alpha {alpha}");
    }
    assert!(Cka::default().distance(x.view(), y.view()).unwrap() < 1e-6);
}

fn cca_invariance_for(y: &Array3<f64>, sm: u64) {
    let mut rng = Rng::new(sm);
    let m = rng.matrix(5, 5) + Array2::<f64>::eye(5) * 3.0;
    let (tr, t, u) = y.dim();
    let y2 = Array3::from_shape_fn((tr, t, u), |(k, s, i)| (0..u).map(|j| m[[i, j]] * y[[k, s, j]]).sum());
    let d = ShapeMetric { alpha: 0.0, score: Score::Angular }.distance(y.view(), y2.view()).unwrap();
    assert!(d < 1e-5, "{d}");
    // Procrustes is not invariant to a non-orthogonal map
    assert!(ShapeMetric::procrustes(Score::Angular).distance(y.view(), y2.view()).unwrap() > 1e-3);
}

fn dsa_zero_for(x: &Array3<f64>, sq: u64) {
    let mut rng = Rng::new(sq);
    for det in [1.0, -1.0] {
        let q = rng.orthogonal(5, det);
        let y = rotate_units(x, &q);
        let c = small_dsa().fit_score(x.view(), y.view()).unwrap();
        assert!(c.value < 1e-6, "det {det}: {}", c.value);
    }
    // while a different system is not
    let mut rng = Rng::new(9);
    let other =
        linear_recording(&mut rng, 6, 80, 5, &ndarray::array![[0.5, 0.6, 0.0], [-0.6, 0.5, 0.0], [0.0, 0.0, -0.8]]);
    assert!(small_dsa().fit_score(x.view(), other.view()).unwrap().value > 0.1);
}

fn planted(n: usize, det: f64, seed: u64) -> (Array2<f64>, Array2<f64>, Array2<f64>) {
    let mut rng = Rng::new(seed);
    let a = rng.matrix(n, n) / (n as f64).sqrt();
    let c = rng.orthogonal(n, det);
    let b = c.t().dot(&a).dot(&c);
    (a, b, c)
}

fn fit(a: &Array2<f64>, b: &Array2<f64>, group: Group) -> SimilarityFit {
    SimilarityTransformDist::new(SimilarityParams { group, ..Default::default() }).fit(a.view(), b.view()).unwrap()
}

#[test]
fn optimiser_recovers_planted_transform_in_both_components() {
    for (n, tol) in [(5, 1e-6), (20, 1e-6), (50, 1e-3)] {
        for (det, seed) in [(1.0, 11), (-1.0, 12)] {
            planted_recovery(n, det, seed + n as u64, tol);
        }
    }
}

fn planted_recovery(n: usize, det: f64, seed: u64, tol: f64) {
    let (a, b, c) = planted(n, det, seed);
    let f = fit(&a, &b, Group::O);
    assert!(f.angular < tol, "n={n} det={det} seed={seed}: angular {}", f.angular);
    // the certificate is orthogonal and reproduces the planted map up to the sign of C
    let ctc = f.c.t().dot(&f.c);
    assert!(max_abs_diff(&ctc, &Array2::eye(n)) < 1e-8);
    if tol <= 1e-6 {
        let err = max_abs_diff(&f.c, &c).min(max_abs_diff(&f.c, &(-&c)));
        assert!(err < 1e-4, "n={n} det={det} seed={seed}: |C - C_planted| = {err}");
    }
    // A was not mutated: recomputing with the original inputs gives the same value
    // (both scores are computed in a well-conditioned form, so they agree tightly)
    let (ang, euc) = dynsim_metrics::similarity_scores(a.view(), b.view(), f.c.view());
    assert!((euc - f.euclidean).abs() < 1e-12 && (ang - f.angular).abs() < 1e-12);
}

#[test]
fn rotations_alone_cannot_undo_a_planted_reflection_in_even_dimension() {
    // For even n, -C has the same determinant as C, so a det -1 map is out of reach of SO(n).
    let (a, b, _) = planted(6, -1.0, 77);
    let o = fit(&a, &b, Group::O);
    let so = fit(&a, &b, Group::SO);
    assert!(o.angular < 1e-6);
    assert_eq!(o.det, -1);
    assert!(so.angular > 1e-3, "SO(n) should not reach a reflection: {}", so.angular);
    assert_eq!(so.det, 1);
    assert!(so.component_loss[1].is_nan());
}

#[test]
fn pairwise_matrices_symmetric_deterministic_and_consistent() {
    let xs: Vec<_> = (20..25).map(recording).collect();
    let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
    let dsa = small_dsa();
    let par = dsa.pairwise(&views, Parallelism::Threads(2)).unwrap();
    let seq = dsa.pairwise(&views, Parallelism::Seq).unwrap();
    assert_eq!(par.values, seq.values, "parallel and sequential runs differ");
    for i in 0..5 {
        assert_eq!(par.values[[i, i]], 0.0);
        for j in 0..5 {
            assert_eq!(par.values[[i, j]], par.values[[j, i]]);
        }
    }
    // bipartite agrees with the pairwise entries and with direct calls
    let bi = dsa.bipartite(&views[..2], &views[2..], Parallelism::Global).unwrap();
    assert_eq!(bi.values.dim(), (2, 3));
    for i in 0..2 {
        for j in 0..3 {
            let direct = dsa.fit_score(views[i], views[2 + j]).unwrap().value;
            assert!((bi.values[[i, j]] - direct).abs() < 1e-12);
            assert!((bi.values[[i, j]] - par.values[[i, 2 + j]]).abs() < 1e-12);
        }
    }
    // the generic helpers
    let m = dynsim_metrics::pairwise_symmetric(5, Parallelism::Global, |i, j| {
        ShapeMetric::default().distance(views[i], views[j])
    })
    .unwrap();
    assert!(m.iter().all(|v| v.is_finite()) && m[[0, 1]] > 0.0 && m[[0, 1]] == m[[1, 0]]);
}

#[test]
fn dmd_predicts_a_linear_system_and_rank_rules_agree() {
    let mut rng = Rng::new(31);
    let a = ndarray::array![[0.97, -0.2], [0.2, 0.97]];
    let x = linear_recording(&mut rng, 4, 100, 3, &a);
    let p = DmdParams { n_delays: 2, rank: RankSelection::Count(2), ..Default::default() };
    let fit = DmdFit::fit(x.view(), &p, Par::Seq).unwrap();
    let eig = fit.eigenvalues().unwrap();
    // the true eigenvalues are 0.97 ± 0.2i
    for z in &eig {
        assert!((z.re - 0.97).abs() < 0.02 && (z.im.abs() - 0.2).abs() < 0.02, "{z:?}");
    }
    // rolling 10 steps ahead tracks the data (small process noise only)
    let pred = fit.predict(x.view(), 10).unwrap();
    let span = 1;
    let mut err = 0.0;
    let mut norm = 0.0;
    for k in 0..4 {
        for t in 0..pred.dim().1 {
            for u in 0..3 {
                err += (pred[[k, t, u]] - x[[k, t + span, u]]).powi(2);
                norm += x[[k, t + span, u]].powi(2);
            }
        }
    }
    assert!((err / norm).sqrt() < 0.1, "relative prediction error {}", (err / norm).sqrt());
    // seeded rows are the data
    assert_eq!(pred[[0, 0, 0]], x[[0, span, 0]]);
    // rank rules
    let s = fit.singular_values().to_vec();
    let total: f64 = s.iter().map(|v| v * v).sum();
    let ev2 = (s[0] * s[0] + s[1] * s[1]) / total;
    let by_ev =
        DmdFit::fit(x.view(), &DmdParams { rank: RankSelection::ExplainedVariance(ev2), ..p }, Par::Seq).unwrap();
    assert_eq!(by_ev.rank(), 2);
    let by_thresh =
        DmdFit::fit(x.view(), &DmdParams { rank: RankSelection::Threshold(s[2] / s[0] * 1.0001), ..p }, Par::Seq)
            .unwrap();
    assert_eq!(by_thresh.rank(), 2);
    let full = DmdFit::fit(x.view(), &DmdParams { rank: RankSelection::Full, ..p }, Par::Seq).unwrap();
    // two latent states seen through 3 units, two delays: numerical rank 4 of width 6
    assert_eq!(full.rank(), 4);
    // reduced-rank regression at full rank is the ridge regression on all components
    let rrr = DmdFit::fit(
        x.view(),
        &DmdParams { rank: RankSelection::Full, regression: Regression::ReducedRank, ..p },
        Par::Seq,
    )
    .unwrap();
    assert!(max_abs_diff(&rrr.a_v(), &full.a_v()) < 1e-8);
    // and at rank 2 it has rank 2 with the same dominant eigenvalues
    let rrr2 = DmdFit::fit(x.view(), &DmdParams { regression: Regression::ReducedRank, ..p }, Par::Seq).unwrap();
    let mut e2 = rrr2.eigenvalues().unwrap();
    e2.sort_by(|a, b| b.norm().total_cmp(&a.norm()));
    assert!(e2[2].norm() < 1e-8 && (e2[0].norm() - eig[0].norm()).abs() < 0.02);
}

#[test]
fn embedding_keeps_trials_apart_and_orders_newest_first() {
    let x = Array3::from_shape_fn((2, 6, 2), |(k, t, u)| (100 * k + 10 * t + u) as f64);
    let h = DelayEmbedding { n_delays: 3, delay_interval: 2 }.embed(x.view()).unwrap();
    assert_eq!(h.shape(), &[2, 2, 6]);
    // trial 1, row 1: [x_5, x_3, x_1]
    let row: Vec<f64> = h.slice(ndarray::s![1, 1, ..]).to_vec();
    assert_eq!(row, vec![150.0, 151.0, 130.0, 131.0, 110.0, 111.0]);
}
