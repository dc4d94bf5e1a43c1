//! Bad input gets an error that names the problem (never a panic).

use crate::common::Rng;
use dynsim_metrics::prelude::*;
use dynsim_metrics::Par;
use ndarray::{Array2, Array3};

fn data(trials: usize, time: usize, units: usize) -> Array3<f64> {
    let mut rng = Rng::new(5);
    Array3::from_shape_fn((trials, time, units), |_| rng.normal())
}

fn dmd(n_delays: usize, rank: RankSelection) -> DmdParams {
    DmdParams { n_delays, delay_interval: 2, rank, ..Default::default() }
}

#[test]
fn too_short_for_the_delays() {
    let e = DmdFit::fit(data(2, 10, 3).view(), &dmd(6, RankSelection::Full), Par::Seq).unwrap_err();
    assert!(matches!(e, MetricError::TooShortForDelays { time: 10, needed: 12, .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("n_delays=6") && msg.contains("lower"), "{msg}");
}

#[test]
fn rank_larger_than_possible() {
    let e = DmdFit::fit(data(2, 50, 3).view(), &dmd(2, RankSelection::Count(7)), Par::Seq).unwrap_err();
    assert!(e.to_string().contains("width"), "{e}");
    // rank-deficient data: 3 units but the third copies the first
    let mut x = data(2, 50, 3);
    for k in 0..2 {
        for t in 0..50 {
            x[[k, t, 2]] = x[[k, t, 0]];
        }
    }
    let e = DmdFit::fit(x.view(), &dmd(2, RankSelection::Count(5)), Par::Seq).unwrap_err();
    assert!(matches!(e, MetricError::RankTooLarge { limit: 4, .. }), "{e}");
    assert!(e.to_string().contains("numerical rank"));
}

#[test]
fn non_finite_values_are_located() {
    let mut x = data(2, 30, 3);
    x[[1, 7, 2]] = f64::NAN;
    let e = DmdFit::fit(x.view(), &dmd(2, RankSelection::Full), Par::Seq).unwrap_err();
    assert!(matches!(&e, MetricError::NonFinite { index, .. } if index == &vec![1, 7, 2]), "{e}");
    x[[1, 7, 2]] = f64::INFINITY;
    let y = data(2, 30, 3);
    assert!(matches!(Cka::default().similarity(x.view(), y.view()), Err(MetricError::NonFinite { .. })));
    assert!(matches!(ShapeMetric::default().distance(y.view(), x.view()), Err(MetricError::NonFinite { .. })));
    let a = Array2::from_elem((3, 3), f64::NAN);
    let e = SimilarityTransformDist::default().fit(a.view(), a.view()).unwrap_err();
    assert!(e.to_string().contains("operator A"));
}

#[test]
fn all_zero_inputs() {
    let z = Array3::<f64>::zeros((2, 30, 3));
    let y = data(2, 30, 3);
    assert!(matches!(DmdFit::fit(z.view(), &dmd(2, RankSelection::Full), Par::Seq), Err(MetricError::AllZero { .. })));
    assert!(matches!(Cka::default().similarity(z.view(), y.view()), Err(MetricError::AllZero { .. })));
    // constant (zero variance after centring)
    let c = Array3::<f64>::from_elem((2, 30, 3), 4.0);
    let e = ShapeMetric::default().distance(y.view(), c.view()).unwrap_err();
    assert!(e.to_string().contains("after centring"), "{e}");
    let a = Array2::<f64>::zeros((3, 3));
    assert!(matches!(SimilarityTransformDist::default().fit(a.view(), a.view()), Err(MetricError::AllZero { .. })));
}

#[test]
fn empty_inputs() {
    let e = Array3::<f64>::zeros((0, 30, 3));
    let y = data(2, 30, 3);
    assert!(matches!(DmdFit::fit(e.view(), &dmd(2, RankSelection::Full), Par::Seq), Err(MetricError::Empty { .. })));
    assert!(matches!(Cka::default().similarity(e.view(), y.view()), Err(MetricError::Empty { .. })));
}

#[test]
fn invalid_parameters() {
    let x = data(2, 30, 3);
    for (p, name) in [
        (DmdParams { n_delays: 0, ..Default::default() }, "n_delays"),
        (DmdParams { delay_interval: 0, ..Default::default() }, "delay_interval"),
        (DmdParams { lambda: -1.0, ..Default::default() }, "lambda"),
        (DmdParams { rank: RankSelection::Threshold(1.5), ..Default::default() }, "rank_thresh"),
        (DmdParams { rank: RankSelection::ExplainedVariance(0.0), ..Default::default() }, "rank_explained_variance"),
        (DmdParams { rank: RankSelection::Count(0), ..Default::default() }, "rank"),
        (DmdParams { steps_ahead: 0, ..Default::default() }, "steps_ahead"),
    ] {
        let e = DmdFit::fit(x.view(), &p, Par::Seq).unwrap_err();
        assert!(matches!(&e, MetricError::InvalidParameter { name: n, .. } if *n == name), "{name}: {e}");
        assert!(Dsa::new(DsaParams { dmd: p, ..Default::default() }).is_err());
    }
    let e = ShapeMetric { alpha: 1.5, score: Score::Angular }.distance(x.view(), x.view()).unwrap_err();
    assert!(e.to_string().contains("alpha"));
    let e = Cka { kernel: Kernel::Rbf { threshold: -1.0 }, estimator: HsicEstimator::Biased }
        .similarity(x.view(), x.view());
    assert!(matches!(e, Err(MetricError::InvalidParameter { name: "threshold", .. })));
    let fit = DmdFit::fit(x.view(), &dmd(2, RankSelection::Full), Par::Seq).unwrap();
    assert!(matches!(fit.predict(x.view(), 0), Err(MetricError::InvalidParameter { .. })));
    assert!(matches!(fit.predict(data(2, 30, 4).view(), 1), Err(MetricError::ShapeMismatch { .. })));
}

#[test]
fn mismatched_shapes() {
    let x = data(2, 30, 3);
    let y = data(3, 30, 3);
    let e = ShapeMetric::default().distance(x.view(), y.view()).unwrap_err();
    assert!(e.to_string().contains("samples"), "{e}");
    assert!(matches!(Cka::default().similarity(x.view(), y.view()), Err(MetricError::ShapeMismatch { .. })));
    let a = Array2::<f64>::eye(3);
    let b = Array2::<f64>::eye(4);
    let e = SimilarityTransformDist::default().fit(a.view(), b.view()).unwrap_err();
    assert!(e.to_string().contains("Wasserstein"), "{e}");
}

#[test]
fn rbf_cka_refuses_quadratic_memory_blowup() {
    let x = data(1, dynsim_metrics::MAX_GRAM_SAMPLES + 1, 2);
    let cka = Cka { kernel: Kernel::Rbf { threshold: 1.0 }, estimator: HsicEstimator::Biased };
    let e = cka.similarity(x.view(), x.view()).unwrap_err();
    assert!(e.to_string().contains("subsample"), "{e}");
}

#[test]
fn different_ranks_fall_back_to_wasserstein() {
    let x = data(3, 60, 3);
    let y = data(3, 60, 2);
    let dsa = Dsa::new(DsaParams { dmd: dmd(2, RankSelection::Full), ..Default::default() }).unwrap();
    let c = dsa.fit_score(x.view(), y.view()).unwrap();
    assert!(c.fallback && c.score == DsaScore::Wasserstein && c.ranks == (6, 4));
    assert!(c.value.is_finite() && c.value > 0.0);
}
