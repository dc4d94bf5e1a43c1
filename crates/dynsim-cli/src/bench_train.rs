//! `dynsim bench train`: milliseconds per training batch (64 samples × 400 steps of
//! AntiPDMDelay, forward + backward + Adam, f32) of the study's networks: leaky RNN and leaky
//! GRU (relu) at 128 and 256 units, Mamba d_model 8 × 1 layer and 16 × 2 layers.
//!
//! "1 thread": one network on one thread. "2 threads": two independent networks trained at
//! once, one thread each (the way a study's many runs use a machine: small per-step products
//! do not split well over threads); reported as the wall time of one batch of each, so the
//! throughput is twice the batches in that time. The anchor is PyTorch on the same machine
//! (`../shared/bench/torch_train_step.py`).

use std::time::Instant;

use anyhow::{Context, Result};
use dynsim_nets::task::Split;
use dynsim_nets::train::{inputs_tensor, labels_tensor, Adam};
use dynsim_nets::{Activation, Arch, Batch, DType, Device, NetConfig, Network, Rule};
use serde_json::json;

use crate::bench::BenchArgs;
use crate::output::println;

fn models() -> Vec<(&'static str, NetConfig)> {
    vec![
        ("leaky_rnn H128", NetConfig::recurrent(Arch::LeakyRnn, Activation::Relu, 128)),
        ("leaky_gru H128", NetConfig::recurrent(Arch::LeakyGru, Activation::Relu, 128)),
        ("leaky_rnn H256", NetConfig::recurrent(Arch::LeakyRnn, Activation::Relu, 256)),
        ("leaky_gru H256", NetConfig::recurrent(Arch::LeakyGru, Activation::Relu, 256)),
        ("mamba d8x1", NetConfig::mamba(8, 1)),
        ("mamba d16x2", NetConfig::mamba(16, 2)),
    ]
}

/// Times `steps` training steps of one network on one thread after 3 warm-up steps; returns the
/// median milliseconds per batch (as the PyTorch anchor script does).
fn time_one(config: &NetConfig, seed: u64, batch: usize, steps: usize) -> Result<f64> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().context("a one-thread pool")?;
    pool.install(|| -> Result<f64> {
        let dev = Device::Cpu;
        let net = Network::init(config.clone(), seed, DType::F32, &dev)?;
        let mut adam = Adam::new(net.params().to_vec(), 1e-3)?;
        let data = Batch::train(&Rule::AntiPdmDelay, seed, Split::Train { phase: 1, epoch: 1 }, 0..batch as u64)?;
        let x = inputs_tensor(&data, DType::F32, &dev)?;
        let y = labels_tensor(&data, &dev)?;
        let mut step = || -> Result<()> {
            let logits = net.forward(&x, false)?.logits;
            let (loss, _, _) = net.loss(&logits, &y, 1e-4)?;
            adam.step(&loss.backward()?)?;
            Ok(())
        };
        for _ in 0..3 {
            step()?; // warm-up
        }
        let mut times = Vec::with_capacity(steps);
        for _ in 0..steps {
            let start = Instant::now();
            step()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    })
}

/// Runs the benchmark and prints a table (or one JSON object).
pub fn run(args: &BenchArgs) -> Result<()> {
    // candle's own products go parallel unless told otherwise: one thread each here.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Set before any thread of this process reads the environment.
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let steps = args.pairs.max(1);
    let batch = 64;
    let start = Instant::now();
    let data = Batch::train(&Rule::AntiPdmDelay, 0, Split::Train { phase: 1, epoch: 1 }, 0..batch as u64)?;
    let gen_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut rows = Vec::new();
    for (name, config) in models() {
        let one = time_one(&config, 1, batch, steps)?;
        let two = std::thread::scope(|s| -> Result<f64> {
            let a = s.spawn(|| time_one(&config, 2, batch, steps));
            let b = s.spawn(|| time_one(&config, 3, batch, steps));
            let a = a.join().map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))??;
            let b = b.join().map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))??;
            Ok(a.max(b))
        })?;
        if !args.json {
            println(&format!(
                "{name:<16} 1 thread {one:8.1} ms/batch   2 networks on 2 threads {two:8.1} ms/batch each"
            ))?;
        }
        rows.push(json!({"model": name, "ms_per_batch_1_thread": one, "ms_per_batch_2_networks_2_threads": two}));
    }
    let summary = json!({
        "batch": batch,
        "steps": data.steps,
        "timed_batches": steps,
        "batch_generation_ms": gen_ms,
        "models": rows,
    });
    if args.json {
        println(&summary.to_string())?;
    } else {
        println(&format!(
            "(batch {batch} x {} steps, f32, median of {steps} batches after 3 warm-up ones; generating a batch takes {gen_ms:.1} ms)",
            data.steps
        ))?;
    }
    Ok(())
}
