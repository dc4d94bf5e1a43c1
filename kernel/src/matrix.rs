//! Dissimilarity matrices from result frames.

use std::collections::BTreeMap;

use dynsim::polars::prelude::*;
use dynsim::store::layout::natural_cmp;
use ndarray::Array2;

use crate::KernelError;

/// A square, labelled dissimilarity matrix: `values[[i, j]]` is the dissimilarity of
/// `labels[i]` to `labels[j]`; NaN where the frame had no such pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Row (and column) labels.
    pub labels: Vec<String>,
    /// The values, `labels.len()` square.
    pub values: Array2<f64>,
    /// The figure title.
    pub title: String,
}

/// A column as text, cast by polars (so 0.5 is `"0.5"`, 3 is `"3"`).
fn text(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>, KernelError> {
    let c = df.column(name).map_err(|_| {
        let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
        KernelError::Input(format!("the frame has no column `{name}`; its columns are {}", names.join(", ")))
    })?;
    let s = c.cast(&DataType::String)?;
    let s = s.str()?;
    Ok((0..s.len()).map(|i| s.get(i).map(str::to_string)).collect())
}

impl Matrix {
    /// A matrix from labels and values (`values` must be `labels.len()` square).
    pub fn new(labels: Vec<String>, values: Array2<f64>, title: impl Into<String>) -> Result<Matrix, KernelError> {
        if values.nrows() != labels.len() || values.ncols() != labels.len() {
            return Err(KernelError::Input(format!(
                "a matrix with {} labels needs {0} x {0} values, not {} x {}",
                labels.len(),
                values.nrows(),
                values.ncols()
            )));
        }
        Ok(Matrix { labels, values, title: title.into() })
    }

    /// The matrix of one metric's results, rows labelled by the key `key`: a pair's value
    /// goes to `[left_<key>, right_<key>]` and, if the frame has no pair the other way
    /// round, to `[right_<key>, left_<key>]` too; the diagonal is 0 where the frame has no
    /// value for it; pairs the frame lacks are NaN. `key` is any catalogue key the
    /// comparison carried (`id`, `r`, `checkpoint`, ...). Labels are sorted numerically for
    /// numeric keys, naturally otherwise.
    ///
    /// Refused: a frame with results of more than one metric setting (filter it first), a
    /// key that is missing, and a key that does not name one recording per label (two
    /// recordings with `checkpoint = 3` would share a row: use `id` or a finer key).
    pub fn from_pairs(df: &DataFrame, key: &str) -> Result<Matrix, KernelError> {
        let (lk, rk) = (format!("left_{key}"), format!("right_{key}"));
        let settings: std::collections::BTreeSet<String> = text(df, "params")?.into_iter().flatten().collect();
        if settings.len() > 1 {
            return Err(KernelError::Input(format!(
                "the frame holds results of {} metric settings ({}); keep one first, e.g. \
                 df.lazy().filter(col(\"metric\").eq(lit(\"dsa\"))).collect()",
                settings.len(),
                settings.into_iter().collect::<Vec<_>>().join("; ")
            )));
        }
        let (left, right) = (text(df, &lk)?, text(df, &rk)?);
        let (lid, rid) = (text(df, "left_id")?, text(df, "right_id")?);
        let values = df.column("value").map_err(|_| KernelError::Input("the frame has no `value` column".into()))?;
        let values = values.cast(&DataType::Float64)?;
        let values = values.f64()?;
        // Each label must name one recording.
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        let sides = left.iter().zip(&lid).chain(right.iter().zip(&rid));
        for (label, id) in sides {
            let (Some(label), Some(id)) = (label, id) else {
                return Err(KernelError::Input(format!(
                    "some pairs have no `{key}`: a matrix needs the key on every recording; pick a key every \
                     recording has, or `id`"
                )));
            };
            if let Some(other) = owner.insert(label.clone(), id.clone()) {
                if &other != id {
                    return Err(KernelError::Input(format!(
                        "`{key}` = {label} names two recordings ({other} and {id}): a matrix row needs one; use \
                         `id` or a key that tells them apart"
                    )));
                }
            }
        }
        let numeric = df.column(&lk)?.dtype().is_primitive_numeric();
        let mut labels: Vec<String> = owner.into_keys().collect();
        if numeric {
            labels.sort_by(|a, b| {
                let (x, y) = (a.parse::<f64>().unwrap_or(f64::NAN), b.parse::<f64>().unwrap_or(f64::NAN));
                x.total_cmp(&y)
            });
        } else {
            labels.sort_by(|a, b| natural_cmp(a, b));
        }
        let index: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
        let n = labels.len();
        let mut m = Array2::from_elem((n, n), f64::NAN);
        let mut seen = Array2::from_elem((n, n), false);
        for i in 0..df.height() {
            let (Some(a), Some(b)) = (&left[i], &right[i]) else { continue };
            let (a, b) = (index[a.as_str()], index[b.as_str()]);
            m[[a, b]] = values.get(i).unwrap_or(f64::NAN);
            seen[[a, b]] = true;
        }
        for a in 0..n {
            for b in 0..n {
                if !seen[[a, b]] && seen[[b, a]] {
                    m[[a, b]] = m[[b, a]];
                }
            }
            if !seen[[a, a]] {
                m[[a, a]] = 0.0;
            }
        }
        let title = settings.into_iter().next().unwrap_or_else(|| "dissimilarity".into());
        Matrix::new(labels, m, title)
    }

    /// The same matrix with another title.
    pub fn titled(mut self, title: impl Into<String>) -> Matrix {
        self.title = title.into();
        self
    }

    /// A labelled SVG heatmap (the test-case reports' heatmap).
    pub fn to_svg(&self) -> String {
        dynsim::testcases::svg::heatmap(&self.values, &self.labels, &self.title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(left: Vec<f64>, right: Vec<f64>, lid: Vec<&str>, rid: Vec<&str>, v: Vec<f64>) -> DataFrame {
        let n = v.len();
        DataFrame::new(
            n,
            vec![
                Column::new("left_id".into(), lid),
                Column::new("right_id".into(), rid),
                Column::new("params".into(), vec!["dsa:rank=5"; n]),
                Column::new("value".into(), v),
                Column::new("left_r".into(), left),
                Column::new("right_r".into(), right),
            ],
        )
        .expect("frame")
    }

    #[test]
    fn pairs_fill_a_symmetric_matrix_in_numeric_order() -> Result<(), KernelError> {
        let df = frame(
            vec![10.0, 0.5, 0.5],
            vec![2.0, 10.0, 2.0],
            vec!["c", "a", "a"],
            vec!["b", "c", "b"],
            vec![1.0, 2.0, 3.0],
        );
        let m = Matrix::from_pairs(&df, "r")?;
        assert_eq!(m.labels, ["0.5", "2.0", "10.0"], "numeric, not text, order");
        assert_eq!(m.values, ndarray::array![[0.0, 3.0, 2.0], [3.0, 0.0, 1.0], [2.0, 1.0, 0.0]]);
        assert_eq!(m.title, "dsa:rank=5");
        let svg = m.to_svg();
        assert!(svg.contains(">0.5<") && svg.contains(">3.00<"));
        Ok(())
    }

    #[test]
    fn missing_pairs_are_nan_and_bad_frames_are_refused() {
        let df = frame(vec![1.0], vec![2.0], vec!["a"], vec!["b"], vec![0.7]);
        let three = frame(vec![1.0, 1.0], vec![2.0, 3.0], vec!["a", "a"], vec!["b", "c"], vec![0.7, 0.2]);
        let m = Matrix::from_pairs(&three, "r").expect("matrix");
        assert!(m.values[[1, 2]].is_nan() && m.values[[2, 1]].is_nan());
        let err = |df: &DataFrame, key: &str| Matrix::from_pairs(df, key).expect_err("refused").to_string();
        assert!(err(&df, "seed").contains("no column `left_seed`"));
        let two = frame(vec![1.0, 1.0], vec![2.0, 3.0], vec!["a", "x"], vec!["b", "c"], vec![0.7, 0.2]);
        let e = err(&two, "r");
        assert!(e.contains("names two recordings") && e.contains("use `id`"), "{e}");
        let mut mixed = three.clone();
        mixed.with_column(Column::new("params".into(), vec!["cka", "procrustes"])).expect("column");
        assert!(err(&mixed, "r").contains("2 metric settings"));
        assert!(Matrix::new(vec!["a".into()], Array2::zeros((2, 2)), "t").is_err());
    }
}
