//! Mamba as mambapy 1.0.0 with the study's wrapper:
//! `Linear(n_inputs → d_model, bias)` → n_layers × (x + MambaBlock(RMSNorm(x))) → RMSNorm →
//! `Linear(d_model → n_outputs, no bias)`.
//!
//! A MambaBlock (Gu & Dao 2023): `[x | z] = in_proj(u)`; `x ← SiLU(conv1d(x))` with a causal
//! depthwise convolution of length `D_CONV`; `[δ | B | C] = x_proj(x)`;
//! `Δ = softplus(dt_proj(δ))`; `A = −exp(A_log)`; the selective scan
//! `h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t x_t`, `y_t = h_t C_t + D ⊙ x_t`; output
//! `out_proj(y ⊙ SiLU(z))`. RMSNorm is `x / sqrt(mean(x²) + ε) ⊙ w`.
//!
//! The recorded state is layer 0's `h_t` (`d_inner × d_state`, row-major) after each step. The
//! step-by-step form ([`composed`]) keeps a convolution buffer of the last `D_CONV − 1` inputs,
//! so its states equal the whole-sequence scan's (the study's code used a 7-long buffer, which
//! lags the state by about 4 steps; we do not copy that).

use candle_core::{Tensor, D};

use crate::fused::SelectiveScan;
use crate::model::{softplus, Network, Output, D_CONV, D_STATE, RMS_EPS};
use crate::Result;

fn rms_norm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let scale = (x.sqr()?.mean_keepdim(D::Minus1)? + RMS_EPS)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&scale)?.broadcast_mul(w)?)
}

/// `x · Wᵀ` over the last dimension of a 2- or 3-dimensional `x`.
fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let last = dims[dims.len() - 1];
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = x.reshape((rows, last))?.matmul(&w.t()?)?;
    let mut out = dims;
    let k = out.len() - 1;
    out[k] = w.dim(0)?;
    Ok(y.reshape(out)?)
}

struct Layer<'a> {
    a_log: &'a Tensor,
    d: &'a Tensor,
    in_proj: &'a Tensor,
    conv_w: &'a Tensor,
    conv_b: &'a Tensor,
    x_proj: &'a Tensor,
    dt_w: &'a Tensor,
    dt_b: &'a Tensor,
    out_proj: &'a Tensor,
    norm: &'a Tensor,
}

fn layers(net: &Network) -> Result<Vec<Layer<'_>>> {
    (0..net.config().n_layers)
        .map(|l| {
            let p = |s: &str| net.tensor(&format!("mamba.layers.{l}.{s}"));
            Ok(Layer {
                a_log: p("mixer.A_log")?,
                d: p("mixer.D")?,
                in_proj: p("mixer.in_proj.weight")?,
                conv_w: p("mixer.conv1d.weight")?,
                conv_b: p("mixer.conv1d.bias")?,
                x_proj: p("mixer.x_proj.weight")?,
                dt_w: p("mixer.dt_proj.weight")?,
                dt_b: p("mixer.dt_proj.bias")?,
                out_proj: p("mixer.out_proj.weight")?,
                norm: p("norm.weight")?,
            })
        })
        .collect()
}

/// `inputs` is `batch × time × n_inputs`, contiguous, in the network's dtype and device.
pub(crate) fn forward(net: &Network, inputs: &Tensor, want_states: bool) -> Result<Output> {
    let (logits, states) = if net.use_fused() { sequence(net, inputs, want_states)? } else { composed(net, inputs)? };
    Ok(Output { logits, states: if want_states { states } else { None } })
}

/// The whole sequence at once: every projection and the convolution over all steps, the scan as
/// the fused [`SelectiveScan`].
fn sequence(net: &Network, inputs: &Tensor, want_states: bool) -> Result<(Tensor, Option<Tensor>)> {
    let cfg = net.config();
    let (_, t, _) = inputs.dims3()?;
    let (e, r, n) = (cfg.d_inner(), cfg.dt_rank(), D_STATE);
    let mut x = linear(inputs, net.tensor("embedding.weight")?)?.broadcast_add(net.tensor("embedding.bias")?)?;
    let mut states = None;
    for (l, p) in layers(net)?.iter().enumerate() {
        let u = rms_norm(&x, p.norm)?;
        let xz = linear(&u, p.in_proj)?;
        let xi = xz.narrow(D::Minus1, 0, e)?;
        let z = xz.narrow(D::Minus1, e, e)?;
        // Causal depthwise convolution: output t sees inputs t−3..t (zeros before the start).
        let padded = xi.pad_with_zeros(1, D_CONV - 1, 0)?;
        let w = p.conv_w.reshape((e, D_CONV))?;
        let mut conv = p.conv_b.unsqueeze(0)?.unsqueeze(0)?;
        for k in 0..D_CONV {
            let tap = w.narrow(1, k, 1)?.squeeze(1)?;
            conv = conv.broadcast_add(&padded.narrow(1, k, t)?.broadcast_mul(&tap)?)?;
        }
        let xc = candle_nn::ops::silu(&conv)?;
        let dbc = linear(&xc, p.x_proj)?;
        let delta = softplus(&linear(&dbc.narrow(D::Minus1, 0, r)?, p.dt_w)?.broadcast_add(p.dt_b)?)?;
        let a = p.a_log.exp()?.neg()?.contiguous()?;
        let xd = Tensor::cat(&[&xc, &delta], D::Minus1)?.contiguous()?;
        let bc = dbc.narrow(D::Minus1, r, 2 * n)?.contiguous()?;
        if l == 0 && want_states {
            states = Some(xd.detach().apply_op3_no_bwd(&a.detach(), &bc.detach(), &SelectiveScan { states: true })?);
        }
        let y = xd.apply_op3(&a, &bc, SelectiveScan { states: false })?;
        let y = (y + xc.broadcast_mul(p.d)?)?;
        let gated = (y * candle_nn::ops::silu(&z)?)?;
        x = (x + linear(&gated, p.out_proj)?)?;
    }
    let x = rms_norm(&x, net.tensor("norm_f.weight")?)?;
    Ok((linear(&x, net.tensor("lm_head.weight")?)?, states))
}

