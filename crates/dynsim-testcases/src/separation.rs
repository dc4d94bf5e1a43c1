//! How well a dissimilarity separates groups: within- vs across-group statistics.

use ndarray::Array2;

/// Within- vs across-group summary of a symmetric dissimilarity matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Separation {
    /// Mean dissimilarity over pairs `i < j` of the same group.
    pub within: f64,
    /// Mean dissimilarity over pairs `i < j` of different groups.
    pub across: f64,
    /// `across / within` (infinite when `within` is 0).
    pub ratio: f64,
    /// ROC AUC of "across pairs are more dissimilar than within pairs": the probability
    /// that a random across pair exceeds a random within pair, ties counting half
    /// (the Mann-Whitney U statistic divided by `n_within * n_across`). 1 separates
    /// perfectly, 0.5 is chance.
    pub auc: f64,
    /// Number of within pairs.
    pub n_within: usize,
    /// Number of across pairs.
    pub n_across: usize,
}

/// Summarise `m` (`n x n`, entries `i < j` used) with one group label per row. Needs at
/// least one within and one across pair.
pub fn separation<L: PartialEq>(m: &Array2<f64>, labels: &[L]) -> Option<Separation> {
    let n = labels.len();
    if m.dim() != (n, n) {
        return None;
    }
    let (mut within, mut across) = (Vec::new(), Vec::new());
    for i in 0..n {
        for j in i + 1..n {
            if labels[i] == labels[j] {
                within.push(m[[i, j]]);
            } else {
                across.push(m[[i, j]]);
            }
        }
    }
    if within.is_empty() || across.is_empty() {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (w, a) = (mean(&within), mean(&across));
    let mut u = 0.0;
    for x in &across {
        for y in &within {
            u += if x > y {
                1.0
            } else if x == y {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(Separation {
        within: w,
        across: a,
        ratio: if w > 0.0 { a / w } else { f64::INFINITY },
        auc: u / (within.len() * across.len()) as f64,
        n_within: within.len(),
        n_across: across.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn perfect_chance_and_reversed_separation() {
        let labels = ["a", "a", "b", "b"];
        let perfect = array![[0., 1., 5., 5.], [1., 0., 5., 5.], [5., 5., 0., 2.], [5., 5., 2., 0.]];
        let s = separation(&perfect, &labels).expect("sep");
        assert_eq!((s.n_within, s.n_across), (2, 4));
        assert_eq!((s.within, s.across, s.ratio, s.auc), (1.5, 5.0, 5.0 / 1.5, 1.0));
        let flat = Array2::from_elem((4, 4), 3.0);
        assert_eq!(separation(&flat, &labels).expect("sep").auc, 0.5);
        let reversed = perfect.mapv(|v| if v > 0.0 { 10.0 - v } else { 0.0 });
        assert_eq!(separation(&reversed, &labels).expect("sep").auc, 0.0);
        assert!(separation(&perfect, &["a", "b", "c", "d"]).is_none(), "no within pair");
        assert!(separation(&perfect, &["a"; 3]).is_none(), "shape");
    }
}
