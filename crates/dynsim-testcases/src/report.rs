//! The Lorenz test case's figures (SVG), tables and a short Markdown report.
//!
//! Each test's outcome becomes a [`Section`]: a table, a one-line reading and its figures.
//! [`write_report`] writes the figures and a `report.md` that links them; a notebook shows
//! the same sections inline (the `dynsim-kernel` crate renders them as HTML).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dynsim_store::fsutil::atomic_write;
use dynsim_store::StoreError;

use crate::lorenz::Regime;
use crate::motifs::MotifTest;
use crate::noise::{Course, TestB};
use crate::regimes::{Preset, TestA, TestcaseError};
use crate::svg::{boxplot, error_lines, heatmap};

/// One standalone SVG figure and the file name it is written under.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File name (`regimes_dsa_matrix.svg`, ...), unique within a report.
    pub name: String,
    /// A complete SVG document.
    pub svg: String,
}

/// One test's part of the report: a titled table, a short reading and the figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The heading (`Test A: regimes`, ...).
    pub title: String,
    /// What the table shows, one sentence (may be empty).
    pub intro: String,
    /// Column names of the table.
    pub columns: Vec<String>,
    /// Table rows, already formatted.
    pub rows: Vec<Vec<String>>,
    /// A one-line reading of the numbers (may be empty).
    pub reading: String,
    /// The figures, in order.
    pub figures: Vec<Figure>,
}

impl Section {
    /// The section as Markdown: heading, intro, a pipe table, the reading and an image link
    /// per figure (relative to the directory the figures are written into).
    pub fn to_markdown(&self) -> String {
        let mut md = format!("## {}\n\n", self.title);
        if !self.intro.is_empty() {
            let _ = writeln!(md, "{}\n", self.intro);
        }
        let _ = writeln!(md, "| {} |", self.columns.join(" | "));
        let _ = writeln!(md, "|{}", " --- |".repeat(self.columns.len()));
        for r in &self.rows {
            let _ = writeln!(md, "| {} |", r.join(" | "));
        }
        md.push('\n');
        if !self.reading.is_empty() {
            let _ = writeln!(md, "{}\n", self.reading);
        }
        let links: Vec<String> = self.figures.iter().map(|f| format!("![{}]({})", f.name, f.name)).collect();
        if !links.is_empty() {
            let _ = writeln!(md, "{}\n", links.join(" "));
        }
        md
    }
}

fn cells(c: &Course, digits: usize) -> Vec<String> {
    (0..3).map(|k| format!("{:.digits$} ± {:.digits$}", c.mean[k], c.sem[k])).collect()
}

/// The matrix labels of Test A's systems (`one attractor r=0.25`, ...).
pub fn system_labels(a: &TestA) -> Vec<String> {
    a.systems.iter().map(|(g, r)| format!("{} r={r}", g.name())).collect()
}

/// One sentence on DSA's certified gaps (value - lower bound): how many pairs, their
/// median, 90th percentile and maximum, and how many are certified optimal (gap < 1e-6).
pub fn gap_sentence(metric: &str, gaps: &[f64]) -> String {
    let mut g = gaps.to_vec();
    g.sort_by(f64::total_cmp);
    let q = |p: f64| g[((g.len() - 1) as f64 * p).round() as usize];
    format!(
        "{metric}'s certified gap (value - lower bound, rad) over {} pairs: median {:.2e}, 90th percentile {:.2e}, \
         max {:.2e}; {} pairs certified optimal (gap < 1e-6).",
        g.len(),
        q(0.5),
        q(0.9),
        q(1.0),
        g.iter().filter(|v| **v < 1e-6).count()
    )
}

/// The seed study's reporting scale of a metric, relative to radians, its name, and the
/// study's Test A means (within, across regimes) on that scale: CKA and Procrustes as
/// angle / (pi/2) (CKA 0.794 / 0.891, Procrustes 0.671 / 0.775), DSA in radians (0.221 /
/// 0.481).
pub fn study_scale(metric: &str) -> (f64, &'static str, Option<(f64, f64)>) {
    let half_pi = std::f64::consts::FRAC_PI_2;
    match metric {
        "cka" => (1.0 / half_pi, "angle/(pi/2)", Some((0.794, 0.891))),
        "procrustes" => (1.0 / half_pi, "angle/(pi/2)", Some((0.671, 0.775))),
        "dsa" => (1.0, "rad", Some((0.221, 0.481))),
        _ => (1.0, "rad", None),
    }
}

