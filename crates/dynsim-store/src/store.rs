//! The store: a directory of Parquet files that any Parquet reader can open.
//!
//! ```text
//! store.json                  {"format": "dynsim-store", "version": 1}
//! catalog.parquet             one row per recording (see `catalog`)
//! recordings/ab/<hash>.parquet  recording files, content addressed, sharded by the
//!                             first two hex digits of the content hash
//! results/                    metric results (written by dynsim-query)
//! .lock                       lock file: catalogue updates are serialised on it
//! .staging/<txn>/             private work folder of an ingest in progress
//! ```
//!
//! Crash safety. An ingest writes its recording files into its own staging folder. Only
//! at commit, holding the store lock, does it move them into `recordings/` (rename, so a
//! file is either absent or complete), fsync the folders, then replace `catalog.parquet`
//! by writing a temporary file, fsyncing it and renaming it over the old one. A crash at
//! any moment leaves the old or the new catalogue, never a mix, and every catalogued
//! recording complete. Leftovers of a killed ingest (a staging folder, a recording file no
//! row refers to) are never listed; the next ingest removes stale staging folders and
//! `Store::gc` removes unreferenced recording files.
//!
//! Concurrency. Each commit re-reads the catalogue under the lock and appends its rows,
//! so concurrent ingests (processes, or machines sharing a file system with working
//! `flock`) never lose each other's rows.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use ndarray::Array3;
use serde::{Deserialize, Serialize};

use crate::catalog::{recording_id, Catalog, CatalogRow};
use crate::error::StoreError;
use crate::fsutil::{atomic_write, sync_dir, unique_suffix, LockGuard};
use crate::ingest::{plan, ArrayRecording, Candidate, IngestOptions};
use crate::keys::{KeyType, Keys};
use crate::recording::{read_recording, RecordingMeta, RecordingWriter};

/// Format name in `store.json`.
pub const STORE_FORMAT: &str = "dynsim-store";
/// Store format version this library reads and writes.
pub const STORE_VERSION: u32 = 1;
/// Values per block when streaming a recording (4 Mi f32 = 16 MiB): small next to a
/// recording, large enough that per-block costs vanish.
const BLOCK_VALUES: usize = 1 << 22;

#[derive(Debug, Serialize, Deserialize)]
struct StoreJson {
    format: String,
    version: u32,
}

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A recording read back from the store.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Its catalogue row (id, keys, shape, hash, ...).
    pub row: CatalogRow,
    /// The values, `trials x time x units`.
    pub data: Array3<f32>,
}

/// Progress of an ingest, for progress bars.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    /// Every input was planned: this many recordings and values in all.
    Planned {
        /// Number of recordings.
        recordings: usize,
        /// Number of values (f32) in all.
        values: u64,
    },
    /// A block of values was written.
    Values(u64),
    /// A recording is done.
    RecordingDone {
        /// Its source (`file:dataset`).
        source: String,
    },
    /// The catalogue is being updated.
    Committing,
}

/// What an ingest did.
#[derive(Debug, Clone, Default)]
pub struct IngestReport {
    /// Rows added to the catalogue.
    pub added: Vec<CatalogRow>,
    /// Recordings that were already in the store with the same content and keys.
    pub already_present: Vec<String>,
    /// Ids of catalogued recordings whose missing file this ingest put back (a damaged file
    /// is deleted, then its source ingested again; see [`Store::read_row`]).
    pub restored: Vec<String>,
    /// Recordings whose data was already stored under other keys (stored once, two rows).
    pub shared_content: usize,
    /// Things in the inputs that were left out, and why.
    pub skipped: Vec<String>,
    /// f32 values written.
    pub values: u64,
}

/// What `Store::verify` found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Recordings read and checked.
    pub checked: usize,
    /// Problems (recording id and message).
    pub problems: Vec<(String, String)>,
}

