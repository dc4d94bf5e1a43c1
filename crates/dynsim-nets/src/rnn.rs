//! Forward passes of the leaky RNN and the study's leaky GRU.

use candle_core::{Tensor, D};

use crate::fused::LeakyScan;
use crate::model::{Arch, Network, Output, GRU_GATES};
use crate::Result;

/// `inputs` is `batch × time × n_inputs`, contiguous, in the network's dtype and device.
pub(crate) fn forward(net: &Network, inputs: &Tensor, want_states: bool) -> Result<Output> {
    let cfg = net.config();
    let (b, t, i) = inputs.dims3()?;
    let h = cfg.hidden;
    let w_ih = net.tensor("weight_ih")?;
    let w_hh = net.tensor("weight_hh")?;
    let bias = net.tensor("bias")?;
    let w_out = net.tensor("readout.weight")?;
    let gates = if cfg.arch == Arch::LeakyGru { GRU_GATES } else { 1 };
    let states = if net.use_fused() {
        // One matmul projects every step's input (no per-step indexing of a tracked tensor,
        // whose gradient would cost a full-size zero tensor per step), then one fused op runs the
        // recurrence with its hand-written backward pass.
        let u = inputs.reshape((b * t, i))?.matmul(&w_ih.t()?)?.broadcast_add(bias)?.reshape((b, t, gates * h))?;
        let op = LeakyScan { gru: cfg.arch == Arch::LeakyGru, activation: cfg.activation, decay: cfg.decay() };
        u.apply_op2(&w_hh.contiguous()?, op)?
    } else {
        composed(net, inputs, gates)?
    };
    let logits = states.reshape((b * t, h))?.matmul(&w_out.t()?)?.reshape((b, t, cfg.n_outputs))?;
    Ok(Output { logits, states: want_states.then_some(states) })
}

/// The recurrence as candle ops, one step at a time: slicing the constant input per step has no
/// gradient to pay for, and the per-step states are stacked once at the end.
fn composed(net: &Network, inputs: &Tensor, gates: usize) -> Result<Tensor> {
    let cfg = net.config();
    let (b, t, _) = inputs.dims3()?;
    let h = cfg.hidden;
    let d = cfg.decay();
    let w_ih_t = net.tensor("weight_ih")?.t()?;
    let w_hh_t = net.tensor("weight_hh")?.t()?;
    let bias = net.tensor("bias")?;
    let mut state = Tensor::zeros((b, h), net.dtype(), net.device())?;
    let mut all = Vec::with_capacity(t);
    for s in 0..t {
        let x_s = inputs.narrow(1, s, 1)?.squeeze(1)?;
        let pre = x_s.matmul(&w_ih_t)?.broadcast_add(bias)?;
        let pre = if s == 0 { pre } else { (pre + state.matmul(&w_hh_t)?)? };
        state = if gates == 1 {
            ((&state * d)? + (cfg.activation.apply(&pre)? * (1.0 - d))?)?
        } else {
            // [r, z, n]: r unused (the study's variant).
            let z = candle_nn::ops::sigmoid(&pre.narrow(D::Minus1, h, h)?)?;
            let n = pre.narrow(D::Minus1, 2 * h, h)?;
            let leak = ((&state * d)? + (cfg.activation.apply(&n)? * (1.0 - d))?)?;
            ((z.ones_like()? - &z)? * &state + (z * leak)?)?
        };
        all.push(state.clone());
    }
    Ok(Tensor::stack(&all, 1)?)
}
