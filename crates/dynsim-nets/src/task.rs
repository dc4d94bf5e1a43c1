//! Tasks: the seed study's perceptual-decision-making (PDM) family, and the [`Task`] trait that
//! lets users add their own.
//!
//! The study (Guilhot et al., "Dynamical similarity analysis can identify compositional
//! dynamics developing in RNNs", after neurogym 0.0.2's `PerceptualDecisionMaking` and
//! `PerceptualDecisionMakingDelayResponse`) trains on four rules that share one input format:
//!
//! * `dt` = 20 ms per step;
//! * 7 inputs `[fixation, stim1, stim2, rule_AntiPDM, rule_PDM, rule_PDMDelay, rule_AntiPDMDelay]`,
//!   the rule one-hot being 1 on every step of a sample;
//! * 3 outputs `[fixate, choice1, choice2]`.
//!
//! A trial runs through the periods fixation, stimulus, (delay,) decision. Its coherence is
//! drawn uniformly from {0, 6.4, 12.8, 25.6, 51.2} and its ground-truth side g from {1, 2}.
//! The fixation input is 1 in every period but the decision. During the stimulus the two
//! stimulus inputs have means 0.5 + coh/200 (side g) and 0.5 − coh/200 (the other side) plus
//! i.i.d. N(0, σ²) noise on both at every step, σ = 1/√dt = 0.2236; outside the stimulus both
//! are 0. Labels are 0 on every non-decision step and, on decision steps, g for PDM and
//! PDMDelay and the other side (3 − g) for the anti rules. The decision mask (decision steps)
//! is used for accuracy only; the loss runs over every step.
//!
//! Samples are generated on the fly from explicit seeds ([`sample_seed`]), never stored: the
//! same `(seed, rule, set, index)` always gives the same sample, so every model sees the same
//! evaluation and test trials (the study's code drew a different random subset per model).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::NetError;

/// Milliseconds per step in the whole family.
pub const DT_MS: f64 = 20.0;
/// Number of inputs of every PDM-family sample.
pub const N_INPUTS: usize = 7;
/// Number of outputs (`fixate`, `choice1`, `choice2`).
pub const N_OUTPUTS: usize = 3;
/// Length of a training sample in steps (one complete trial, then the start of the next).
pub const TRAIN_STEPS: usize = 400;
/// The coherences a trial draws from (percent).
pub const COHERENCES: [f64; 5] = [0.0, 6.4, 12.8, 25.6, 51.2];
/// Names of the 7 input channels, in order.
pub const INPUT_NAMES: [&str; N_INPUTS] =
    ["fixation", "stim1", "stim2", "rule_AntiPDM", "rule_PDM", "rule_PDMDelay", "rule_AntiPDMDelay"];

/// Standard deviation of the stimulus noise, σ = 1/√dt with dt in ms (neurogym's `sigma / sqrt(dt)`
/// with σ = 1).
pub fn noise_sd() -> f64 {
    1.0 / DT_MS.sqrt()
}

/// Which timing a trial uses: training draws its period lengths from sets, testing uses fixed ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timing {
    /// Durations drawn uniformly from the training sets.
    Train,
    /// The fixed test durations.
    Test,
}

/// One period of a trial: its name and its steps `start..end` within the trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// `fixation`, `stimulus`, `delay` or `decision` for the PDM family.
    pub name: &'static str,
    /// First step.
    pub start: usize,
    /// One past the last step.
    pub end: usize,
}

/// One generated trial: inputs (steps × inputs, row-major), labels, decision mask and periods.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    /// `steps * n_inputs` values, step-major.
    pub inputs: Vec<f64>,
    /// Target class per step.
    pub labels: Vec<u32>,
    /// `true` on the steps that count for accuracy (decision steps).
    pub mask: Vec<bool>,
    /// The periods in order; they tile `0..steps`.
    pub periods: Vec<Period>,
    /// Coherence of this trial (task-specific; NaN where a task has none).
    pub coherence: f64,
    /// Ground-truth side (task-specific; 0 where a task has none).
    pub ground_truth: u32,
}

impl Trial {
    /// Number of steps.
    pub fn steps(&self) -> usize {
        self.labels.len()
    }

    /// The steps of the period called `name`, if the trial has one.
    pub fn period(&self, name: &str) -> Option<std::ops::Range<usize>> {
        self.periods.iter().find(|p| p.name == name).map(|p| p.start..p.end)
    }
}

