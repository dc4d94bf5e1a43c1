//! Dynamical Similarity Analysis: delay embedding + DMD per recording, then the
//! similarity-transform distance per pair (Ostrow, Eisen, Kozachkov & Fiete, NeurIPS 2023).

use faer::Par;
use ndarray::{Array2, ArrayView3};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::dmd::{DmdFit, DmdParams};
use crate::error::{MetricError, Result};
use crate::metric::{self, Certificate, Matching, Metric, MetricInfo, Param, ParamKind, Prepared, Scored};
use crate::pairwise::{map_indexed, Parallelism};
use crate::simdist::{SimilarityFit, SimilarityParams, SimilarityTransformDist};
use crate::wasserstein::eigenvalue_wasserstein;
use crate::RankSelection;
use crate::{Group, Regression};

/// The score DSA reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DsaScore {
    /// `arccos <A, C B C^T>` of the unit-norm operators (radians).
    #[default]
    Angular,
    /// `|A - C B C^T|_F` of the unit-norm operators.
    Euclidean,
    /// Squared 2-Wasserstein distance between the eigenvalues of the (unnormalised)
    /// operators; needs no `C`.
    Wasserstein,
}

/// Parameters of DSA: the DMD fit, the optimiser and the score.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct DsaParams {
    /// Embedding and DMD parameters (the same for every recording).
    #[serde(flatten)]
    pub dmd: DmdParams,
    /// Optimiser of the similarity-transform distance.
    #[serde(flatten)]
    pub similarity: SimilarityParams,
    /// Reported score.
    pub score: DsaScore,
}

/// The comparison of two fitted recordings.
#[derive(Debug, Clone)]
pub struct DsaComparison {
    /// The requested score (or the Wasserstein score when the ranks differ, see `fallback`).
    pub value: f64,
    /// Which score `value` is.
    pub score: DsaScore,
    /// True when the ranks differed and the angular/euclidean score fell back to Wasserstein.
    pub fallback: bool,
    /// The optimiser's result (`None` for the Wasserstein score).
    pub transform: Option<SimilarityFit>,
    /// Ranks of the left and right operators.
    pub ranks: (usize, usize),
    /// A certified lower bound on `value` (angular and euclidean scores; `None` for the
    /// Wasserstein score): no orthogonal `C` gives a smaller score
    /// ([`crate::SimilarityBound`]), so `value - lower` bounds the optimiser's distance to
    /// the global optimum.
    pub lower: Option<f64>,
}

impl DsaComparison {
    /// `value - lower`, when there is a bound.
    pub fn gap(&self) -> Option<f64> {
        self.lower.map(|l| self.value - l)
    }
}

/// DSA as an object: hyper-parameters validated once, then `fit` each recording once and
/// `compare` pairs of fits (O(K) fits, O(K^2) cheap comparisons).
///
/// ```
/// use dynsim_metrics::{Dsa, DsaParams, DmdParams, RankSelection};
/// use ndarray::Array3;
/// let x = Array3::from_shape_fn((4, 60, 2), |(k, t, u)| ((t as f64) * 0.2 + k as f64 + u as f64 * 1.3).sin());
/// // a sinusoid spans two directions of the embedding
/// let dsa = Dsa::new(DsaParams { dmd: DmdParams { n_delays: 3, rank: RankSelection::Count(2), ..Default::default() }, ..Default::default() }).unwrap();
/// let same = dsa.fit_score(x.view(), x.view()).unwrap();
/// assert!(same.value < 1e-6);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Dsa {
    params: DsaParams,
}

impl Dsa {
    /// Validate the parameters.
    pub fn new(params: DsaParams) -> Result<Self> {
        params.dmd.validate()?;
        if params.similarity.max_iters == 0 {
            return Err(MetricError::InvalidParameter {
                name: "max_iters",
                value: "0".into(),
                expected: "at least 1".into(),
            });
        }
        Ok(Self { params })
    }

    /// The parameters.
    pub fn params(&self) -> &DsaParams {
        &self.params
    }

    /// Embed and fit one recording (`trials x time x units`).
    pub fn fit(&self, x: ArrayView3<'_, f64>) -> Result<DmdFit> {
        DmdFit::fit(x, &self.params.dmd, Par::Seq)
    }

