//! Fused CPU recurrences with hand-written backward passes, as candle custom ops.
//!
//! Written as compositions of candle ops, a recurrence over 400 steps is thousands of tiny ops
//! whose bookkeeping dominates training. These ops run a whole sequence in one call:
//!
//! - [`LeakyScan`]: the leaky RNN / GRU network, input projection, time loop and readout, in
//!   one op whose only autograd output is the logits (`batch × time × O`); the states and the
//!   per-step derivative factors stay in the op's tape. Forward per step: the pre-activations
//!   `b + x_t W_ihᵀ + h_{t−1} W_hhᵀ` (two products against row-major transposed copies of the
//!   weights) and a vectorised element-wise update; the logits are one product at the end.
//!   Backward (backpropagation through time), per step in reverse: the readout term, the
//!   element-wise derivative, and the products for `∂L/∂h_{t−1}` and every weight gradient
//!   while that step's values are in cache. The GRU's unused `r` block is not computed.
//!   States and carried gradients below 1e-30 (f32) are flushed to zero ([`flush`]): they
//!   otherwise decay into the subnormal range, which x86 computes with slow microcode.
//! - [`SelectiveScan`]: Mamba's selective scan (Gu & Dao 2023, as mambapy's `selective_scan`):
//!   `h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t x_t`, `y_t = h_t C_t` per channel, with the exact
//!   reverse-mode derivative for `x`, `Δ`, `A`, `B` and `C`.
//!
//! Both run in f32 or f64, one thread per call (train independent networks in parallel instead:
//! the per-step products are too small to split), and are deterministic.

use std::any::Any;
use std::cell::RefCell;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};
use std::sync::{Arc, Mutex};
use std::thread::LocalKey;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, WithDType};

use crate::model::Activation;

/// The float types the fused ops run in (f32, f64).
pub trait Real:
    WithDType
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
    /// Magnitudes below this are flushed to zero in the recurrences' carried values (see
    /// [`flush`]).
    const TINY: Self;
    /// This thread's spare buffers of this type (see [`buffer`]).
    fn spares() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>>;
}

thread_local! {
    static SPARE_F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static SPARE_F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Spare buffers kept per thread and float type.
const SPARES: usize = 6;
/// Buffers shorter than this come straight from the allocator.
const POOLED_MIN: usize = 1 << 16;

/// A buffer of `len` copies of `fill`. Large ones are reused from this thread's spares (given
/// back with [`recycle`]) when one is big enough: a training loop then does not map, and
/// page-fault, fresh memory for its tapes and scratch every batch (about a tenth of a GRU
/// batch's time before). At most [`SPARES`] buffers per thread and type are kept.
fn buffer<T: Real>(len: usize, fill: T) -> Vec<T> {
    if len >= POOLED_MIN {
        let found = T::spares()
            .try_with(|cell| {
                let mut spares = cell.borrow_mut();
                let best =
                    (0..spares.len()).filter(|&i| spares[i].capacity() >= len).min_by_key(|&i| spares[i].capacity())?;
                Some(spares.swap_remove(best))
            })
            .ok()
            .flatten();
        if let Some(mut v) = found {
            v.clear();
            v.resize(len, fill);
            return v;
        }
    }
    vec![fill; len]
}

/// Gives a buffer back to this thread's spares (see [`buffer`]); the smallest is dropped when
/// more than [`SPARES`] are kept.
fn recycle<T: Real>(v: Vec<T>) {
    if v.capacity() < POOLED_MIN {
        return;
    }
    // A thread being torn down has no spares any more: the buffer is then simply dropped.
    let _ = T::spares().try_with(|cell| {
        let mut spares = cell.borrow_mut();
        spares.push(v);
        if spares.len() > SPARES {
            if let Some(small) = (0..spares.len()).min_by_key(|&i| spares[i].capacity()) {
                spares.swap_remove(small);
            }
        }
    });
}

macro_rules! real {
    ($t:ty, $spares:ident, $tiny:expr, $exp:path) => {
        impl Real for $t {
            const TINY: Self = $tiny;
            fn c(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn rexp(self) -> Self {
                $exp(self)
            }
            fn rtanh(self) -> Self {
                self.tanh()
            }
            fn rln1p(self) -> Self {
                self.ln_1p()
            }
            fn spares() -> &'static LocalKey<RefCell<Vec<Vec<Self>>>> {
                &$spares
            }
        }
    };
}
real!(f32, SPARE_F32, 1e-30, exp_f32);
real!(f64, SPARE_F64, 1e-290, f64::exp);

/// `eˣ` in f32 without a library call, so that loops over it vectorise: Cody–Waite range
/// reduction `x = n ln 2 + r` (|r| ≤ ln 2 / 2, `ln 2` split in two parts), Cephes' degree-6
/// minimax polynomial for `eʳ` (`expf.c`, relative error about 1e-7, i.e. 1–2 ulp), and `2ⁿ`
/// built in the exponent bits. `x` is clamped to [−87, 88] first (`e⁸⁸` is near f32's
/// largest value; below `e⁻⁸⁷` the result is under 2e-38). Branch-free; NaN stays NaN.
#[inline]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // NaN stays NaN through every step below (the polynomial is NaN).
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest through the 1.5·2²³ shift (exact for |x log₂ e| < 2²²): the shifted
    // value's low mantissa bits are then n + 2²² as an integer.
    let shifted = x * LOG2E + 12_582_912.0;
    let n = shifted - 12_582_912.0;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let er = p * r * r + r + 1.0;
    // n ∈ [−126, 127] here, so n + 127 is a normal exponent (integer arithmetic on the bits
    // rather than a float-to-int cast, which would keep the loop from vectorising).
    let biased = shifted.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127);
    er * f32::from_bits(biased << 23)
}

