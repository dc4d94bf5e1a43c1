//! Progress of a comparison on the terminal, and Ctrl-C / SIGTERM handling, shared by
//! `dynsim compare` and `dynsim testcase`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use dynsim_query::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// One progress bar for a comparison: the DMD fits, then the pairs (done / to compute,
/// with the cached count and an ETA). Hidden when stderr is not a terminal.
pub struct PairBar {
    bar: ProgressBar,
    step: String,
    total: usize,
    cached: usize,
}

impl PairBar {
    /// A bar whose messages start with `step` (e.g. `test B`; empty for none). Until the
    /// first event it spins with `waiting` (what runs before the comparison).
    pub fn new(step: &str, waiting: &str) -> PairBar {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let step = if step.is_empty() { String::new() } else { format!("{step}: ") };
        bar.set_message(format!("{step}{waiting}"));
        PairBar { bar, step, total: 0, cached: 0 }
    }

    fn as_bar(&self, len: usize) {
        if self.bar.length() != Some(len as u64) {
            self.bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            self.bar.set_length(len as u64);
            self.bar.reset_eta();
        }
    }

    /// Show one event of [`dynsim_query::CollectOptions::progress`].
    pub fn on(&mut self, p: Progress) {
        let step = &self.step;
        match p {
            Progress::Planned { total, cached, fits } => {
                (self.total, self.cached) = (total, cached);
                self.as_bar(fits);
                self.bar.set_message(format!("{step}DMD fits ({total} pairs x metrics, {cached} cached)"));
            }
            Progress::Fitted { done, .. } => self.bar.set_position(done as u64),
            Progress::Computed { done, total } => {
                self.as_bar(total);
                self.bar.set_position(done as u64);
                self.bar.set_message(format!("{step}pairs computed; {} cached of {}", self.cached, self.total));
            }
        }
    }

    /// Remove the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A flag that Ctrl-C or SIGTERM (a SLURM time limit) sets: the comparison stops scheduling
/// and keeps every finished pair. A second signal exits at once with status 130 (finished
/// pairs are journaled and survive that too).
pub fn cancel_on_signal() -> Result<Arc<AtomicBool>> {
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, cancel.clone())
            .context("installing the Ctrl-C handler")?;
        signal_hook::flag::register(sig, cancel.clone()).context("installing the Ctrl-C handler")?;
    }
    Ok(cancel)
}

/// What to tell the user after an interrupted run.
pub const INTERRUPTED: &str =
    "interrupted: every finished pair is kept in the cache; run the same command again to compute the rest";
