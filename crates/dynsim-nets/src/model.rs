//! Network configuration, parameters (PyTorch names, shapes and default initialisation) and the
//! forward pass and loss shared by the three architectures.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{mamba, rnn, task, NetError, Result};

/// Number of gate blocks in the leaky GRU's `weight_ih` / `weight_hh` / `bias` (r, z, n).
pub const GRU_GATES: usize = 3;

/// The architecture of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// `h_t = d·h_{t−1} + (1 − d)·f(W_ih x_t + W_hh h_{t−1} + b)`, `logits_t = W_out h_t`.
    LeakyRnn,
    /// The study's leaky GRU (see [`Network`]).
    LeakyGru,
    /// Mamba as mambapy 1.0.0 with the study's input and output layers.
    Mamba,
}

impl Arch {
    /// Every architecture.
    pub const ALL: [Arch; 3] = [Arch::LeakyRnn, Arch::LeakyGru, Arch::Mamba];

    /// Name in configs, checkpoints and catalogue keys.
    pub fn name(self) -> &'static str {
        match self {
            Arch::LeakyRnn => "leaky_rnn",
            Arch::LeakyGru => "leaky_gru",
            Arch::Mamba => "mamba",
        }
    }

    /// Parses [`Arch::name`].
    pub fn parse(text: &str) -> Result<Arch> {
        Arch::ALL.into_iter().find(|a| a.name() == text.trim().to_lowercase().replace('-', "_")).ok_or_else(|| {
            NetError::Config(format!(
                "unknown architecture `{text}`; the architectures are {}",
                Arch::ALL.map(Arch::name).join(", ")
            ))
        })
    }
}

/// The nonlinearity `f` of the leaky RNN and GRU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `x` for `x > 0`, `0.01·x` otherwise (PyTorch's default slope).
    LeakyRelu,
    /// `ln(1 + eˣ)`, and `x` above 20 (PyTorch's threshold).
    Softplus,
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// Every activation.
    pub const ALL: [Activation; 4] = [Activation::Relu, Activation::LeakyRelu, Activation::Softplus, Activation::Tanh];

    /// Name in configs and catalogue keys.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky_relu",
            Activation::Softplus => "softplus",
            Activation::Tanh => "tanh",
        }
    }

    /// Parses [`Activation::name`].
    pub fn parse(text: &str) -> Result<Activation> {
        let key = text.trim().to_lowercase().replace('-', "_");
        Activation::ALL.into_iter().find(|a| a.name() == key).ok_or_else(|| {
            NetError::Config(format!(
                "unknown activation `{text}`; the activations are {}",
                Activation::ALL.map(Activation::name).join(", ")
            ))
        })
    }

    /// Applies `f` with candle ops (differentiable).
    pub(crate) fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Relu => x.relu()?,
            Activation::LeakyRelu => candle_nn::ops::leaky_relu(x, 0.01)?,
            Activation::Softplus => softplus(x)?,
            Activation::Tanh => x.tanh()?,
        })
    }
}

/// `ln(1 + eˣ)` as `max(x, 0) + ln(1 + e^{−|x|})`, which never overflows (differentiable).
pub(crate) fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// A network's full configuration: architecture, sizes and time constants.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// The architecture.
    pub arch: Arch,
    /// `f` of the RNN and GRU (unused by Mamba).
    pub activation: Activation,
    /// Hidden units of the RNN and GRU (unused by Mamba).
    pub hidden: usize,
    /// Mamba's model width (unused by the RNNs).
    pub d_model: usize,
    /// Mamba's number of layers (unused by the RNNs).
    pub n_layers: usize,
    /// Input channels (7 for the PDM family).
    pub n_inputs: usize,
    /// Output classes (3 for the PDM family).
    pub n_outputs: usize,
    /// Step in ms (20).
    pub dt_ms: f64,
    /// Time constant τ of the leaky units in ms (100).
    pub tau_ms: f64,
}

/// Mamba's state size per channel (mambapy's default).
pub const D_STATE: usize = 16;
/// Mamba's expansion factor: `d_inner = EXPAND · d_model`.
pub const EXPAND: usize = 2;
/// Length of Mamba's causal depthwise convolution.
pub const D_CONV: usize = 4;
/// ε of Mamba's RMSNorm.
pub const RMS_EPS: f64 = 1e-5;

impl NetConfig {
    /// A leaky RNN or GRU for the PDM family (7 inputs, 3 outputs, dt 20 ms, τ 100 ms).
    pub fn recurrent(arch: Arch, activation: Activation, hidden: usize) -> NetConfig {
        NetConfig {
            arch,
            activation,
            hidden,
            d_model: 0,
            n_layers: 0,
            n_inputs: task::N_INPUTS,
            n_outputs: task::N_OUTPUTS,
            dt_ms: task::DT_MS,
            tau_ms: 100.0,
        }
    }

