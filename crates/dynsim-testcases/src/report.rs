//! The Lorenz test case's figures (SVG) and a short Markdown report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use dynsim_store::fsutil::atomic_write;
use dynsim_store::StoreError;

use crate::lorenz::Regime;
use crate::motifs::MotifTest;
use crate::noise::{Course, TestB};
use crate::regimes::{Preset, TestA, TestcaseError};
use crate::svg::{boxplot, error_lines, heatmap};

/// Write one file the store's crash-safe way (temporary file, fsync, rename): a reader never
/// sees half a figure.
fn write(dir: &Path, name: &str, text: &str, written: &mut Vec<PathBuf>) -> Result<(), TestcaseError> {
    let p = dir.join(name);
    atomic_write(&p, |tmp| std::fs::write(tmp, text).map_err(StoreError::io(tmp)))?;
    written.push(p);
    Ok(())
}

fn cells(c: &Course, digits: usize) -> String {
    (0..3).map(|k| format!("{:.digits$} ± {:.digits$}", c.mean[k], c.sem[k])).collect::<Vec<_>>().join(" | ")
}

/// Write every figure and `report.md` into `dir` (created if needed); returns the files.
pub fn write_report(
    dir: &Path,
    preset: Preset,
    a: &TestA,
    b: &TestB,
    m: &MotifTest,
) -> Result<Vec<PathBuf>, TestcaseError> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let labels: Vec<String> = a.systems.iter().map(|(g, r)| format!("{} r={r}", g.name())).collect();
    let mut md = String::new();
    let _ = writeln!(md, "# Lorenz test case\n");
    let _ = writeln!(
        md,
        "Preset: {} trajectories of {} steps per system, seed {}. Metrics: DSA (n_delays 33, delay_interval 6, \
         rank 20), Procrustes (angular), CKA (angular, linear).\n",
        preset.trajectories, preset.steps, preset.seed
    );
    let _ = writeln!(md, "## Test A: regimes\n");
    let _ = writeln!(md, "| metric | within | across | ratio | ROC AUC |\n| --- | --- | --- | --- | --- |");
    for r in &a.results {
        let s = r.separation;
        let _ = writeln!(md, "| {} | {:.3} | {:.3} | {:.2} | {:.3} |", r.metric, s.within, s.across, s.ratio, s.auc);
    }
    md.push('\n');
    for r in &a.results {
        write(
            dir,
            &format!("regimes_{}_matrix.svg", r.metric),
            &heatmap(&r.matrix, &labels, &format!("{}: 9 Lorenz systems", r.metric)),
            &mut files,
        )?;
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
        let fig = boxplot(
            &[("within".into(), within), ("across".into(), across)],
            &format!("{}: within vs across", r.metric),
            "dissimilarity",
        );
        write(dir, &format!("regimes_{}_box.svg", r.metric), &fig, &mut files)?;
        let _ = writeln!(
            md,
            "![{m} matrix](regimes_{m}_matrix.svg) ![{m} within vs across](regimes_{m}_box.svg)\n",
            m = r.metric
        );
    }
    let best = a.results.iter().max_by(|x, y| x.separation.ratio.total_cmp(&y.separation.ratio));
    if let Some(best) = best {
        let _ = writeln!(
            md,
            "Reading: {} separates the regimes most clearly (across/within {:.2}); the regimes are {}.\n",
            best.metric,
            best.separation.ratio,
            Regime::ALL.map(Regime::name).join(", ")
        );
    }
    let _ = writeln!(md, "## Test B: noise and mixing over epochs\n");
    let _ = writeln!(
        md,
        "| metric | comparison | epoch 1 | epoch 2 | epoch 3 | R² | gap |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    let epochs: Vec<String> = (1..=3).map(|e| format!("epoch {e}")).collect();
    for r in &b.results {
        for (what, c) in [("model1 vs model2", &r.noise_only), ("model2 vs model3", &r.mixed)] {
            let _ = writeln!(md, "| {} | {what} | {} | {:.3} | {:.3} |", r.metric, cells(c, 3), c.r2, c.gap);
        }
        let series = [
            ("model1 vs model2".to_string(), r.noise_only.mean.to_vec(), r.noise_only.sem.to_vec()),
            ("model2 vs model3".to_string(), r.mixed.mean.to_vec(), r.mixed.sem.to_vec()),
        ];
        write(
            dir,
            &format!("noise_{}.svg", r.metric),
            &error_lines(&epochs, &series, &format!("{}: noise and mixing", r.metric), "dissimilarity (mean ± SEM)"),
            &mut files,
        )?;
    }
    md.push('\n');
    for r in &b.results {
        let _ = write!(md, "![{m}](noise_{m}.svg) ", m = r.metric);
    }
    let _ = writeln!(md, "\n\n## Motif compositions\n");
    let _ = writeln!(md, "Pairs sharing 1 / 2 / 3 motifs: {} / {} / {}.\n", m.pairs[0], m.pairs[1], m.pairs[2]);
    let _ =
        writeln!(md, "| metric | 1 shared | 2 shared | 3 shared | R² | gap |\n| --- | --- | --- | --- | --- | --- |");
    let shared: Vec<String> = (1..=3).map(|k| format!("{k} shared")).collect();
    for r in &m.results {
        let c = &r.by_shared;
        let _ = writeln!(md, "| {} | {} | {:.3} | {:.4} |", r.metric, cells(c, 4), c.r2, c.gap);
        let series = [(r.metric.clone(), c.mean.to_vec(), c.sem.to_vec())];
        write(
            dir,
            &format!("motifs_{}.svg", r.metric),
            &error_lines(&shared, &series, &format!("{}: by shared motifs", r.metric), "dissimilarity (mean ± SEM)"),
            &mut files,
        )?;
    }
    md.push('\n');
    for r in &m.results {
        let _ = write!(md, "![{m}](motifs_{m}.svg) ", m = r.metric);
    }
    md.push('\n');
    write(dir, "report.md", &md, &mut files)?;
    Ok(files)
}