/// `x`, or 0 when `|x| <` [`Real::TINY`] (1e-30 in f32, 1e-290 in f64).
///
/// A unit that stays silent decays geometrically (`h ∝ dⁿ`, `d⁴⁰⁰ ≈ 1e-35` at d = 0.82), and
/// so does a gradient carried back through hundreds of leaky steps: both reach the subnormal
/// range, where x86 arithmetic takes a microcode assist on every operation (the leaky RNN at
/// H 256 spent 3x longer in its `∂L/∂W_hh` products for it). Values that small are more than 20
/// orders of magnitude below f32 resolution relative to anything they are summed with, so
/// flushing the states and carried gradients changes no result in practice; in f64 the
/// threshold lies far below anything the golden tests resolve.
#[inline]
fn flush<T: Real>(x: T) -> T {
    // `&`, not `&&`: no branch, so loops over it vectorise.
    if (x < T::TINY) & (-x < T::TINY) {
        T::c(0.0)
    } else {
        x
    }
}

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
#[inline]
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

/// A read-only matrix operand: `rows × cols` values of `data` at `r·rs + c·cs`.
#[derive(Clone, Copy)]
struct Op<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> Op<'a, T> {
    /// A row-major `rows × cols` matrix.
    fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Op { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose (no copy).
    fn t(self) -> Self {
        Op { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    /// Whether every element lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (=|+=) lhs · rhs` with `dst` row-major `lhs.rows × rhs.cols`, on one thread, through
/// the gemm crate (the SIMD kernels candle uses for its own products).
fn gemm<T: Real>(dst: &mut [T], add: bool, lhs: Op<'_, T>, rhs: Op<'_, T>) {
    gemm_rows(dst, rhs.cols, add, lhs, rhs);
}

/// [`gemm`] into a `dst` whose rows are `dst_rs` apart (a block of columns of a wider
/// row-major matrix).
fn gemm_rows<T: Real>(dst: &mut [T], dst_rs: usize, add: bool, lhs: Op<'_, T>, rhs: Op<'_, T>) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    // The bounds the raw-pointer call relies on: checked, not assumed.
    let dst_fits = m == 0 || n == 0 || (dst_rs >= n && (m - 1) * dst_rs + n <= dst.len());
    assert!(rhs.rows == k && dst_fits && lhs.fits() && rhs.fits(), "fused recurrence: product shapes");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !add {
            dst.chunks_mut(dst_rs).take(m).for_each(|row| row[..n].iter_mut().for_each(|v| *v = T::c(0.0)));
        }
        return;
    }
    // SAFETY: every index the kernel touches, r·rs + c·cs for r < rows and c < cols (dst:
    // r·dst_rs + c), was checked above to lie inside its slice; dst is exclusively borrowed and does not alias
    // lhs or rhs (distinct borrows); T is f32 or f64 (the `Real` impls), which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            add,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::c(1.0),
            T::c(1.0),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
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

/// What the leaky scan's forward pass keeps for its backward pass, time-major: the states
/// `h_t` (`time × batch × H`) and, per step and gate block, the values the derivative needs
/// (RNN: `f'(p)`; GRU: `[f'(n), σ(z), f(n)]` in the `[r, z, n]` slots), so the backward pass
/// evaluates no transcendental function. `inputs` identifies the three input buffers it was
/// computed from (addresses and lengths).
struct Tape<T: Real> {
    hs: Vec<T>,
    cell: Vec<T>,
    inputs: [(usize, usize); 3],
}

impl<T: Real> Drop for Tape<T> {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.hs));
        recycle(std::mem::take(&mut self.cell));
    }
}

