//! Fused CPU recurrences with hand-written backward passes, as candle custom ops.
//!
//! Written as compositions of candle ops, a recurrence over 400 steps is thousands of tiny ops
//! whose bookkeeping dominates training. These ops run a whole sequence in one call:
//!
//! - [`LeakyScan`]: the leaky RNN / GRU time loop. Input `u = x W_ihᵀ + b` (`batch × time × G·H`,
//!   G = 1 or 3) and `W_hh` (`G·H × H`); output the states `h` (`batch × time × H`). Forward per
//!   step: one `batch × H` by `H × G·H` product plus the element-wise update. Backward
//!   (backpropagation through time): the pre-activations are recomputed with one large product,
//!   the reverse loop carries `∂L/∂h_t` with one `batch × G·H` by `G·H × H` product per step, and
//!   `∂L/∂W_hh = Σ_t δ_tᵀ h_{t−1}` is one large product at the end.
//! - [`SelectiveScan`]: Mamba's selective scan (Gu & Dao 2023, as mambapy's `selective_scan`):
//!   `h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t x_t`, `y_t = h_t C_t` per channel, with the exact
//!   reverse-mode derivative for `x`, `Δ`, `A`, `B` and `C`.
//!
//! Both run in f32 or f64, one thread per call (train independent networks in parallel instead:
//! the per-step products are too small to split), and are deterministic.

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use crate::model::Activation;

/// The float types the fused ops run in (f32, f64).
pub trait Real:
    WithDType
    + faer::traits::ComplexField
    + Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + PartialOrd
{
    /// Converts from f64.
    fn c(x: f64) -> Self;
    /// `eˣ`.
    fn rexp(self) -> Self;
    /// `tanh x`.
    fn rtanh(self) -> Self;
    /// `ln(1 + x)`.
    fn rln1p(self) -> Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            fn c(x: f64) -> Self {
                x as $t
            }
            fn rexp(self) -> Self {
                self.exp()
            }
            fn rtanh(self) -> Self {
                self.tanh()
            }
            fn rln1p(self) -> Self {
                self.ln_1p()
            }
        }
    };
}
real!(f32);
real!(f64);

/// `1 / (1 + e^{−x})`, with `x` clamped to ±40 first: beyond that the value is 0 or 1 to
/// within 5e-18, and `e^{−x}` never overflows.
#[inline]
fn sigmoid<T: Real>(x: T) -> T {
    let lim = T::c(40.0);
    let x = if x > lim {
        lim
    } else if x < -lim {
        -lim
    } else {
        x
    };
    T::c(1.0) / (T::c(1.0) + (-x).rexp())
}

/// `f(x)` and `f'(x)` of an activation, as PyTorch computes them (relu' = 0 at 0; softplus is
/// `x` above 20).
fn act<T: Real>(a: Activation, x: T) -> (T, T) {
    let zero = T::c(0.0);
    let one = T::c(1.0);
    match a {
        Activation::Relu => {
            if x > zero {
                (x, one)
            } else {
                (zero, zero)
            }
        }
        Activation::LeakyRelu => {
            if x > zero {
                (x, one)
            } else {
                (T::c(0.01) * x, T::c(0.01))
            }
        }
        Activation::Softplus => {
            if x > T::c(20.0) {
                (x, one)
            } else {
                (x.rexp().rln1p(), sigmoid(x))
            }
        }
        Activation::Tanh => {
            let y = x.rtanh();
            (y, one - y * y)
        }
    }
}

/// `dst (m × n) (=|+=) lhs (m × k) · rhs (k × n)`, one thread.
fn gemm<T: Real>(dst: MatMut<'_, T>, add: bool, lhs: MatRef<'_, T>, rhs: MatRef<'_, T>) {
    matmul(dst, if add { Accum::Add } else { Accum::Replace }, lhs, rhs, T::c(1.0), Par::Seq);
}

fn slice<'a, T: Real>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => Err(candle_core::Error::Msg(format!("{what} must be contiguous for the fused recurrence"))),
    }
}

fn to_vec<T: Real>(t: &Tensor) -> candle_core::Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

/// The leaky RNN / GRU recurrence as one op (see the module docs). `gru` selects the study's
/// leaky GRU (`G = 3` gate blocks `[r, z, n]`, r unused); `decay` is `d = exp(−dt/τ)`.
#[derive(Clone, Copy, Debug)]
pub struct LeakyScan {
    /// Leaky GRU instead of leaky RNN.
    pub gru: bool,
    /// The nonlinearity `f`.
    pub activation: Activation,
    /// `d = exp(−dt/τ)`.
    pub decay: f64,
}

impl LeakyScan {
    fn gates(&self) -> usize {
        if self.gru {
            3
        } else {
            1
        }
    }

