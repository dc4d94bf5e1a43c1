//! Small, dependency-free SVG figures for the test-case reports: a labelled heatmap, box
//! plots and lines with error bars. Every figure is a complete standalone SVG document.

use std::fmt::Write;

/// The font attribute every figure's text uses.
pub const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";
/// The series colours, in order (matplotlib's tab10, then one more).
pub const COLOURS: [&str; 11] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn header(w: f64, h: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" {FONT}>{}</text>\n",
        w / 2.0,
        esc(title)
    )
}

/// A white-to-blue colour for `t` in `[0, 1]` (clamped; NaN is grey).
fn colour(t: f64) -> String {
    if !t.is_finite() {
        return "#cccccc".into();
    }
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

/// A heatmap of an `n x n` matrix with row/column labels and a colour bar. Cells are 44
/// pixels up to 12 rows and shrink (to 10 pixels) to keep large matrices near 530 pixels; a
/// cell shows its value while it is at least 28 pixels wide. Missing values (NaN) are grey.
pub fn heatmap(m: &ndarray::Array2<f64>, labels: &[String], title: &str) -> String {
    let n = labels.len().min(m.nrows()).min(m.ncols());
    let cell = if n <= 12 { 44.0 } else { (528.0 / n as f64).floor().max(10.0) };
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
    let (left, top) = ((longest * 6.5 + 16.0).clamp(60.0, 260.0), 40.0);
    let fs = (cell * 0.8).min(11.0);
    let (w, h) = (left + cell * n as f64 + 90.0, top + cell * n as f64 + left.max(100.0) + 20.0);
    let (lo, hi) =
        m.iter().filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut s = header(w, h, title);
    for i in 0..n {
        for j in 0..n {
            let v = m[[i, j]];
            let t = (v - lo) / span;
            let (x, y) = (left + cell * j as f64, top + cell * i as f64);
            let _ = writeln!(
                s,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\" stroke=\"white\"/>",
                colour(t)
            );
            if cell < 28.0 || !v.is_finite() {
                continue;
            }
            let ink = if t > 0.55 { "white" } else { "black" };
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" fill=\"{ink}\" {FONT}>{v:.2}</text>",
                x + cell / 2.0,
                y + cell / 2.0 + 3.5
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"{fs}\" {FONT}>{}</text>",
            left - 6.0,
            top + cell * i as f64 + cell / 2.0 + 4.0,
            esc(&labels[i])
        );
        let (x, y) = (left + cell * i as f64 + cell / 2.0, top + cell * n as f64 + 8.0);
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"{y}\" text-anchor=\"end\" font-size=\"{fs}\" transform=\"rotate(-60 {x} {y})\" {FONT}>{}</text>",
            esc(&labels[i])
        );
    }
    // colour bar
    let (bx, by, bh) = (left + cell * n as f64 + 20.0, top, cell * n as f64);
    for k in 0..50 {
        let t = 1.0 - k as f64 / 49.0;
        let _ = writeln!(
            s,
            "<rect x=\"{bx}\" y=\"{}\" width=\"16\" height=\"{}\" fill=\"{}\"/>",
            by + bh * k as f64 / 50.0,
            bh / 50.0 + 0.5,
            colour(t)
        );
    }
    for (t, v) in [(0.0, hi), (1.0, lo)] {
        let _ =
            writeln!(s, "<text x=\"{}\" y=\"{}\" font-size=\"10\" {FONT}>{v:.2}</text>", bx + 20.0, by + bh * t + 4.0);
    }
    s.push_str("</svg>\n");
    s
}

/// Round tick values covering `[lo, hi]`: a step of 1, 2, 2.5 or 5 times a power of ten that
/// takes at most 7 steps over the range, and the ticks from the last multiple of the step at
/// or below `lo` to the first at or above `hi` (at least two ticks).
pub fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() { (lo.min(hi), lo.max(hi)) } else { (0.0, 1.0) };
    // A single value sits in the middle of a range as wide as itself (at least 1).
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - lo.abs().max(1.0) / 2.0, hi + hi.abs().max(1.0) / 2.0) };
    let span = hi - lo;
    let mag = 10f64.powf((span / 5.0).log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|st| span / st <= 7.0).unwrap_or(10.0 * mag);
    // A bound within rounding error of a multiple of the step is that multiple.
    let first = (lo / step + 1e-9).floor();
    let last = (hi / step - 1e-9).ceil().max(first + 1.0);
    // Rounded to the step's decimals, so that 0.30000000000000004 prints as 0.3.
    let f = 10f64.powi((-step.log10().floor()).max(0.0) as i32 + 1);
    (0..=(last - first) as usize).map(|k| ((first + k as f64) * step * f).round() / f).collect()
}