/// Shapes of one leaky scan: batch, time, inputs, hidden units, outputs.
#[derive(Clone, Copy, Debug)]
struct ScanShape {
    b: usize,
    t: usize,
    i: usize,
    h: usize,
    o: usize,
}

/// The leaky RNN / GRU, input projection, recurrence and readout, as one op (see the module
/// docs). Inputs: `x` (`batch × time × I`), `w_in = [W_ih | b]` (`G·H × (I + 1)`) and
/// `w_rec = [W_hh ; W_out]` (`(G·H + O) × H`). Output: the logits (`batch × time × O`), or with
/// [`LeakyScan::states`] the states `h_t` (`batch × time × H`, no backward pass).
///
/// Only the logits are a tensor of the autograd graph: the states and per-step derivative
/// factors stay inside the op (its tape), so the backward pass allocates no full-size
/// zero-initialised gradient for them and copies nothing. One instance serves one forward pass
/// (candle's `apply_op3` takes it by value); if the backward pass finds no tape of exactly its
/// inputs, it recomputes the forward pass.
pub struct LeakyScan {
    /// Leaky GRU (`G = 3` gate blocks `[r, z, n]`, r unused, as in the study) instead of leaky
    /// RNN (`G = 1`).
    pub gru: bool,
    /// The nonlinearity `f`.
    pub activation: Activation,
    /// `d = exp(−dt/τ)`.
    pub decay: f64,
    /// Emit the states instead of the logits.
    pub states: bool,
    kept: Arc<Mutex<Option<Box<dyn Any + Send>>>>,
}

impl std::fmt::Debug for LeakyScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakyScan")
            .field("gru", &self.gru)
            .field("activation", &self.activation)
            .field("decay", &self.decay)
            .field("states", &self.states)
            .finish_non_exhaustive()
    }
}

/// Address and length of a buffer, to recognise the tape's inputs.
fn id_of<T>(s: &[T]) -> (usize, usize) {
    (s.as_ptr() as usize, s.len())
}

impl LeakyScan {
    /// The op for one forward pass of the logits.
    pub fn new(gru: bool, activation: Activation, decay: f64) -> Self {
        LeakyScan { gru, activation, decay, states: false, kept: Arc::new(Mutex::new(None)) }
    }

    /// The same op emitting the states instead (forward only).
    pub fn states(mut self) -> Self {
        self.states = true;
        self
    }

    fn gates(&self) -> usize {
        if self.gru {
            3
        } else {
            1
        }
    }

    /// Leading pre-activation columns nothing reads: the GRU's `r` block (the study computes it
    /// and never uses it). Its products are skipped, which changes no output; its gradients
    /// are zero.
    fn unused(&self, h: usize) -> usize {
        if self.gru {
            h
        } else {
            0
        }
    }

    fn shape(&self, x: &[usize], w_in: &[usize], w_rec: &[usize]) -> candle_core::Result<ScanShape> {
        let g = self.gates();
        let ok = x.len() == 3 && w_in.len() == 2 && w_rec.len() == 2;
        let ok = ok && w_rec[1] > 0 && w_in[0] == g * w_rec[1] && w_in[1] == x[2] + 1 && w_rec[0] > w_in[0];
        if !ok {
            return Err(candle_core::Error::Msg(format!(
                "leaky scan: x {x:?}, [W_ih | b] {w_in:?}, [W_hh ; W_out] {w_rec:?} do not fit (batch × time × I, \
                 {g}·H × (I + 1), ({g}·H + O) × H)"
            )));
        }
        Ok(ScanShape { b: x[0], t: x[1], i: x[2], h: w_rec[1], o: w_rec[0] - w_in[0] })
    }

