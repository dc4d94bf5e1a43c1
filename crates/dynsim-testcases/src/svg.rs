//! Small, dependency-free SVG figures for the test-case reports: a labelled heatmap, box
//! plots and lines with error bars. Every figure is a complete standalone SVG document.

use std::fmt::Write;

/// The font attribute every figure's text uses.
pub const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";
/// The series colours, in order.
pub const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

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

/// A y axis with 5 ticks and an x axis line; `plot` is `(x0, y0, width, height)` with
/// `(x0, y0)` the lower left corner, `span` the y range.
fn axis(s: &mut String, plot: (f64, f64, f64, f64), span: (f64, f64), ylabel: &str) {
    let ((x0, y0, pw, ph), (lo, hi)) = (plot, span);
    let _ = writeln!(s, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>", y0 - ph);
    let _ = writeln!(s, "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"black\"/>", x0 + pw);
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let y = y0 - ph * k as f64 / 4.0;
        let _ = writeln!(s, "<line x1=\"{}\" y1=\"{y}\" x2=\"{x0}\" y2=\"{y}\" stroke=\"black\"/>", x0 - 4.0);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" {FONT}>{}</text>",
            x0 - 6.0,
            y + 3.5,
            tick(v)
        );
    }
    let (x, y) = (x0 - 48.0, y0 - ph / 2.0);
    let _ = writeln!(
        s,
        "<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 {x} {y})\" {FONT}>{}</text>",
        esc(ylabel)
    );
}

fn tick(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.1 {
        format!("{v:.3}")
    } else {
        format!("{v:.2}")
    }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.08 * (hi - lo) } else { 0.5 * hi.abs().max(1e-3) };
    ((lo - pad).min(if lo >= 0.0 { 0.0 } else { lo - pad }), hi + pad)
}

/// Box plots (median, quartiles, whiskers to min/max, points) of named groups of values.
pub fn boxplot(groups: &[(String, Vec<f64>)], title: &str, ylabel: &str) -> String {
    let (x0, y0, pw, ph) = (80.0, 300.0, 160.0 * groups.len().max(1) as f64, 250.0);
    let mut s = header(x0 + pw + 30.0, y0 + 50.0, title);
    let (lo, hi) = range(groups.iter().flat_map(|g| g.1.iter().copied()));
    let y = |v: f64| y0 - ph * (v - lo) / (hi - lo);
    axis(&mut s, (x0, y0, pw, ph), (lo, hi), ylabel);
    for (i, (name, vals)) in groups.iter().enumerate() {
        let mut v: Vec<f64> = vals.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let cx = x0 + 160.0 * i as f64 + 80.0;
        let _ = writeln!(
            s,
            "<text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" {FONT}>{} (n={})</text>",
            y0 + 18.0,
            esc(name),
            v.len()
        );
        if v.is_empty() {
            continue;
        }
        let q = |p: f64| {
            let pos = p * (v.len() - 1) as f64;
            let (a, b) = (pos.floor() as usize, pos.ceil() as usize);
            v[a] + (v[b] - v[a]) * (pos - a as f64)
        };
        let c = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            s,
            "<line x1=\"{cx}\" y1=\"{}\" x2=\"{cx}\" y2=\"{}\" stroke=\"{c}\"/>",
            y(v[0]),
            y(v[v.len() - 1])
        );
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"50\" height=\"{}\" fill=\"{c}\" fill-opacity=\"0.25\" stroke=\"{c}\"/>",
            cx - 25.0,
            y(q(0.75)),
            (y(q(0.25)) - y(q(0.75))).max(0.5)
        );
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{m}\" x2=\"{}\" y2=\"{m}\" stroke=\"{c}\" stroke-width=\"2.5\"/>",
            cx - 25.0,
            cx + 25.0,
            m = y(q(0.5))
        );
        for (k, x) in v.iter().enumerate() {
            let jitter = ((k * 37) % 21) as f64 - 10.0;
            let _ = writeln!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"{c}\" fill-opacity=\"0.6\"/>",
                cx + jitter * 1.6,
                y(*x)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Lines with error bars: one series per name, `means[k] ± sems[k]` at the x labels.
pub fn error_lines(xlabels: &[String], series: &[(String, Vec<f64>, Vec<f64>)], title: &str, ylabel: &str) -> String {
    let (x0, y0, pw, ph) = (80.0, 300.0, 360.0, 250.0);
    let mut s = header(x0 + pw + 190.0, y0 + 50.0, title);
    let (lo, hi) = range(series.iter().flat_map(|(_, m, e)| m.iter().zip(e).flat_map(|(a, b)| [a - b, a + b])));
    let y = |v: f64| y0 - ph * (v - lo) / (hi - lo);
    let nx = xlabels.len().max(2);
    let x = |k: usize| x0 + 30.0 + (pw - 60.0) * k as f64 / (nx - 1) as f64;
    axis(&mut s, (x0, y0, pw, ph), (lo, hi), ylabel);
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
        let ly = 50.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/>",
            x0 + pw + 15.0,
            x0 + pw + 35.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" {FONT}>{}</text>",
            x0 + pw + 40.0,
            ly + 4.0,
            esc(name)
        );
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
    }
}
