//! `--layout` patterns: map the paths inside a file to keys.
//!
//! A pattern is a path of `/`-separated segments. Each segment is literal text with
//! placeholders: `{name}` captures a non-empty part of the segment into the key `name`,
//! `{_}` matches a non-empty part and drops it. A segment may hold several placeholders
//! separated by literal text, e.g. `checkpoint_{checkpoint}` or `{task}_{condition}`; a
//! placeholder takes the shortest text that lets the rest of the segment match. A pattern
//! matches a path with the same number of segments.
//!
//! Example: `/{group}/checkpoint_{checkpoint}/{task}` matches `/pretrained/checkpoint_100/go`
//! with `group = "pretrained"`, `checkpoint = 100`, `task = "go"`.

use crate::error::StoreError;
use crate::keys::check_key_name;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var(Option<String>),
}

/// A parsed layout pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pattern: String,
    segments: Vec<Vec<Part>>,
}

impl Layout {
    /// Parse a pattern; errors name the problem (unclosed brace, bad key name, two
    /// placeholders with nothing between them, a key used twice).
    pub fn parse(pattern: &str) -> Result<Layout, StoreError> {
        let err = |detail: String| StoreError::Layout { pattern: pattern.to_string(), detail };
        let body = pattern
            .strip_prefix('/')
            .ok_or_else(|| err("must start with '/', like an HDF5 path, e.g. '/{group}/{checkpoint}/{task}'".into()))?;
        let mut names: Vec<String> = Vec::new();
        let mut segments = Vec::new();
        for seg in body.split('/') {
            if seg.is_empty() {
                return Err(err("has an empty segment ('//' or a trailing '/')".into()));
            }
            let mut parts = Vec::new();
            let mut rest = seg;
            while !rest.is_empty() {
                if let Some(open) = rest.find('{') {
                    if open > 0 {
                        parts.push(Part::Lit(rest[..open].to_string()));
                    }
                    let close =
                        rest[open..].find('}').ok_or_else(|| err(format!("unclosed '{{' in segment {seg:?}")))?;
                    let name = &rest[open + 1..open + close];
                    if matches!(parts.last(), Some(Part::Var(_))) {
                        return Err(err(format!(
                            "segment {seg:?} has two placeholders with nothing between them; put literal text between"
                        )));
                    }
                    if name == "_" {
                        parts.push(Part::Var(None));
                    } else {
                        check_key_name(name).map_err(|e| err(e.to_string()))?;
                        if names.iter().any(|n| n == name) {
                            return Err(err(format!("the key {name:?} appears twice")));
                        }
                        names.push(name.to_string());
                        parts.push(Part::Var(Some(name.to_string())));
                    }
                    rest = &rest[open + close + 1..];
                } else {
                    if rest.contains('}') {
                        return Err(err(format!("unmatched '}}' in segment {seg:?}")));
                    }
                    parts.push(Part::Lit(rest.to_string()));
                    rest = "";
                }
            }
            segments.push(parts);
        }
        Ok(Layout { pattern: pattern.to_string(), segments })
    }

    /// The pattern as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Number of path segments the pattern matches.
    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// Match an absolute path; the captured `(key, text)` pairs, or `None`.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let body = path.strip_prefix('/')?;
        let segs: Vec<&str> = if body.is_empty() { Vec::new() } else { body.split('/').collect() };
        if segs.len() != self.segments.len() {
            return None;
        }
        let mut out = Vec::new();
        for (parts, text) in self.segments.iter().zip(segs) {
            match_parts(parts, text, &mut out)?;
        }
        Some(out)
    }
}

fn match_parts(parts: &[Part], text: &str, out: &mut Vec<(String, String)>) -> Option<()> {
    let Some((first, rest)) = parts.split_first() else {
        return text.is_empty().then_some(());
    };
    match first {
        Part::Lit(l) => match_parts(rest, text.strip_prefix(l.as_str())?, out),
        Part::Var(name) => {
            let ends: Vec<usize> = if rest.is_empty() {
                vec![text.len()]
            } else {
                text.char_indices().map(|(i, _)| i).skip(1).chain([text.len()]).collect()
            };
            for end in ends {
                if end == 0 {
                    continue;
                }
                let mark = out.len();
                if let Some(n) = name {
                    out.push((n.clone(), text[..end].to_string()));
                }
                if match_parts(rest, &text[end..], out).is_some() {
                    return Some(());
                }
                out.truncate(mark);
            }
            None
        }
    }
}

/// Sort names so that embedded numbers compare by value (`trial_2` before `trial_10`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((kind, text)) if *kind == d => text.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, ta), (db, tb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (na, nb) = (ta.trim_start_matches('0'), tb.trim_start_matches('0'));
            na.len().cmp(&nb.len()).then_with(|| na.cmp(nb)).then_with(|| ta.len().cmp(&tb.len()))
        } else {
            ta.cmp(tb)
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(l: &Layout, p: &str) -> Option<Vec<(String, String)>> {
        l.matches(p)
    }

    #[test]
    fn patterns_capture_and_reject() {
        let l = Layout::parse("/{group}/checkpoint_{checkpoint}/{task}").expect("parse");
        assert_eq!(
            caps(&l, "/pre/checkpoint_100/go"),
            Some(vec![
                ("group".into(), "pre".into()),
                ("checkpoint".into(), "100".into()),
                ("task".into(), "go".into())
            ])
        );
        assert_eq!(caps(&l, "/pre/ckpt_100/go"), None);
        assert_eq!(caps(&l, "/pre/checkpoint_100"), None);
        assert_eq!(caps(&l, "/pre/checkpoint_/go"), None, "placeholders are non-empty");
        let l = Layout::parse("/{_}/{task}_{condition}").expect("parse");
        assert_eq!(
            caps(&l, "/x/go_left_fast"),
            Some(vec![("task".into(), "go".into()), ("condition".into(), "left_fast".into())])
        );
        for bad in ["{a}", "/{a", "/{a}{b}", "/{a}/{a}", "/{bad name}", "/a//b", "/a}"] {
            assert!(Layout::parse(bad).is_err(), "{bad}");
        }
        let mut v = vec!["trial_10", "trial_2", "trial_1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["trial_1", "trial_2", "trial_10"]);
    }
}