    /// The forward recurrence with the activation known at compile time, so the element loops
    /// vectorise.
    fn run<T: Real>(&self, x: &[T], w_in: &[T], w_rec: &[T], d: ScanShape) -> Tape<T> {
        let a = self.activation;
        match a {
            Activation::Relu => self.run_with(x, w_in, w_rec, d, |v| act(Activation::Relu, v)),
            Activation::LeakyRelu => self.run_with(x, w_in, w_rec, d, |v| act(Activation::LeakyRelu, v)),
            Activation::Softplus => self.run_with(x, w_in, w_rec, d, |v| act(Activation::Softplus, v)),
            Activation::Tanh => self.run_with(x, w_in, w_rec, d, |v| act(Activation::Tanh, v)),
        }
    }

    /// Per step: pre-activations `b + x_t W_ihᵀ + h_{t−1} W_hhᵀ` (two products into the tape's
    /// step block), then the element-wise update, which overwrites the block with the
    /// derivative factors.
    fn run_with<T: Real, F: Fn(T) -> (T, T)>(&self, x: &[T], w_in: &[T], w_rec: &[T], d: ScanShape, f: F) -> Tape<T> {
        let ScanShape { b, t, i: ni, h, .. } = d;
        let gh = self.gates() * h;
        let (bh, bgh) = (b * h, b * gh);
        let zero = T::c(0.0);
        let one = T::c(1.0);
        let dk = T::c(self.decay);
        let mut hs = buffer(t * bh, zero);
        let mut cell = buffer(t * bgh, zero);
        let zeros = vec![zero; bh];
        let bias: Vec<T> = (0..gh).map(|r| w_in[r * (ni + 1) + ni]).collect();
        let (skip, used) = (self.unused(h), gh - self.unused(h));
        // The transposed weights as row-major copies: gemm runs the per-step products about
        // 1.5x faster with a row-major right-hand side than with a transposed view.
        let w_ih_t = transposed(Op { data: &w_in[skip * (ni + 1)..], rows: used, cols: ni, rs: ni + 1, cs: 1 });
        let w_hh_t = transposed(Op::rows(&w_rec[skip * h..gh * h], used, h));
        let (w_ih_t, w_hh_t) = (Op::rows(&w_ih_t, ni, used), Op::rows(&w_hh_t, h, used));
        for s in 0..t {
            let (done, rest) = hs.split_at_mut(s * bh);
            let cur = &mut rest[..bh];
            let p = &mut cell[s * bgh..(s + 1) * bgh];
            p.chunks_exact_mut(gh).for_each(|row| row.copy_from_slice(&bias));
            // Step s of every sample: rows i·t + s of the batch-major input.
            let x_s = Op { data: &x[s * ni..], rows: b, cols: ni, rs: t * ni, cs: 1 };
            gemm_rows(&mut p[skip..], gh, true, x_s, w_ih_t);
            let prev = if s > 0 { &done[(s - 1) * bh..s * bh] } else { &zeros[..] };
            if s > 0 {
                gemm_rows(&mut p[skip..], gh, true, Op::rows(prev, b, h), w_hh_t);
            }
            for ((pr, c), hp) in p.chunks_exact_mut(gh).zip(cur.chunks_exact_mut(h)).zip(prev.chunks_exact(h)) {
                // Zipped iterators (no index bounds checks), so these loops vectorise.
                if self.gru {
                    let (r, zn) = pr.split_at_mut(h);
                    let (z, n) = zn.split_at_mut(h);
                    // Simple loops, one function each, vectorise reliably.
                    z.iter_mut().for_each(|z| *z = sigmoid(*z));
                    for (n, r) in n.iter_mut().zip(r.iter_mut()) {
                        (*n, *r) = f(*n);
                    }
                    for (((c, &hp), &zj), &fv) in c.iter_mut().zip(hp).zip(&*z).zip(&*n) {
                        *c = flush((one - zj) * hp + zj * (dk * hp + (one - dk) * fv));
                    }
                } else {
                    for (p, (c, &hp)) in pr.iter_mut().zip(c.iter_mut().zip(hp)) {
                        let (fv, dv) = f(*p);
                        *c = flush(dk * hp + (one - dk) * fv);
                        *p = dv;
                    }
                }
            }
        }
        Tape { hs, cell, inputs: [id_of(x), id_of(w_in), id_of(w_rec)] }
    }