/// A tick label with as few decimals as the ticks need (at most 6).
fn tick_label(v: f64, ticks: &[f64]) -> String {
    let decimals = (0..=6)
        .find(|&d| {
            let f = 10f64.powi(d);
            ticks.iter().all(|t| ((t * f).round() - t * f).abs() < 1e-6)
        })
        .unwrap_or(6) as usize;
    format!("{v:.decimals$}")
}

/// A y axis with round ticks ([`nice_ticks`]) and an x axis line; `plot` is `(x0, y0, width,
/// height)` with `(x0, y0)` the lower left corner. Returns the y range the ticks span, which
/// is the plot's range.
fn axis(s: &mut String, plot: (f64, f64, f64, f64), span: (f64, f64), ylabel: &str) -> (f64, f64) {
    let (x0, y0, pw, ph) = plot;
    let ticks = nice_ticks(span.0, span.1);
    let (lo, hi) = (ticks[0], ticks[ticks.len() - 1]);
    let _ = writeln!(s, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>", y0 - ph);
    let _ = writeln!(s, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"black\"/>", x0 + pw);
    for v in &ticks {
        let y = y0 - ph * (v - lo) / (hi - lo);
        let _ = writeln!(s, "<line x1=\"{}\" y1=\"{y}\" x2=\"{x0}\" y2=\"{y}\" stroke=\"black\"/>", x0 - 4.0);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" {FONT}>{}</text>",
            x0 - 6.0,
            y + 3.5,
            tick_label(*v, &ticks)
        );
    }
    let (x, y) = (x0 - 48.0, y0 - ph / 2.0);
    let _ = writeln!(
        s,
        "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 {x} {y})\" {FONT}>{}</text>",
        esc(ylabel)
    );
    (lo, hi)
}

/// An x axis with round ticks over `span` below a plot (`plot` as in [`axis`]) and its label;
/// returns the x range the ticks span.
fn x_axis(s: &mut String, plot: (f64, f64, f64, f64), span: (f64, f64), xlabel: &str) -> (f64, f64) {
    let (x0, y0, pw, _) = plot;
    let ticks = nice_ticks(span.0, span.1);
    let (lo, hi) = (ticks[0], ticks[ticks.len() - 1]);
    for v in &ticks {
        let x = x0 + pw * (v - lo) / (hi - lo);
        let _ = writeln!(s, "<line x1=\"{x}\" y1=\"{y0}\" x2=\"{x}\" y2=\"{}\" stroke=\"black\"/>", y0 + 4.0);
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" {FONT}>{}</text>",
            y0 + 16.0,
            tick_label(*v, &ticks)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" {FONT}>{}</text>",
        x0 + pw / 2.0,
        y0 + 34.0,
        esc(xlabel)
    );
    (lo, hi)
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    // Non-negative values (distances, accuracies) start at 0; a little room above the largest.
    let pad = if hi > lo { 0.04 * (hi - lo) } else { 0.5 * hi.abs().max(1e-3) };
    (if lo >= 0.0 { 0.0 } else { lo - pad }, hi + pad)
}

/// Box plots (median, quartiles, whiskers to min/max, points) of named groups of values.
pub fn boxplot(groups: &[(String, Vec<f64>)], title: &str, ylabel: &str) -> String {
    boxplot_marked(groups, &[], "", title, ylabel)
}

