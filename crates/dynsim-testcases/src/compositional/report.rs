//! The compositional test case's report: tables, SVG figures and `report.md`, with the seed
//! study's numbers beside ours.
//!
//! [`sections`] turns a study's outcome (one [`AnalysisOutcome`] per analysis) into report
//! [`Section`]s (the Lorenz report's type: a table, a reading and figures; the notebook kernel
//! shows them inline); [`write_report`] writes them as SVG files and a `report.md`.
//!
//! Scales, as the study reports them: DSA as an angle in radians; CKA and Procrustes as
//! angles on the study's scale angle/(π/2) ∈ [0, 1] (the tables give radians too). Every
//! figure's axes say which.
//!
//! The "partial" row of the comparison with the study pools all six one- and two-task groups
//! (mean ± SEM over their networks); the range after it is over the group means of the five
//! the study analysed ([`Group::STUDY_PARTIAL`]), which is what the study's range covers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dynsim_nets::{checkpoint, train, Rule};
use dynsim_query::polars::prelude::*;
use dynsim_store::fsutil::atomic_write;
use dynsim_store::StoreError;

use super::groups::{Group, Pool};
use super::plan::{Init, Preset, Run};
use super::recording::Analysis;
use super::summary::{family, Summary};
use super::CompositionalError;
use crate::report::{Figure, Section};
use crate::svg::{band_lines, boxplot_marked, heatmap};

/// The study's metrics, in the report's order.
pub const METRICS: [&str; 3] = ["dsa", "cka", "procrustes"];

/// The architecture families, in the report's order (see [`family`]).
pub const FAMILIES: [&str; 2] = ["rnn", "mamba"];

/// A row of the comparison with the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StudyRow {
    /// `untrained`.
    Untrained,
    /// `master_frozen`.
    MasterFrozen,
    /// The one- and two-task groups.
    Partial,
    /// `pretrain_frozen` (the study's "full").
    Full,
    /// `pretrain_unfrozen`.
    Unfrozen,
}

impl StudyRow {
    /// Every row, in the study's order.
    pub const ALL: [StudyRow; 5] =
        [StudyRow::Untrained, StudyRow::MasterFrozen, StudyRow::Partial, StudyRow::Full, StudyRow::Unfrozen];

    /// The row's label.
    pub fn name(self) -> &'static str {
        match self {
            StudyRow::Untrained => "untrained",
            StudyRow::MasterFrozen => "master_frozen",
            StudyRow::Partial => "partial",
            StudyRow::Full => "full (pretrain_frozen)",
            StudyRow::Unfrozen => "unfrozen (pretrain_unfrozen)",
        }
    }

    /// The group of a single-group row.
    fn group(self) -> Option<Group> {
        match self {
            StudyRow::Untrained => Some(Group::Untrained),
            StudyRow::MasterFrozen => Some(Group::MasterFrozen),
            StudyRow::Partial => None,
            StudyRow::Full => Some(Group::PretrainFrozen),
            StudyRow::Unfrozen => Some(Group::PretrainUnfrozen),
        }
    }
}

/// The seed study's dissimilarity to master (its figures' values) for a family, metric and
/// row, on the study's scale (DSA in radians, CKA and Procrustes as angle/(π/2)): `(lo, hi)`,
/// equal for a single value, the range over its five partial groups for `Partial`. `None`
/// where the study gives no value (Procrustes for Mamba).
pub fn study_value(family: &str, metric: &str, row: StudyRow) -> Option<(f64, f64)> {
    use StudyRow::*;
    let one = |v: f64| Some((v, v));
    match (family, metric, row) {
        ("rnn", "dsa", Untrained) => one(0.607),
        ("rnn", "dsa", MasterFrozen) => one(0.427),
        ("rnn", "dsa", Partial) => Some((0.292, 0.367)),
        ("rnn", "dsa", Full) => one(0.271),
        ("rnn", "dsa", Unfrozen) => one(0.306),
        ("rnn", "cka", Untrained) => one(0.426),
        ("rnn", "cka", MasterFrozen) => one(0.419),
        ("rnn", "cka", Partial) => Some((0.369, 0.436)),
        ("rnn", "cka", Full) => one(0.403),
        ("rnn", "cka", Unfrozen) => one(0.405),
        ("rnn", "procrustes", Untrained) => one(0.444),
        ("rnn", "procrustes", MasterFrozen) => one(0.412),
        ("rnn", "procrustes", Partial) => Some((0.392, 0.417)),
        ("rnn", "procrustes", Full) => one(0.415),
        ("rnn", "procrustes", Unfrozen) => one(0.417),
        ("mamba", "dsa", Untrained) => one(0.462),
        ("mamba", "dsa", MasterFrozen) => one(0.615),
        ("mamba", "dsa", Partial) => Some((0.385, 0.462)),
        ("mamba", "dsa", Full) => one(0.466),
        ("mamba", "dsa", Unfrozen) => one(0.451),
        ("mamba", "cka", Untrained) => one(0.381),
        ("mamba", "cka", MasterFrozen) => one(0.339),
        ("mamba", "cka", Partial) => Some((0.47, 0.59)),
        ("mamba", "cka", Full) => one(0.638),
        ("mamba", "cka", Unfrozen) => one(0.667),
        _ => None,
    }
}

