//! polars frames as HTML tables.

use std::fmt::Write as _;

use dynsim::polars::prelude::*;

/// Rows a frame shows by default: the first and last half of this many, with a `…` row
/// between them when the frame is longer.
pub const FRAME_ROWS: usize = 20;

/// Escape text for HTML (`&`, `<`, `>`, `"`, `'`).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A float with 6 significant digits, without trailing zeros; scientific notation outside
/// `[1e-4, 1e6)`.
pub(crate) fn float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        return format!("{v:.4e}");
    }
    let decimals = (5 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn cell(v: &AnyValue) -> String {
    match v {
        AnyValue::Null => "<span class=\"null\">null</span>".into(),
        AnyValue::Float64(x) => float(*x),
        AnyValue::Float32(x) => float(f64::from(*x)),
        v => match v.get_str() {
            Some(s) => esc(s),
            None => esc(&v.to_string()),
        },
    }
}

/// An HTML table of `df`: a caption with its shape, a header with every column's name and
/// dtype, and at most `max_rows` rows (the first and last half of them, with a `…` row
/// between, when the frame is longer). Numbers are right-aligned; floats show 6
/// significant digits; nulls are grey.
pub fn frame_html(df: &DataFrame, max_rows: usize) -> String {
    let (h, w) = df.shape();
    let mut s = String::from(
        "<div class=\"dynsim-frame\"><style>.dynsim-frame table{border-collapse:collapse;font-size:12px}\
         .dynsim-frame th,.dynsim-frame td{padding:2px 8px;border-bottom:1px solid #ddd}\
         .dynsim-frame td.num{text-align:right;font-variant-numeric:tabular-nums}\
         .dynsim-frame .dtype{color:#888;font-weight:normal;font-size:10px}\
         .dynsim-frame .null{color:#aaa}</style>\n",
    );
    let _ = writeln!(s, "<table>\n<caption style=\"text-align:left\">shape: ({h}, {w})</caption>\n<thead><tr>");
    let columns = df.columns();
    for c in columns {
        let _ = write!(s, "<th>{}<br><span class=\"dtype\">{}</span></th>", esc(c.name()), esc(&c.dtype().to_string()));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    let rows: Vec<Option<usize>> = if h <= max_rows {
        (0..h).map(Some).collect()
    } else {
        let head = max_rows.div_ceil(2);
        let tail = max_rows - head;
        (0..head).map(Some).chain(std::iter::once(None)).chain((h - tail..h).map(Some)).collect()
    };
    for r in rows {
        s.push_str("<tr>");
        for c in columns {
            match r {
                None => s.push_str("<td>…</td>"),
                Some(i) => {
                    let class = if c.dtype().is_primitive_numeric() { " class=\"num\"" } else { "" };
                    let text = c.get(i).map(|v| cell(&v)).unwrap_or_default();
                    let _ = write!(s, "<td{class}>{text}</td>");
                }
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody>\n</table></div>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_keep_six_significant_digits() {
        assert_eq!(float(0.123456789), "0.123457");
        assert_eq!(float(2.5), "2.5");
        assert_eq!(float(1234.5678), "1234.57");
        assert_eq!(float(-3.0), "-3");
        assert_eq!(float(1.5e-7), "1.5000e-7");
        assert_eq!(float(f64::NAN), "NaN");
    }

    #[test]
    fn a_long_frame_shows_head_and_tail_with_escaped_text() -> PolarsResult<()> {
        let n = 50;
        let df = DataFrame::new(
            n,
            vec![
                Column::new("x".into(), (0..n as i64).collect::<Vec<_>>()),
                Column::new("name".into(), (0..n).map(|i| format!("<r{i}>")).collect::<Vec<_>>()),
                Column::new(
                    "v".into(),
                    (0..n).map(|i| if i == 0 { None } else { Some(i as f64 / 3.0) }).collect::<Vec<_>>(),
                ),
            ],
        )?;
        let html = frame_html(&df, 10);
        assert!(html.contains("shape: (50, 3)"));
        assert_eq!(html.matches("<tr>").count(), 1 + 10 + 1, "header, 10 rows, the ellipsis row");
        assert!(html.contains("&lt;r4&gt;") && html.contains("&lt;r45&gt;") && !html.contains("&lt;r5&gt;"));
        assert!(html.contains("<span class=\"null\">null</span>") && html.contains("16.3333"));
        assert!(html.contains("i64") && html.contains("str") && html.contains("f64"));
        let short = frame_html(&df.head(Some(3)), 10);
        assert_eq!(short.matches("<tr>").count(), 4);
        assert!(!short.contains('…'));
        Ok(())
    }
}
