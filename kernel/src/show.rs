//! The [`Show`] trait: what a notebook cell displays for a value.

use dynsim::polars::prelude::*;
use dynsim::query::{Outcome, Selection};
use dynsim::store::{IngestReport, Recording, Store};
use dynsim::testcases::motifs::MotifTest;
use dynsim::testcases::noise::TestB;
use dynsim::testcases::regimes::TestA;
use dynsim::testcases::report::{section_a, section_b, section_motifs, Figure, Section};

use crate::html::{esc, frame_html, FRAME_ROWS};
use crate::matrix::Matrix;
use crate::summary::{recording_html, section_html, store_html};

/// Renderings of one value, best first: `(MIME type, content)`. Jupyter shows the richest
/// one its front end supports; `text/plain` is always there for terminals and diffs.
pub type Bundle = Vec<(&'static str, String)>;

/// A value a notebook can display.
pub trait Show {
    /// The value's renderings.
    fn bundle(&self) -> Bundle;
}

/// The text evcxr reads from a cell's output: one `EVCXR_BEGIN_CONTENT <mime>` ...
/// `EVCXR_END_CONTENT` block per rendering (evcxr gathers them into one display).
pub fn payload(bundle: &Bundle) -> String {
    let mut s = String::new();
    for (mime, content) in bundle {
        s.push_str("EVCXR_BEGIN_CONTENT ");
        s.push_str(mime);
        s.push('\n');
        s.push_str(content);
        if !content.ends_with('\n') {
            s.push('\n');
        }
        s.push_str("EVCXR_END_CONTENT\n");
    }
    s
}

/// Shows a value in a notebook: evcxr calls `evcxr_display()` on a cell's last
/// expression. Implemented for every [`Show`] type; one print of its [`payload`].
#[cfg(feature = "evcxr")]
pub trait EvcxrDisplay {
    /// Print the value's renderings for evcxr.
    fn evcxr_display(&self);
}

#[cfg(feature = "evcxr")]
impl<T: Show + ?Sized> EvcxrDisplay for T {
    fn evcxr_display(&self) {
        use std::io::Write as _;
        let text = payload(&self.bundle());
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// A standalone SVG document to display (e.g. one of the `dynsim::testcases::svg` figures).
#[derive(Debug, Clone, PartialEq)]
pub struct Svg(pub String);

impl Show for Svg {
    fn bundle(&self) -> Bundle {
        vec![("image/svg+xml", self.0.clone()), ("text/plain", format!("<SVG figure, {} bytes>", self.0.len()))]
    }
}

impl Show for Figure {
    fn bundle(&self) -> Bundle {
        vec![("image/svg+xml", self.svg.clone()), ("text/plain", format!("<figure {}>", self.name))]
    }
}

impl Show for Matrix {
    fn bundle(&self) -> Bundle {
        let mut text = format!("{} ({} x {})\n", self.title, self.labels.len(), self.labels.len());
        for (i, l) in self.labels.iter().enumerate() {
            let row: Vec<String> = self.values.row(i).iter().map(|v| format!("{v:.4}")).collect();
            text.push_str(&format!("{l}: {}\n", row.join(" ")));
        }
        vec![("image/svg+xml", self.to_svg()), ("text/plain", text)]
    }
}

impl Show for DataFrame {
    fn bundle(&self) -> Bundle {
        vec![("text/html", frame_html(self, FRAME_ROWS)), ("text/plain", self.to_string())]
    }
}

fn error_bundle(what: &str, e: impl std::fmt::Display) -> Bundle {
    vec![
        ("text/html", format!("<pre style=\"color:#b00\">{}: {}</pre>", esc(what), esc(&e.to_string()))),
        ("text/plain", format!("{what}: {e}")),
    ]
}

impl Show for Selection {
    fn bundle(&self) -> Bundle {
        match self.collect() {
            Ok(df) => {
                let head = format!("<p>selection: {}</p>\n", esc(self.description()));
                vec![
                    ("text/html", head + &frame_html(&df, FRAME_ROWS)),
                    ("text/plain", format!("selection: {}\n{df}", self.description())),
                ]
            }
            Err(e) => error_bundle("the selection cannot be read", e),
        }
    }
}

impl Show for Outcome {
    fn bundle(&self) -> Bundle {
        let mut line = format!(
            "{} results: {} from the cache, {} computed ({} recordings prepared up front: DMD fits, RDMs){}",
            self.total,
            self.cached,
            self.computed,
            self.fits,
            if self.cancelled { "; cancelled, the rest is missing" } else { "" }
        );
        if let Some(g) = gap_summary(&self.frame) {
            line.push_str("; ");
            line.push_str(&g);
        }
        vec![
            ("text/html", format!("<p>{}</p>\n{}", esc(&line), frame_html(&self.frame, FRAME_ROWS))),
            ("text/plain", format!("{line}\n{}", self.frame)),
        ]
    }
}

/// `DSA certified: gap (value - lower bound) median m, max M over n pairs`, when the frame
/// has DSA gaps.
fn gap_summary(df: &DataFrame) -> Option<String> {
    let mut v: Vec<f64> = df.column("gap").ok()?.f64().ok()?.iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    let max = v[v.len() - 1];
    Some(format!(
        "DSA certified: on every pair the optimum found is within {max:.2e} of the global one (gap = value - lower \
         bound: median {median:.2e}, max {max:.2e} over {} pairs)",
        v.len()
    ))
}

impl Show for Store {
    fn bundle(&self) -> Bundle {
        match store_html(self) {
            Ok(html) => vec![("text/html", html), ("text/plain", format!("store at {}", self.root().display()))],
            Err(e) => error_bundle("the store cannot be summarised", e),
        }
    }
}

impl Show for Recording {
    fn bundle(&self) -> Bundle {
        let [t, n, u] = self.row.shape;
        vec![
            ("text/html", recording_html(self)),
            ("text/plain", format!("recording {} ({t} x {n} x {u})", self.row.id)),
        ]
    }
}

impl Show for IngestReport {
    fn bundle(&self) -> Bundle {
        let mut text = format!(
            "ingest: {} recordings added ({} values), {} already present, {} sharing stored content",
            self.added.len(),
            self.values,
            self.already_present.len(),
            self.shared_content
        );
        for s in &self.skipped {
            text.push_str(&format!("\nskipped: {s}"));
        }
        let html = format!("<pre>{}</pre>", esc(&text));
        vec![("text/html", html), ("text/plain", text)]
    }
}

impl Show for Section {
    fn bundle(&self) -> Bundle {
        vec![("text/html", section_html(self)), ("text/plain", self.to_markdown())]
    }
}

/// A whole report: its sections one after the other.
impl Show for Vec<Section> {
    fn bundle(&self) -> Bundle {
        let html: String = self.iter().map(section_html).collect();
        let text: String = self.iter().map(Section::to_markdown).collect();
        vec![("text/html", html), ("text/plain", text)]
    }
}

impl Show for TestA {
    fn bundle(&self) -> Bundle {
        section_a(self).bundle()
    }
}

impl Show for TestB {
    fn bundle(&self) -> Bundle {
        section_b(self).bundle()
    }
}

impl Show for MotifTest {
    fn bundle(&self) -> Bundle {
        section_motifs(self).bundle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type a notebook shows has `evcxr_display` (what evcxr calls) with the feature.
    #[cfg(feature = "evcxr")]
    #[test]
    fn every_shown_type_has_evcxr_display() {
        fn shown<T: EvcxrDisplay + ?Sized>() {}
        shown::<DataFrame>();
        shown::<Selection>();
        shown::<Outcome>();
        shown::<Store>();
        shown::<Recording>();
        shown::<IngestReport>();
        shown::<Matrix>();
        shown::<Svg>();
        shown::<Figure>();
        shown::<Section>();
        shown::<Vec<Section>>();
        shown::<TestA>();
        shown::<TestB>();
        shown::<MotifTest>();
    }

    #[test]
    fn the_payload_has_one_block_per_rendering() {
        let p = payload(&Svg("<svg/>".into()).bundle());
        assert_eq!(
            p,
            "EVCXR_BEGIN_CONTENT image/svg+xml\n<svg/>\nEVCXR_END_CONTENT\n\
             EVCXR_BEGIN_CONTENT text/plain\n<SVG figure, 6 bytes>\nEVCXR_END_CONTENT\n"
        );
    }
}