    /// A Mamba model for the PDM family.
    pub fn mamba(d_model: usize, n_layers: usize) -> NetConfig {
        NetConfig {
            arch: Arch::Mamba,
            activation: Activation::Relu,
            hidden: 0,
            d_model,
            n_layers,
            n_inputs: task::N_INPUTS,
            n_outputs: task::N_OUTPUTS,
            dt_ms: task::DT_MS,
            tau_ms: 100.0,
        }
    }

    /// Checks every value; the error says which one is wrong and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(NetError::Config(what));
        if self.n_inputs == 0 {
            return bad("n_inputs must be at least 1".into());
        }
        if self.n_outputs < 2 {
            return bad(format!("n_outputs must be at least 2 (got {})", self.n_outputs));
        }
        match self.arch {
            Arch::LeakyRnn | Arch::LeakyGru => {
                if self.hidden == 0 {
                    return bad("hidden must be at least 1 unit".into());
                }
                if !(self.dt_ms.is_finite() && self.dt_ms > 0.0) {
                    return bad(format!("dt must be a positive number of ms (got {})", self.dt_ms));
                }
                if !(self.tau_ms.is_finite() && self.tau_ms > 0.0) {
                    return bad(format!("tau must be a positive number of ms (got {})", self.tau_ms));
                }
            }
            Arch::Mamba => {
                if self.d_model == 0 {
                    return bad("d_model must be at least 1".into());
                }
                if self.n_layers == 0 {
                    return bad("Mamba needs at least 1 layer".into());
                }
            }
        }
        Ok(())
    }

    /// The leak `d = exp(−dt/τ)`.
    pub fn decay(&self) -> f64 {
        (-self.dt_ms / self.tau_ms).exp()
    }

    /// Mamba's inner width `EXPAND · d_model`.
    pub fn d_inner(&self) -> usize {
        EXPAND * self.d_model
    }

    /// Mamba's Δ rank `ceil(d_model / 16)`.
    pub fn dt_rank(&self) -> usize {
        self.d_model.div_ceil(16)
    }

    /// Width of the recorded state per step: `hidden` for the RNNs, `d_inner · D_STATE` (layer 0's
    /// SSM state, row-major) for Mamba.
    pub fn state_width(&self) -> usize {
        match self.arch {
            Arch::LeakyRnn | Arch::LeakyGru => self.hidden,
            Arch::Mamba => self.d_inner() * D_STATE,
        }
    }

    /// Every parameter in PyTorch's order: name, shape and its default initialisation.
    pub fn parameters(&self) -> Vec<ParamSpec> {
        let (i, o) = (self.n_inputs, self.n_outputs);
        let u = |fan_in: usize| Init::Uniform(1.0 / (fan_in as f64).sqrt());
        match self.arch {
            Arch::LeakyRnn | Arch::LeakyGru => {
                let h = self.hidden;
                let g = if self.arch == Arch::LeakyGru { GRU_GATES } else { 1 };
                // The study's cells initialise weight_ih and bias with fan_in = n_inputs, weight_hh
                // with fan_in = hidden, and the readout as an nn.Linear(hidden, 3, bias=False).
                vec![
                    ParamSpec::new("weight_ih", &[g * h, i], u(i)),
                    ParamSpec::new("weight_hh", &[g * h, h], u(h)),
                    ParamSpec::new("bias", &[g * h], u(i)),
                    ParamSpec::new("readout.weight", &[o, h], u(h)),
                ]
            }
            Arch::Mamba => {
                let (d, e, r, n) = (self.d_model, self.d_inner(), self.dt_rank(), D_STATE);
                let mut specs = vec![
                    ParamSpec::new("embedding.weight", &[d, i], u(i)),
                    ParamSpec::new("embedding.bias", &[d], u(i)),
                ];
                for l in 0..self.n_layers {
                    let p = |s: &str| format!("mamba.layers.{l}.{s}");
                    specs.extend([
                        ParamSpec::new(&p("mixer.A_log"), &[e, n], Init::ALog),
                        ParamSpec::new(&p("mixer.D"), &[e], Init::Const(1.0)),
                        ParamSpec::new(&p("mixer.in_proj.weight"), &[2 * e, d], u(d)),
                        // Depthwise: fan_in = in_channels / groups · kernel = D_CONV.
                        ParamSpec::new(&p("mixer.conv1d.weight"), &[e, 1, D_CONV], u(D_CONV)),
                        ParamSpec::new(&p("mixer.conv1d.bias"), &[e], u(D_CONV)),
                        ParamSpec::new(&p("mixer.x_proj.weight"), &[r + 2 * n, e], u(e)),
                        ParamSpec::new(&p("mixer.dt_proj.weight"), &[e, r], u(r)),
                        ParamSpec::new(&p("mixer.dt_proj.bias"), &[e], Init::DtBias),
                        ParamSpec::new(&p("mixer.out_proj.weight"), &[d, e], u(e)),
                        ParamSpec::new(&p("norm.weight"), &[d], Init::Const(1.0)),
                    ]);
                }
                specs.push(ParamSpec::new("norm_f.weight", &[d], Init::Const(1.0)));
                specs.push(ParamSpec::new("lm_head.weight", &[o, d], u(d)));
                specs
            }
        }
    }
}