/// A task: something that draws trials from a seeded generator. Implement it to train and record
/// networks on your own task; every trial of a task must have `n_inputs()` inputs and labels in
/// `0..n_outputs()`.
pub trait Task: Send + Sync {
    /// Short name (`pdm`, `anti_pdm`, ...), used in configs, catalogue keys and errors.
    fn name(&self) -> &str;
    /// Number of input channels.
    fn n_inputs(&self) -> usize;
    /// Number of output classes.
    fn n_outputs(&self) -> usize;
    /// Names of the periods, in trial order.
    fn period_names(&self) -> Vec<&'static str>;
    /// Draws one trial with the given timing.
    fn trial(&self, timing: Timing, rng: &mut ChaCha8Rng) -> Trial;
    /// Length of a test trial in steps (all test trials of a task have the same length).
    fn test_steps(&self) -> usize;
}

/// The four rules of the PDM family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Perceptual decision making: choose the side with the stronger stimulus.
    Pdm,
    /// Anti: choose the other side.
    AntiPdm,
    /// PDM with a delay between stimulus and decision.
    PdmDelay,
    /// Anti with a delay: the study's target rule.
    AntiPdmDelay,
}

impl Rule {
    /// All rules, in the order of their names in [`Rule::name`].
    pub const ALL: [Rule; 4] = [Rule::Pdm, Rule::AntiPdm, Rule::PdmDelay, Rule::AntiPdmDelay];

    /// The rule's name in configs and catalogue keys: `pdm`, `anti_pdm`, `pdm_delay`, `anti_pdm_delay`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Pdm => "pdm",
            Rule::AntiPdm => "anti_pdm",
            Rule::PdmDelay => "pdm_delay",
            Rule::AntiPdmDelay => "anti_pdm_delay",
        }
    }

    /// Parses a rule name (also accepts the study's `PDM`, `AntiPDM`, `PDMDelay`, `AntiPDMDelay`).
    pub fn parse(text: &str) -> Result<Rule, NetError> {
        let key: String = text.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_lowercase();
        match key.as_str() {
            "pdm" => Ok(Rule::Pdm),
            "antipdm" => Ok(Rule::AntiPdm),
            "pdmdelay" => Ok(Rule::PdmDelay),
            "antipdmdelay" => Ok(Rule::AntiPdmDelay),
            _ => Err(NetError::Config(format!(
                "unknown task `{text}`; the tasks are {}",
                Rule::ALL.map(Rule::name).join(", ")
            ))),
        }
    }

    /// Input channel of this rule's one-hot cue.
    pub fn cue_channel(self) -> usize {
        match self {
            Rule::AntiPdm => 3,
            Rule::Pdm => 4,
            Rule::PdmDelay => 5,
            Rule::AntiPdmDelay => 6,
        }
    }

    /// Whether the rule has a delay period.
    pub fn has_delay(self) -> bool {
        matches!(self, Rule::PdmDelay | Rule::AntiPdmDelay)
    }

    /// Whether the rule asks for the side opposite to the stronger stimulus.
    pub fn is_anti(self) -> bool {
        matches!(self, Rule::AntiPdm | Rule::AntiPdmDelay)
    }

    /// Period durations in ms for the timing; a set is a uniform choice (see the module docs).
    pub fn durations(self, timing: Timing) -> Vec<(&'static str, &'static [f64])> {
        match (timing, self.has_delay()) {
            (Timing::Train, false) => vec![
                ("fixation", &[100.0, 200.0, 300.0]),
                ("stimulus", &[3000.0, 4000.0, 5000.0]),
                ("decision", &[100.0, 200.0, 300.0]),
            ],
            (Timing::Test, false) => vec![("fixation", &[200.0]), ("stimulus", &[4000.0]), ("decision", &[200.0])],
            (Timing::Train, true) => vec![
                ("fixation", &[100.0, 200.0, 300.0]),
                ("stimulus", &[3000.0, 4000.0, 5000.0]),
                ("delay", &[500.0, 1000.0, 1500.0]),
                ("decision", &[100.0, 200.0, 300.0]),
            ],
            (Timing::Test, true) => {
                vec![("fixation", &[500.0]), ("stimulus", &[4000.0]), ("delay", &[2000.0]), ("decision", &[500.0])]
            }
        }
    }
}