/// The study's DSA distance of the RNN master to itself (its noise floor): 0.088 rad.
pub const STUDY_RNN_MASTER_SELF_DSA: f64 = 0.088;

/// The factor from radians to the study's scale, and that scale's unit label: DSA stays in
/// radians; CKA and Procrustes become angle/(π/2).
pub fn study_scale(metric: &str) -> (f64, &'static str) {
    if metric == "dsa" {
        (1.0, "rad")
    } else {
        (std::f64::consts::FRAC_2_PI, "angle/(π/2)")
    }
}

/// A metric's display name.
fn metric_label(metric: &str) -> &str {
    match metric {
        "dsa" => "DSA",
        "cka" => "CKA",
        "procrustes" => "Procrustes",
        other => other,
    }
}

/// One analysis's comparison frames and statistics (what `dynsim testcase compositional`
/// computes per analysis).
#[derive(Debug, Clone)]
pub struct AnalysisOutcome {
    /// Which reading of the study.
    pub analysis: Analysis,
    /// Final networks against master's ([`super::Kind::ToMaster`]).
    pub to_master: DataFrame,
    /// Every pair of final networks ([`super::Kind::Matrix`]).
    pub matrix: DataFrame,
    /// Every checkpoint against master's at the nearest progress ([`super::Kind::OverLearning`]).
    pub over_learning: DataFrame,
    /// The statistics ([`super::summarize`]).
    pub summary: Summary,
}

/// What the study ran: the report's header.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The preset.
    pub preset: Preset,
    /// Replicates per configuration and group.
    pub seeds: usize,
    /// How initialisations relate across groups.
    pub init: Init,
    /// Test trials recorded per checkpoint.
    pub trials: usize,
    /// The runs (finished, under `store_root`).
    pub runs: &'a [&'a Run],
    /// The store's root (run folders are `<root>/runs/<id>`).
    pub store_root: &'a Path,
}

/// Rows of a comparison frame: `(family, metric, left_group, right_group, value, progress)`.
struct Rows {
    family: Vec<&'static str>,
    metric: Vec<String>,
    left: Vec<Group>,
    right: Vec<Group>,
    value: Vec<f64>,
    progress: Vec<f64>,
}

