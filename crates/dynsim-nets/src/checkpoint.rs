//! Checkpoints: safetensors files with the network's weights under PyTorch's names and the
//! run's metadata (JSON under the header key `dynsim`), written atomically; the optimiser state
//! in a second file beside each.
//!
//! A checkpoint loads in Python with `safetensors.torch.load_file` (the weights) and
//! `safetensors.safe_open(path, "pt").metadata()["dynsim"]` (the metadata).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::{NetConfig, Network};
use crate::{NetError, Result};

/// Header key under which the metadata JSON is stored.
pub const METADATA_KEY: &str = "dynsim";
/// Version of the checkpoint metadata.
pub const FORMAT_VERSION: u32 = 1;

/// What a checkpoint says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Metadata version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The network's configuration.
    pub net: NetConfig,
    /// `pretrain` or `train`.
    pub phase: String,
    /// Epochs completed in this phase (0: before the phase's first epoch).
    pub epoch: usize,
    /// Decision-step accuracy per rule on its evaluation set after this epoch.
    pub accuracy: Vec<(String, f64)>,
    /// Mean training loss over the epoch's batches (none at epoch 0).
    pub loss: Option<f64>,
    /// Whether this is the last checkpoint of its phase (stopped by accuracy or max epochs).
    pub phase_done: bool,
    /// The whole run configuration, as JSON (see `RunConfig`).
    pub run: serde_json::Value,
}

impl CheckpointMeta {
    /// The minimum accuracy over rules (`perf_min`), NaN without any.
    pub fn perf_min(&self) -> f64 {
        self.accuracy.iter().map(|(_, a)| *a).reduce(f64::min).unwrap_or(f64::NAN)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then
/// renamed over `path`, then the folder synced. A crash leaves the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io =
        |e: std::io::Error, what: &str| NetError::Io { path: path.to_path_buf(), what: what.to_string(), source: e };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io(e, "creating a temporary file beside"))?;
    f.write_all(bytes).map_err(|e| io(e, "writing"))?;
    f.sync_all().map_err(|e| io(e, "syncing"))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io(e, "renaming into place"))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn serialize(tensors: &[(String, Tensor)], meta: Option<&CheckpointMeta>) -> Result<Vec<u8>> {
    let info = match meta {
        Some(m) => {
            let json = serde_json::to_string(m).map_err(|e| NetError::Config(format!("checkpoint metadata: {e}")))?;
            Some(HashMap::from([(METADATA_KEY.to_string(), json)]))
        }
        None => None,
    };
    let items: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    safetensors::serialize(items, info).map_err(|e| NetError::Config(format!("serialising tensors: {e}")))
}

/// Saves the network's weights and `meta` to `path` (atomically).
pub fn save(net: &Network, meta: &CheckpointMeta, path: &Path) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = net.params().iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    write_atomic(path, &serialize(&tensors, Some(meta))?)
}

/// Saves named tensors without metadata (the optimiser state), atomically.
pub fn save_tensors(tensors: &[(String, Tensor)], path: &Path) -> Result<()> {
    write_atomic(path, &serialize(tensors, None)?)
}

/// Reads every tensor of a safetensors file, and its dynsim metadata if it has some. A missing,
/// truncated or foreign file is an error naming it.
pub fn read(path: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, Option<CheckpointMeta>)> {
    let bytes = read_file(path)?;
    let meta = parse_meta(path, &bytes)?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| NetError::Checkpoint {
        path: path.to_path_buf(),
        why: format!("its tensors do not load ({e})"),
    })?;
    Ok((tensors, meta))
}

/// Only the dynsim metadata of a checkpoint (the header is parsed, no tensor is built).
pub fn read_meta(path: &Path) -> Result<Option<CheckpointMeta>> {
    parse_meta(path, &read_file(path)?)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| NetError::Io {
        path: path.to_path_buf(),
        what: "reading the checkpoint".into(),
        source: e,
    })
}

fn parse_meta(path: &Path, bytes: &[u8]) -> Result<Option<CheckpointMeta>> {
    let bad = |why: String| NetError::Checkpoint { path: path.to_path_buf(), why };
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file or truncated ({e})")))?;
    match header.metadata().as_ref().and_then(|m| m.get(METADATA_KEY)) {
        Some(json) => Ok(Some(
            serde_json::from_str::<CheckpointMeta>(json)
                .map_err(|e| bad(format!("its dynsim metadata does not parse ({e})")))?,
        )),
        None => Ok(None),
    }
}

/// Loads a network from a checkpoint written by dynsim (its configuration comes from the
/// metadata), computing in `dtype`.
pub fn load(path: &Path, dtype: candle_core::DType, device: &Device) -> Result<(Network, CheckpointMeta)> {
    let (tensors, meta) = read(path, device)?;
    let meta = meta.ok_or_else(|| NetError::Checkpoint {
        path: path.to_path_buf(),
        why: format!(
            "it has no `{METADATA_KEY}` metadata; give the architecture and sizes to load a PyTorch checkpoint"
        ),
    })?;
    let net = Network::from_tensors(meta.net.clone(), &tensors, dtype, device)
        .map_err(|e| NetError::Checkpoint { path: path.to_path_buf(), why: e.to_string() })?;
    Ok((net, meta))
}

/// Loads a checkpoint's weights into a network of the given configuration (PyTorch
/// checkpoints saved with safetensors under the same names load this way).
pub fn load_with(path: &Path, config: NetConfig, dtype: candle_core::DType, device: &Device) -> Result<Network> {
    let (tensors, _) = read(path, device)?;
    Network::from_tensors(config, &tensors, dtype, device)
        .map_err(|e| NetError::Checkpoint { path: path.to_path_buf(), why: e.to_string() })
}

/// The file name of a phase's epoch checkpoint: `pretrain-003.safetensors`.
pub fn file_name(phase: &str, epoch: usize) -> String {
    format!("{phase}-{epoch:03}.safetensors")
}

/// The optimiser state's file beside a checkpoint: `pretrain-003.optim.safetensors`.
pub fn optim_path(checkpoint: &Path) -> PathBuf {
    let name = checkpoint.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    checkpoint.with_file_name(name.replace(".safetensors", ".optim.safetensors"))
}