impl Store {
    /// Create a new, empty store in `dir` (created if missing; must be empty or absent).
    pub fn init(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        let root = dir.as_ref().to_path_buf();
        if root.join("store.json").exists() {
            return Err(StoreError::NotAStore {
                path: root,
                detail: "is already a dynsim store; use it, or choose another folder".into(),
            });
        }
        if root.exists() {
            let mut entries = fs::read_dir(&root).map_err(StoreError::io(&root))?;
            if entries.next().is_some() {
                return Err(StoreError::NotAStore {
                    path: root,
                    detail: "exists and is not empty; a store needs an empty or new folder".into(),
                });
            }
        }
        fs::create_dir_all(root.join("recordings")).map_err(StoreError::io(&root))?;
        fs::create_dir_all(root.join("results")).map_err(StoreError::io(&root))?;
        let store = Store { root: root.clone() };
        atomic_write(&root.join("catalog.parquet"), |tmp| Catalog::default().write_parquet(tmp))?;
        let json = serde_json::to_string_pretty(&StoreJson { format: STORE_FORMAT.into(), version: STORE_VERSION })
            .unwrap_or_default();
        // store.json last: a folder without it is not a store, so a crash here is harmless.
        atomic_write(&root.join("store.json"), |tmp| fs::write(tmp, json.as_bytes()).map_err(StoreError::io(tmp)))?;
        Ok(store)
    }