    /// Logits, batch-major, from the time-major states: one product `H_all W_outᵀ`.
    fn logits<T: Real>(&self, hs: &[T], w_rec: &[T], d: ScanShape) -> Vec<T> {
        let ScanShape { b, t, h, o, .. } = d;
        let gh = self.gates() * h;
        let mut tm = vec![T::c(0.0); t * b * o];
        gemm(&mut tm, false, Op::rows(hs, t * b, h), Op::rows(&w_rec[gh * h..], o, h).t());
        to_batch_major(&tm, b, t, o)
    }

    /// Returns `(∂L/∂x if wanted, ∂L/∂w_in, ∂L/∂w_rec)` from `∂L/∂logits` (batch-major).
    /// Backpropagation through time, one step at a time in reverse: `∂L/∂h_s` is the carried
    /// term plus the readout's `g_s W_out`; the element-wise derivative gives `δ_s` (the
    /// pre-activations' gradient); then, while `δ_s` and `h_{s−1}` are in cache, the weight
    /// gradients accumulate `δ_sᵀ h_{s−1}`, `δ_sᵀ [x_s | 1]`, `g_sᵀ h_s`, and the carry becomes
    /// `∂L/∂h_{s−1} = (direct leak term) + δ_s W_hh`. Nothing of size `time × batch × G·H` is
    /// allocated (per-step accumulation measured faster than one large product at the end).
    fn backward<T: Real>(
        &self,
        (x, w_in, w_rec): (&[T], &[T], &[T]),
        tape: &Tape<T>,
        g: &[T],
        d: ScanShape,
        want_dx: bool,
    ) -> (Option<Vec<T>>, Vec<T>, Vec<T>) {
        let ScanShape { b, t, i: ni, h, o } = d;
        let gh = self.gates() * h;
        let bh = b * h;
        let zero = T::c(0.0);
        let one = T::c(1.0);
        let dk = T::c(self.decay);
        let hs = &tape.hs;
        let (skip, used) = (self.unused(h), gh - self.unused(h));
        let w_out = Op::rows(&w_rec[gh * h..], o, h);
        let w_hh = Op::rows(&w_rec[skip * h..gh * h], used, h);
        let w_ih = Op { data: &w_in[skip * (ni + 1)..], rows: used, cols: ni, rs: ni + 1, cs: 1 };
        let mut dw_rec = vec![zero; (gh + o) * h];
        let (dw_hh, dw_out) = dw_rec.split_at_mut(gh * h);
        let dw_hh = &mut dw_hh[skip * h..];
        let mut dw_in = vec![zero; gh * (ni + 1)];
        let dw_in_used = &mut dw_in[skip * (ni + 1)..];
        let mut dx = want_dx.then(|| vec![zero; b * t * ni]);
        let zeros = vec![zero; bh];
        let mut dp = vec![zero; b * gh];
        // ∂L/∂b of the used rows, contiguous (written into w_in's last column at the end).
        let mut db = vec![zero; used];
        let mut carry = vec![zero; bh];
        let mut next = vec![zero; bh];
        for s in (0..t).rev() {
            // Rows i·t + s of the batch-major `∂L/∂logits` and `x`.
            let g_s = Op { data: &g[s * o..], rows: b, cols: o, rs: t * o, cs: 1 };
            let x_s = Op { data: &x[s * ni..], rows: b, cols: ni, rs: t * ni, cs: 1 };
            let h_s = Op::rows(&hs[s * bh..(s + 1) * bh], b, h);
            // ∂L/∂h_s = carried + readout term; ∂L/∂W_out += g_sᵀ h_s.
            gemm(&mut carry, true, g_s, w_out);
            gemm(dw_out, true, g_s.t(), h_s);
            carry.iter_mut().for_each(|g| *g = flush(*g));
            let cs = &tape.cell[s * b * gh..(s + 1) * b * gh];
            let hp_all = if s > 0 { &hs[(s - 1) * bh..s * bh] } else { &zeros[..] };
            let rows = cs.chunks_exact(gh).zip(dp.chunks_exact_mut(gh));
            let rows = rows.zip(hp_all.chunks_exact(h)).zip(carry.chunks_exact(h).zip(next.chunks_exact_mut(h)));
            for (((c, dpi), hp), (gi, nx)) in rows {
                if self.gru {
                    let (dfn, z, fv) = (&c[..h], &c[h..2 * h], &c[2 * h..]);
                    let (_, dzn) = dpi.split_at_mut(h);
                    let (dz, dn) = dzn.split_at_mut(h);
                    // One output per loop: these vectorise.
                    for ((((dz, &g), &hp), &z), &fv) in dz.iter_mut().zip(gi).zip(hp).zip(z).zip(fv) {
                        *dz = flush(g * ((dk - one) * hp + (one - dk) * fv) * z * (one - z));
                    }
                    for (((dn, &g), &z), &dfn) in dn.iter_mut().zip(gi).zip(z).zip(dfn) {
                        *dn = flush(g * z * (one - dk) * dfn);
                    }
                    for ((nx, &g), &z) in nx.iter_mut().zip(gi).zip(z) {
                        *nx = g * (one - z + z * dk);
                    }
                } else {
                    for ((&df, dp), (nx, &g)) in c.iter().zip(dpi.iter_mut()).zip(nx.iter_mut().zip(gi)) {
                        *dp = flush(g * (one - dk) * df);
                        *nx = g * dk;
                    }
                }
            }
            let dp_used = Op { data: &dp[skip..], rows: b, cols: used, rs: gh, cs: 1 };
            // ∂L/∂[W_ih | b] += δ_sᵀ [x_s | 1] (the W_ih columns by a product, b by row sums).
            gemm_rows(dw_in_used, ni + 1, true, dp_used.t(), x_s);
            for row in dp.chunks_exact(gh) {
                db.iter_mut().zip(&row[skip..]).for_each(|(a, &v)| *a += v);
            }
            if let Some(dx) = dx.as_deref_mut() {
                // Rows i·t + s of the batch-major ∂L/∂x.
                gemm_rows(&mut dx[s * ni..], t * ni, false, dp_used, w_ih);
            }
            if s > 0 {
                // ∂L/∂W_hh += δ_sᵀ h_{s−1}; carry ∂L/∂h_{s−1}.
                gemm(dw_hh, true, dp_used.t(), Op::rows(hp_all, b, h));
                gemm(&mut next, true, dp_used, w_hh);
            }
            std::mem::swap(&mut carry, &mut next);
        }
        for (r, v) in db.into_iter().enumerate() {
            dw_in_used[r * (ni + 1) + ni] = v;
        }
        (dx, dw_in, dw_rec)
    }
}

