//! The study's curriculum groups: what each network learns before the target task
//! (AntiPDMDelay) and whether only its input weights learn that task ("frozen").

use dynsim_nets::Rule;

use super::CompositionalError;

/// One curriculum group (the seed study's names).
///
/// | group | pretraining (every weight trains) | then AntiPDMDelay | frozen |
/// |---|---|---|---|
/// | `master` | – | yes | no (the reference) |
/// | `master_frozen` | – | yes | yes |
/// | `untrained` | – | – (its random initialisation) | – |
/// | `pretrain_frozen` ("full") | AntiPDM, PDM, PDMDelay | yes | yes |
/// | `pretrain_unfrozen` | AntiPDM, PDM, PDMDelay | yes | no |
/// | `pretrain_basic_frozen` | PDM | yes | yes |
/// | `pretrain_anti_frozen` | AntiPDM | yes | yes |
/// | `pretrain_delay_frozen` | PDMDelay | yes | yes |
/// | `pretrain_basic_anti_frozen` | PDM, AntiPDM | yes | yes |
/// | `pretrain_basic_delay_frozen` | PDM, PDMDelay | yes | yes |
/// | `pretrain_anti_delay_frozen` | AntiPDM, PDMDelay | yes | yes |
///
/// Pretraining rules run in the listed order within each epoch: the study's order for the
/// full set and for basic + anti (its `config.yaml`), the order of the full set otherwise.
/// Frozen means only the input weights learn the target task (see `dynsim_nets::train`);
/// `master_frozen` thus keeps its random recurrent weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Trained on AntiPDMDelay directly: the reference every group is compared with.
    Master,
    /// Only the input weights of a random network learn AntiPDMDelay.
    MasterFrozen,
    /// The random initialisation, not trained at all.
    Untrained,
    /// Pretrained on AntiPDM, PDM and PDMDelay, then frozen ("full").
    PretrainFrozen,
    /// Pretrained on AntiPDM, PDM and PDMDelay, then every weight learns AntiPDMDelay.
    PretrainUnfrozen,
    /// Pretrained on PDM, then frozen.
    PretrainBasicFrozen,
    /// Pretrained on AntiPDM, then frozen.
    PretrainAntiFrozen,
    /// Pretrained on PDMDelay, then frozen.
    PretrainDelayFrozen,
    /// Pretrained on PDM and AntiPDM, then frozen.
    PretrainBasicAntiFrozen,
    /// Pretrained on PDM and PDMDelay, then frozen.
    PretrainBasicDelayFrozen,
    /// Pretrained on AntiPDM and PDMDelay, then frozen (the study added it late and left it out
    /// of its analysis).
    PretrainAntiDelayFrozen,
}

/// How the partial groups are pooled in summaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pool {
    /// The group on its own.
    Own(Group),
    /// One or two pretraining tasks, then frozen: the "partial" pool.
    Partial,
}

impl Group {
    /// Every group, in the order of the table above.
    pub const ALL: [Group; 11] = [
        Group::Master,
        Group::MasterFrozen,
        Group::Untrained,
        Group::PretrainFrozen,
        Group::PretrainUnfrozen,
        Group::PretrainBasicFrozen,
        Group::PretrainAntiFrozen,
        Group::PretrainDelayFrozen,
        Group::PretrainBasicAntiFrozen,
        Group::PretrainBasicDelayFrozen,
        Group::PretrainAntiDelayFrozen,
    ];

    /// The partial groups the study pooled (all but `pretrain_anti_delay_frozen`).
    pub const STUDY_PARTIAL: [Group; 5] = [
        Group::PretrainBasicFrozen,
        Group::PretrainAntiFrozen,
        Group::PretrainDelayFrozen,
        Group::PretrainBasicAntiFrozen,
        Group::PretrainBasicDelayFrozen,
    ];