    /// New state of unit `j` from its previous state and the step's pre-activations `pre` (G·H).
    #[inline]
    fn update<T: Real>(&self, h: usize, j: usize, hp: T, pre: &[T]) -> T {
        let d = T::c(self.decay);
        let one = T::c(1.0);
        if self.gru {
            let z = sigmoid(pre[h + j]);
            let (fnv, _) = act(self.activation, pre[2 * h + j]);
            (one - z) * hp + z * (d * hp + (one - d) * fnv)
        } else {
            let (f, _) = act(self.activation, pre[j]);
            d * hp + (one - d) * f
        }
    }

    fn forward<T: Real>(&self, u: &[T], w: &[T], b: usize, t: usize, h: usize) -> Vec<T> {
        let gh = self.gates() * h;
        let mut out = vec![T::c(0.0); b * t * h];
        let mut pre = vec![T::c(0.0); b * gh];
        let w_t = MatRef::from_row_major_slice(w, gh, h).transpose();
        for s in 0..t {
            for i in 0..b {
                pre[i * gh..(i + 1) * gh].copy_from_slice(&u[(i * t + s) * gh..(i * t + s + 1) * gh]);
            }
            if s > 0 {
                let prev = MatRef::from_row_major_slice_with_stride(&out[(s - 1) * h..], b, h, t * h);
                gemm(MatMut::from_row_major_slice_mut(&mut pre, b, gh), true, prev, w_t);
            }
            for i in 0..b {
                let p = &pre[i * gh..(i + 1) * gh];
                for j in 0..h {
                    let hp = if s > 0 { out[(i * t + s - 1) * h + j] } else { T::c(0.0) };
                    out[(i * t + s) * h + j] = self.update(h, j, hp, p);
                }
            }
        }
        out
    }

    /// Returns `(∂L/∂u, ∂L/∂W_hh)` from the states and `∂L/∂h` of every step.
    fn backward<T: Real>(
        &self,
        u: &[T],
        w: &[T],
        states: &[T],
        grad: &[T],
        dims: (usize, usize, usize),
    ) -> (Vec<T>, Vec<T>) {
        let (b, t, h) = dims;
        let gh = self.gates() * h;
        let zero = T::c(0.0);
        let one = T::c(1.0);
        let d = T::c(self.decay);
        // h_{t−1} for every step (0 before the first), then every pre-activation at once.
        let mut prev = vec![zero; b * t * h];
        for i in 0..b {
            for s in 1..t {
                prev[(i * t + s) * h..(i * t + s + 1) * h]
                    .copy_from_slice(&states[(i * t + s - 1) * h..(i * t + s) * h]);
            }
        }
        let mut pre = u.to_vec();
        gemm(
            MatMut::from_row_major_slice_mut(&mut pre, b * t, gh),
            true,
            MatRef::from_row_major_slice(&prev, b * t, h),
            MatRef::from_row_major_slice(w, gh, h).transpose(),
        );
        let mut dpre = vec![zero; b * t * gh];
        let mut carry = vec![zero; b * h];
        let mut next = vec![zero; b * h];
        let w_m = MatRef::from_row_major_slice(w, gh, h);
        for s in (0..t).rev() {
            for i in 0..b {
                let base = (i * t + s) * gh;
                for j in 0..h {
                    let g = grad[(i * t + s) * h + j] + carry[i * h + j];
                    let hp = prev[(i * t + s) * h + j];
                    if self.gru {
                        let z = sigmoid(pre[base + h + j]);
                        let (fnv, dfn) = act(self.activation, pre[base + 2 * h + j]);
                        dpre[base + h + j] = g * ((d - one) * hp + (one - d) * fnv) * z * (one - z);
                        dpre[base + 2 * h + j] = g * z * (one - d) * dfn;
                        next[i * h + j] = g * (one - z + z * d);
                    } else {
                        let (_, df) = act(self.activation, pre[base + j]);
                        dpre[base + j] = g * (one - d) * df;
                        next[i * h + j] = g * d;
                    }
                }
            }
            if s > 0 {
                let delta = MatRef::from_row_major_slice_with_stride(&dpre[s * gh..], b, gh, t * gh);
                gemm(MatMut::from_row_major_slice_mut(&mut next, b, h), true, delta, w_m);
            }
            std::mem::swap(&mut carry, &mut next);
        }
        let mut dw = vec![zero; gh * h];
        gemm(
            MatMut::from_row_major_slice_mut(&mut dw, gh, h),
            false,
            MatRef::from_row_major_slice(&dpre, b * t, gh).transpose(),
            MatRef::from_row_major_slice(&prev, b * t, h),
        );
        (dpre, dw)
    }