/// A column as text (null: empty).
fn text_column(df: &DataFrame, c: &str) -> Result<Vec<String>, CompositionalError> {
    Ok(df.column(c)?.cast(&DataType::String)?.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
}

/// A column as f64 (null: NaN).
fn float_column(df: &DataFrame, c: &str) -> Result<Vec<f64>, CompositionalError> {
    Ok(df.column(c)?.cast(&DataType::Float64)?.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

fn rows(df: &DataFrame) -> Result<Rows, CompositionalError> {
    let text = |c: &str| text_column(df, c);
    let groups =
        |c: &str| -> Result<Vec<Group>, CompositionalError> { text(c)?.iter().map(|g| Group::parse(g)).collect() };
    let float = |c: &str| float_column(df, c);
    Ok(Rows {
        family: text("left_model")?.iter().map(|m| family(m)).collect(),
        metric: text("metric")?,
        left: groups("left_group")?,
        right: groups("right_group")?,
        value: float("value")?,
        progress: float("left_progress")?,
    })
}

/// Mean and SEM of values the summary does not hold (accuracy curves, progress bins):
/// `dynsim_query::stats::mean_sem`, with a single value's SEM NaN and no value NaN, NaN.
fn mean_sem(v: &[f64]) -> (f64, f64) {
    match v {
        [] => (f64::NAN, f64::NAN),
        [x] => (*x, f64::NAN),
        _ => dynsim_query::stats::mean_sem(v).unwrap_or((f64::NAN, f64::NAN)),
    }
}

/// Mean ± SEM per (family, metric, level) read from a summary frame: `by_group` (level column
/// `left_group`) or `by_pool` (`pool`). The report reads every group and pool statistic from
/// here, so its tables and the CLI's agree by construction.
struct Stats(BTreeMap<(String, String, String), (f64, f64)>);

impl Stats {
    fn new(frame: &DataFrame, level: &str) -> Result<Stats, CompositionalError> {
        let text = |c: &str| text_column(frame, c);
        let float = |c: &str| float_column(frame, c);
        let (fam, metric, lev, mean, sem) =
            (text("family")?, text("metric")?, text(level)?, float("mean")?, float("sem")?);
        let mut out = BTreeMap::new();
        for i in 0..frame.height() {
            out.insert((fam[i].clone(), metric[i].clone(), lev[i].clone()), (mean[i], sem[i]));
        }
        Ok(Stats(out))
    }

    /// Mean and SEM (NaN when absent).
    fn get(&self, fam: &str, metric: &str, level: &str) -> (f64, f64) {
        self.0.get(&(fam.to_string(), metric.to_string(), level.to_string())).copied().unwrap_or((f64::NAN, f64::NAN))
    }
}

/// An analysis's group and pool statistics ([`Summary::by_group`], [`Summary::by_pool`]).
struct OutcomeStats {
    groups: Stats,
    pools: Stats,
}

impl OutcomeStats {
    fn new(summary: &Summary) -> Result<OutcomeStats, CompositionalError> {
        Ok(OutcomeStats {
            groups: Stats::new(&summary.by_group, "left_group")?,
            pools: Stats::new(&summary.by_pool, "pool")?,
        })
    }
}

fn fmt_ms(m: f64, s: f64) -> String {
    if !m.is_finite() {
        "–".into()
    } else if s.is_finite() {
        format!("{m:.3} ± {s:.3}")
    } else {
        format!("{m:.3}")
    }
}

fn fmt_study(v: Option<(f64, f64)>) -> String {
    match v {
        None => "–".into(),
        Some((a, b)) if a == b => format!("{a:.3}"),
        Some((a, b)) => format!("{a:.3}–{b:.3}"),
    }
}

/// Final-network values to master per (family, metric, group), in radians; master's own row
/// left out.
fn finals(r: &Rows) -> BTreeMap<(&'static str, String, Group), Vec<f64>> {
    let mut out: BTreeMap<(&'static str, String, Group), Vec<f64>> = BTreeMap::new();
    for i in 0..r.value.len() {
        if r.left[i] != Group::Master && r.value[i].is_finite() {
            out.entry((r.family[i], r.metric[i].clone(), r.left[i])).or_default().push(r.value[i]);
        }
    }
    out
}

/// Our value for a study row on the study's scale: mean ± SEM, and for `Partial` the pool's
/// mean ± SEM with the range of the five study groups' means.
fn ours(st: &OutcomeStats, fam: &str, metric: &str, row: StudyRow) -> String {
    let (k, _) = study_scale(metric);
    match row.group() {
        Some(g) => {
            let (m, s) = st.groups.get(fam, metric, g.name());
            fmt_ms(m * k, s * k)
        }
        None => {
            let (m, s) = st.pools.get(fam, metric, Pool::Partial.name());
            let means: Vec<f64> = Group::STUDY_PARTIAL
                .iter()
                .map(|g| st.groups.get(fam, metric, g.name()).0 * k)
                .filter(|m| m.is_finite())
                .collect();
            let lo = means.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if means.is_empty() {
                fmt_ms(m * k, s * k)
            } else {
                format!("{} ({lo:.3}–{hi:.3})", fmt_ms(m * k, s * k))
            }
        }
    }
}

/// The families present in an outcome, in the report's order.
fn families_of(r: &Rows) -> Vec<&'static str> {
    FAMILIES.iter().copied().filter(|f| r.family.contains(f)).collect()
}

/// The metrics present in an outcome, in the report's order.
fn metrics_of(r: &Rows) -> Vec<&'static str> {
    METRICS.iter().copied().filter(|m| r.metric.iter().any(|x| x == m)).collect()
}

/// Ours next to the study's, per family, row and metric, for every analysis.
fn section_study(outcomes: &[(&AnalysisOutcome, Rows, OutcomeStats)]) -> Section {
    let mut columns = vec!["family".to_string(), "group".to_string()];
    for m in METRICS {
        for (o, _, _) in outcomes {
            columns.push(format!("{} {} ({})", metric_label(m), o.analysis.name(), study_scale(m).1));
        }
        columns.push(format!("{} study", metric_label(m)));
    }
    let mut rows = Vec::new();
    let families: Vec<&'static str> =
        FAMILIES.iter().copied().filter(|f| outcomes.iter().any(|(_, r, _)| r.family.contains(f))).collect();
    for fam in &families {
        for row in StudyRow::ALL {
            let mut cells = vec![fam.to_string(), row.name().to_string()];
            for m in METRICS {
                for (_, _, st) in outcomes {
                    cells.push(ours(st, fam, m, row));
                }
                cells.push(fmt_study(study_value(fam, m, row)));
            }
            rows.push(cells);
        }
    }
    Section {
        title: "Dissimilarity to master: ours and the study's".into(),
        intro: "Final networks against master of the same configuration and seed; mean ± SEM over configurations \
                and seeds. DSA in radians, CKA and Procrustes as angle/(π/2), the study's scales. partial pools the \
                six one- and two-task groups; in brackets the range of the group means over the five the study \
                analysed (the study's range is over those five). The study's RNN master scored DSA 0.088 against \
                itself; ours is compared with the same recording, so 0."
            .into(),
        columns,
        rows,
        reading: String::new(),
        figures: Vec::new(),
    }
}

/// Per-group table, box plots with the study's values marked, and group x group heatmaps of
/// one analysis.
fn section_groups(o: &AnalysisOutcome, st: &OutcomeStats, r: &Rows, matrix: &Rows) -> Section {
    let fin = finals(r);
    let (families, metrics) = (families_of(r), metrics_of(r));
    let mut columns = vec!["family".to_string(), "group".to_string()];
    for m in &metrics {
        columns.push(format!("{} (rad)", metric_label(m)));
        if *m != "dsa" {
            columns.push(format!("{} (angle/(π/2))", metric_label(m)));
        }
    }
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    let a = o.analysis.name();
    for fam in &families {
        for g in Group::ALL.iter().filter(|g| **g != Group::Master) {
            let mut cells = vec![fam.to_string(), g.name().to_string()];
            for m in &metrics {
                let (mean, sem) = st.groups.get(fam, m, g.name());
                cells.push(fmt_ms(mean, sem));
                if *m != "dsa" {
                    let (k, _) = study_scale(m);
                    cells.push(fmt_ms(mean * k, sem * k));
                }
            }
            rows.push(cells);
        }
        for m in &metrics {
            let (k, unit) = study_scale(m);
            let groups: Vec<Group> = Group::ALL.iter().copied().filter(|g| *g != Group::Master).collect();
            let data: Vec<(String, Vec<f64>)> = groups
                .iter()
                .map(|g| {
                    let v = fin.get(&(*fam, m.to_string(), *g)).cloned().unwrap_or_default();
                    (g.name().to_string(), v.iter().map(|x| x * k).collect())
                })
                .collect();
            let marks: Vec<Option<(f64, f64)>> = groups
                .iter()
                .map(|g| {
                    let row = match g {
                        Group::Untrained => StudyRow::Untrained,
                        Group::MasterFrozen => StudyRow::MasterFrozen,
                        Group::PretrainFrozen => StudyRow::Full,
                        Group::PretrainUnfrozen => StudyRow::Unfrozen,
                        g if Group::STUDY_PARTIAL.contains(g) => StudyRow::Partial,
                        _ => return None,
                    };
                    study_value(fam, m, row)
                })
                .collect();
            figures.push(Figure {
                name: format!("{a}_{fam}_{m}_to_master.svg"),
                svg: boxplot_marked(
                    &data,
                    &marks,
                    "the study (a bar: its range over the partial groups)",
                    &format!("{}: {} dissimilarity to master ({a})", fam.to_uppercase(), metric_label(m)),
                    &format!("{} ({unit})", metric_label(m)),
                ),
            });
            figures.push(Figure {
                name: format!("{a}_{fam}_{m}_matrix.svg"),
                svg: heatmap(
                    &group_matrix(matrix, fam, m, k),
                    &Group::ALL.iter().map(|g| g.name().to_string()).collect::<Vec<_>>(),
                    &format!("{}: {} between groups ({unit}, {a})", fam.to_uppercase(), metric_label(m)),
                ),
            });
        }
    }
    let reading = ordering_reading(o, st, &families);
    Section {
        title: format!("Groups ({a} analysis)"),
        intro: format!(
            "Dissimilarity of each group's final networks to master's, mean ± SEM over configurations and seeds \
             ({} analysis). Figures: per family and metric, the networks by group with the study's values marked, \
             and the group x group matrix (mean over configurations and seeds).",
            o.analysis.name()
        ),
        columns,
        rows,
        reading,
        figures,
    }
}

/// Mean group x group dissimilarity (times `k`) of one family and metric over configurations
/// and seeds; the diagonal is 0, a pair never compared is NaN.
fn group_matrix(r: &Rows, fam: &str, metric: &str, k: f64) -> ndarray::Array2<f64> {
    let n = Group::ALL.len();
    let mut sum = ndarray::Array2::<f64>::zeros((n, n));
    let mut count = ndarray::Array2::<f64>::zeros((n, n));
    for i in 0..r.value.len() {
        if r.family[i] != fam || r.metric[i] != metric || !r.value[i].is_finite() {
            continue;
        }
        let (a, b) = (r.left[i] as usize, r.right[i] as usize);
        for (x, y) in [(a, b), (b, a)] {
            sum[[x, y]] += r.value[i] * k;
            count[[x, y]] += 1.0;
        }
    }
    ndarray::Array2::from_shape_fn((n, n), |(i, j)| {
        if i == j {
            0.0
        } else if count[[i, j]] > 0.0 {
            sum[[i, j]] / count[[i, j]]
        } else {
            f64::NAN
        }
    })
}

/// Whether untrained and master_frozen are both further from master than every pretrained
/// group, per family and metric, as a sentence.
fn ordering_reading(o: &AnalysisOutcome, st: &OutcomeStats, families: &[&'static str]) -> String {
    let mut parts = Vec::new();
    for fam in families {
        let mut ordered = Vec::new();
        for m in METRICS {
            let mean = |g: Group| st.groups.get(fam, m, g.name()).0;
            let controls = [Group::Untrained, Group::MasterFrozen].map(mean);
            let pretrained: Vec<f64> = Group::ALL
                .iter()
                .filter(|g| !g.pretrain_rules().is_empty())
                .map(|g| mean(*g))
                .filter(|v| v.is_finite())
                .collect();
            let top = pretrained.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if controls.iter().all(|c| c.is_finite()) && !pretrained.is_empty() {
                let low = controls[0].min(controls[1]);
                ordered.push(format!("{} {}", metric_label(m), if low > top { "yes" } else { "no" }));
            }
        }
        if !ordered.is_empty() {
            parts.push(format!("{}: {}", fam.to_uppercase(), ordered.join(", ")));
        }
    }
    format!(
        "Untrained and master_frozen both further from master than every pretrained group's mean ({} analysis): {}.",
        o.analysis.name(),
        parts.join("; ")
    )
}

/// Cell text of a frame value.
fn cell(c: &Column, i: usize) -> String {
    match c.get(i) {
        Ok(AnyValue::Null) | Err(_) => "–".into(),
        Ok(AnyValue::String(s)) => s.to_string(),
        Ok(AnyValue::StringOwned(s)) => s.to_string(),
        Ok(v) => match v.extract::<f64>() {
            Some(x)
                if x.fract() == 0.0 && x.abs() < 1e9 && !matches!(v, AnyValue::Float64(_) | AnyValue::Float32(_)) =>
            {
                format!("{x}")
            }
            Some(x) if x != 0.0 && x.abs() < 1e-3 => format!("{x:.2e}"),
            Some(x) => format!("{x:.3}"),
            None => v.to_string(),
        },
    }
}

/// A frame's chosen columns as table rows.
fn table(df: &DataFrame, columns: &[&str]) -> Vec<Vec<String>> {
    let cols: Vec<Option<&Column>> = columns.iter().map(|c| df.column(c).ok()).collect();
    (0..df.height()).map(|i| cols.iter().map(|c| c.map_or("–".into(), |c| cell(c, i))).collect()).collect()
}

/// The tests between pools (Student and Welch, BH-corrected) and the separation per metric.
fn section_tests(o: &AnalysisOutcome) -> Result<Section, CompositionalError> {
    let s = &o.summary;
    let key = ["family", "metric", "a", "b"];
    let student = table(&s.student, &[&key[..], &["t", "df", "p", "q"]].concat());
    let welch = table(&s.welch, &["t", "df", "p", "q"]);
    let rows: Vec<Vec<String>> = if student.len() == welch.len() {
        student.into_iter().zip(welch).map(|(a, b)| [a, b].concat()).collect()
    } else {
        student
    };
    let sep = table(&s.separation, &["family", "metric", "n_controls", "n_pretrained", "cohen_d", "eta2"]);
    let mut reading = String::from("Separation of the groups per metric (scale-free): ");
    let parts: Vec<String> = sep
        .iter()
        .map(|r| {
            format!(
                "{} {}: Cohen's d {} (controls vs pretrained), η² {}",
                r[0].to_uppercase(),
                metric_label(&r[1]),
                r[4],
                r[5]
            )
        })
        .collect();
    reading.push_str(&parts.join("; "));
    reading.push('.');
    Ok(Section {
        title: format!("Between pools ({} analysis)", o.analysis.name()),
        intro:
            "Two-sided t-tests of dissimilarity to master between pools (the six one- and two-task groups pooled as \
                partial): Student's (the study's) and Welch's, each with Benjamini-Hochberg q over all its tests. \
                Cohen's d compares the controls (untrained, master_frozen) with the pretrained groups; η² is the share \
                of variance between the ten groups."
                .into(),
        columns: ["family", "metric", "a", "b", "t (Student)", "df", "p", "q", "t (Welch)", "df", "p", "q"]
            .map(String::from)
            .to_vec(),
        rows,
        reading,
        figures: Vec::new(),
    })
}

/// Over-learning regressions and curves (dissimilarity to master's checkpoint at the nearest
/// progress, binned to tenths of training), per family and metric.
fn section_over_learning(o: &AnalysisOutcome, r: &Rows) -> Section {
    let a = o.analysis.name();
    let cols = ["family", "metric", "n", "slope", "intercept", "r2", "p"];
    let mut rows: Vec<Vec<String>> = table(&o.summary.on_share, &cols)
        .into_iter()
        .map(|mut x| {
            x.insert(2, "share".into());
            x
        })
        .collect();
    rows.extend(table(&o.summary.on_progress, &cols).into_iter().map(|mut x| {
        x.insert(2, "progress".into());
        x
    }));
    let mut figures = Vec::new();
    let xs: Vec<f64> = (0..=10).map(|k| k as f64 / 10.0).collect();
    for fam in families_of(r) {
        for m in metrics_of(r) {
            let (k, unit) = study_scale(m);
            let mut series = Vec::new();
            for g in Group::ALL.iter().filter(|g| **g != Group::Master) {
                let mut bins: Vec<Vec<f64>> = vec![Vec::new(); xs.len()];
                for i in 0..r.value.len() {
                    if r.family[i] == fam && r.metric[i] == m && r.left[i] == *g && r.value[i].is_finite() {
                        let b = (r.progress[i] * 10.0).round().clamp(0.0, 10.0) as usize;
                        bins[b].push(r.value[i] * k);
                    }
                }
                if bins.iter().all(Vec::is_empty) {
                    continue;
                }
                let (means, sems): (Vec<f64>, Vec<f64>) = bins.iter().map(|b| mean_sem(b)).unzip();
                series.push((g.name().to_string(), means, sems));
            }
            figures.push(Figure {
                name: format!("{a}_{fam}_{m}_over_learning.svg"),
                svg: band_lines(
                    &xs,
                    &series,
                    &format!("{}: {} to master over learning ({a})", fam.to_uppercase(), metric_label(m)),
                    "progress of training (epoch / last epoch)",
                    &format!("{} ({unit})", metric_label(m)),
                ),
            });
        }
    }
    // The preprocessing, if any, is in the specs' labels (`preprocess=zscore_joint_pca:K`).
    let preprocessed = o
        .over_learning
        .column("params")
        .ok()
        .and_then(|c| c.str().ok().and_then(|s| s.get(0).map(str::to_string)))
        .and_then(|p| p.split(',').find_map(|kv| kv.strip_prefix("preprocess=").map(str::to_string)));
    let how = match preprocessed {
        Some(p) => format!(" Both networks of every pair were preprocessed as the study did ({p}: z-score over time, joint PCA)."),
        None => " No preprocessing (the study z-scored and projected onto a joint 20-component PCA: --preprocess zscore_pca:20).".into(),
    };
    Section {
        title: format!("Over learning ({a} analysis)"),
        intro: format!(
            "Every checkpoint against master's checkpoint at the nearest relative progress; least-squares \
             regressions of dissimilarity (radians) on the share of pretrained tasks (0, 1/3, 2/3, 1) and on \
             progress. Figures: mean ± SEM (band) per group over progress, binned to tenths.{how}"
        ),
        columns: ["family", "metric", "on", "n", "slope", "intercept", "r²", "p"].map(String::from).to_vec(),
        rows,
        reading: String::new(),
        figures,
    }
}

/// A run's target-task accuracy per training epoch, and its pretraining epochs.
type RunCurve = (Vec<f64>, usize);

/// Training: per family and group, runs, target-task accuracy at the end, epochs, and the
/// accuracy curves (AntiPDMDelay, decision steps, evaluation set) over the training phase's
/// epochs. A run that stopped early (accuracy above the stopping threshold) keeps its last
/// accuracy in later epochs of the mean curve.
pub fn section_training(setup: &Setup) -> Result<Section, CompositionalError> {
    // (family, group) -> per run: accuracy per training epoch; pretraining epochs
    let mut curves: BTreeMap<(&'static str, Group), Vec<RunCurve>> = BTreeMap::new();
    for run in setup.runs {
        let dir = run.dir(setup.store_root);
        let fail = |e| run.error(setup.store_root, e);
        let mut acc = Vec::new();
        let mut pre = 0;
        for path in train::checkpoints(&dir).map_err(fail)? {
            let Some(meta) = checkpoint::read_meta(&path).map_err(fail)? else { continue };
            if meta.phase == "train" {
                let a = meta.accuracy.iter().find(|(n, _)| n == Rule::AntiPdmDelay.name()).map_or(f64::NAN, |x| x.1);
                acc.push(a);
            } else if meta.phase_done {
                pre += meta.epoch;
            }
        }
        curves.entry((family(run.configuration.net.arch.name()), run.group)).or_default().push((acc, pre));
    }
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for fam in FAMILIES {
        let mut series = Vec::new();
        let longest =
            curves.iter().filter(|((f, _), _)| *f == fam).flat_map(|(_, v)| v.iter().map(|c| c.0.len())).max();
        let Some(longest) = longest else { continue };
        for g in Group::ALL {
            let Some(runs) = curves.get(&(fam, g)) else { continue };
            let finals: Vec<f64> = runs.iter().filter_map(|c| c.0.last().copied()).collect();
            let epochs: Vec<f64> = runs.iter().map(|c| c.0.len().saturating_sub(1) as f64).collect();
            let pre: Vec<f64> = runs.iter().map(|c| c.1 as f64).collect();
            let (fa, fs) = mean_sem(&finals);
            rows.push(vec![
                fam.to_string(),
                g.name().to_string(),
                runs.len().to_string(),
                fmt_ms(fa, fs),
                format!("{:.1}", mean_sem(&pre).0),
                format!("{:.1}", mean_sem(&epochs).0),
            ]);
            if g == Group::Untrained {
                continue;
            }
            let (means, sems): (Vec<f64>, Vec<f64>) = (0..longest)
                .map(|e| {
                    let v: Vec<f64> = runs.iter().filter_map(|c| c.0.get(e).or(c.0.last()).copied()).collect();
                    mean_sem(&v)
                })
                .unzip();
            series.push((g.name().to_string(), means, sems));
        }
        let xs: Vec<f64> = (0..longest).map(|e| e as f64).collect();
        figures.push(Figure {
            name: format!("training_{fam}_accuracy.svg"),
            svg: band_lines(
                &xs,
                &series,
                &format!("{}: AntiPDMDelay accuracy while training on it", fam.to_uppercase()),
                "epoch of the training phase",
                "accuracy (fraction of decision steps)",
            ),
        });
    }
    Ok(Section {
        title: "Training".into(),
        intro: format!(
            "Per family and group: runs, accuracy on AntiPDMDelay's evaluation set (decision steps) at the end of \
             training (mean ± SEM), mean pretraining epochs (all pretraining tasks together) and training epochs; a \
             phase stops once its lowest task accuracy exceeds the schedule's threshold or after its last epoch \
             ({}).",
            schedules(setup)
        ),
        columns: ["family", "group", "runs", "final accuracy", "pretraining epochs", "training epochs"]
            .map(String::from)
            .to_vec(),
        rows,
        reading: String::new(),
        figures,
    })
}

/// Each family's schedule, as text: `RNN: 4096 samples per rule and epoch, at most 20 epochs,
/// stop above 0.88; ...`, read from the runs' configurations.
fn schedules(setup: &Setup) -> String {
    let mut seen: BTreeMap<&'static str, String> = BTreeMap::new();
    for run in setup.runs.iter().filter(|r| r.config.max_epochs > 0) {
        let c = &run.config;
        seen.entry(family(run.configuration.net.arch.name())).or_insert_with(|| {
            format!(
                "{} samples per rule and epoch, at most {} epochs, stop above {}",
                c.samples_per_rule, c.max_epochs, c.stop_accuracy
            )
        });
    }
    FAMILIES
        .iter()
        .filter_map(|f| seen.get(f).map(|t| format!("{}: {t}", f.to_uppercase())))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Every section of the report, in order: training, ours vs the study, then per analysis the
/// groups, the tests between pools and over learning.
pub fn sections(setup: &Setup, outcomes: &[AnalysisOutcome]) -> Result<Vec<Section>, CompositionalError> {
    // Each analysis's to-master rows and summary statistics, read once for every section.
    let read: Vec<(&AnalysisOutcome, Rows, OutcomeStats)> = outcomes
        .iter()
        .map(|o| Ok((o, rows(&o.to_master)?, OutcomeStats::new(&o.summary)?)))
        .collect::<Result<_, CompositionalError>>()?;
    let mut out = vec![section_training(setup)?, section_study(&read)];
    for (o, to_master, st) in &read {
        out.push(section_groups(o, st, to_master, &rows(&o.matrix)?));
        out.push(section_tests(o)?);
        out.push(section_over_learning(o, &rows(&o.over_learning)?));
    }
    Ok(out)
}

/// Writes every figure and `report.md` into `dir` (created if needed), each the store's
/// crash-safe way (temporary file, fsync, rename); returns the files written.
pub fn write_report(
    dir: &Path,
    setup: &Setup,
    outcomes: &[AnalysisOutcome],
) -> Result<Vec<PathBuf>, CompositionalError> {
    std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
    let write = |name: &str, text: &str| -> Result<PathBuf, CompositionalError> {
        let p = dir.join(name);
        atomic_write(&p, |tmp| std::fs::write(tmp, text).map_err(StoreError::io(tmp)))?;
        Ok(p)
    };
    let mut md = String::from("# Compositional learning test case\n\n");
    let configs: Vec<String> = {
        let mut c: Vec<String> = setup.runs.iter().map(|r| r.configuration.name()).collect();
        c.sort();
        c.dedup();
        c
    };
    let _ = writeln!(
        md,
        "Preset {}: {} runs ({} configurations x 11 groups x {} seeds), initialisation {}, {} test trials per \
         checkpoint, analyses: {}. Configurations: {}. Metrics: DSA (n_delays 33, delay_interval 6, rank 50, \
         radians), Procrustes and CKA (angular; radians, and angle/(π/2) as the study reports them).\n",
        setup.preset.name(),
        setup.runs.len(),
        configs.len(),
        setup.seeds,
        match setup.init {
            Init::Independent => "independent (each network its own, as the study)",
            Init::Shared => "shared (every group starts from master's initial network)",
        },
        setup.trials,
        outcomes.iter().map(|o| o.analysis.name()).collect::<Vec<_>>().join(", "),
        configs.join(", ")
    );
    let mut files = Vec::new();
    for section in sections(setup, outcomes)? {
        for f in &section.figures {
            files.push(write(&f.name, &f.svg)?);
        }
        md.push_str(&section.to_markdown());
    }
    files.push(write("report.md", &md)?);
    Ok(files)
}