/// The transpose of `m` as a row-major `m.cols × m.rows` matrix.
fn transposed<T: Real>(m: Op<'_, T>) -> Vec<T> {
    let mut out = Vec::with_capacity(m.rows * m.cols);
    for c in 0..m.cols {
        out.extend((0..m.rows).map(|r| m.data[r * m.rs + c * m.cs]));
    }
    out
}

/// `time × batch × w` → `batch × time × w`.
fn to_batch_major<T: Real>(tm: &[T], b: usize, t: usize, w: usize) -> Vec<T> {
    let mut out = vec![T::c(0.0); b * t * w];
    for s in 0..t {
        for i in 0..b {
            out[(i * t + s) * w..(i * t + s + 1) * w].copy_from_slice(&tm[(s * b + i) * w..(s * b + i + 1) * w]);
        }
    }
    out
}

/// Runs `f` on the contiguous values of a CPU tensor without copying them.
fn with_slice<T: Real, R>(
    t: &Tensor,
    what: &str,
    f: impl FnOnce(&[T]) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(s) => f(slice::<T>(s, layout, what)?),
        _ => Err(candle_core::Error::Msg(format!("{what}: the fused recurrence runs on the CPU"))),
    }
}

impl CustomOp3 for LeakyScan {
    fn name(&self) -> &'static str {
        "dynsim-leaky-scan"
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
        let d = self.shape(l1.dims(), l2.dims(), l3.dims())?;
        macro_rules! run {
            ($ty:ty, $variant:ident) => {{
                let (x, w_in, w_rec) = (
                    slice::<$ty>(s1, l1, "x")?,
                    slice::<$ty>(s2, l2, "[W_ih | b]")?,
                    slice::<$ty>(s3, l3, "[W_hh ; W_out]")?,
                );
                let tape = self.run(x, w_in, w_rec, d);
                if self.states {
                    (CpuStorage::$variant(to_batch_major(&tape.hs, d.b, d.t, d.h)), Shape::from((d.b, d.t, d.h)))
                } else {
                    let logits = self.logits(&tape.hs, w_rec, d);
                    let mut kept = self
                        .kept
                        .lock()
                        .map_err(|_| candle_core::Error::Msg("leaky scan: tape lock poisoned".into()))?;
                    *kept = Some(Box::new(tape));
                    (CpuStorage::$variant(logits), Shape::from((d.b, d.t, d.o)))
                }
            }};
        }
        Ok(match (s1, s2, s3) {
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => run!(f64, F64),
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => run!(f32, F32),
            _ => return Err(candle_core::Error::Msg("leaky scan runs in f32 or f64, all inputs alike".into())),
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_in: &Tensor,
        w_rec: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.states {
            return Err(candle_core::Error::BackwardNotSupported { op: "dynsim-leaky-scan (states)" });
        }
        let d = self.shape(x.dims(), w_in.dims(), w_rec.dims())?;
        let dev = x.device();
        let kept =
            self.kept.lock().map_err(|_| candle_core::Error::Msg("leaky scan: tape lock poisoned".into()))?.take();
        let grad = grad.to_dtype(x.dtype())?.contiguous()?;
        let (x, w_in, w_rec) = (x.contiguous()?, w_in.contiguous()?, w_rec.contiguous()?);
        let want_dx = x.track_op();
        macro_rules! run {
            ($ty:ty) => {{
                with_slice::<$ty, _>(&x, "x", |xs| {
                    with_slice::<$ty, _>(&w_in, "[W_ih | b]", |wi| {
                        with_slice::<$ty, _>(&w_rec, "[W_hh ; W_out]", |wr| {
                            with_slice::<$ty, _>(&grad, "∂L/∂logits", |g| {
                                let ids = [id_of(xs), id_of(wi), id_of(wr)];
                                let tape = match kept.and_then(|k| k.downcast::<Tape<$ty>>().ok()) {
                                    Some(tape) if tape.inputs == ids => *tape,
                                    _ => self.run(xs, wi, wr, d),
                                };
                                let (dx, dwi, dwr) = self.backward::<$ty>((xs, wi, wr), &tape, g, d, want_dx);
                                Ok((
                                    dx.map(|v| Tensor::from_vec(v, (d.b, d.t, d.i), dev)).transpose()?,
                                    Tensor::from_vec(dwi, w_in.dims(), dev)?,
                                    Tensor::from_vec(dwr, w_rec.dims(), dev)?,
                                ))
                            })
                        })
                    })
                })?
            }};
        }
        let (dx, dwi, dwr) = match x.dtype() {
            candle_core::DType::F64 => run!(f64),
            candle_core::DType::F32 => run!(f32),
            other => return Err(candle_core::Error::Msg(format!("leaky scan runs in f32 or f64, not {other:?}"))),
        };
        Ok((dx, Some(dwi), Some(dwr)))
    }
}

/// Takes the states (`batch × time × H`) of the last forward pass of `op` out of its tape, for
/// recording without a second pass; `None` if it has none.
pub(crate) fn kept_states<T: Real>(
    op_kept: &Arc<Mutex<Option<Box<dyn Any + Send>>>>,
    b: usize,
    t: usize,
    h: usize,
) -> Option<Vec<T>> {
    let kept = op_kept.lock().ok()?;
    let tape = kept.as_ref()?.downcast_ref::<Tape<T>>()?;
    Some(to_batch_major(&tape.hs, b, t, h))
}

impl LeakyScan {
    /// A handle on the op's tape (see [`kept_states`]).
    pub(crate) fn tape_handle(&self) -> Arc<Mutex<Option<Box<dyn Any + Send>>>> {
        Arc::clone(&self.kept)
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
        let mut hs = buffer(b * t * e * n, zero);
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
        recycle(hs);
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn exp_f32_is_within_two_ulp_of_exp() {
        let mut worst = 0.0_f64;
        let mut x = -87.0_f32;
        while x <= 88.0 {
            let exact = (x as f64).exp();
            worst = worst.max(((exp_f32(x) as f64) - exact).abs() / exact);
            x += 0.003_1;
        }
        // f32's unit roundoff is 6e-8: two ulp is at most 2.4e-7.
        assert!(worst < 2.4e-7, "worst relative error {worst:e}");
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(1e4).is_finite() && exp_f32(1e4) > 1e38);
        assert!((0.0..3e-38).contains(&exp_f32(-1e4)));
    }