/// How a parameter is initialised (PyTorch's and mambapy's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `U(−a, a)`.
    Uniform(f64),
    /// Every entry the same value.
    Const(f64),
    /// mambapy's `A_log`: row `e` is `ln(1), ln(2), …, ln(d_state)`.
    ALog,
    /// mambapy's Δ bias: `dt = exp(U(ln 1e-3, ln 0.1))` clamped below at 1e-4, then the inverse
    /// softplus `dt + ln(−expm1(−dt))`.
    DtBias,
}

/// One parameter: PyTorch name, shape and initialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// PyTorch `state_dict` name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Initialisation.
    pub init: Init,
}

impl ParamSpec {
    fn new(name: &str, shape: &[usize], init: Init) -> ParamSpec {
        ParamSpec { name: name.to_string(), shape: shape.to_vec(), init }
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let len: usize = self.shape.iter().product();
        match self.init {
            Init::Uniform(a) => (0..len).map(|_| rng.random_range(-a..a)).collect(),
            Init::Const(c) => vec![c; len],
            Init::ALog => {
                let cols = self.shape.last().copied().unwrap_or(1);
                (0..len).map(|k| ((k % cols + 1) as f64).ln()).collect()
            }
            Init::DtBias => (0..len)
                .map(|_| {
                    let (lo, hi) = (1e-3f64.ln(), 0.1f64.ln());
                    let dt = (lo + rng.random::<f64>() * (hi - lo)).exp().max(1e-4);
                    dt + (-(-dt).exp_m1()).ln()
                })
                .collect(),
        }
    }
}

/// A network: configuration plus its parameters as candle [`Var`]s, in PyTorch's order and names.
///
/// The leaky GRU is the study's variant: `[r, z, n] = W_ih x_t + W_hh h_{t−1} + b` (3H rows in
/// that order), `z = σ(z)`, `h_t = (1 − z)·h_{t−1} + z·(d·h_{t−1} + (1 − d)·f(n))`. Its reset gate
/// r is computed and never used, as in the study's code; its rows of the weights therefore get
/// zero gradients (and only the L2 term moves them).
pub struct Network {
    config: NetConfig,
    params: Vec<(String, Var)>,
    fused: bool,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("config", &self.config)
            .field("params", &self.params.iter().map(|(n, v)| (n.as_str(), v.dims().to_vec())).collect::<Vec<_>>())
            .field("fused", &self.fused)
            .finish()
    }
}

/// The result of a forward pass.
pub struct Output {
    /// `batch × time × n_outputs` logits.
    pub logits: Tensor,
    /// `batch × time × state_width` recorded states, when asked for.
    pub states: Option<Tensor>,
}

impl Network {
    /// A freshly initialised network (PyTorch's / mambapy's default initialisation, drawn in
    /// parameter order from ChaCha8 seeded with `seed`).
    pub fn init(config: NetConfig, seed: u64, dtype: DType, device: &Device) -> Result<Network> {
        config.validate()?;
        check_dtype(dtype)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Vec::new();
        for spec in config.parameters() {
            let values = spec.draw(&mut rng);
            let t = Tensor::from_vec(values, spec.shape.as_slice(), device)?.to_dtype(dtype)?;
            params.push((spec.name, Var::from_tensor(&t)?));
        }
        Ok(Network { config, params, fused: true })
    }

