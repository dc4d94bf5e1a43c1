//! Crash-safe file operations: temporary file + fsync + rename, directory fsync, lock files.
//! Public so that the layers above the store (the result cache of `dynsim-query`) write
//! into the store folder with the same guarantees.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StoreError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call: `<pid>-<nanos>-<counter>`.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{nanos:x}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The temporary name used while writing `path`: `.<name>.tmp-<unique>` in the same folder
/// (same file system, so the final rename is atomic). Readers never list these.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", unique_suffix()))
}

/// fsync a directory so that a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io(dir))
}

/// Write `path` atomically: `write` fills a temporary file (and must fsync it, or leave it
/// to this function via `File`), which is then renamed over `path` and the folder synced.
/// On error the temporary file is removed and `path` is untouched.
pub fn atomic_write(path: &Path, write: impl FnOnce(&Path) -> Result<(), StoreError>) -> Result<(), StoreError> {
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(StoreError::io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(StoreError::io(path))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    sync_dir(parent_dir(path))
}

/// The folder holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An exclusive lock on a lock file (advisory `flock`), released on drop.
pub struct LockGuard {
    file: File,
}

impl LockGuard {
    /// Block until the lock on `path` is ours (creating the file if needed).
    pub fn acquire(path: &Path) -> Result<LockGuard, StoreError> {
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(StoreError::io(path))?;
        file.lock().map_err(StoreError::io(path))?;
        Ok(LockGuard { file })
    }

    /// Lock a directory itself (flock on its descriptor), blocking.
    pub fn lock_dir(dir: &Path) -> Result<LockGuard, StoreError> {
        let file = File::open(dir).map_err(StoreError::io(dir))?;
        file.lock().map_err(StoreError::io(dir))?;
        Ok(LockGuard { file })
    }

    /// Take the lock on the lock file `path` (created if needed) if nobody holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<LockGuard>, StoreError> {
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(StoreError::io(path))?;
        Self::try_file(file, path)
    }

    /// Take the lock of a directory if nobody holds it.
    pub fn try_lock_dir(dir: &Path) -> Result<Option<LockGuard>, StoreError> {
        let file = File::open(dir).map_err(StoreError::io(dir))?;
        Self::try_file(file, dir)
    }

    fn try_file(file: File, path: &Path) -> Result<Option<LockGuard>, StoreError> {
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard { file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Every file under `dir` with its bytes, by path relative to `dir`. Used to check that a
/// failed or read-only operation left a store byte for byte as it was.
pub fn snapshot(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(StoreError::io(&d))?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).map_err(StoreError::io(&p))?);
            }
        }
    }
    Ok(out)
}
