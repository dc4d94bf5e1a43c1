//! `dynsim metric SPEC LEFT RIGHT`: one metric between two `.npy` recordings.
//!
//! SPEC is a metric's name or a full specification, the same text `dynsim compare --metric`
//! takes (`dsa:n_delays=33,delay_interval=6,rank=50`); each parameter can also be given as
//! a flag (`--n-delays 33`). The flags are built from the metric's parameter table
//! ([`dynsim_metrics::MetricInfo::params`]), so `dynsim metric dsa --help` lists DSA's
//! parameters only.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Arg, ArgAction, Args, Command};
use dynsim_metrics::{build_metric, metric_info, split_spec, MetricInfo, ParamKind, METRICS};
use ndarray::{Array3, Ix2, Ix3};
use serde_json::json;

use crate::output::println;

/// Arguments of `dynsim metric`, parsed against the chosen metric's own flags.
#[derive(Debug, Args)]
pub struct MetricArgs {
    /// SPEC LEFT RIGHT [--PARAM VALUE ...] [--json] [--certificate DIR]; `dynsim metric NAME
    /// --help` lists a metric's parameters.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
    args: Vec<String>,
}

fn overview() -> String {
    let mut s = String::from(
        "Compare two recordings (.npy files, trials x time x units or time x units) with one metric.\n\n\
         Usage: dynsim metric SPEC LEFT RIGHT [--PARAM VALUE ...] [--json] [--certificate DIR]\n\n\
         SPEC is a metric name or a specification with parameters, as `dynsim compare --metric` takes\n\
         (e.g. dsa:n_delays=33,delay_interval=6,rank=50); parameters can also be given as flags\n\
         (--n-delays 33). `dynsim metric NAME --help` lists a metric's parameters.\n\nMetrics:\n",
    );
    for m in METRICS {
        s.push_str(&format!("  {:11} {}\n", m.name, m.summary.split(':').next().unwrap_or(m.summary)));
    }
    s
}

/// The clap command of one metric: its parameters as flags, then the common options.
fn command(info: &'static MetricInfo) -> Command {
    let mut cmd = Command::new(info.name)
        .bin_name(format!("dynsim metric {}", info.name))
        .about(info.summary)
        .after_help(format!("{}\n\nReference: {}", info.formula, info.reference))
        .no_binary_name(true)
        .arg(Arg::new("left").required(true).value_name("LEFT").help("left recording (.npy, float32 or float64)"))
        .arg(Arg::new("right").required(true).value_name("RIGHT").help("right recording"));
    for p in info.params {
        // clap wants 'static flag names; one small string per parameter, once per run.
        let flag: &'static str = Box::leak(p.name.replace('_', "-").into_boxed_str());
        let help =
            if p.default == "none" { p.help.to_string() } else { format!("{} [default: {}]", p.help, p.default) };
        let arg = Arg::new(p.name).long(flag).help(help);
        cmd = cmd.arg(match p.kind {
            ParamKind::Flag => arg.action(ArgAction::SetTrue),
            ParamKind::Choice(options) => {
                arg.num_args(1).value_parser(clap::builder::PossibleValuesParser::new(options.iter().copied()))
            }
            ParamKind::Count => arg.num_args(1).value_name("N"),
            ParamKind::Number => arg.num_args(1).value_name("X"),
        });
    }
    cmd.arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("print one JSON object instead of text")).arg(
        Arg::new("certificate").long("certificate").value_name("DIR").value_parser(clap::value_parser!(PathBuf)).help(
            "write the arrays that certify the score into DIR (DSA: the unit-norm operators A.npy, B.npy \
                     and the optimal orthogonal C.npy, so that value = arccos(sum(A * (C @ B @ C.T))))",
        ),
    )
}

/// Read a recording as `trials x time x units` f64.
pub fn load_recording(path: &Path) -> Result<Array3<f64>> {
    let arr = dynsim_store::read_npy(path)?;
    let shape = arr.shape().to_vec();
    let a = arr.into_f64();
    match shape.len() {
        3 => Ok(a.into_dimensionality::<Ix3>().with_context(|| format!("{}: not a 3-d array", path.display()))?),
        2 => {
            let a = a.into_dimensionality::<Ix2>().with_context(|| format!("{}: not a 2-d array", path.display()))?;
            Ok(a.insert_axis(ndarray::Axis(0)))
        }
        _ => bail!(
            "{}: array of shape {shape:?} has rank {}; a recording is trials x time x units (or time x units)",
            path.display(),
            shape.len()
        ),
    }
}