    /// Open an existing store.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        let root = dir.as_ref().to_path_buf();
        let sj = root.join("store.json");
        let text = fs::read_to_string(&sj).map_err(|e| StoreError::NotAStore {
            path: root.clone(),
            detail: if e.kind() == std::io::ErrorKind::NotFound {
                "is not a dynsim store (no store.json); create one with `dynsim store init DIR` or ingest into it"
                    .into()
            } else {
                format!("cannot read store.json: {e}")
            },
        })?;
        let meta: StoreJson = serde_json::from_str(&text).map_err(|e| StoreError::NotAStore {
            path: root.clone(),
            detail: format!("store.json is damaged ({e})"),
        })?;
        if meta.format != STORE_FORMAT || meta.version != STORE_VERSION {
            return Err(StoreError::NotAStore {
                path: root,
                detail: format!(
                    "store.json says format {:?} version {}, this dynsim reads {STORE_FORMAT:?} version {STORE_VERSION}",
                    meta.format, meta.version
                ),
            });
        }
        Ok(Store { root })
    }

    /// Open the store, creating it first if the folder does not exist or is empty.
    pub fn open_or_init(dir: impl AsRef<Path>) -> Result<(Store, bool), StoreError> {
        let dir = dir.as_ref();
        let empty = !dir.exists() || fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
        if empty {
            Ok((Store::init(dir)?, true))
        } else {
            Ok((Store::open(dir)?, false))
        }
    }

    /// The store folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder for metric results (`results/`).
    pub fn results_dir(&self) -> PathBuf {
        self.root.join("results")
    }

    /// Read the catalogue.
    pub fn catalog(&self) -> Result<Catalog, StoreError> {
        Catalog::read_parquet(&self.root.join("catalog.parquet"))
    }

    /// Read one recording by id (or unique prefix).
    pub fn read(&self, id: &str) -> Result<Recording, StoreError> {
        let cat = self.catalog()?;
        let row = cat.resolve(id)?.clone();
        self.read_row(&row, false)
    }

    /// Read the recording of a catalogue row; `verify` recomputes its content hash.
    pub fn read_row(&self, row: &CatalogRow, verify: bool) -> Result<Recording, StoreError> {
        let path = self.root.join(&row.file);
        let remedy = |e: StoreError| match e {
            StoreError::Corrupt { path, detail } => StoreError::Corrupt {
                path,
                detail: format!(
                    "{detail}. To restore it, delete this file and ingest its source ({}) again \
                     (`dynsim store verify` lists every damaged recording)",
                    row.source
                ),
            },
            other => other,
        };
        let (data, meta) = read_recording(&path, verify).map_err(remedy)?;
        if meta.hash != row.hash || meta.shape != row.shape {
            return Err(remedy(StoreError::Corrupt {
                path,
                detail: format!(
                    "holds {:?} with hash {} but the catalogue expects {:?} with hash {}",
                    meta.shape, meta.hash, row.shape, row.hash
                ),
            }));
        }
        Ok(Recording { row: row.clone(), data })
    }

    /// Read every catalogued recording and check its content hash.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let cat = self.catalog()?;
        let mut rep = VerifyReport::default();
        for row in &cat.rows {
            rep.checked += 1;
            if let Err(e) = self.read_row(row, true) {
                rep.problems.push((row.id.clone(), e.to_string()));
            }
        }
        Ok(rep)
    }

    /// Remove leftovers of killed ingests and comparisons: staging folders no live process
    /// holds (older than 2 s), temporary files (temporary result parts older than a minute)
    /// and recording files no catalogue row refers to. Returns the number of files and
    /// folders removed. (Journals of killed comparisons are folded into result parts by the
    /// next comparison or query, not removed.)
    pub fn gc(&self) -> Result<usize, StoreError> {
        let _lock = LockGuard::acquire(&self.root.join(".lock"))?;
        let mut removed = self.clean_staging(std::time::Duration::from_secs(2))?;
        let cat = self.catalog()?;
        let used: HashSet<&str> = cat.rows.iter().map(|r| r.file.as_str()).collect();
        let rec = self.root.join("recordings");
        for shard in fs::read_dir(&rec).map_err(StoreError::io(&rec))?.flatten() {
            let Ok(files) = fs::read_dir(shard.path()) else { continue };
            for f in files.flatten() {
                let rel =
                    format!("recordings/{}/{}", shard.file_name().to_string_lossy(), f.file_name().to_string_lossy());
                if !used.contains(rel.as_str()) && fs::remove_file(f.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        for f in fs::read_dir(&self.root).map_err(StoreError::io(&self.root))?.flatten() {
            if f.file_name().to_string_lossy().contains(".tmp-") && fs::remove_file(f.path()).is_ok() {
                removed += 1;
            }
        }
        // Temporary result parts of killed comparisons (a live one renames its part within
        // milliseconds of creating it, so anything a minute old is a leftover).
        if let Ok(entries) = fs::read_dir(self.results_dir()) {
            for f in entries.flatten() {
                let old = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|a| a >= std::time::Duration::from_secs(60));
                if old && f.file_name().to_string_lossy().contains(".tmp-") && fs::remove_file(f.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Remove staging folders whose owner is gone (nobody holds the lock on the folder)
    /// and that are older than `grace` (an owner takes its lock right after `mkdir`).
    fn clean_staging(&self, grace: std::time::Duration) -> Result<usize, StoreError> {
        let staging = self.root.join(".staging");
        let Ok(entries) = fs::read_dir(&staging) else { return Ok(0) };
        let mut n = 0;
        for e in entries.flatten() {
            let old =
                e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a >= grace);
            if !old {
                continue;
            }
            if let Ok(Some(_guard)) = LockGuard::try_lock_dir(&e.path()) {
                if fs::remove_dir_all(e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        let _ = fs::remove_dir(&staging);
        Ok(n)
    }

    /// Ingest files: plan every file first (metadata, layout, keys), then stream each
    /// recording into a staging folder, then commit all of them in one catalogue update.
    /// On any error nothing is committed and the staging folder is removed: the store is
    /// exactly as it was.
    pub fn ingest(
        &self,
        files: &[PathBuf],
        opts: &IngestOptions,
        progress: &mut dyn FnMut(IngestEvent),
    ) -> Result<IngestReport, StoreError> {
        // Constant keys get the types of the standard keys (`progress` 0 is a float), as
        // `--key` gives them, before anything is read or staged.
        let constant_keys = constant_keys(opts)?;
        let _ = self.clean_staging(std::time::Duration::from_secs(60));
        let txn = Staging::create(&self.root)?;
        let mut report = IngestReport::default();
        let mut plans = Vec::new();
        for f in files {
            let p = guard_panic(f, "file", || plan(f, opts))?;
            for c in &p.candidates {
                let missing: Vec<&String> = opts
                    .require_keys
                    .iter()
                    .filter(|k| !c.keys.contains_key(*k) && !opts.keys.contains_key(*k))
                    .collect();
                if !missing.is_empty() {
                    return Err(StoreError::BadInput {
                        path: c.file.clone(),
                        location: c.location.clone(),
                        detail: format!(
                            "lacks the required key{} {}; it has {}. Add it with --key NAME=VALUE, a --layout \
                             placeholder or an attribute",
                            if missing.len() > 1 { "s" } else { "" },
                            missing.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
                            if c.keys.is_empty() { "no keys".to_string() } else { keys_text(&c.keys) }
                        ),
                    });
                }
            }
            report.skipped.extend(p.skipped.iter().map(|s| format!("{}: {s}", f.display())));
            plans.push(p);
        }
        let candidates: Vec<Candidate> = plans.into_iter().flat_map(|p| p.candidates).collect();
        self.stage_and_commit(txn, candidates, &constant_keys, opts, report, progress)
    }

    /// Ingest recordings held in memory (a network's recorded states, a simulated test case)
    /// without going through files: each [`ArrayRecording`] becomes one recording with its
    /// keys (normalised as `--key` does, then `opts.keys` on top) and its `source` text in
    /// the catalogue. All of them are committed in one catalogue update, or none on an error.
    pub fn ingest_arrays(
        &self,
        arrays: Vec<ArrayRecording>,
        opts: &IngestOptions,
        progress: &mut dyn FnMut(IngestEvent),
    ) -> Result<IngestReport, StoreError> {
        let constant_keys = constant_keys(opts)?;
        let mut candidates = Vec::with_capacity(arrays.len());
        for a in arrays {
            candidates.push(a.into_candidate()?);
        }
        for c in &candidates {
            let missing: Vec<&String> =
                opts.require_keys.iter().filter(|k| !c.keys.contains_key(*k) && !opts.keys.contains_key(*k)).collect();
            if !missing.is_empty() {
                return Err(StoreError::BadInput {
                    path: c.file.clone(),
                    location: c.location.clone(),
                    detail: format!(
                        "lacks the required key{} {}",
                        if missing.len() > 1 { "s" } else { "" },
                        missing.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        let _ = self.clean_staging(std::time::Duration::from_secs(60));
        let txn = Staging::create(&self.root)?;
        self.stage_and_commit(txn, candidates, &constant_keys, opts, IngestReport::default(), progress)
    }

    /// Streams every candidate into the staging folder, then commits them all.
    fn stage_and_commit(
        &self,
        txn: Staging,
        candidates: Vec<Candidate>,
        constant_keys: &Keys,
        opts: &IngestOptions,
        mut report: IngestReport,
        progress: &mut dyn FnMut(IngestEvent),
    ) -> Result<IngestReport, StoreError> {
        let total: u64 = candidates.iter().map(|c| c.shape.iter().product::<usize>() as u64).sum();
        progress(IngestEvent::Planned { recordings: candidates.len(), values: total });
        let mut staged: Vec<(CatalogRow, PathBuf)> = Vec::new();
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        for (n, cand) in candidates.into_iter().enumerate() {
            let mut keys = cand.keys.clone();
            for (k, v) in constant_keys {
                keys.insert(k.clone(), v.clone());
            }
            let source = cand.source_label();
            let tmp = txn.dir.join(format!("{n}.parquet"));
            let mut writer = RecordingWriter::create(&tmp, cand.shape)?;
            let mut cand = cand;
            let (file, location) = (cand.file.clone(), cand.location.clone());
            let mut offset = 0usize;
            let [_, time, units] = cand.shape;
            // Two-stage pipeline: a reader thread decodes blocks (HDF5 decompression,
            // Parquet decoding) while this thread checks, hashes, encodes and writes the
            // previous one. At most three blocks are alive at once.
            let blocks = &mut cand.source;
            let label = location.clone();
            std::thread::scope(|scope| -> Result<(), StoreError> {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<f32>>(1);
                let (file_r, label_r) = (&file, &label);
                let reader = scope.spawn(move || {
                    guard_panic(file_r, label_r, || {
                        blocks.blocks(BLOCK_VALUES, &mut |block: Vec<f32>| {
                            // A closed channel means the writer stopped on an error of its own.
                            tx.send(block).map_err(|_| StoreError::BadInput {
                                path: file_r.clone(),
                                location: label_r.clone(),
                                detail: "ingest stopped".into(),
                            })
                        })
                    })
                });
                let written = (|| -> Result<(), StoreError> {
                    for block in rx.iter() {
                        if !opts.allow_nonfinite {
                            if let Some(i) = block.iter().position(|v| !v.is_finite()) {
                                let flat = offset + i;
                                let bad = block.iter().filter(|v| !v.is_finite()).count();
                                return Err(StoreError::BadInput {
                                    path: file.clone(),
                                    location: location.clone(),
                                    detail: format!(
                                        "value at trial {}, time {}, unit {} is {} ({bad} non-finite values in \
                                         this block); clean the data or pass --allow-nonfinite to keep them",
                                        flat / (time * units),
                                        flat / units % time,
                                        flat % units,
                                        block[i]
                                    ),
                                });
                            }
                        }
                        offset += block.len();
                        let len = block.len() as u64;
                        writer.write_trials(block)?;
                        progress(IngestEvent::Values(len));
                    }
                    Ok(())
                })();
                let read = reader.join().unwrap_or_else(|_| {
                    Err(StoreError::BadInput {
                        path: file.clone(),
                        location: label.clone(),
                        detail: "the reader thread failed".into(),
                    })
                });
                // The writer's own error first (the reader's is then only "stopped").
                written.and(read)
            })?;
            let meta = writer.finish(RecordingMeta {
                shape: cand.shape,
                hash: String::new(),
                keys: keys.clone(),
                source: source.clone(),
                dtype: cand.dtype.clone(),
            })?;
            report.values += cand.shape.iter().product::<usize>() as u64;
            let id = recording_id(&meta.hash, &keys);
            let file = format!("recordings/{}/{}.parquet", &meta.hash[..2], meta.hash);
            let row = CatalogRow {
                id,
                keys,
                shape: cand.shape,
                dtype: cand.dtype,
                hash: meta.hash,
                file,
                source: source.clone(),
                ingested_at: now,
            };
            staged.push((row, tmp));
            progress(IngestEvent::RecordingDone { source });
        }
        progress(IngestEvent::Committing);
        self.commit(staged, &mut report)?;
        // The staged files were moved in by the commit; only now may the staging folder go.
        drop(txn);
        Ok(report)
    }

    fn commit(&self, staged: Vec<(CatalogRow, PathBuf)>, report: &mut IngestReport) -> Result<(), StoreError> {
        let _lock = LockGuard::acquire(&self.root.join(".lock"))?;
        let mut cat = self.catalog()?;
        let mut ids: HashSet<String> = cat.rows.iter().map(|r| r.id.clone()).collect();
        let hashes: HashSet<String> = cat.rows.iter().map(|r| r.hash.clone()).collect();
        let mut new_rows = Vec::new();
        let mut moves: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut planned_files: HashSet<String> = HashSet::new();
        for (row, tmp) in staged {
            if !ids.insert(row.id.clone()) {
                // Already catalogued. If its file is gone (deleted because it was damaged,
                // see `read_row`), this identical content restores it.
                let dest = self.root.join(&row.file);
                if !dest.exists() && planned_files.insert(row.file.clone()) {
                    moves.push((tmp, dest));
                    report.restored.push(row.id.clone());
                }
                report.already_present.push(row.source.clone());
                continue;
            }
            let dest = self.root.join(&row.file);
            if hashes.contains(&row.hash) || planned_files.contains(&row.file) {
                report.shared_content += 1;
            }
            if !dest.exists() && planned_files.insert(row.file.clone()) {
                moves.push((tmp, dest));
            }
            new_rows.push(row);
        }
        if new_rows.is_empty() && moves.is_empty() {
            return Ok(());
        }
        check_key_types(&cat, &new_rows)?;
        let mut shards = HashSet::new();
        for (tmp, dest) in &moves {
            let shard = dest.parent().unwrap_or(&self.root).to_path_buf();
            fs::create_dir_all(&shard).map_err(StoreError::io(&shard))?;
            fs::rename(tmp, dest).map_err(StoreError::io(dest))?;
            shards.insert(shard);
        }
        for s in &shards {
            sync_dir(s)?;
        }
        sync_dir(&self.root.join("recordings"))?;
        if new_rows.is_empty() {
            return Ok(());
        }
        cat.rows.extend(new_rows.iter().cloned());
        atomic_write(&self.root.join("catalog.parquet"), |tmp| cat.write_parquet(tmp))?;
        report.added = new_rows;
        Ok(())
    }
}

/// `opts.keys` with the standard keys' types (`progress` 0 is a float), as `--key` gives them.
fn constant_keys(opts: &IngestOptions) -> Result<Keys, StoreError> {
    opts.keys.iter().map(|(k, v)| Ok((k.clone(), crate::keys::normalise(k, v.clone())?))).collect()
}

/// Run reader code; a panic inside a third-party decoder on damaged input becomes an error
/// naming the file (the readers are fuzzed, this is the last line of defence).
fn guard_panic<T>(file: &Path, location: &str, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    crate::guard::catch_decoder_panic(f).unwrap_or_else(|why| {
        Err(StoreError::BadInput {
            path: file.to_path_buf(),
            location: location.to_string(),
            detail: format!(
                "a decoder failed on damaged data ({why}); the file is damaged or not the format its name says"
            ),
        })
    })
}

/// Standard keys must keep their fixed types (they are normalised on the way in, so this
/// guards against a damaged or foreign catalogue). User key columns need no check: mixed
/// types widen (int + float = float, anything + string = string, see `keys`).
fn check_key_types(cat: &Catalog, new_rows: &[CatalogRow]) -> Result<(), StoreError> {
    for r in cat.rows.iter().chain(new_rows) {
        for (k, v) in &r.keys {
            let t = KeyType::of(v);
            if let Some(std) = crate::keys::standard_type(k) {
                if std != t {
                    return Err(StoreError::Key {
                        key: k.clone(),
                        detail: format!("recording {} holds a {t:?} where the catalogue needs {std:?}", r.id),
                    });
                }
            }
        }
    }
    Ok(())
}

/// An ingest's private staging folder, locked (flock on the folder itself) by its owner
/// for as long as the owner lives, and removed on drop.
struct Staging {
    dir: PathBuf,
    _owner: LockGuard,
}

impl Staging {
    fn create(root: &Path) -> Result<Staging, StoreError> {
        let dir = root.join(".staging").join(unique_suffix());
        // Another ingest may remove an empty `.staging` between our two mkdirs: retry.
        let mut made = fs::create_dir_all(&dir);
        for _ in 0..5 {
            if made.is_ok() {
                break;
            }
            made = fs::create_dir_all(&dir);
        }
        made.map_err(StoreError::io(&dir))?;
        let owner = LockGuard::lock_dir(&dir)?;
        Ok(Staging { dir, _owner: owner })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        // Leave no empty `.staging` behind (fails harmlessly while another ingest uses it).
        if let Some(parent) = self.dir.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Keys of a recording as `k=v` pairs, for messages and tables.
pub fn keys_text(keys: &Keys) -> String {
    keys.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}