/// [`boxplot`] with reference values marked per group: `marks[i]` is `Some((lo, hi))` for
/// group `i` (a black diamond when `lo == hi`, a black bar from `lo` to `hi` otherwise),
/// described in a legend as `mark_label`. With more than five groups the columns narrow, and
/// names that do not fit are written at an angle.
pub fn boxplot_marked(
    groups: &[(String, Vec<f64>)],
    marks: &[Option<(f64, f64)>],
    mark_label: &str,
    title: &str,
    ylabel: &str,
) -> String {
    let col = if groups.len() > 5 { 70.0 } else { 160.0 };
    let angled = groups.iter().any(|g| (g.0.chars().count() + 6) as f64 * 6.5 > col);
    let (x0, y0, pw, ph) = (80.0, 300.0, col * groups.len().max(1) as f64, 250.0);
    let mut s = header(x0 + pw + 30.0, y0 + if angled { 200.0 } else { 50.0 }, title);
    let marked = marks.iter().flatten().flat_map(|(a, b)| [*a, *b]);
    let (lo, hi) = range(groups.iter().flat_map(|g| g.1.iter().copied()).chain(marked));
    let (lo, hi) = axis(&mut s, (x0, y0, pw, ph), (lo, hi), ylabel);
    let y = |v: f64| y0 - ph * (v - lo) / (hi - lo);
    if marks.iter().any(Option::is_some) && !mark_label.is_empty() {
        let _ = writeln!(
            s,
            "<path d=\"M {} 36 l 5 5 l -5 5 l -5 -5 z\" fill=\"black\"/><text x=\"{}\" y=\"45\" font-size=\"11\" {FONT}>{}</text>",
            x0 + 10.0,
            x0 + 20.0,
            esc(mark_label)
        );
    }
    for (i, (name, vals)) in groups.iter().enumerate() {
        let mut v: Vec<f64> = vals.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let cx = x0 + col * i as f64 + col / 2.0;
        if angled {
            let (tx, ty) = (cx, y0 + 12.0);
            let _ = writeln!(
                s,
                "<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\" font-size=\"11\" transform=\"rotate(-50 {tx} {ty})\" {FONT}>{} (n={})</text>",
                esc(name),
                v.len()
            );
        } else {
            let _ = writeln!(
                s,
                "<text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" {FONT}>{} (n={})</text>",
                y0 + 18.0,
                esc(name),
                v.len()
            );
        }
        if let Some(Some((a, b))) = marks.get(i) {
            let mx = cx + col * 0.32;
            if a == b {
                let _ = writeln!(s, "<path d=\"M {mx} {} l 6 6 l -6 6 l -6 -6 z\" fill=\"black\"/>", y(*a) - 6.0);
            } else {
                let (top, bottom) = (y(a.max(*b)), y(a.min(*b)));
                let _ = writeln!(
                    s,
                    "<rect x=\"{}\" y=\"{top}\" width=\"5\" height=\"{}\" fill=\"black\"/>",
                    mx - 2.5,
                    (bottom - top).max(1.0)
                );
            }
        }
        if v.is_empty() {
            continue;
        }
        let q = |p: f64| {
            let pos = p * (v.len() - 1) as f64;
            let (a, b) = (pos.floor() as usize, pos.ceil() as usize);
            v[a] + (v[b] - v[a]) * (pos - a as f64)
        };
        let c = COLOURS[i % COLOURS.len()];
        let half = (col * 0.16).min(25.0);
        let _ = writeln!(
            s,
            "<line x1=\"{cx}\" y1=\"{}\" x2=\"{cx}\" y2=\"{}\" stroke=\"{c}\"/>",
            y(v[0]),
            y(v[v.len() - 1])
        );
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{c}\" fill-opacity=\"0.25\" stroke=\"{c}\"/>",
            cx - half,
            y(q(0.75)),
            2.0 * half,
            (y(q(0.25)) - y(q(0.75))).max(0.5)
        );
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{m}\" x2=\"{}\" y2=\"{m}\" stroke=\"{c}\" stroke-width=\"2.5\"/>",
            cx - half,
            cx + half,
            m = y(q(0.5))
        );
        for (k, x) in v.iter().enumerate() {
            let jitter = ((k * 37) % 21) as f64 - 10.0;
            let _ = writeln!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"{c}\" fill-opacity=\"0.6\"/>",
                cx + jitter * half / 16.0,
                y(*x)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// A legend entry at `(x, y)`: a short line in colour `c` and the name after it.
fn legend_entry(s: &mut String, x: f64, y: f64, c: &str, name: &str) {
    let _ =
        writeln!(s, "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{c}\" stroke-width=\"2\"/>", x + 20.0);
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" font-size=\"11\" {FONT}>{}</text>", x + 25.0, y + 4.0, esc(name));
}

