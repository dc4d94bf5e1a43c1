//! `dynsim`: compare the dynamics of neural networks from the command line.
//!
//! A thin leaf over the library crates: arguments are parsed, validated into a typed
//! configuration before any work starts, and errors are printed as
//! `error: <what>, <where>, <what to do>` with a non-zero exit code.

mod bench;
mod bench_compare;
mod bench_ingest;
mod bench_train;
mod compositional;
mod metric;
mod netcmd;
mod output;
mod progress;
mod querycmd;
mod storecmd;
mod testcase;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dynsim: Dynamical Similarity Analysis, Procrustes, CKA, RSA and the CCA family for recorded
/// network activity.
#[derive(Debug, Parser)]
#[command(name = "dynsim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare two recordings (.npy files) with one metric: `dynsim metric SPEC LEFT RIGHT`;
    /// `dynsim metric NAME --help` lists a metric's parameters.
    #[command(disable_help_flag = true)]
    Metric(metric::MetricArgs),
    /// Benchmarks (speed and optimiser quality) on generated data.
    Bench(bench::BenchArgs),
    /// Create, check or clean a store.
    Store(storecmd::StoreArgs),
    /// Add recordings from HDF5, Parquet or NumPy files to a store.
    Ingest(storecmd::IngestArgs),
    /// List the recordings of a store (optionally filtered by a SQL condition).
    Ls(storecmd::LsArgs),
    /// Show one recording: shape, keys, summary statistics.
    Show(storecmd::ShowArgs),
    /// Export recordings to plain Parquet (pandas, polars, pyarrow).
    Export(storecmd::ExportArgs),
    /// Compare recordings of a store with one or more metrics: all pairs, left x right, or
    /// matched on keys; cached, resumable, shardable (--shard i/n).
    Compare(querycmd::CompareArgs),
    /// The seed study's test cases (Lorenz regimes), simulated into a store and compared.
    Testcase(testcase::TestcaseArgs),
    /// SQL over the store's tables (recordings, results), printed or written to .parquet / .csv.
    Sql(querycmd::SqlArgs),
    /// Train one of the seed study's networks (leaky RNN, leaky GRU, Mamba) on the PDM task
    /// family, with an optional pretraining curriculum; checkpoints every epoch; resumable.
    Train(netcmd::TrainArgs),
    /// Run a training run's checkpoints on a task's fixed test trials and add the recorded
    /// states to a store, with the run's keys.
    Record(netcmd::RecordArgs),
    /// Run a network (a dynsim checkpoint or PyTorch weights in safetensors) on your inputs.
    Forward(netcmd::ForwardArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Metric(args) => metric::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Store(args) => storecmd::run_store(args),
        Command::Ingest(args) => storecmd::run_ingest(args),
        Command::Ls(args) => storecmd::run_ls(args),
        Command::Show(args) => storecmd::run_show(args),
        Command::Export(args) => storecmd::run_export(args),
        Command::Compare(args) => querycmd::run_compare(args),
        Command::Sql(args) => querycmd::run_sql(args),
        Command::Testcase(args) => testcase::run_testcase(args),
        Command::Train(args) => netcmd::run_train(args),
        Command::Record(args) => netcmd::run_record(args),
        Command::Forward(args) => netcmd::run_forward(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::error_text(&e));
            ExitCode::from(1)
        }
    }
}
