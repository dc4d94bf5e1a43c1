//! Forward passes of the leaky RNN and the study's leaky GRU.

use candle_core::{DType, Tensor, D};

use crate::fused::{kept_states, LeakyScan};
use crate::model::{Arch, Network, Output, GRU_GATES};
use crate::Result;

/// `inputs` is `batch × time × n_inputs`, contiguous, in the network's dtype and device.
pub(crate) fn forward(net: &Network, inputs: &Tensor, want_states: bool) -> Result<Output> {
    let cfg = net.config();
    let (b, t, _) = inputs.dims3()?;
    let h = cfg.hidden;
    let w_ih = net.tensor("weight_ih")?;
    let w_hh = net.tensor("weight_hh")?;
    let bias = net.tensor("bias")?;
    let w_out = net.tensor("readout.weight")?;
    let gru = cfg.arch == Arch::LeakyGru;
    if net.use_fused() {
        // One op runs input projection, recurrence and readout with its hand-written backward
        // pass; only the logits enter the autograd graph (see `LeakyScan`).
        let w_in = Tensor::cat(&[w_ih, &bias.unsqueeze(1)?], 1)?;
        let w_rec = Tensor::cat(&[w_hh, w_out], 0)?;
        let op = LeakyScan::new(gru, cfg.activation, cfg.decay());
        let tape = op.tape_handle();
        let logits = inputs.apply_op3(&w_in, &w_rec, op)?;
        let states = if want_states {
            let kept = match inputs.dtype() {
                DType::F64 => {
                    kept_states::<f64>(&tape, b, t, h).map(|v| Tensor::from_vec(v, (b, t, h), inputs.device()))
                }
                _ => kept_states::<f32>(&tape, b, t, h).map(|v| Tensor::from_vec(v, (b, t, h), inputs.device())),
            };
            match kept {
                Some(s) => Some(s?),
                None => Some(inputs.detach().apply_op3_no_bwd(
                    &w_in.detach(),
                    &w_rec.detach(),
                    &LeakyScan::new(gru, cfg.activation, cfg.decay()).states(),
                )?),
            }
        } else {
            None
        };
        return Ok(Output { logits, states });
    }
    let states = composed(net, inputs, if gru { GRU_GATES } else { 1 })?;
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