    /// Compare two fits.
    pub fn compare(&self, a: &DmdFit, b: &DmdFit) -> Result<DsaComparison> {
        let ranks = (a.a_v_faer().nrows(), b.a_v_faer().nrows());
        let wasserstein = || -> Result<f64> { eigenvalue_wasserstein(&a.eigenvalues()?, &b.eigenvalues()?) };
        if self.params.score == DsaScore::Wasserstein || ranks.0 != ranks.1 {
            return Ok(DsaComparison {
                value: wasserstein()?,
                score: DsaScore::Wasserstein,
                fallback: self.params.score != DsaScore::Wasserstein,
                transform: None,
                ranks,
                lower: None,
            });
        }
        let fit = SimilarityTransformDist::new(self.params.similarity).fit_faer(a.a_v_faer(), b.a_v_faer())?;
        let angular = self.params.score == DsaScore::Angular;
        Ok(DsaComparison {
            value: if angular { fit.angular } else { fit.euclidean },
            score: self.params.score,
            fallback: false,
            lower: Some(if angular { fit.angular_lower } else { fit.euclidean_lower }),
            transform: Some(fit),
            ranks,
        })
    }

    /// Fit both recordings and compare them.
    pub fn fit_score(&self, x: ArrayView3<'_, f64>, y: ArrayView3<'_, f64>) -> Result<DsaComparison> {
        self.compare(&self.fit(x)?, &self.fit(y)?)
    }