    /// The study's name, used as the `group` key in the store.
    pub fn name(self) -> &'static str {
        match self {
            Group::Master => "master",
            Group::MasterFrozen => "master_frozen",
            Group::Untrained => "untrained",
            Group::PretrainFrozen => "pretrain_frozen",
            Group::PretrainUnfrozen => "pretrain_unfrozen",
            Group::PretrainBasicFrozen => "pretrain_basic_frozen",
            Group::PretrainAntiFrozen => "pretrain_anti_frozen",
            Group::PretrainDelayFrozen => "pretrain_delay_frozen",
            Group::PretrainBasicAntiFrozen => "pretrain_basic_anti_frozen",
            Group::PretrainBasicDelayFrozen => "pretrain_basic_delay_frozen",
            Group::PretrainAntiDelayFrozen => "pretrain_anti_delay_frozen",
        }
    }

    /// Parses a group name ([`Group::name`]).
    pub fn parse(text: &str) -> Result<Group, CompositionalError> {
        Group::ALL.into_iter().find(|g| g.name() == text).ok_or_else(|| {
            CompositionalError::Config(format!(
                "unknown group `{text}`; the groups are {}",
                Group::ALL.map(Group::name).join(", ")
            ))
        })
    }

    /// The pretraining rules, in order (empty: no pretraining).
    pub fn pretrain_rules(self) -> Vec<Rule> {
        use Rule::{AntiPdm, Pdm, PdmDelay};
        match self {
            Group::Master | Group::MasterFrozen | Group::Untrained => vec![],
            Group::PretrainFrozen | Group::PretrainUnfrozen => vec![AntiPdm, Pdm, PdmDelay],
            Group::PretrainBasicFrozen => vec![Pdm],
            Group::PretrainAntiFrozen => vec![AntiPdm],
            Group::PretrainDelayFrozen => vec![PdmDelay],
            Group::PretrainBasicAntiFrozen => vec![Pdm, AntiPdm],
            Group::PretrainBasicDelayFrozen => vec![Pdm, PdmDelay],
            Group::PretrainAntiDelayFrozen => vec![AntiPdm, PdmDelay],
        }
    }

    /// The group a training configuration belongs to: its target is AntiPDMDelay alone, and
    /// its pretraining rules (in any order), freezing and training (`max_epochs` 0 is
    /// `untrained`) are one group's. `None` for any other curriculum.
    pub fn of(run: &dynsim_nets::train::RunConfig) -> Option<Group> {
        if run.train_rules != [Rule::AntiPdmDelay] {
            return None;
        }
        let mut pre = run.pretrain_rules.clone();
        pre.sort_by_key(|r| r.name());
        Group::ALL.into_iter().find(|g| {
            let mut want = g.pretrain_rules();
            want.sort_by_key(|r| r.name());
            want == pre && (run.max_epochs > 0) == g.trains() && (!g.trains() || run.frozen == g.frozen())
        })
    }

    /// Whether the network is trained at all (every group but `untrained`).
    pub fn trains(self) -> bool {
        self != Group::Untrained
    }

    /// Whether only the input weights learn the target task.
    pub fn frozen(self) -> bool {
        !matches!(self, Group::Master | Group::PretrainUnfrozen | Group::Untrained)
    }

    /// Share of the three pretraining tasks this group learned first: 0, 1/3, 2/3 or 1 (the
    /// regressor of the over-learning analysis).
    pub fn pretrained_share(self) -> f64 {
        self.pretrain_rules().len() as f64 / 3.0
    }

    /// The summary pool: the six one- or two-task groups are `Partial`.
    pub fn pool(self) -> Pool {
        match self.pretrain_rules().len() {
            1 | 2 => Pool::Partial,
            _ => Pool::Own(self),
        }
    }
}

impl Pool {
    /// `partial` or the group's name.
    pub fn name(self) -> &'static str {
        match self {
            Pool::Own(g) => g.name(),
            Pool::Partial => "partial",
        }
    }
}