/// Lines with error bars: one series per name, `means[k] ± sems[k]` at the x labels.
pub fn error_lines(xlabels: &[String], series: &[(String, Vec<f64>, Vec<f64>)], title: &str, ylabel: &str) -> String {
    let (x0, y0, pw, ph) = (80.0, 300.0, 360.0, 250.0);
    let mut s = header(x0 + pw + 190.0, y0 + 50.0, title);
    let (lo, hi) = range(series.iter().flat_map(|(_, m, e)| m.iter().zip(e).flat_map(|(a, b)| [a - b, a + b])));
    let (lo, hi) = axis(&mut s, (x0, y0, pw, ph), (lo, hi), ylabel);
    let y = |v: f64| y0 - ph * (v - lo) / (hi - lo);
    let nx = xlabels.len().max(2);
    let x = |k: usize| x0 + 30.0 + (pw - 60.0) * k as f64 / (nx - 1) as f64;
    for (k, l) in xlabels.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" {FONT}>{}</text>",
            x(k),
            y0 + 18.0,
            esc(l)
        );
    }
    for (i, (name, means, sems)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = means.iter().enumerate().map(|(k, m)| format!("{},{}", x(k), y(*m))).collect();
        let _ = writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"/>", pts.join(" "));
        for (k, (m, e)) in means.iter().zip(sems).enumerate() {
            let _ = writeln!(
                s,
                "<line x1=\"{xk}\" y1=\"{}\" x2=\"{xk}\" y2=\"{}\" stroke=\"{c}\"/>",
                y(m - e),
                y(m + e),
                xk = x(k)
            );
            let _ = writeln!(s, "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"{c}\"/>", x(k), y(*m));
        }
        legend_entry(&mut s, x0 + pw + 15.0, 50.0 + 18.0 * i as f64, c, name);
    }
    s.push_str("</svg>\n");
    s
}