/// Step by step with candle ops and a convolution buffer of the last `D_CONV − 1` inputs per
/// layer, the way a recording runs a trained model; used on non-CPU devices and as the tests'
/// independent implementation.
fn composed(net: &Network, inputs: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
    let cfg = net.config();
    let (b, t, _) = inputs.dims3()?;
    let (e, r, n) = (cfg.d_inner(), cfg.dt_rank(), D_STATE);
    let ps = layers(net)?;
    let (dtype, dev) = (net.dtype(), net.device());
    let zeros_e = Tensor::zeros((b, e), dtype, dev)?;
    let mut buffers: Vec<Vec<Tensor>> = ps.iter().map(|_| vec![zeros_e.clone(); D_CONV - 1]).collect();
    let mut ssm: Vec<Tensor> =
        ps.iter().map(|_| Tensor::zeros((b, e, n), dtype, dev)).collect::<candle_core::Result<_>>()?;
    let a: Vec<Tensor> = ps.iter().map(|p| p.a_log.exp()?.neg()).collect::<candle_core::Result<_>>()?;
    let taps: Vec<Tensor> = ps.iter().map(|p| p.conv_w.reshape((e, D_CONV))).collect::<candle_core::Result<_>>()?;
    let (mut logits, mut states) = (Vec::with_capacity(t), Vec::with_capacity(t));
    for s in 0..t {
        let x_s = inputs.narrow(1, s, 1)?.squeeze(1)?;
        let mut x = linear(&x_s, net.tensor("embedding.weight")?)?.broadcast_add(net.tensor("embedding.bias")?)?;
        for (l, p) in ps.iter().enumerate() {
            let u = rms_norm(&x, p.norm)?;
            let xz = linear(&u, p.in_proj)?;
            let xi = xz.narrow(1, 0, e)?;
            let z = xz.narrow(1, e, e)?;
            let mut conv = p
                .conv_b
                .unsqueeze(0)?
                .broadcast_add(&xi.broadcast_mul(&taps[l].narrow(1, D_CONV - 1, 1)?.squeeze(1)?)?)?;
            for (k, past) in buffers[l].iter().enumerate() {
                conv = (conv + past.broadcast_mul(&taps[l].narrow(1, k, 1)?.squeeze(1)?)?)?;
            }
            buffers[l].remove(0);
            buffers[l].push(xi.clone());
            let xc = candle_nn::ops::silu(&conv)?;
            let dbc = linear(&xc, p.x_proj)?;
            let delta = softplus(&linear(&dbc.narrow(1, 0, r)?, p.dt_w)?.broadcast_add(p.dt_b)?)?;
            let bm = dbc.narrow(1, r, n)?;
            let cm = dbc.narrow(1, r + n, n)?;
            let d3 = delta.unsqueeze(2)?;
            let decay = d3.broadcast_mul(&a[l].unsqueeze(0)?)?.exp()?;
            let input = d3.broadcast_mul(&bm.unsqueeze(1)?)?.broadcast_mul(&xc.unsqueeze(2)?)?;
            ssm[l] = ((decay * &ssm[l])? + input)?;
            let y = ssm[l].broadcast_mul(&cm.unsqueeze(1)?)?.sum(2)?;
            let y = (y + xc.broadcast_mul(p.d)?)?;
            let gated = (y * candle_nn::ops::silu(&z)?)?;
            x = (x + linear(&gated, p.out_proj)?)?;
        }
        states.push(ssm[0].reshape((b, e * n))?);
        let xf = rms_norm(&x, net.tensor("norm_f.weight")?)?;
        logits.push(linear(&xf, net.tensor("lm_head.weight")?)?);
    }
    Ok((Tensor::stack(&logits, 1)?, Some(Tensor::stack(&states, 1)?)))
}
