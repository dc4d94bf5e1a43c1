//! Which networks the compositional test case trains: presets, hyper-parameter
//! configurations, runs, their ids and their split into shards.
//!
//! A run is (configuration, group, seed). Its training configuration
//! (`dynsim_nets::train::RunConfig`) is complete, and the run's id is that configuration's
//! hash ([`RunConfig::id`]), so a run folder `<store>/runs/<id>/` belongs to exactly one
//! setting: a finished run is skipped, a killed one resumes from its checkpoints.
//!
//! Initialisation across the groups of one configuration and seed ([`Init`]):
//! - [`Init::Independent`] (default, as the study: it drew every network's weights on its
//!   own): each group's run seed is derived from (seed, group), so its initial weights and its
//!   training samples are its own;
//! - [`Init::Shared`]: every group uses the seed itself, so all groups start from the same
//!   random network and `untrained` is exactly master's starting point; differences between
//!   groups then come from their curricula alone.

use dynsim_nets::train::RunConfig;
use dynsim_nets::{Activation, Arch, NetConfig, Rule};
use dynsim_query::Shard;

use super::groups::Group;
use super::CompositionalError;

/// Which architectures to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchChoice {
    /// Leaky RNN and leaky GRU.
    Rnn,
    /// Mamba.
    Mamba,
    /// Both.
    All,
}

impl ArchChoice {
    /// Parses `rnn`, `mamba` or `all`.
    pub fn parse(text: &str) -> Result<ArchChoice, CompositionalError> {
        match text {
            "rnn" => Ok(ArchChoice::Rnn),
            "mamba" => Ok(ArchChoice::Mamba),
            "all" => Ok(ArchChoice::All),
            _ => Err(CompositionalError::Config(format!("--arch {text}: give rnn, mamba or all"))),
        }
    }

    fn rnn(self) -> bool {
        self != ArchChoice::Mamba
    }

    fn mamba(self) -> bool {
        self != ArchChoice::Rnn
    }
}

/// How initial weights relate across the groups of one configuration and seed (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Init {
    /// Every group draws its own initial weights (the study).
    #[default]
    Independent,
    /// Every group starts from the same random network.
    Shared,
}

impl Init {
    /// Parses `independent` or `shared`.
    pub fn parse(text: &str) -> Result<Init, CompositionalError> {
        match text {
            "independent" => Ok(Init::Independent),
            "shared" => Ok(Init::Shared),
            _ => Err(CompositionalError::Config(format!("--init {text}: give independent or shared"))),
        }
    }
}

/// Size of the study.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// For tests and the notebook: one tiny network per architecture, a few short epochs.
    Tiny,
    /// For one 2-core machine: one configuration per architecture sized so that training can
    /// reach the target task (see [`Preset::schedule`]).
    Small,
    /// The study's grid (see [`Preset::configurations`]) and schedule, for a cluster.
    Paper,
}

/// The `small` preset's Mamba schedule: at most 10 epochs of 2,048 samples per rule, 512
/// evaluation samples, stop above 0.88 (the RNN's threshold, same reason).
///
/// Mamba does not fit the small preset's 20 minutes, so `--preset small` runs the RNN unless
/// `--arch` asks for Mamba. Measured on this 2-core machine (d_model 8, 1 layer, lr 0.01,
/// batch 16): 3.5-4.5 ms per training sample on one core (up to 10 with both cores busy).
/// Learning AntiPDMDelay from scratch varies with the seed: one network was still at chance
/// (0.49-0.52) after 24,576 samples, while the one-seed small run's master reached 0.88 after
/// 10,240. One seed of the eleven groups trains at most 15 pretraining rule-phases and 10
/// training phases of 10 x 2,048 samples (about 512,000 samples); the one-seed run took 31
/// minutes of training and two of its partial groups stayed at 0.51. The study's schedule
/// (`paper`, 50 epochs of 8,000 samples) is for a cluster.
pub const SMALL_MAMBA: Schedule =
    Schedule { max_epochs: 10, samples_per_rule: 2048, eval_per_rule: 512, stop_accuracy: 0.88 };

/// How long each phase trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Epochs per phase at most.
    pub max_epochs: usize,
    /// Training samples per rule and epoch.
    pub samples_per_rule: usize,
    /// Evaluation samples per rule.
    pub eval_per_rule: usize,
    /// A phase stops once its minimum accuracy over rules exceeds this.
    pub stop_accuracy: f64,
}

/// A hyper-parameter configuration: the network and the optimiser settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Configuration {
    /// The network.
    pub net: NetConfig,
    /// Adam's learning rate.
    pub lr: f64,
    /// Samples per batch.
    pub batch: usize,
}