    fn dims(&self, u: &Layout, w: &Layout) -> candle_core::Result<(usize, usize, usize)> {
        let (b, t, gh) = u.shape().dims3()?;
        let (wr, h) = w.shape().dims2()?;
        if wr != gh || gh != self.gates() * h {
            return Err(candle_core::Error::Msg(format!(
                "leaky scan: u is {:?} and W_hh {:?}; expected u batch × time × {}·H and W_hh {}·H × H",
                u.dims(),
                w.dims(),
                self.gates(),
                self.gates()
            )));
        }
        Ok((b, t, h))
    }
}

impl CustomOp2 for LeakyScan {
    fn name(&self) -> &'static str {
        "dynsim-leaky-scan"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, t, h) = self.dims(l1, l2)?;
        let out = match (s1, s2) {
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(self.forward(slice::<f64>(s1, l1, "u")?, slice::<f64>(s2, l2, "W_hh")?, b, t, h))
            }
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(self.forward(slice::<f32>(s1, l1, "u")?, slice::<f32>(s2, l2, "W_hh")?, b, t, h))
            }
            _ => return Err(candle_core::Error::Msg("leaky scan runs in f32 or f64, both inputs alike".into())),
        };
        Ok((out, Shape::from((b, t, h))))
    }

    fn bwd(
        &self,
        u: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, gh) = u.dims3()?;
        let h = gh / self.gates();
        let dev = u.device();
        macro_rules! run {
            ($ty:ty) => {{
                let (du, dw) = self.backward::<$ty>(
                    &to_vec(u)?,
                    &to_vec(w)?,
                    &to_vec(res)?,
                    &to_vec(&grad.to_dtype(u.dtype())?)?,
                    (b, t, h),
                );
                (Tensor::from_vec(du, (b, t, gh), dev)?, Tensor::from_vec(dw, (gh, h), dev)?)
            }};
        }
        let (du, dw) = match u.dtype() {
            candle_core::DType::F64 => run!(f64),
            candle_core::DType::F32 => run!(f32),
            other => return Err(candle_core::Error::Msg(format!("leaky scan runs in f32 or f64, not {other:?}"))),
        };
        Ok((Some(du), Some(dw)))
    }
}

/// Mamba's selective scan as one op (see the module docs). Inputs: `xd` = `[x | Δ]`
/// (`batch × time × 2E`), `A` (`E × N`), `bc` = `[B | C]` (`batch × time × 2N`). Output:
/// `y` (`batch × time × E`, without the `D·x` skip), or with `states` the SSM state `h_t`
/// (`batch × time × E·N`, row-major), which has no backward pass.
#[derive(Clone, Copy, Debug)]
pub struct SelectiveScan {
    /// Emit the states instead of `y`.
    pub states: bool,
}

struct ScanDims {
    b: usize,
    t: usize,
    e: usize,
    n: usize,
}

impl SelectiveScan {
    fn dims(xd: &[usize], a: &[usize], bc: &[usize]) -> candle_core::Result<ScanDims> {
        let ok = xd.len() == 3 && a.len() == 2 && bc.len() == 3 && xd[2] == 2 * a[0] && bc[2] == 2 * a[1];
        let ok = ok && bc[0] == xd[0] && bc[1] == xd[1];
        if !ok {
            return Err(candle_core::Error::Msg(format!(
                "selective scan: [x|Δ] {xd:?}, A {a:?}, [B|C] {bc:?} do not fit (batch × time × 2E, E × N, batch × time × 2N)"
            )));
        }
        Ok(ScanDims { b: xd[0], t: xd[1], e: a[0], n: a[1] })
    }

    /// Runs the scan; `keep` receives every state when given (`b·t·e·n`).
    fn forward<T: Real>(xd: &[T], a: &[T], bc: &[T], s: &ScanDims, mut keep: Option<&mut [T]>) -> Vec<T> {
        let ScanDims { b, t, e, n } = *s;
        let zero = T::c(0.0);
        let mut y = vec![zero; b * t * e];
        let mut h = vec![zero; e * n];
        for i in 0..b {
            h.iter_mut().for_each(|v| *v = zero);
            for s in 0..t {
                let row = (i * t + s) * 2 * e;
                let brow = &bc[(i * t + s) * 2 * n..(i * t + s) * 2 * n + n];
                let crow = &bc[(i * t + s) * 2 * n + n..(i * t + s + 1) * 2 * n];
                for c in 0..e {
                    let (x, dt) = (xd[row + c], xd[row + e + c]);
                    let hc = &mut h[c * n..(c + 1) * n];
                    let ac = &a[c * n..(c + 1) * n];
                    let mut acc = zero;
                    for k in 0..n {
                        hc[k] = (dt * ac[k]).rexp() * hc[k] + dt * brow[k] * x;
                        acc += hc[k] * crow[k];
                    }
                    y[(i * t + s) * e + c] = acc;
                }
                if let Some(keep) = keep.as_deref_mut() {
                    keep[(i * t + s) * e * n..(i * t + s + 1) * e * n].copy_from_slice(&h);
                }
            }
        }
        y
    }