    /// Fit every recording once, in parallel.
    pub fn fit_all(&self, xs: &[ArrayView3<'_, f64>], par: Parallelism) -> Result<Vec<DmdFit>> {
        map_indexed(xs.len(), par, |i| self.fit(xs[i]).map_err(|e| annotate(e, &format!("recording {i}"))))
    }

    /// All pairs of one list: a symmetric matrix with zero diagonal. Each recording is fitted
    /// once; pairs run in parallel; every pair uses the same optimiser seed, so the result
    /// does not depend on scheduling.
    pub fn pairwise(&self, xs: &[ArrayView3<'_, f64>], par: Parallelism) -> Result<DsaMatrix> {
        let fits = self.fit_all(xs, par)?;
        self.pairwise_fits(&fits, par)
    }

    /// All pairs of already fitted recordings.
    pub fn pairwise_fits(&self, fits: &[DmdFit], par: Parallelism) -> Result<DsaMatrix> {
        let n = fits.len();
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
        let cmp = map_indexed(pairs.len(), par, |k| self.compare(&fits[pairs[k].0], &fits[pairs[k].1]))?;
        let mut m = DsaMatrix::new(n, n);
        for (&(i, j), c) in pairs.iter().zip(&cmp) {
            m.set(i, j, c);
            m.set(j, i, c);
        }
        Ok(m)
    }

    /// Every left recording against every right recording (`left x right`).
    pub fn bipartite(
        &self,
        left: &[ArrayView3<'_, f64>],
        right: &[ArrayView3<'_, f64>],
        par: Parallelism,
    ) -> Result<DsaMatrix> {
        let lf = self.fit_all(left, par)?;
        let rf = self.fit_all(right, par)?;
        let (n, m) = (lf.len(), rf.len());
        let cmp = map_indexed(n * m, par, |k| self.compare(&lf[k / m], &rf[k % m]))?;
        let mut out = DsaMatrix::new(n, m);
        for (k, c) in cmp.iter().enumerate() {
            out.set(k / m, k % m, c);
        }
        Ok(out)
    }
}

/// A matrix of DSA comparisons.
#[derive(Debug, Clone)]
pub struct DsaMatrix {
    /// The scores.
    pub values: Array2<f64>,
    /// The optimiser's final loss per pair (`NaN` where no transform was fitted, e.g. the
    /// diagonal or Wasserstein entries).
    pub loss: Array2<f64>,
    /// True where the ranks differed and the score fell back to Wasserstein.
    pub fallback: Array2<bool>,
}

impl DsaMatrix {
    fn new(n: usize, m: usize) -> Self {
        Self {
            values: Array2::zeros((n, m)),
            loss: Array2::from_elem((n, m), f64::NAN),
            fallback: Array2::from_elem((n, m), false),
        }
    }

    fn set(&mut self, i: usize, j: usize, c: &DsaComparison) {
        self.values[[i, j]] = c.value;
        self.loss[[i, j]] = c.transform.as_ref().map_or(f64::NAN, |t| t.loss);
        self.fallback[[i, j]] = c.fallback;
    }
}

/// DSA's registry entry: `dsa:n_delays=33,delay_interval=6,rank=50`.
///
/// Version 2 (dynsim 0.1, this release): results carry the certified `lower` bound and the
/// `gap`; the values are those of version 1, whose cached results lack the bound and are
/// therefore recomputed once.
pub static DSA_INFO: MetricInfo = MetricInfo {
    name: "dsa",
    version: 2,
    summary: "Dynamical Similarity Analysis: a DMD operator per recording (delay embedding, \
              principal-component regression), compared up to an orthogonal change of basis",
    formula: "angular = min_{C in O(n)} arccos <A, C B C^T>_F   (A, B the unit-norm DMD operators, radians)\n\
              euclidean = min_C |A - C B C^T|_F;  wasserstein: eigenvalue 2-Wasserstein distance\n\
              extras: lower = certified bound arccos(min(sum s_i(A) s_i(B), sym/skew bound)), gap = value - lower",
    reference: "Ostrow, Eisen, Kozachkov & Fiete (2023), Beyond geometry: comparing the temporal structure of \
                computation in neural circuits with dynamical similarity analysis, NeurIPS; dsa-metric",
    params: &[
        Param { name: "n_delays", kind: ParamKind::Count, default: "1", help: "delays of the Hankel embedding" },
        Param {
            name: "delay_interval",
            kind: ParamKind::Count,
            default: "1",
            help: "spacing of the delays, in time steps",
        },
        Param { name: "rank", kind: ParamKind::Count, default: "none", help: "DMD rank, a count (default: full)" },
        Param {
            name: "rank_thresh",
            kind: ParamKind::Number,
            default: "none",
            help: "instead of rank: keep singular values above this fraction of the largest",
        },
        Param {
            name: "rank_explained_variance",
            kind: ParamKind::Number,
            default: "none",
            help: "instead of rank: smallest rank explaining this fraction of the variance",
        },
        Param { name: "lambda", kind: ParamKind::Number, default: "0", help: "ridge penalty of the regression" },
        Param { name: "steps_ahead", kind: ParamKind::Count, default: "1", help: "prediction horizon, in rows" },
        Param {
            name: "reduced_rank",
            kind: ParamKind::Flag,
            default: "false",
            help: "reduced-rank instead of principal-component regression",
        },
        Param {
            name: "score",
            kind: ParamKind::Choice(&["angular", "euclidean", "wasserstein"]),
            default: "angular",
            help: "the score reported",
        },
        Param { name: "seed", kind: ParamKind::Count, default: "0", help: "seed of the optimiser's random starts" },
        Param {
            name: "restarts",
            kind: ParamKind::Count,
            default: "0",
            help: "random restarts per determinant component (thorough: 4)",
        },
        Param { name: "max_iters", kind: ParamKind::Count, default: "1000", help: "iteration cap of one start" },
        Param { name: "grad_tol", kind: ParamKind::Number, default: "1e-10", help: "gradient-norm tolerance" },
        Param {
            name: "thorough",
            kind: ParamKind::Flag,
            default: "false",
            help: "run every start to convergence instead of racing them",
        },
        Param {
            name: "group",
            kind: ParamKind::Choice(&["o", "so"]),
            default: "o",
            help: "orthogonal transforms searched: O(n) or rotations SO(n)",
        },
    ],
    build: build_dsa,
};

/// The text options of DSA (keys of [`DSA_INFO`]`.params`).
#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct DsaOptions {
    n_delays: Option<usize>,
    delay_interval: Option<usize>,
    rank: Option<usize>,
    rank_thresh: Option<f64>,
    rank_explained_variance: Option<f64>,
    lambda: Option<f64>,
    steps_ahead: Option<usize>,
    reduced_rank: bool,
    score: Option<String>,
    seed: Option<u64>,
    restarts: Option<usize>,
    max_iters: Option<usize>,
    grad_tol: Option<f64>,
    thorough: bool,
    group: Option<String>,
}

fn build_dsa(map: Map<String, Value>) -> std::result::Result<Box<dyn Metric>, String> {
    let o: DsaOptions = metric::options(map)?;
    let rules = [
        ("rank", o.rank.is_some()),
        ("rank_thresh", o.rank_thresh.is_some()),
        ("rank_explained_variance", o.rank_explained_variance.is_some()),
    ];
    let given: Vec<&str> = rules.iter().filter(|r| r.1).map(|r| r.0).collect();
    if given.len() > 1 {
        return Err(format!("give one rank rule, not {}", given.join(" and ")));
    }
    let rank = match (o.rank, o.rank_thresh, o.rank_explained_variance) {
        (Some(r), _, _) => RankSelection::Count(r),
        (_, Some(t), _) => RankSelection::Threshold(t),
        (_, _, Some(v)) => RankSelection::ExplainedVariance(v),
        _ => RankSelection::Full,
    };
    if o.thorough && o.restarts.is_some_and(|r| r != SimilarityParams::thorough().restarts) {
        return Err("thorough sets its own restarts (4 per component, every start to convergence); drop restarts \
                    or thorough"
            .into());
    }
    let d = DmdParams::default();
    let base = if o.thorough { SimilarityParams::thorough() } else { SimilarityParams::default() };
    let params = DsaParams {
        dmd: DmdParams {
            n_delays: o.n_delays.unwrap_or(d.n_delays),
            delay_interval: o.delay_interval.unwrap_or(d.delay_interval),
            rank,
            lambda: o.lambda.unwrap_or(d.lambda),
            steps_ahead: o.steps_ahead.unwrap_or(d.steps_ahead),
            regression: if o.reduced_rank { Regression::ReducedRank } else { Regression::PrincipalComponent },
        },
        similarity: SimilarityParams {
            group: if o.group.as_deref() == Some("so") { Group::SO } else { Group::O },
            restarts: o.restarts.unwrap_or(base.restarts),
            max_iters: o.max_iters.unwrap_or(base.max_iters),
            grad_tol: o.grad_tol.unwrap_or(base.grad_tol),
            seed: o.seed.unwrap_or(base.seed),
            race: base.race,
        },
        score: match o.score.as_deref() {
            Some("euclidean") => DsaScore::Euclidean,
            Some("wasserstein") => DsaScore::Wasserstein,
            _ => DsaScore::Angular,
        },
    };
    Ok(Box::new(Dsa::new(params).map_err(|e| e.to_string())?))
}

impl Metric for Dsa {
    fn info(&self) -> &'static MetricInfo {
        &DSA_INFO
    }

    fn params(&self) -> Value {
        metric::to_json(&self.params)
    }

    fn matching(&self) -> Matching {
        Matching::Nothing
    }

    fn prepare_key(&self) -> String {
        json!({ "dmd": metric::to_json(&self.params.dmd) }).to_string()
    }

    fn compact(&self) -> bool {
        true
    }

    fn prepare(&self, x: ArrayView3<'_, f64>) -> Result<Prepared> {
        Ok(Prepared::Operator(self.fit(x)?))
    }

    /// The score, with extras `score` (the one reported: `wasserstein` when the ranks
    /// differ), `rank_left`, `rank_right`, `fallback_to_wasserstein`, and for the angular
    /// and euclidean scores `angular`, `euclidean`, `loss`, `det`, `iterations`, the
    /// certified `lower` bound and `gap = value - lower`.
    fn score(&self, a: &Prepared, b: &Prepared) -> Result<Scored> {
        Ok(scored(&self.compare(a.operator("dsa")?, b.operator("dsa")?)?))
    }

    /// The score and its certificate: `A`, `B`, the unit-norm operators compared, and `C`,
    /// the optimal orthogonal transform, so that `angular = arccos(sum(A * (C @ B @ C.T)))`.
    /// No certificate for the Wasserstein score.
    fn score_certified(&self, a: &Prepared, b: &Prepared) -> Result<(Scored, Option<Certificate>)> {
        let (fa, fb) = (a.operator("dsa")?, b.operator("dsa")?);
        let c = self.compare(fa, fb)?;
        let certificate = c.transform.as_ref().map(|t| {
            let unit = |m: Array2<f64>| {
                let n = m.iter().map(|v| v * v).sum::<f64>().sqrt();
                m.mapv(|v| v / n)
            };
            Certificate {
                arrays: vec![("A".into(), unit(fa.a_v())), ("B".into(), unit(fb.a_v())), ("C".into(), t.c.clone())],
            }
        });
        Ok((scored(&c), certificate))
    }
}

/// A comparison as the metric object reports it (see [`Dsa`]'s `score`).
fn scored(c: &DsaComparison) -> Scored {
    let mut extras = Map::new();
    extras.insert("score".into(), json!(c.score));
    extras.insert("rank_left".into(), json!(c.ranks.0));
    extras.insert("rank_right".into(), json!(c.ranks.1));
    extras.insert("fallback_to_wasserstein".into(), json!(c.fallback));
    if let Some(t) = &c.transform {
        extras.insert("angular".into(), json!(t.angular));
        extras.insert("euclidean".into(), json!(t.euclidean));
        extras.insert("loss".into(), json!(t.loss));
        extras.insert("det".into(), json!(t.det));
        extras.insert("iterations".into(), json!(t.iterations));
    }
    if let (Some(lower), Some(gap)) = (c.lower, c.gap()) {
        extras.insert("lower".into(), json!(lower));
        extras.insert("gap".into(), json!(gap));
    }
    Scored { value: c.value, extras }
}

fn annotate(e: MetricError, whr: &str) -> MetricError {
    match e {
        MetricError::NonFinite { what, value, index } => {
            MetricError::NonFinite { what: format!("{what} ({whr})"), value, index }
        }
        MetricError::AllZero { what, detail } => MetricError::AllZero { what: format!("{what} ({whr})"), detail },
        MetricError::Empty { what, shape } => MetricError::Empty { what: format!("{what} ({whr})"), shape },
        MetricError::TooShortForDelays { what, time, n_delays, delay_interval, needed } => {
            MetricError::TooShortForDelays { what: format!("{what} ({whr})"), time, n_delays, delay_interval, needed }
        }
        MetricError::RankTooLarge { rank, limit, why } => {
            MetricError::RankTooLarge { rank, limit, why: format!("{why}, {whr}") }
        }
        other => other,
    }
}