impl Configuration {
    /// The configuration of a run's training setting (its network, learning rate and batch).
    pub fn of(run: &RunConfig) -> Configuration {
        Configuration { net: run.net.clone(), lr: run.lr, batch: run.batch }
    }

    /// A readable, unique name: `leaky_rnn-relu-h128-lr0.01-b64`, `mamba-d8-l1-lr0.001-b16`.
    pub fn name(&self) -> String {
        let n = &self.net;
        match n.arch {
            Arch::Mamba => format!("mamba-d{}-l{}-lr{}-b{}", n.d_model, n.n_layers, self.lr, self.batch),
            a => format!("{}-{}-h{}-lr{}-b{}", a.name(), n.activation.name(), n.hidden, self.lr, self.batch),
        }
    }
}

impl Preset {
    /// Parses `tiny`, `small` or `paper`.
    pub fn parse(text: &str) -> Result<Preset, CompositionalError> {
        match text {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "paper" => Ok(Preset::Paper),
            _ => Err(CompositionalError::Config(format!("--preset {text}: give tiny, small or paper"))),
        }
    }

    /// The preset's name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Paper => "paper",
        }
    }

    /// Training length per phase for an architecture family (`mamba` or a recurrent cell).
    ///
    /// - `paper`: the study's (`RunConfig::study`: 50 epochs of 8,000 samples per rule, 2,000
    ///   evaluation samples, stop above 0.99) for both families.
    /// - `small`, recurrent cells: at most 20 epochs of 4,096 samples per rule, 512 evaluation
    ///   samples, stop above 0.88. Why: AntiPDMDelay's accuracy (decision steps) cannot pass about
    ///   0.9, since a fifth of the trials have coherence 0 and are coin flips, so the study's
    ///   0.99 never fires and every phase would run all its epochs; 0.88 stops a phase once it
    ///   is near that ceiling. A 64-unit leaky RNN at lr 0.003, batch 16 learns AntiPDMDelay from
    ///   scratch in about 13 such epochs (at lr 0.01 and 0.001 it stayed at chance for 12).
    /// - `small`, Mamba: [`SMALL_MAMBA`] (see there).
    /// - `tiny`: 3 epochs of 128 samples (far from learning the task: for the pipeline, not for
    ///   the result).
    pub fn schedule(self, arch: Arch) -> Schedule {
        match (self, arch) {
            (Preset::Tiny, _) => {
                Schedule { max_epochs: 3, samples_per_rule: 128, eval_per_rule: 64, stop_accuracy: 0.99 }
            }
            (Preset::Small, Arch::Mamba) => SMALL_MAMBA,
            (Preset::Small, _) => {
                Schedule { max_epochs: 20, samples_per_rule: 4096, eval_per_rule: 512, stop_accuracy: 0.88 }
            }
            (Preset::Paper, _) => {
                let s = RunConfig::study(NetConfig::recurrent(Arch::LeakyRnn, Activation::Relu, 1));
                Schedule {
                    max_epochs: s.max_epochs,
                    samples_per_rule: s.samples_per_rule,
                    eval_per_rule: s.eval_per_rule,
                    stop_accuracy: s.stop_accuracy,
                }
            }
        }
    }

    /// The configurations for the chosen architectures. `paper` is the study's grid: RNN type
    /// {leaky_rnn, leaky_gru} x activation {relu, softplus} x hidden {128, 256} x lr {0.01,
    /// 0.001} x batch {64, 128} (32 configurations); Mamba d_model {8, 16} x layers {1, 2} x lr
    /// {0.01, 0.005, 0.001, 0.0005} x batch {16, 32, 64, 128} (64). `small`: a leaky RNN (relu,
    /// 64 units, lr 0.003, batch 16; see [`Preset::schedule`]) and a Mamba (d_model 8, 1 layer,
    /// lr 0.01, batch 16).
    /// `tiny`: a leaky RNN of 16 units and a Mamba of d_model 4 (lr 0.01, batch 32 and 16).
    pub fn configurations(self, arch: ArchChoice) -> Vec<Configuration> {
        let rnn = |t, act, h, lr, batch| Configuration { net: NetConfig::recurrent(t, act, h), lr, batch };
        let mamba = |d, l, lr, batch| Configuration { net: NetConfig::mamba(d, l), lr, batch };
        let mut out = Vec::new();
        match self {
            Preset::Tiny => {
                if arch.rnn() {
                    out.push(rnn(Arch::LeakyRnn, Activation::Relu, 16, 0.01, 32));
                }
                if arch.mamba() {
                    out.push(mamba(4, 1, 0.01, 16));
                }
            }
            Preset::Small => {
                if arch.rnn() {
                    out.push(rnn(Arch::LeakyRnn, Activation::Relu, 64, 0.003, 16));
                }
                if arch.mamba() {
                    out.push(mamba(8, 1, 0.01, 16));
                }
            }
            Preset::Paper => {
                if arch.rnn() {
                    for t in [Arch::LeakyRnn, Arch::LeakyGru] {
                        for act in [Activation::Relu, Activation::Softplus] {
                            for h in [128, 256] {
                                for lr in [0.01, 0.001] {
                                    for batch in [64, 128] {
                                        out.push(rnn(t, act, h, lr, batch));
                                    }
                                }
                            }
                        }
                    }
                }
                if arch.mamba() {
                    for d in [8, 16] {
                        for l in [1, 2] {
                            for lr in [0.01, 0.005, 0.001, 0.0005] {
                                for batch in [16, 32, 64, 128] {
                                    out.push(mamba(d, l, lr, batch));
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// One network to train: (configuration, group, seed) and its complete training setting.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The hyper-parameter configuration.
    pub configuration: Configuration,
    /// The curriculum group.
    pub group: Group,
    /// The replicate (0-based; `--seeds N` gives 0..N).
    pub seed: u64,
    /// What `dynsim_nets::train::train` runs (for `untrained`: no epoch, only the starting
    /// checkpoint).
    pub config: RunConfig,
}

impl Run {
    /// The run's id: the hash of its complete training configuration ([`RunConfig::id`]).
    pub fn id(&self) -> String {
        self.config.id()
    }

    /// The run's folder under a store: `<store>/runs/<id>`.
    pub fn dir(&self, store_root: &std::path::Path) -> std::path::PathBuf {
        store_root.join("runs").join(self.id())
    }

    /// An error of this run's network (training, reading its checkpoints), naming the run.
    pub fn error(&self, store_root: &std::path::Path, source: dynsim_nets::NetError) -> CompositionalError {
        CompositionalError::Train {
            id: self.id(),
            what: format!("{} {} seed {}", self.configuration.name(), self.group.name(), self.seed),
            dir: self.dir(store_root),
            source: Box::new(source),
        }
    }
}

/// The seed of a group's run: the replicate seed itself ([`Init::Shared`]), or FNV-1a of
/// `"<seed>/<group name>"` ([`Init::Independent`]).
pub fn run_seed(seed: u64, group: Group, init: Init) -> u64 {
    match init {
        Init::Shared => seed,
        Init::Independent => dynsim_nets::train::fnv1a(format!("{seed}/{}", group.name()).as_bytes()),
    }
}

/// Every run of a study: each configuration x group x seed `0..seeds`, in that order.
pub fn plan(preset: Preset, arch: ArchChoice, seeds: usize, init: Init) -> Result<Vec<Run>, CompositionalError> {
    if seeds == 0 {
        return Err(CompositionalError::Config("--seeds must be at least 1".into()));
    }
    let mut runs = Vec::new();
    for configuration in preset.configurations(arch) {
        let schedule = preset.schedule(configuration.net.arch);
        for group in Group::ALL {
            for seed in 0..seeds as u64 {
                let mut c = RunConfig::study(configuration.net.clone());
                c.lr = configuration.lr;
                c.batch = configuration.batch;
                c.pretrain_rules = group.pretrain_rules();
                c.train_rules = vec![Rule::AntiPdmDelay];
                c.frozen = group.frozen();
                c.seed = run_seed(seed, group, init);
                c.max_epochs = if group.trains() { schedule.max_epochs } else { 0 };
                c.samples_per_rule = schedule.samples_per_rule;
                c.eval_per_rule = schedule.eval_per_rule;
                c.stop_accuracy = schedule.stop_accuracy;
                c.validate().map_err(|e| CompositionalError::Config(format!("{}: {e}", configuration.name())))?;
                runs.push(Run { configuration: configuration.clone(), group, seed, config: c });
            }
        }
    }
    Ok(runs)
}

/// This shard's runs (`--shard i/n`, the query layer's [`Shard`]): the runs sorted by id,
/// every `count`-th from `index`. The shards of one plan partition it, and a run's shard does
/// not depend on the order of the plan.
pub fn select<'a>(shard: &Shard, runs: &'a [Run]) -> Vec<&'a Run> {
    let mut sorted: Vec<&Run> = runs.iter().collect();
    sorted.sort_by_cached_key(|r| r.id());
    sorted.into_iter().skip(shard.index).step_by(shard.count).collect()
}