/// Curves over a numeric x axis with shaded bands: one series per name, `means[k] ±
/// sems[k]` at `xs[k]` (a point whose mean is not finite is skipped; the band covers the
/// points with a finite SEM). Both axes have round ticks and labels (give units).
pub fn band_lines(
    xs: &[f64],
    series: &[(String, Vec<f64>, Vec<f64>)],
    title: &str,
    xlabel: &str,
    ylabel: &str,
) -> String {
    let (x0, y0, pw, ph) = (80.0, 300.0, 380.0, 250.0);
    let mut s = header(x0 + pw + 230.0, y0 + 60.0, title);
    let (lo, hi) = range(series.iter().flat_map(|(_, m, e)| {
        m.iter().zip(e).flat_map(|(a, b)| if b.is_finite() { [a - b, a + b] } else { [*a, *a] })
    }));
    let (lo, hi) = axis(&mut s, (x0, y0, pw, ph), (lo, hi), ylabel);
    let (xmin, xmax) =
        xs.iter().filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let (xlo, xhi) = x_axis(&mut s, (x0, y0, pw, ph), (xmin, xmax), xlabel);
    let x = |v: f64| x0 + pw * (v - xlo) / (xhi - xlo);
    let y = |v: f64| y0 - ph * (v - lo) / (hi - lo);
    for (i, (name, means, sems)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<(f64, f64, f64)> = xs
            .iter()
            .zip(means.iter().zip(sems))
            .filter(|(xv, (m, _))| xv.is_finite() && m.is_finite())
            .map(|(xv, (m, e))| (*xv, *m, *e))
            .collect();
        let banded: Vec<&(f64, f64, f64)> = pts.iter().filter(|p| p.2.is_finite()).collect();
        if banded.len() > 1 {
            let upper = banded.iter().map(|p| format!("{},{}", x(p.0), y(p.1 + p.2)));
            let lower = banded.iter().rev().map(|p| format!("{},{}", x(p.0), y(p.1 - p.2)));
            let _ = writeln!(
                s,
                "<polygon points=\"{}\" fill=\"{c}\" fill-opacity=\"0.15\" stroke=\"none\"/>",
                upper.chain(lower).collect::<Vec<_>>().join(" ")
            );
        }
        let line: Vec<String> = pts.iter().map(|p| format!("{},{}", x(p.0), y(p.1))).collect();
        let _ =
            writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.8\"/>", line.join(" "));
        legend_entry(&mut s, x0 + pw + 15.0, 50.0 + 17.0 * i as f64, c, name);
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_well_formed_and_escape_text() {
        let m = ndarray::array![[0.0, 1.0], [1.0, 0.0]];
        let h = heatmap(&m, &["a<b".into(), "c".into()], "t & u");
        assert!(h.starts_with("<svg") && h.trim_end().ends_with("</svg>"));
        assert!(h.contains("a&lt;b") && h.contains("t &amp; u") && !h.contains("NaN"));
        assert_eq!(h.matches("<rect").count(), 1 + 4 + 50, "background, cells, colour bar");
        let b = boxplot(&[("within".into(), vec![1.0, 2.0, 3.0]), ("across".into(), vec![])], "b", "d");
        assert!(b.contains("within (n=3)") && b.contains("across (n=0)"));
        let l = error_lines(&["1".into(), "2".into()], &[("x".into(), vec![1.0, 0.5], vec![0.1, 0.1])], "l", "d");
        assert_eq!(l.matches("<polyline").count(), 1);
        assert!(!l.contains("NaN") && !b.contains("NaN"));
        let m = boxplot_marked(
            &[("a".into(), vec![0.2, 0.3]), ("b".into(), vec![0.4])],
            &[Some((0.5, 0.5)), Some((0.1, 0.3))],
            "study",
            "m",
            "rad",
        );
        assert_eq!(m.matches("<path").count(), 2, "legend and one diamond");
        assert!(m.contains(">study</text>") && m.contains(">0.5</text>"), "the mark widens the range to 0.5: {m}");
        let c = band_lines(
            &[0.0, 0.5, 1.0],
            &[("g".into(), vec![0.3, 0.2, f64::NAN], vec![0.01, f64::NAN, 0.01])],
            "c",
            "progress",
            "rad",
        );
        assert!(!c.contains("NaN") && c.contains(">progress</text>"));
        assert_eq!(c.matches("<polygon").count(), 0, "one banded point only: no band");
    }

    /// Ticks are round (1, 2, 2.5 or 5 times a power of ten), cover the range, and are few.
    #[test]
    fn ticks_are_round_and_cover_the_range() {
        for (lo, hi) in [(0.0, 1.0), (0.013, 0.087), (0.27, 0.61), (-3.0, 12.0), (5.0, 5.0), (0.0, 29.0), (1e-4, 3e-4)]
        {
            let t = nice_ticks(lo, hi);
            assert!((3..=10).contains(&t.len()), "{lo}..{hi}: {t:?}");
            assert!(t[0] <= lo + 1e-12 && *t.last().unwrap() >= hi - 1e-12, "{lo}..{hi}: {t:?}");
            let step = t[1] - t[0];
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!([1.0, 2.0, 2.5, 5.0].iter().any(|m| (m - mantissa).abs() < 1e-6), "{lo}..{hi}: step {step}");
            assert!(t.iter().all(|v| ((v / step).round() - v / step).abs() < 1e-6), "{lo}..{hi}: {t:?}");
        }
        assert_eq!(nice_ticks(0.27, 0.61), vec![0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]);
        assert_eq!(nice_ticks(0.0, 1.0), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "round bounds stay");
        assert_eq!(nice_ticks(0.0, 0.30000000000000004), vec![0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]);
        assert_eq!(range([0.2, 0.9].into_iter()).0, 0.0, "distances start at 0");
        assert_eq!(tick_label(0.25, &[0.25, 0.5]), "0.25");
        assert_eq!(tick_label(2.0, &[0.0, 2.0, 4.0]), "2");
        assert_eq!(tick_label(0.00015, &nice_ticks(1e-4, 3e-4)), "0.00015");
    }
}
