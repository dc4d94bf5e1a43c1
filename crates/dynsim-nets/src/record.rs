//! Recording: a network's states on a task's fixed test trials, as the seed study recorded them
//! for the comparisons (200 test trials by default).

use std::ops::Range;

use candle_core::DType;

use crate::model::Network;
use crate::task::{Batch, Task, Trial};
use crate::train::inputs_tensor;
use crate::{NetError, Result};

/// The study's number of recorded test trials.
pub const DEFAULT_TRIALS: usize = 200;

/// Which steps of each test trial a recording keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    /// Every step.
    Whole,
    /// One named period (`fixation`, `stimulus`, `delay`, `decision` for the PDM family).
    Period(String),
    /// Steps `start..end`.
    Steps(Range<usize>),
}

impl Window {
    /// Parses `whole`, a period name, or `START..END`.
    pub fn parse(text: &str) -> Result<Window> {
        let text = text.trim();
        if text == "whole" {
            return Ok(Window::Whole);
        }
        if let Some((a, b)) = text.split_once("..") {
            let step = |s: &str| {
                s.trim().parse::<usize>().map_err(|_| {
                    NetError::Config(format!("window `{text}`: `{s}` is not a step number (give START..END)"))
                })
            };
            return Ok(Window::Steps(step(a)?..step(b)?));
        }
        if text.is_empty() {
            return Err(NetError::Config("an empty window; give whole, a period name or START..END".into()));
        }
        Ok(Window::Period(text.to_string()))
    }

    /// The steps this window keeps of `trial` (a trial of `task`).
    pub fn steps(&self, task: &dyn Task, trial: &Trial) -> Result<Range<usize>> {
        let n = trial.steps();
        match self {
            Window::Whole => Ok(0..n),
            Window::Steps(r) => {
                if r.start >= r.end || r.end > n {
                    return Err(NetError::Config(format!(
                        "window {}..{}: needs START < END <= {n} (the test trials of {} have {n} steps)",
                        r.start,
                        r.end,
                        task.name()
                    )));
                }
                Ok(r.clone())
            }
            Window::Period(p) => trial.period(p).ok_or_else(|| {
                NetError::Config(format!(
                    "window `{p}`: {} has the periods {}; or give whole or START..END",
                    task.name(),
                    task.period_names().join(", ")
                ))
            }),
        }
    }
}

/// A recording: `trials × time × units` values (f32, C order) and the steps of the trial kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    /// The values.
    pub values: Vec<f32>,
    /// `[trials, time, units]`.
    pub shape: [usize; 3],
    /// The steps of each test trial the recording holds.
    pub steps: Range<usize>,
}

/// Runs `net` (computing in f64) on the first `trials` fixed test trials of `task` and keeps the
/// recorded states (the RNNs' `h_t`, Mamba's layer-0 SSM state) in `window`.
pub fn record(net: &Network, task: &dyn Task, window: &Window, trials: usize) -> Result<Recording> {
    if trials == 0 {
        return Err(NetError::Config("record at least 1 trial".into()));
    }
    let test = Batch::test(task, 0..trials as u64)?;
    let steps = window.steps(task, &test.trials[0])?;
    let x = inputs_tensor(&test, net.dtype(), net.device())?;
    let states =
        net.forward(&x, true)?.states.ok_or_else(|| NetError::Config("the network returned no states".into()))?;
    let kept = states.narrow(1, steps.start, steps.len())?.to_dtype(DType::F32)?;
    let (b, t, u) = kept.dims3()?;
    Ok(Recording { values: kept.flatten_all()?.to_vec1::<f32>()?, shape: [b, t, u], steps })
}