pub fn run(args: MetricArgs) -> Result<()> {
    let Some(spec) = args.args.first() else {
        print!("{}", overview());
        return Ok(());
    };
    if spec == "--help" || spec == "-h" || spec == "help" {
        print!("{}", overview());
        return Ok(());
    }
    let (name, mut kv) = split_spec(spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(info) = metric_info(&name) else {
        let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        bail!("unknown metric {name:?}; the metrics are {} (dynsim metric --help)", names.join(", "));
    };
    let mut cmd = command(info);
    let matches = match cmd.try_get_matches_from_mut(&args.args[1..]) {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    // Flags add to the specification's parameters; a parameter given both ways is refused.
    for p in info.params {
        let value = match p.kind {
            ParamKind::Flag => matches.get_flag(p.name).then(|| "true".to_string()),
            _ => matches.get_one::<String>(p.name).cloned(),
        };
        if let Some(v) = value {
            if kv.insert(p.name.to_string(), v).is_some() {
                bail!("{} is given in the specification and as --{}; give it once", p.name, p.name.replace('_', "-"));
            }
        }
    }
    let metric = build_metric(info.name, &kv).map_err(|detail| {
        let e = clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("metric {spec:?}: {detail}\n"));
        e.with_cmd(&cmd)
    });
    let metric = match metric {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    let (left, right) = (path(&matches, "left"), path(&matches, "right"));
    let x = load_recording(&left)?;
    let y = load_recording(&right)?;
    let start = Instant::now();
    // the two recordings are prepared (for DSA: fitted) at the same time
    let (a, b) = rayon::join(|| metric.prepare(x.view()), || metric.prepare(y.view()));
    let a = a.with_context(|| format!("preparing {} for {}", left.display(), info.name))?;
    let b = b.with_context(|| format!("preparing {} for {}", right.display(), info.name))?;
    let want_certificate = matches.get_one::<PathBuf>("certificate");
    let (scored, certificate) = metric
        .score_certified(&a, &b)
        .with_context(|| format!("comparing {} with {}", left.display(), right.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    let mut out = json!({
        "left": left.display().to_string(),
        "right": right.display().to_string(),
        "left_shape": x.shape(),
        "right_shape": y.shape(),
        "metric": info.name,
        "params": metric.params(),
        "value": scored.value,
        "unit": metric.unit(),
    });
    for (k, v) in &scored.extras {
        out[k] = v.clone();
    }
    if let Some(dir) = want_certificate {
        let Some(cert) = certificate else {
            bail!(
                "{} has no certificate for this score; the certificate is DSA's (angular or euclidean score)",
                info.name
            );
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut files = Vec::new();
        for (name, arr) in &cert.arrays {
            let file = dir.join(format!("{name}.npy"));
            dynsim_store::write_npy(&file, arr.view().into_dyn())
                .with_context(|| format!("writing {}", file.display()))?;
            files.push(file.display().to_string());
        }
        out["certificate"] = json!(files);
    }
    out["seconds"] = json!(seconds);
    if matches.get_flag("json") {
        return println(&serde_json::to_string(&out)?);
    }
    let mut line = format!("{} = {:.6} {}", info.name, scored.value, metric.unit());
    for key in ["similarity", "lower", "gap"] {
        if let Some(v) = scored.extras.get(key).and_then(|v| v.as_f64()) {
            line.push_str(&format!("  {key} {v:.6}"));
        }
    }
    if let (Some(l), Some(r)) = (scored.extras.get("rank_left"), scored.extras.get("rank_right")) {
        line.push_str(&format!("  ranks [{l},{r}]"));
    }
    if scored.extras.get("fallback_to_wasserstein").and_then(|v| v.as_bool()) == Some(true) {
        line.push_str("  [ranks differ: eigenvalue-Wasserstein score]");
    }
    if let (Some(l), Some(d)) = (scored.extras.get("loss"), scored.extras.get("det")) {
        line.push_str(&format!("  loss {:.6} det {d}", l.as_f64().unwrap_or(f64::NAN)));
    }
    if let Some(files) = out.get("certificate") {
        line.push_str(&format!("  certificate {files}"));
    }
    line.push_str(&format!("  {seconds:.3}s"));
    println(&line)
}

fn path(m: &clap::ArgMatches, name: &str) -> PathBuf {
    m.get_one::<String>(name).map(PathBuf::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric's command lists exactly its own parameters.
    #[test]
    fn each_metric_command_has_only_its_own_flags() {
        for info in METRICS {
            let mut cmd = command(info);
            let help = cmd.render_long_help().to_string();
            for other in METRICS.iter().filter(|o| o.name != info.name) {
                for p in other.params.iter().filter(|p| !info.params.iter().any(|q| q.name == p.name)) {
                    assert!(!help.contains(&format!("--{} ", p.name.replace('_', "-"))), "{}: --{}", info.name, p.name);
                }
            }
            for p in info.params {
                assert!(help.contains(&format!("--{}", p.name.replace('_', "-"))), "{}: lacks {}", info.name, p.name);
            }
        }
    }
}