    /// Returns `(∂L/∂[x|Δ], ∂L/∂A, ∂L/∂[B|C])` from `∂L/∂y`.
    fn backward<T: Real>(xd: &[T], a: &[T], bc: &[T], dy: &[T], s: &ScanDims) -> (Vec<T>, Vec<T>, Vec<T>) {
        let ScanDims { b, t, e, n } = *s;
        let zero = T::c(0.0);
        let mut hs = vec![zero; b * t * e * n];
        Self::forward(xd, a, bc, s, Some(&mut hs));
        let mut dxd = vec![zero; b * t * 2 * e];
        let mut da = vec![zero; e * n];
        let mut dbc = vec![zero; b * t * 2 * n];
        let mut carry = vec![zero; e * n];
        for i in 0..b {
            carry.iter_mut().for_each(|v| *v = zero);
            for s in (0..t).rev() {
                let r = i * t + s;
                let row = r * 2 * e;
                for c in 0..e {
                    let (x, dt) = (xd[row + c], xd[row + e + c]);
                    let g = dy[r * e + c];
                    let (mut dx, mut ddt) = (zero, zero);
                    for k in 0..n {
                        let bk = bc[r * 2 * n + k];
                        let ck = bc[r * 2 * n + n + k];
                        let hk = hs[r * e * n + c * n + k];
                        let hp = if s > 0 { hs[(r - 1) * e * n + c * n + k] } else { zero };
                        let ak = a[c * n + k];
                        let decay = (dt * ak).rexp();
                        let dh = carry[c * n + k] + g * ck;
                        dbc[r * 2 * n + n + k] += g * hk;
                        // h = exp(Δ A) h_prev + Δ B x
                        let dd = dh * hp * decay; // ∂L/∂(Δ A)
                        ddt += dd * ak + dh * bk * x;
                        da[c * n + k] += dd * dt;
                        dbc[r * 2 * n + k] += dh * dt * x;
                        dx += dh * dt * bk;
                        carry[c * n + k] = dh * decay;
                    }
                    dxd[row + c] += dx;
                    dxd[row + e + c] += ddt;
                }
            }
        }
        (dxd, da, dbc)
    }
}

impl CustomOp3 for SelectiveScan {
    fn name(&self) -> &'static str {
        "dynsim-selective-scan"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Self::dims(l1.dims(), l2.dims(), l3.dims())?;
        macro_rules! run {
            ($ty:ty, $variant:ident) => {{
                let (xd, a, bc) =
                    (slice::<$ty>(s1, l1, "[x|Δ]")?, slice::<$ty>(s2, l2, "A")?, slice::<$ty>(s3, l3, "[B|C]")?);
                if self.states {
                    let mut hs = vec![0.0 as $ty; d.b * d.t * d.e * d.n];
                    Self::forward(xd, a, bc, &d, Some(&mut hs));
                    (CpuStorage::$variant(hs), Shape::from((d.b, d.t, d.e * d.n)))
                } else {
                    (CpuStorage::$variant(Self::forward(xd, a, bc, &d, None)), Shape::from((d.b, d.t, d.e)))
                }
            }};
        }
        Ok(match (s1, s2, s3) {
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => run!(f64, F64),
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => run!(f32, F32),
            _ => return Err(candle_core::Error::Msg("selective scan runs in f32 or f64, all inputs alike".into())),
        })
    }

    fn bwd(
        &self,
        xd: &Tensor,
        a: &Tensor,
        bc: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.states {
            return Err(candle_core::Error::BackwardNotSupported { op: "dynsim-selective-scan (states)" });
        }
        let d = Self::dims(xd.dims(), a.dims(), bc.dims())?;
        let dev = xd.device();
        macro_rules! run {
            ($ty:ty) => {{
                let (g1, g2, g3) = Self::backward::<$ty>(
                    &to_vec(xd)?,
                    &to_vec(a)?,
                    &to_vec(bc)?,
                    &to_vec(&grad.to_dtype(xd.dtype())?)?,
                    &d,
                );
                (
                    Tensor::from_vec(g1, xd.dims(), dev)?,
                    Tensor::from_vec(g2, a.dims(), dev)?,
                    Tensor::from_vec(g3, bc.dims(), dev)?,
                )
            }};
        }
        let (g1, g2, g3) = match xd.dtype() {
            candle_core::DType::F64 => run!(f64),
            candle_core::DType::F32 => run!(f32),
            other => return Err(candle_core::Error::Msg(format!("selective scan runs in f32 or f64, not {other:?}"))),
        };
        Ok((Some(g1), Some(g2), Some(g3)))
    }
}
