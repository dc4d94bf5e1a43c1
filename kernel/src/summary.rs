//! HTML summaries of a store, a recording and a test-case report section.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use dynsim::polars::prelude::*;
use dynsim::store::layout::natural_cmp;
use dynsim::store::{Recording, Store};
use dynsim::testcases::report::Section;
use dynsim::testcases::svg::{COLOURS, FONT};

use crate::html::{esc, float};
use crate::KernelError;

const TABLE_STYLE: &str = "<style>.dynsim-summary table{border-collapse:collapse;font-size:12px}\
    .dynsim-summary th,.dynsim-summary td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}</style>";

fn table(s: &mut String, head: &[&str], rows: &[Vec<String>]) {
    s.push_str("<table><thead><tr>");
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
}

fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut k = 0;
    while v >= 1024.0 && k + 1 < units.len() {
        v /= 1024.0;
        k += 1;
    }
    if k == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[k])
    }
}

/// A store's summary: where it is, how many recordings and values it holds, its shapes,
/// every key with its type and values, and the cached results per metric setting.
pub fn store_html(store: &Store) -> Result<String, KernelError> {
    let cat = store.catalog()?;
    let values: u64 = cat.rows.iter().map(|r| r.shape.iter().product::<usize>() as u64).sum();
    let mut shapes: BTreeMap<[usize; 3], usize> = BTreeMap::new();
    let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &cat.rows {
        *shapes.entry(r.shape).or_default() += 1;
        for (k, v) in &r.keys {
            keys.entry(k.clone()).or_default().insert(v.to_text());
        }
    }
    let mut s = format!("<div class=\"dynsim-summary\">{TABLE_STYLE}\n");
    let _ = writeln!(
        s,
        "<p><b>store</b> <code>{}</code>: {} recordings, {} values ({} as f32)</p>",
        esc(&store.root().display().to_string()),
        cat.rows.len(),
        values,
        bytes(values * 4)
    );
    let shape_rows: Vec<Vec<String>> =
        shapes.iter().map(|(sh, n)| vec![format!("{} x {} x {}", sh[0], sh[1], sh[2]), n.to_string()]).collect();
    table(&mut s, &["trials x time x units", "recordings"], &shape_rows);
    let types: BTreeMap<String, String> =
        cat.key_columns().into_iter().map(|(k, t)| (k, format!("{t:?}").to_lowercase())).collect();
    let key_rows: Vec<Vec<String>> = keys
        .into_iter()
        .map(|(k, vals)| {
            let mut vals: Vec<String> = vals.into_iter().collect();
            vals.sort_by(|a, b| natural_cmp(a, b));
            let n = vals.len();
            let shown: Vec<String> = vals.iter().take(8).map(|v| esc(v)).collect();
            let more = if n > 8 { format!(", … ({} more)", n - 8) } else { String::new() };
            let ty = types.get(&k).cloned().unwrap_or_default();
            vec![esc(&k), ty, n.to_string(), shown.join(", ") + &more]
        })
        .collect();
    table(&mut s, &["key", "type", "distinct", "values"], &key_rows);
    let results = dynsim::query::results(store)?;
    if results.height() == 0 {
        s.push_str("<p>no cached results</p>\n");
    } else {
        let by = results
            .clone()
            .lazy()
            .group_by([col("metric"), col("params")])
            .agg([len().alias("results"), col("seconds").sum().alias("seconds")])
            .sort(["metric", "params"], Default::default())
            .collect()?;
        let (m, p, n, sec) = (by.column("metric")?, by.column("params")?, by.column("results")?, by.column("seconds")?);
        let rows: Vec<Vec<String>> = (0..by.height())
            .map(|i| {
                let get = |c: &Column| c.get(i).map(|v| v.get_str().map(str::to_string).unwrap_or(v.to_string()));
                vec![
                    esc(&get(m).unwrap_or_default()),
                    esc(&get(p).unwrap_or_default()),
                    get(n).unwrap_or_default(),
                    sec.get(i).ok().and_then(|v| v.extract::<f64>()).map(|x| format!("{x:.1}")).unwrap_or_default(),
                ]
            })
            .collect();
        let _ = writeln!(s, "<p>{} cached results</p>", results.height());
        table(&mut s, &["metric", "settings", "results", "compute seconds"], &rows);
    }
    s.push_str("</div>\n");
    Ok(s)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch (Howard Hinnant's
/// civil-from-days).
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Trial-mean traces of the first `units` units over time, as a 520 x 220 SVG line plot.
pub fn traces_svg(rec: &Recording, units: usize) -> String {
    let [trials, time, width] = rec.row.shape;
    let units = units.min(width);
    let mut means = vec![vec![0.0f64; time]; units];
    for (u, m) in means.iter_mut().enumerate() {
        for (t, v) in m.iter_mut().enumerate() {
            let mut sum = 0.0;
            for k in 0..trials {
                sum += f64::from(rec.data[[k, t, u]]);
            }
            *v = if trials > 0 { sum / trials as f64 } else { f64::NAN };
        }
    }
    let finite = means.iter().flatten().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (lo.min(0.0) - 1.0, hi.max(0.0) + 1.0) };
    let (x0, y0, pw, ph) = (60.0, 180.0, 360.0, 150.0);
    let x = |t: usize| x0 + pw * t as f64 / (time.max(2) - 1) as f64;
    let y = |v: f64| y0 - ph * (v - lo) / (hi - lo);
    let font = FONT;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"520\" height=\"220\" viewBox=\"0 0 520 220\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"240\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" {font}>mean over {trials} trials</text>\n\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"black\"/>\n\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" {font}>time (0 … {})</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" {font}>{}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" {font}>{}</text>\n",
        x0 + pw,
        y0 - ph,
        x0 + pw / 2.0,
        y0 + 18.0,
        time.saturating_sub(1),
        x0 - 4.0,
        y0,
        float(lo),
        x0 - 4.0,
        y0 - ph + 8.0,
        float(hi)
    );
    for (u, m) in means.iter().enumerate() {
        let c = COLOURS[u % COLOURS.len()];
        let pts: Vec<String> = m
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(t, v)| format!("{:.1},{:.1}", x(t), y(*v)))
            .collect();
        let _ =
            writeln!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\"/>", pts.join(" "));
        let ly = 40.0 + 16.0 * u as f64;
        let _ = writeln!(
            s,
            "<line x1=\"435\" y1=\"{ly}\" x2=\"455\" y2=\"{ly}\" stroke=\"{c}\" stroke-width=\"2\"/>\
             <text x=\"460\" y=\"{}\" font-size=\"11\" {font}>unit {u}</text>",
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A recording's summary: id, keys, shape, dtype, content hash, source and ingest time;
/// statistics of its values (min, max, mean, standard deviation, non-finite count); and the
/// trial-mean traces of its first four units.
pub fn recording_html(rec: &Recording) -> String {
    let r = &rec.row;
    let (mut n, mut sum, mut sq, mut lo, mut hi, mut bad) =
        (0usize, 0.0f64, 0.0f64, f64::INFINITY, f64::NEG_INFINITY, 0);
    for &v in rec.data.iter() {
        let v = f64::from(v);
        if !v.is_finite() {
            bad += 1;
            continue;
        }
        n += 1;
        sum += v;
        sq += v * v;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let mean = if n > 0 { sum / n as f64 } else { f64::NAN };
    let sd = if n > 1 { ((sq - n as f64 * mean * mean) / (n as f64 - 1.0)).max(0.0).sqrt() } else { f64::NAN };
    let mut s = format!("<div class=\"dynsim-summary\">{TABLE_STYLE}\n");
    let _ = writeln!(s, "<p><b>recording</b> <code>{}</code></p>", esc(&r.id));
    let mut rows = vec![
        vec!["shape (trials x time x units)".into(), format!("{} x {} x {}", r.shape[0], r.shape[1], r.shape[2])],
        vec!["dtype (source)".into(), esc(&r.dtype)],
        vec!["content hash".into(), format!("<code>{}</code>", esc(&r.hash))],
        vec!["source".into(), esc(&r.source)],
        vec!["ingested".into(), utc(r.ingested_at)],
    ];
    for (k, v) in &r.keys {
        rows.push(vec![format!("key <b>{}</b>", esc(k)), esc(&v.to_text())]);
    }
    rows.push(vec![
        "values".into(),
        format!(
            "min {}, max {}, mean {}, sd {}{}",
            float(lo),
            float(hi),
            float(mean),
            float(sd),
            if bad > 0 { format!(", <b>{bad} not finite</b>") } else { String::new() }
        ),
    ]);
    table(&mut s, &["", ""], &rows);
    s.push_str(&traces_svg(rec, 4));
    s.push_str("</div>\n");
    s
}

/// A report section as HTML: heading, intro, table, reading and the figures inline.
pub fn section_html(sec: &Section) -> String {
    let mut s = format!("<div class=\"dynsim-summary\">{TABLE_STYLE}\n<h3>{}</h3>\n", esc(&sec.title));
    if !sec.intro.is_empty() {
        let _ = writeln!(s, "<p>{}</p>", esc(&sec.intro));
    }
    let head: Vec<&str> = sec.columns.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = sec.rows.iter().map(|r| r.iter().map(|c| esc(c)).collect()).collect();
    table(&mut s, &head, &rows);
    if !sec.reading.is_empty() {
        let _ = writeln!(s, "<p>{}</p>", esc(&sec.reading));
    }
    for f in &sec.figures {
        s.push_str("<div style=\"display:inline-block;vertical-align:top\">");
        s.push_str(&f.svg);
        s.push_str("</div>\n");
    }
    s.push_str("</div>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates_follow_the_calendar() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06:40 UTC");
    }

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
