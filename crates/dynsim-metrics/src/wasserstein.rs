//! Eigenvalue-Wasserstein score: optimal transport between two eigenvalue clouds.

use crate::error::{MetricError, Result};
use crate::Complex64;

/// Squared 2-Wasserstein distance between the uniform measures on two sets of complex
/// numbers (e.g. the eigenvalues of two DMD operators):
///
/// ```text
/// W2^2(a, b) = min_{P in U(1/n, 1/m)} sum_ij P_ij |a_i - b_j|^2
/// ```
///
/// solved exactly (no entropic smoothing): the marginals are scaled to integers
/// `m/g` and `n/g` (`g = gcd(n, m)`) and the transportation problem is solved by successive
/// shortest paths with Dijkstra on reduced costs. For `n = m` this is the optimal
/// assignment. Matches the reference's `ot.emd2` with uniform weights.
///
/// ```
/// use dynsim_metrics::{eigenvalue_wasserstein, Complex64};
/// let a = [Complex64::new(0.0, 0.0), Complex64::new(1.0, 0.0)];
/// let b = [Complex64::new(1.0, 0.0), Complex64::new(0.0, 2.0)];
/// assert!((eigenvalue_wasserstein(&a, &b).unwrap() - 2.0).abs() < 1e-12);
/// ```
pub fn eigenvalue_wasserstein(a: &[Complex64], b: &[Complex64]) -> Result<f64> {
    if a.is_empty() || b.is_empty() {
        return Err(MetricError::Empty {
            what: "eigenvalue set".into(),
            shape: format!("{} and {} points", a.len(), b.len()),
        });
    }
    if let Some(z) = a.iter().chain(b).find(|z| !(z.re.is_finite() && z.im.is_finite())) {
        return Err(MetricError::NonFinite { what: "eigenvalues".into(), value: z.re + z.im, index: vec![] });
    }
    let (n, m) = (a.len(), b.len());
    let g = gcd(n, m);
    let supply = (m / g) as u64;
    let demand = (n / g) as u64;
    let total = (n * (m / g)) as f64;
    let cost = |i: usize, j: usize| (a[i] - b[j]).norm_sqr();
    let mut flow = vec![0u64; n * m];
    let mut left = vec![supply; n];
    let mut need = vec![demand; m];
    let mut pot = vec![0.0f64; n + m];
    let big = f64::INFINITY;
    loop {
        if left.iter().all(|&s| s == 0) {
            break;
        }
        // Dijkstra from every source with remaining supply, on reduced costs.
        let mut dist = vec![big; n + m];
        let mut prev = vec![usize::MAX; n + m];
        let mut done = vec![false; n + m];
        for i in 0..n {
            if left[i] > 0 {
                dist[i] = 0.0;
            }
        }
        loop {
            let mut u = usize::MAX;
            let mut du = big;
            for v in 0..n + m {
                if !done[v] && dist[v] < du {
                    du = dist[v];
                    u = v;
                }
            }
            if u == usize::MAX {
                break;
            }
            done[u] = true;
            if u < n {
                for j in 0..m {
                    let v = n + j;
                    if done[v] {
                        continue;
                    }
                    let nd = du + cost(u, j) + pot[u] - pot[v];
                    if nd < dist[v] {
                        dist[v] = nd;
                        prev[v] = u;
                    }
                }
            } else {
                let j = u - n;
                for i in 0..n {
                    if flow[i * m + j] > 0 && !done[i] {
                        let nd = du - cost(i, j) + pot[u] - pot[i];
                        if nd < dist[i] {
                            dist[i] = nd;
                            prev[i] = u;
                        }
                    }
                }
            }
        }
        // nearest sink that still needs mass
        let Some(t) = (0..m).filter(|&j| need[j] > 0).min_by(|&x, &y| dist[n + x].total_cmp(&dist[n + y])) else {
            break;
        };
        let dt = dist[n + t];
        if !dt.is_finite() {
            return Err(MetricError::NoConvergence { what: "optimal transport (no augmenting path)" });
        }
        for v in 0..n + m {
            pot[v] += dist[v].min(dt);
        }
        // walk back to find the bottleneck
        let mut bottleneck = need[t];
        let mut v = n + t;
        while prev[v] != usize::MAX {
            let u = prev[v];
            if u >= n {
                // backward edge: sink u -> source v carries flow[v][u-n]
                bottleneck = bottleneck.min(flow[v * m + (u - n)]);
            }
            v = u;
        }
        bottleneck = bottleneck.min(left[v]);
        let origin = v;
        let mut v = n + t;
        while prev[v] != usize::MAX {
            let u = prev[v];
            if u < n {
                flow[u * m + (v - n)] += bottleneck;
            } else {
                flow[v * m + (u - n)] -= bottleneck;
            }
            v = u;
        }
        left[origin] -= bottleneck;
        need[t] -= bottleneck;
    }
    let mut w = 0.0;
    for i in 0..n {
        for j in 0..m {
            if flow[i * m + j] > 0 {
                w += flow[i * m + j] as f64 * cost(i, j);
            }
        }
    }
    Ok(w / total)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(re: f64, im: f64) -> Complex64 {
        Complex64::new(re, im)
    }

    /// Brute force over all permutations for equal sizes.
    fn brute(a: &[Complex64], b: &[Complex64]) -> f64 {
        fn perms(k: usize, p: &mut Vec<usize>, used: &mut Vec<bool>, f: &mut dyn FnMut(&[usize])) {
            if p.len() == k {
                f(p);
                return;
            }
            for i in 0..k {
                if !used[i] {
                    used[i] = true;
                    p.push(i);
                    perms(k, p, used, f);
                    p.pop();
                    used[i] = false;
                }
            }
        }
        let mut best = f64::INFINITY;
        perms(a.len(), &mut vec![], &mut vec![false; a.len()], &mut |p| {
            let s: f64 = p.iter().enumerate().map(|(i, &j)| (a[i] - b[j]).norm_sqr()).sum();
            best = best.min(s / a.len() as f64);
        });
        best
    }

    #[test]
    fn matches_brute_force_assignment() {
        let mut state = 12345u64;
        let mut rnd = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        for n in 1..=6 {
            for _ in 0..20 {
                let a: Vec<_> = (0..n).map(|_| c(rnd(), rnd())).collect();
                let b: Vec<_> = (0..n).map(|_| c(rnd(), rnd())).collect();
                let w = eigenvalue_wasserstein(&a, &b).unwrap();
                assert!((w - brute(&a, &b)).abs() < 1e-12, "n={n}");
            }
        }
    }

    #[test]
    fn unequal_sizes_equal_replicated_assignment() {
        // uniform on 2 points vs uniform on 3 points == assignment between 6 replicated points
        let a = [c(0.1, 0.0), c(0.9, 0.3)];
        let b = [c(0.0, 0.5), c(0.5, -0.2), c(1.0, 0.0)];
        let ra: Vec<_> = a.iter().flat_map(|&z| [z, z, z]).collect();
        let rb: Vec<_> = b.iter().flat_map(|&z| [z, z]).collect();
        let w = eigenvalue_wasserstein(&a, &b).unwrap();
        assert!((w - brute(&ra, &rb)).abs() < 1e-12);
        // symmetric in its arguments
        assert!((w - eigenvalue_wasserstein(&b, &a).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn empty_and_nonfinite_are_errors() {
        assert!(matches!(eigenvalue_wasserstein(&[], &[c(0.0, 0.0)]), Err(MetricError::Empty { .. })));
        assert!(matches!(
            eigenvalue_wasserstein(&[c(f64::NAN, 0.0)], &[c(0.0, 0.0)]),
            Err(MetricError::NonFinite { .. })
        ));
    }
}