impl Task for Rule {
    fn name(&self) -> &str {
        Rule::name(*self)
    }

    fn n_inputs(&self) -> usize {
        N_INPUTS
    }

    fn n_outputs(&self) -> usize {
        N_OUTPUTS
    }

    fn period_names(&self) -> Vec<&'static str> {
        self.durations(Timing::Test).into_iter().map(|(n, _)| n).collect()
    }

    fn test_steps(&self) -> usize {
        self.durations(Timing::Test).iter().map(|(_, d)| steps_of(d[0])).sum()
    }

    fn trial(&self, timing: Timing, rng: &mut ChaCha8Rng) -> Trial {
        // Draw order (fixed, part of the reproducibility contract): durations in period order,
        // then coherence, then side, then the noise step by step (stim1, stim2).
        let mut periods = Vec::new();
        let mut start = 0;
        for (name, set) in self.durations(timing) {
            let ms = if set.len() == 1 { set[0] } else { set[rng.random_range(0..set.len())] };
            let end = start + steps_of(ms);
            periods.push(Period { name, start, end });
            start = end;
        }
        let steps = start;
        let coherence = COHERENCES[rng.random_range(0..COHERENCES.len())];
        let ground_truth: u32 = if rng.random_bool(0.5) { 1 } else { 2 };
        let answer = if self.is_anti() { 3 - ground_truth } else { ground_truth };
        let sd = noise_sd();
        let mut inputs = vec![0.0; steps * N_INPUTS];
        let mut labels = vec![0u32; steps];
        let mut mask = vec![false; steps];
        for p in &periods {
            for t in p.start..p.end {
                let row = &mut inputs[t * N_INPUTS..(t + 1) * N_INPUTS];
                row[self.cue_channel()] = 1.0;
                match p.name {
                    "decision" => {
                        labels[t] = answer;
                        mask[t] = true;
                    }
                    "stimulus" => {
                        row[0] = 1.0;
                        let strong = 0.5 + coherence / 200.0;
                        let weak = 0.5 - coherence / 200.0;
                        let (m1, m2) = if ground_truth == 1 { (strong, weak) } else { (weak, strong) };
                        let n1: f64 = rng.sample(StandardNormal);
                        let n2: f64 = rng.sample(StandardNormal);
                        row[1] = m1 + sd * n1;
                        row[2] = m2 + sd * n2;
                    }
                    _ => row[0] = 1.0,
                }
            }
        }
        Trial { inputs, labels, mask, periods, coherence, ground_truth }
    }
}

/// Steps of a duration: floored to a multiple of dt (as neurogym).
fn steps_of(ms: f64) -> usize {
    (ms / DT_MS).floor() as usize
}

/// The kind of sample set a seed belongs to; each has its own random stream, so growing one set
/// never changes another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training samples (400 steps, training timing); the stream also takes the phase and the
    /// epoch, so each epoch of each phase draws new samples, as the study's data pipeline did.
    Train {
        /// Phase of the curriculum (0 pretraining, 1 training).
        phase: u32,
        /// Epoch within the phase.
        epoch: u32,
    },
    /// The held-out evaluation set used for per-epoch accuracy (training timing, one trial).
    Eval,
    /// The fixed test set that recordings run (test timing, one trial).
    Test,
}