    /// A network from named tensors (a checkpoint, or a PyTorch `state_dict` saved with
    /// safetensors). Every parameter of the configuration must be there with its shape; a
    /// missing, mis-shaped or unexpected tensor is an error naming it.
    pub fn from_tensors(
        config: NetConfig,
        tensors: &HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Network> {
        config.validate()?;
        check_dtype(dtype)?;
        let specs = config.parameters();
        let mut params = Vec::new();
        for spec in &specs {
            let t = tensors.get(&spec.name).ok_or_else(|| {
                NetError::Shape(format!(
                    "tensor `{}` (shape {:?}) is missing; a {} with these sizes has {}",
                    spec.name,
                    spec.shape,
                    config.arch.name(),
                    specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            if t.dims() != spec.shape.as_slice() {
                return Err(NetError::Shape(format!(
                    "tensor `{}` has shape {:?}, expected {:?} for a {} with these sizes",
                    spec.name,
                    t.dims(),
                    spec.shape,
                    config.arch.name()
                )));
            }
            let t = t.to_device(device)?.to_dtype(dtype)?;
            params.push((spec.name.clone(), Var::from_tensor(&t)?));
        }
        let mut extra: Vec<&String> = tensors.keys().filter(|k| !specs.iter().any(|s| &s.name == *k)).collect();
        if !extra.is_empty() {
            extra.sort();
            return Err(NetError::Shape(format!(
                "unexpected tensors {extra:?} for a {}; is this a checkpoint of another architecture or size?",
                config.arch.name()
            )));
        }
        Ok(Network { config, params, fused: true })
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The parameters, in PyTorch's order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The parameter called `name`.
    pub fn param(&self, name: &str) -> Result<&Var> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| NetError::Config(format!("{} has no parameter `{name}`", self.config.arch.name())))
    }

    /// Uses the fused CPU recurrences (default) or compositions of candle ops. On devices other
    /// than the CPU the composition is always used.
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        self.params[0].1.device()
    }

    /// The parameters' dtype.
    pub fn dtype(&self) -> DType {
        self.params[0].1.dtype()
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<&Tensor> {
        Ok(self.param(name)?.as_tensor())
    }

    pub(crate) fn use_fused(&self) -> bool {
        self.fused && self.device().is_cpu()
    }

    /// Runs the network on `inputs` (`batch × time × n_inputs`, any float dtype; converted to the
    /// network's) and returns the logits, and the recorded states if `states` is true.
    pub fn forward(&self, inputs: &Tensor, states: bool) -> Result<Output> {
        let dims = inputs.dims();
        if dims.len() != 3 || dims[2] != self.config.n_inputs || dims[0] == 0 || dims[1] == 0 {
            return Err(NetError::Shape(format!(
                "inputs must be batch × time × {} with batch and time at least 1; got shape {:?}",
                self.config.n_inputs, dims
            )));
        }
        let x = inputs.to_device(self.device())?.to_dtype(self.dtype())?.contiguous()?;
        match self.config.arch {
            Arch::LeakyRnn | Arch::LeakyGru => rnn::forward(self, &x, states),
            Arch::Mamba => mamba::forward(self, &x, states),
        }
    }

    /// Σ over every parameter of its Frobenius norm ‖p‖_F (not squared; frozen parameters
    /// included), the study's regulariser.
    pub fn l2_sum_frobenius(&self) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for (_, p) in &self.params {
            let norm = p.as_tensor().sqr()?.sum_all()?.sqrt()?;
            total = Some(match total {
                Some(t) => (t + norm)?,
                None => norm,
            });
        }
        total.ok_or_else(|| NetError::Config("a network without parameters".into()))
    }

    /// The study's loss: mean cross-entropy over every step of the batch + `l2 · Σ‖p‖_F`.
    /// `labels` is `batch × time` (u32). Returns (loss, cross-entropy, Σ‖p‖_F).
    pub fn loss(&self, logits: &Tensor, labels: &Tensor, l2: f64) -> Result<(Tensor, Tensor, Tensor)> {
        let (b, t, o) = logits.dims3()?;
        if labels.dims() != [b, t] {
            return Err(NetError::Shape(format!(
                "labels must be batch × time = {:?} to match the logits; got {:?}",
                [b, t],
                labels.dims()
            )));
        }
        let flat = logits.reshape((b * t, o))?;
        let targets = labels.to_device(logits.device())?.to_dtype(DType::U32)?.reshape(b * t)?;
        let log_p = candle_nn::ops::log_softmax(&flat, D::Minus1)?;
        let ce = log_p.gather(&targets.unsqueeze(1)?, 1)?.neg()?.mean_all()?;
        let reg = self.l2_sum_frobenius()?;
        let loss = (&ce + (&reg * l2)?)?;
        Ok((loss, ce, reg))
    }
}

fn check_dtype(dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F64 => Ok(()),
        other => Err(NetError::Config(format!("networks run in f32 or f64, not {other:?}"))),
    }
}
