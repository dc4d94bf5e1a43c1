//! `--where` predicates over the catalogue: a SQL boolean expression, as in a `WHERE`
//! clause, evaluated per catalogue row.
//!
//! Supported: column names (any key or catalogue column; double-quote names that are SQL
//! words), numbers, 'strings', TRUE/FALSE/NULL; `= != <> < <= > >=`, `AND OR NOT`,
//! `+ - * /`, `IS [NOT] NULL`, `[NOT] IN (...)`, `[NOT] BETWEEN a AND b`, `[NOT] LIKE` /
//! `ILIKE` with `%` and `_`. Comparisons with NULL are NULL (SQL three-valued logic) and a
//! row is kept only when the predicate is TRUE. Parsing uses `sqlparser`; a column that is
//! not in the catalogue is an error naming the columns that exist.
//!
//! Example: `group = 'pretrained' AND checkpoint >= 100 AND task IN ('go', 'anti')`.

use sqlparser::ast::{BinaryOperator, Expr, InTarget, UnaryOperator, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::catalog::{Catalog, CatalogRow};
use crate::error::StoreError;
use crate::keys::KeyValue;

/// A parsed predicate.
#[derive(Debug, Clone)]
pub struct Predicate {
    text: String,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Predicate {
    /// Parse a predicate.
    pub fn parse(text: &str) -> Result<Predicate, StoreError> {
        let expr = Parser::new(&GenericDialect {})
            .try_with_sql(text)
            .and_then(|mut p| {
                let e = p.parse_expr()?;
                p.expect_token(&sqlparser::tokenizer::Token::EOF)?;
                Ok(e)
            })
            .map_err(|e| StoreError::Predicate {
                predicate: text.to_string(),
                detail: format!("{e}; write a SQL condition such as \"group = 'a' AND checkpoint >= 100\""),
            })?;
        Ok(Predicate { text: text.to_string(), expr })
    }

    /// Check that every column the predicate names exists in `catalog`.
    pub fn check_columns(&self, catalog: &Catalog) -> Result<(), StoreError> {
        let mut known: Vec<String> = catalog.key_columns().into_iter().map(|(n, _)| n).collect();
        known.extend(crate::keys::RESERVED_COLUMNS.iter().map(|s| s.to_string()));
        let mut names = Vec::new();
        columns(&self.expr, &mut names);
        for n in names {
            if !known.contains(&n) {
                return Err(StoreError::Predicate {
                    predicate: self.text.clone(),
                    detail: format!("unknown column {n:?}; the catalogue has {}", known.join(", ")),
                });
            }
        }
        Ok(())
    }

    /// Evaluate on one row: `Ok(true)` keeps it.
    pub fn matches(&self, row: &CatalogRow) -> Result<bool, StoreError> {
        eval(&self.expr, row)
            .map(|v| v == Val::Bool(true))
            .map_err(|detail| StoreError::Predicate { predicate: self.text.clone(), detail })
    }

    /// The rows of `catalog` the predicate keeps, in catalogue order.
    pub fn filter<'c>(&self, catalog: &'c Catalog) -> Result<Vec<&'c CatalogRow>, StoreError> {
        self.check_columns(catalog)?;
        let mut out = Vec::new();
        for r in &catalog.rows {
            if self.matches(r)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

fn columns(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Identifier(i) => out.push(i.value.clone()),
        Expr::CompoundIdentifier(parts) => {
            out.push(parts.iter().map(|p| p.value.clone()).collect::<Vec<_>>().join("."))
        }
        Expr::BinaryOp { left, right, .. } => {
            columns(left, out);
            columns(right, out);
        }
        Expr::UnaryOp { expr, .. } | Expr::Nested(expr) | Expr::IsNull(expr) | Expr::IsNotNull(expr) => {
            columns(expr, out)
        }
        Expr::In { expr, target: InTarget::List(list), .. } => {
            columns(expr, out);
            list.iter().for_each(|x| columns(x, out));
        }
        Expr::Between { expr, low, high, .. } => {
            columns(expr, out);
            columns(low, out);
            columns(high, out);
        }
        Expr::Like { expr, pattern, .. } | Expr::ILike { expr, pattern, .. } => {
            columns(expr, out);
            columns(pattern, out);
        }
        _ => {}
    }
}

fn column(row: &CatalogRow, name: &str) -> Val {
    let s = |v: &str| Val::Str(v.to_string());
    match name {
        "id" => s(&row.id),
        "hash" => s(&row.hash),
        "file" => s(&row.file),
        "source" => s(&row.source),
        "dtype" => s(&row.dtype),
        "n_trials" => Val::Num(row.shape[0] as f64),
        "n_time" => Val::Num(row.shape[1] as f64),
        "n_units" => Val::Num(row.shape[2] as f64),
        "ingested_at" => Val::Num(row.ingested_at as f64),
        key => match row.keys.get(key) {
            None => Val::Null,
            Some(KeyValue::Int(i)) => Val::Num(*i as f64),
            Some(KeyValue::Float(f)) => Val::Num(*f),
            Some(KeyValue::Str(v)) => s(v),
        },
    }
}

fn truth(v: &Val) -> Result<Option<bool>, String> {
    match v {
        Val::Null => Ok(None),
        Val::Bool(b) => Ok(Some(*b)),
        other => Err(format!("{other:?} is not a condition; compare it, e.g. `checkpoint > 0`")),
    }
}

fn eval(e: &Expr, row: &CatalogRow) -> Result<Val, String> {
    Ok(match e {
        Expr::Identifier(i) => column(row, &i.value),
        Expr::CompoundIdentifier(parts) => {
            column(row, &parts.iter().map(|p| p.value.clone()).collect::<Vec<_>>().join("."))
        }
        Expr::Nested(x) => eval(x, row)?,
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Val::Num(n.parse::<f64>().map_err(|_| format!("bad number {n}"))?),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Val::Str(s.clone()),
            Value::Boolean(b) => Val::Bool(*b),
            Value::Null => Val::Null,
            other => return Err(format!("unsupported literal {other}")),
        },
        Expr::UnaryOp { op, expr } => {
            let v = eval(expr, row)?;
            match (op, v) {
                (UnaryOperator::Not, v) => match truth(&v)? {
                    None => Val::Null,
                    Some(b) => Val::Bool(!b),
                },
                (UnaryOperator::Minus, Val::Num(x)) => Val::Num(-x),
                (UnaryOperator::Plus, Val::Num(x)) => Val::Num(x),
                (_, Val::Null) => Val::Null,
                (op, v) => return Err(format!("cannot apply {op} to {v:?}")),
            }
        }
        Expr::IsNull(x) => Val::Bool(eval(x, row)? == Val::Null),
        Expr::IsNotNull(x) => Val::Bool(eval(x, row)? != Val::Null),
        Expr::In { expr, target: InTarget::List(list), negated, global: false, .. } => {
            let v = eval(expr, row)?;
            if v == Val::Null {
                return Ok(Val::Null);
            }
            let mut hit = false;
            for item in list {
                if compare(&v, &eval(item, row)?)? == Some(std::cmp::Ordering::Equal) {
                    hit = true;
                }
            }
            Val::Bool(hit != *negated)
        }
        Expr::Between { expr, negated, low, high } => {
            let v = eval(expr, row)?;
            let (a, b) = (compare(&v, &eval(low, row)?)?, compare(&v, &eval(high, row)?)?);
            match (a, b) {
                (Some(a), Some(b)) => Val::Bool((a.is_ge() && b.is_le()) != *negated),
                _ => Val::Null,
            }
        }
        Expr::Like { negated, expr, pattern, any: false, escape_char: None } => {
            like(row, expr, pattern, *negated, false)?
        }
        Expr::ILike { negated, expr, pattern, any: false, escape_char: None } => {
            like(row, expr, pattern, *negated, true)?
        }
        Expr::BinaryOp { left, op, right } => {
            let l = eval(left, row)?;
            match op {
                BinaryOperator::And | BinaryOperator::Or => {
                    let r = eval(right, row)?;
                    let (a, b) = (truth(&l)?, truth(&r)?);
                    let and = matches!(op, BinaryOperator::And);
                    match (a, b, and) {
                        (Some(false), _, true) | (_, Some(false), true) => Val::Bool(false),
                        (Some(true), _, false) | (_, Some(true), false) => Val::Bool(true),
                        (Some(a), Some(b), _) => Val::Bool(if and { a && b } else { a || b }),
                        _ => Val::Null,
                    }
                }
                _ => {
                    let r = eval(right, row)?;
                    binary(op, l, r)?
                }
            }
        }
        other => return Err(format!("unsupported expression `{other}`")),
    })
}

fn binary(op: &BinaryOperator, l: Val, r: Val) -> Result<Val, String> {
    use std::cmp::Ordering::*;
    if l == Val::Null || r == Val::Null {
        return Ok(Val::Null);
    }
    let ord = || compare(&l, &r);
    Ok(match op {
        BinaryOperator::Eq => Val::Bool(ord()? == Some(Equal)),
        BinaryOperator::NotEq => Val::Bool(ord()? != Some(Equal)),
        BinaryOperator::Lt => Val::Bool(ord()? == Some(Less)),
        BinaryOperator::LtEq => Val::Bool(matches!(ord()?, Some(Less | Equal))),
        BinaryOperator::Gt => Val::Bool(ord()? == Some(Greater)),
        BinaryOperator::GtEq => Val::Bool(matches!(ord()?, Some(Greater | Equal))),
        BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply | BinaryOperator::Divide => {
            match (&l, &r) {
                (Val::Num(a), Val::Num(b)) => Val::Num(match op {
                    BinaryOperator::Plus => a + b,
                    BinaryOperator::Minus => a - b,
                    BinaryOperator::Multiply => a * b,
                    _ => a / b,
                }),
                _ => return Err(format!("arithmetic needs numbers, got {l:?} {op} {r:?}")),
            }
        }
        other => return Err(format!("unsupported operator {other}")),
    })
}

fn compare(a: &Val, b: &Val) -> Result<Option<std::cmp::Ordering>, String> {
    Ok(match (a, b) {
        (Val::Null, _) | (_, Val::Null) => None,
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (x, y) => {
            return Err(format!(
                "cannot compare {x:?} with {y:?}; quote strings with single quotes and leave numbers bare"
            ))
        }
    })
}

fn like(row: &CatalogRow, expr: &Expr, pattern: &Expr, negated: bool, ci: bool) -> Result<Val, String> {
    let (v, p) = (eval(expr, row)?, eval(pattern, row)?);
    let (Val::Str(v), Val::Str(p)) = (v, p) else { return Ok(Val::Null) };
    let (v, p) = if ci { (v.to_lowercase(), p.to_lowercase()) } else { (v, p) };
    let (vc, pc): (Vec<char>, Vec<char>) = (v.chars().collect(), p.chars().collect());
    Ok(Val::Bool(like_match(&vc, &pc) != negated))
}

fn like_match(v: &[char], p: &[char]) -> bool {
    // Iterative wildcard matching with backtracking to the last '%'.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < v.len() {
        if j < p.len() && (p[j] == '_' || p[j] == v[i]) && p[j] != '%' {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '%' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    p[j..].iter().all(|&c| c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keys;

    fn row(keys: &[(&str, KeyValue)]) -> CatalogRow {
        CatalogRow {
            id: "abcd".into(),
            keys: keys.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Keys>(),
            shape: [2, 3, 4],
            dtype: "float32".into(),
            hash: "h".into(),
            file: "f".into(),
            source: "s".into(),
            ingested_at: 0,
        }
    }

    #[test]
    fn sql_semantics() {
        let r = row(&[("group", KeyValue::Str("pre".into())), ("checkpoint", KeyValue::Int(100))]);
        let t = |s: &str| Predicate::parse(s).expect("parse").matches(&r).expect("eval");
        assert!(t("\"group\" = 'pre' AND checkpoint >= 100"));
        assert!(!t("checkpoint > 100"));
        assert!(t("checkpoint IN (1, 100)"));
        assert!(t("checkpoint BETWEEN 50 AND 150 AND n_units = 4"));
        assert!(t("\"group\" LIKE 'p_e%'"));
        assert!(!t("task = 'go'"), "missing key is NULL, NULL = x is not true");
        assert!(t("task IS NULL OR task = 'go'"));
        assert!(!t("NOT (checkpoint = 100)"));
        assert!(t("checkpoint / 2 = 50"));
        assert!(Predicate::parse("checkpoint >").is_err());
        assert!(Predicate::parse("a = 1 garbage").is_err());
        assert!(Predicate::parse("checkpoint = 'x'").expect("parse").matches(&r).is_err());
        assert!(like_match(&['a', 'b', 'c'], &['%', 'c']));
        assert!(!like_match(&['a', 'b', 'c'], &['%', 'b']));
    }
}