/// The seed of sample `index` of `split` of task `task_name` under the run seed `seed`: a
/// SplitMix64 mix of all four, so samples are independent of each other and of batch order.
pub fn sample_seed(seed: u64, task_name: &str, split: Split, index: u64) -> u64 {
    let mut h = splitmix(seed ^ 0x6479_6e73_696d_6e65);
    for b in task_name.bytes() {
        h = splitmix(h ^ u64::from(b));
    }
    let (kind, epoch) = match split {
        Split::Train { phase, epoch } => (1 + 16 * u64::from(phase), u64::from(epoch)),
        Split::Eval => (2, 0),
        Split::Test => (3, 0),
    };
    h = splitmix(h ^ kind);
    h = splitmix(h ^ epoch);
    splitmix(h ^ index)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A training sample: `len` steps that start at a trial onset, holding one complete trial and
/// then the beginning of the next independent trial(s), as the study's continuous data pipeline
/// cut them. Returns the stitched sample and the first (complete) trial's length.
pub fn train_sample(task: &dyn Task, len: usize, rng: &mut ChaCha8Rng) -> (Trial, usize) {
    let first = task.trial(Timing::Train, rng);
    let first_len = first.steps();
    let mut out = first;
    while out.steps() < len {
        let next = task.trial(Timing::Train, rng);
        let offset = out.steps();
        out.inputs.extend_from_slice(&next.inputs);
        out.labels.extend_from_slice(&next.labels);
        out.mask.extend_from_slice(&next.mask);
        out.periods.extend(next.periods.into_iter().map(|p| Period {
            start: p.start + offset,
            end: p.end + offset,
            ..p
        }));
    }
    let n_in = task.n_inputs();
    out.inputs.truncate(len * n_in);
    out.labels.truncate(len);
    out.mask.truncate(len);
    out.periods.retain(|p| p.start < len);
    if let Some(last) = out.periods.last_mut() {
        last.end = last.end.min(len);
    }
    (out, first_len)
}

/// A batch of equal-length samples, batch-major: `inputs` is `batch × steps × n_inputs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Number of samples.
    pub batch: usize,
    /// Steps per sample.
    pub steps: usize,
    /// Inputs per step.
    pub n_inputs: usize,
    /// `batch * steps * n_inputs` values.
    pub inputs: Vec<f64>,
    /// `batch * steps` labels.
    pub labels: Vec<u32>,
    /// `batch * steps` decision-mask flags.
    pub mask: Vec<bool>,
    /// The trials, for their periods and conditions (test and eval sets; for training samples,
    /// the stitched sample).
    pub trials: Vec<Trial>,
}

impl Batch {
    fn from_trials(trials: Vec<Trial>, n_inputs: usize) -> Result<Batch, NetError> {
        let steps = trials.first().map(Trial::steps).unwrap_or(0);
        if let Some(bad) = trials.iter().find(|t| t.steps() != steps) {
            return Err(NetError::Config(format!(
                "samples of one batch must have equal lengths; found {} and {} steps",
                steps,
                bad.steps()
            )));
        }
        let mut inputs = Vec::with_capacity(trials.len() * steps * n_inputs);
        let mut labels = Vec::with_capacity(trials.len() * steps);
        let mut mask = Vec::with_capacity(trials.len() * steps);
        for t in &trials {
            inputs.extend_from_slice(&t.inputs);
            labels.extend_from_slice(&t.labels);
            mask.extend_from_slice(&t.mask);
        }
        Ok(Batch { batch: trials.len(), steps, n_inputs, inputs, labels, mask, trials })
    }

    /// Training samples `range` of `split` (a [`Split::Train`]) of `task` under the run seed
    /// `seed`: [`TRAIN_STEPS`] steps each, stitched from training-timing trials ([`train_sample`]).
    pub fn train(task: &dyn Task, seed: u64, split: Split, range: std::ops::Range<u64>) -> Result<Batch, NetError> {
        Batch::stitched(task, seed, split, range)
    }

    fn stitched(task: &dyn Task, seed: u64, split: Split, range: std::ops::Range<u64>) -> Result<Batch, NetError> {
        let trials = range
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(seed, task.name(), split, i));
                train_sample(task, TRAIN_STEPS, &mut rng).0
            })
            .collect();
        Batch::from_trials(trials, task.n_inputs())
    }

    /// The fixed held-out evaluation samples `range` of `task`: stitched training-timing samples
    /// of [`TRAIN_STEPS`] steps, like the training data (accuracy is taken on their decision
    /// steps), from the evaluation stream, which does not depend on the run seed, so every model
    /// is evaluated on the same samples.
    pub fn eval(task: &dyn Task, range: std::ops::Range<u64>) -> Result<Batch, NetError> {
        Batch::stitched(task, 0, Split::Eval, range)
    }

    /// The fixed test trials `range` of `task`: one test-timing trial each (220 steps without a
    /// delay, 350 with), from a stream that does not depend on the run seed, so every model is
    /// recorded on the same trials.
    pub fn test(task: &dyn Task, range: std::ops::Range<u64>) -> Result<Batch, NetError> {
        let trials = range
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(sample_seed(0, task.name(), Split::Test, i));
                task.trial(Timing::Test, &mut rng)
            })
            .collect();
        Batch::from_trials(trials, task.n_inputs())
    }
}