/// Test A: separation table (in radians and on the study's scale, beside the study's
/// numbers), and per metric its heatmap and within/across box plot.
pub fn section_a(a: &TestA) -> Section {
    let labels = system_labels(a);
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for r in &a.results {
        let s = r.separation;
        let (scale, unit, study) = study_scale(&r.metric);
        rows.push(vec![
            r.metric.clone(),
            "rad".into(),
            format!("{:.3}", s.within),
            format!("{:.3}", s.across),
            format!("{:.2}", s.ratio),
            format!("{:.3}", s.auc),
            unit.into(),
            format!("{:.3} / {:.3}", s.within * scale, s.across * scale),
            study.map_or_else(|| "-".into(), |(w, a)| format!("{w:.3} / {a:.3}")),
        ]);
        figures.push(Figure {
            name: format!("regimes_{}_matrix.svg", r.metric),
            svg: heatmap(&r.matrix, &labels, &format!("{}: 9 Lorenz systems", r.metric)),
        });
        let (mut within, mut across) = (Vec::new(), Vec::new());
        for i in 0..a.systems.len() {
            for j in i + 1..a.systems.len() {
                let v = r.matrix[[i, j]];
                if a.systems[i].0 == a.systems[j].0 {
                    within.push(v)
                } else {
                    across.push(v)
                }
            }
        }
        figures.push(Figure {
            name: format!("regimes_{}_box.svg", r.metric),
            svg: boxplot(
                &[("within".into(), within), ("across".into(), across)],
                &format!("{}: within vs across", r.metric),
                "dissimilarity",
            ),
        });
    }
    let mut reading = a
        .results
        .iter()
        .max_by(|x, y| x.separation.ratio.total_cmp(&y.separation.ratio))
        .map(|best| {
            format!(
                "Reading: {} separates the regimes most clearly (across/within {:.2}); the regimes are {}.",
                best.metric,
                best.separation.ratio,
                Regime::ALL.map(Regime::name).join(", ")
            )
        })
        .unwrap_or_default();
    for r in a.results.iter().filter(|r| !r.gaps.is_empty()) {
        reading.push_str(&format!(" {}", gap_sentence(&r.metric, &r.gaps)));
    }
    Section {
        title: "Test A: regimes".into(),
        intro: "Mean dissimilarity within and across the three regimes (radians), their ratio, the ROC AUC of \
                across- against within-regime pairs, and the means on the seed study's scale (CKA and Procrustes as \
                angle / (pi/2), DSA in radians) beside the study's own Test A numbers."
            .into(),
        columns: [
            "metric",
            "unit",
            "within",
            "across",
            "ratio",
            "ROC AUC",
            "study's scale",
            "within / across there",
            "study: within / across",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        reading,
        figures,
    }
}

/// Test B: mean ± SEM per epoch, R² and gap per metric and comparison; one line figure per
/// metric.
pub fn section_b(b: &TestB) -> Section {
    let epochs: Vec<String> = (1..=3).map(|e| format!("epoch {e}")).collect();
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for r in &b.results {
        for (what, c) in [("model1 vs model2", &r.noise_only), ("model2 vs model3", &r.mixed)] {
            let mut row = vec![r.metric.clone(), what.to_string()];
            row.extend(cells(c, 3));
            row.extend([format!("{:.3}", c.r2), format!("{:.3}", c.gap)]);
            rows.push(row);
        }
        let series = [
            ("model1 vs model2".to_string(), r.noise_only.mean.to_vec(), r.noise_only.sem.to_vec()),
            ("model2 vs model3".to_string(), r.mixed.mean.to_vec(), r.mixed.sem.to_vec()),
        ];
        figures.push(Figure {
            name: format!("noise_{}.svg", r.metric),
            svg: error_lines(
                &epochs,
                &series,
                &format!("{}: noise and mixing", r.metric),
                "dissimilarity (mean ± SEM)",
            ),
        });
    }
    let reading = b
        .results
        .iter()
        .max_by(|x, y| x.mixed.r2.total_cmp(&y.mixed.r2))
        .map(|best| {
            format!(
                "Reading: as noise and mixing shrink, {} tracks the change most linearly (model2 vs model3 R² {:.3}, \
                 epoch 1 to 3 gap {:.3}).",
                best.metric, best.mixed.r2, best.mixed.gap
            )
        })
        .unwrap_or_default();
    Section {
        title: "Test B: noise and mixing over epochs".into(),
        intro: "Mean ± SEM over ordered pattern pairs per epoch, the R² of dissimilarity against epoch, and the \
                epoch 1 to 3 gap."
            .into(),
        columns: ["metric", "comparison", "epoch 1", "epoch 2", "epoch 3", "R²", "gap"].map(String::from).to_vec(),
        rows,
        reading,
        figures,
    }
}

/// Motif compositions: mean ± SEM by shared motifs, R² and gap per metric; one line figure
/// per metric.
pub fn section_motifs(m: &MotifTest) -> Section {
    let shared: Vec<String> = (1..=3).map(|k| format!("{k} shared")).collect();
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for r in &m.results {
        let c = &r.by_shared;
        let mut row = vec![r.metric.clone()];
        row.extend(cells(c, 4));
        row.extend([
            format!("{:.4}", r.three_shared_with_self),
            format!("{:.3}", c.r2),
            format!("{:.4}", c.gap),
            if r.metric == "dsa" {
                let s = crate::motifs::STUDY_DSA;
                format!("{:.2} / {:.2} / {:.2}", s[0], s[1], s[2])
            } else {
                "-".into()
            },
        ]);
        rows.push(row);
        let series = [(r.metric.clone(), c.mean.to_vec(), c.sem.to_vec())];
        figures.push(Figure {
            name: format!("motifs_{}.svg", r.metric),
            svg: error_lines(
                &shared,
                &series,
                &format!("{}: by shared motifs", r.metric),
                "dissimilarity (mean ± SEM)",
            ),
        });
    }
    let falling: Vec<&str> = m
        .results
        .iter()
        .filter(|r| r.by_shared.mean[0] > r.by_shared.mean[1] && r.by_shared.mean[1] > r.by_shared.mean[2])
        .map(|r| r.metric.as_str())
        .collect();
    let reading = if falling.is_empty() {
        "Reading: no metric falls steadily as compositions share more motifs.".to_string()
    } else {
        format!("Reading: {} fall steadily as compositions share 1, 2, 3 motifs.", falling.join(", "))
    };
    Section {
        title: "Motif compositions".into(),
        intro: format!(
            "Settings: {}. Pairs sharing 1 / 2 / 3 motifs: {} / {} / {}. Mean ± SEM (radians) per number of shared \
             motifs over distinct compositions; the 3-shared mean with the 60 self-pairs (0) counted too, as the seed \
             study did; R², the 1 to 3 gap, and the study's DSA means (its 3-shared mean includes the self-pairs).",
            match m.settings {
                crate::motifs::MotifSettings::Study =>
                    "the seed study's (its line motif, DSA n_delays 33, \
                     delay_interval 6, rank 50, no trial averaging)",
                crate::motifs::MotifSettings::Dynsim => "dynsim's (straight lines, DSA rank 20 as in Test A)",
            },
            m.pairs[0],
            m.pairs[1],
            m.pairs[2]
        ),
        columns: [
            "metric",
            "1 shared",
            "2 shared",
            "3 shared",
            "3 shared incl. self-pairs",
            "R²",
            "gap",
            "study (DSA)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        reading,
        figures,
    }
}

/// Write every figure and `report.md` into `dir` (created if needed), each the store's
/// crash-safe way (temporary file, fsync, rename: a reader never sees half a figure);
/// returns the files written.
pub fn write_report(
    dir: &Path,
    preset: Preset,
    a: &TestA,
    b: &TestB,
    m: &MotifTest,
) -> Result<Vec<PathBuf>, TestcaseError> {
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, text: &str| -> Result<PathBuf, TestcaseError> {
        let p = dir.join(name);
        atomic_write(&p, |tmp| std::fs::write(tmp, text).map_err(StoreError::io(tmp)))?;
        Ok(p)
    };
    let mut md = String::from("# Lorenz test case\n\n");
    let _ = writeln!(
        md,
        "Preset: {} trajectories of {} steps per system, seed {}. Metrics: DSA (n_delays 33, delay_interval 6, \
         rank 20), Procrustes (angular), CKA (angular, linear).\n",
        preset.trajectories, preset.steps, preset.seed
    );
    let mut files = Vec::new();
    for section in [section_a(a), section_b(b), section_motifs(m)] {
        for f in &section.figures {
            files.push(write(&f.name, &f.svg)?);
        }
        md.push_str(&section.to_markdown());
    }
    files.push(write("report.md", &md)?);
    Ok(files)
}