    #[test]
    fn flush_zeroes_only_subnormal_scale_values() {
        assert_eq!(flush(1e-31_f32), 0.0);
        assert_eq!(flush(-1e-31_f32), 0.0);
        assert_eq!(flush(2e-30_f32), 2e-30);
        assert_eq!(flush(-0.5_f64), -0.5);
        assert_eq!(flush(1e-300_f64), 0.0);
        assert_eq!(flush(1e-200_f64), 1e-200);
    }

    fn random(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }

    /// `Σ logits ⊙ r` through the op: a loss whose gradient reaches every input.
    fn loss(gru: bool, x: &Tensor, w_in: &Tensor, w_rec: &Tensor, r: &Tensor) -> Tensor {
        let op = LeakyScan::new(gru, Activation::Tanh, 0.8);
        let logits = x.apply_op3(w_in, w_rec, op).expect("forward");
        (logits * r).expect("product").sum_all().expect("sum")
    }

    /// The input gradient (unused in training, so not covered by the network tests) against
    /// central finite differences in f64, for both cells.
    #[test]
    fn input_gradient_matches_finite_differences() {
        for gru in [false, true] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let (b, t, i, h, o, g) = (2, 5, 3, 4, 2, if gru { 3 } else { 1 });
            let x = Var::from_tensor(&random(&mut rng, &[b, t, i])).expect("var");
            let w_in = random(&mut rng, &[g * h, i + 1]);
            let w_rec = random(&mut rng, &[g * h + o, h]);
            let r = random(&mut rng, &[b, t, o]);
            let grads = loss(gru, x.as_tensor(), &w_in, &w_rec, &r).backward().expect("backward");
            let dx: Vec<f64> = grads.get(x.as_tensor()).expect("dx").flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = x.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for k in 0..base.len() {
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[k] += delta;
                    let xv = Tensor::from_vec(v, (b, t, i), &Device::Cpu).unwrap();
                    loss(gru, &xv, &w_in, &w_rec, &r).to_scalar::<f64>().unwrap()
                };
                let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
                assert!((fd - dx[k]).abs() < 1e-7 * (1.0 + fd.abs()), "gru {gru} x[{k}]: {} vs {fd}", dx[k]);
            }
        }
    }

    /// An op whose tape belongs to other inputs recomputes instead of using it.
    #[test]
    fn backward_ignores_a_tape_of_other_inputs() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (b, t, i, h, o) = (2, 6, 3, 5, 3);
        let x1 = random(&mut rng, &[b, t, i]);
        let x2 = random(&mut rng, &[b, t, i]);
        let w_in = random(&mut rng, &[3 * h, i + 1]);
        let w_rec = random(&mut rng, &[3 * h + o, h]);
        let g = random(&mut rng, &[b, t, o]);
        let values = |r: (Option<Tensor>, Option<Tensor>, Option<Tensor>)| -> Vec<Vec<f64>> {
            [r.1, r.2].into_iter().map(|t| t.expect("gradient").flatten_all().unwrap().to_vec1().unwrap()).collect()
        };
        let fresh = LeakyScan::new(true, Activation::Softplus, 0.8);
        let res = x1.apply_op3_no_bwd(&w_in, &w_rec, &fresh).unwrap();
        let want = values(fresh.bwd(&x1, &w_in, &w_rec, &res, &g).unwrap());
        let stale = LeakyScan::new(true, Activation::Softplus, 0.8);
        let res1 = x1.apply_op3_no_bwd(&w_in, &w_rec, &stale).unwrap();
        x2.apply_op3_no_bwd(&w_in, &w_rec, &stale).unwrap(); // the tape is now x2's
        assert_eq!(values(stale.bwd(&x1, &w_in, &w_rec, &res1, &g).unwrap()), want);
    }
}
