//! Panics of third-party decoders on damaged files, turned into errors.
//!
//! The Parquet and HDF5 readers dynsim builds on are not panic-free on damaged input. A scan
//! of every single-bit flip of a 14 kB Parquet table (`data/ingest/long_table.parquet`)
//! found 127 of 113,080 damaged copies on which parquet 60.1.0 panics, at 8 places (for
//! example `column/page.rs:365`, an `unwrap` of a missing data page header; upstream knows
//! the class of bug: apache/arrow-rs#6228, #11121). Every read of a file a user or a damaged
//! disk can influence therefore runs through [`catch_decoder_panic`]:
//!
//! - the panic becomes an `Err` that names where the decoder failed (crate, file and line)
//!   and why, so the caller's error names the damaged file and what to do;
//! - it is not printed: a panic hook (installed once, delegating to the previous hook for
//!   every other panic) keeps the message instead of writing "thread panicked at ..." to
//!   stderr, which a user would read as a crash of dynsim;
//! - it is counted ([`caught_panics`]) so the fuzz tests can treat each one as a decoder bug
//!   hidden behind the guard.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

thread_local! {
    static CAUGHT_PANICS: Cell<usize> = const { Cell::new(0) };
    /// Depth of nested guarded calls on this thread (panics inside are silenced).
    static GUARDED: Cell<usize> = const { Cell::new(0) };
    /// The message of the last silenced panic on this thread.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// How many panics inside decoders (the Parquet and HDF5 readers, a file's ingest) were
/// turned into errors on this thread so far. A user gets a clean error either way; the fuzz
/// tests count these as failures, since each one is a decoder bug hidden behind the guard.
pub fn caught_panics() -> usize {
    CAUGHT_PANICS.with(Cell::get)
}

/// Run decoder code on data from a file; a panic inside becomes `Err(description)` (where
/// and why the decoder failed, e.g. ``parquet-60.1.0/src/column/page.rs:365: called
/// `Option::unwrap()` on a `None` value``), is counted in [`caught_panics`] and is not
/// printed. Panics outside guarded code still reach the previous hook unchanged.
pub(crate) fn catch_decoder_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) > 0 {
                LAST.with(|l| *l.borrow_mut() = Some(describe(info)));
            } else {
                previous(info);
            }
        }));
    });
    GUARDED.with(|g| g.set(g.get() + 1));
    let out = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    out.map_err(|_| {
        CAUGHT_PANICS.with(|c| c.set(c.get() + 1));
        LAST.with(|l| l.borrow_mut().take()).unwrap_or_else(|| "a panic without a message".into())
    })
}

/// `crate-version/src/file.rs:line: message`, the path shortened to the crate's own.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    match info.location() {
        Some(l) => format!("{}:{}: {msg}", short_path(l.file()), l.line()),
        None => msg,
    }
}

/// A path inside cargo's registry (`~/.cargo/registry/src/<index>/parquet-60.1.0/src/...`)
/// from the crate folder on; any other path unchanged.
fn short_path(file: &str) -> &str {
    file.find("/registry/src/")
        .map(|i| &file[i + "/registry/src/".len()..])
        .and_then(|rest| rest.split_once('/').map(|(_index, krate)| krate))
        .unwrap_or(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_panic_becomes_a_described_error_and_is_counted() {
        let before = caught_panics();
        let err = catch_decoder_panic(|| -> u8 { panic!("bad page {}", 3) }).expect_err("panicked");
        assert!(err.contains("guard.rs:") && err.ends_with("bad page 3"), "{err}");
        let err = catch_decoder_panic(|| -> u8 { panic!("static text") }).expect_err("panicked");
        assert!(err.ends_with("static text"), "{err}");
        assert_eq!(caught_panics(), before + 2);
        assert_eq!(catch_decoder_panic(|| 7).expect("no panic"), 7);
        assert_eq!(caught_panics(), before + 2);
        // Nested guards: the inner panic is the inner call's error; the outer call goes on.
        let outer = catch_decoder_panic(|| catch_decoder_panic(|| -> u8 { panic!("inner") }));
        assert!(outer.expect("outer ran").expect_err("inner panicked").ends_with("inner"));
        // An unguarded panic on this thread afterwards still unwinds as a panic.
        assert!(catch_unwind(|| -> u8 { panic!("unguarded") }).is_err());
        assert_eq!(GUARDED.with(Cell::get), 0);
    }

    #[test]
    fn registry_paths_are_shortened_to_the_crate() {
        let p = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/parquet-60.1.0/src/column/page.rs";
        assert_eq!(short_path(p), "parquet-60.1.0/src/column/page.rs");
        assert_eq!(short_path("crates/dynsim-store/src/guard.rs"), "crates/dynsim-store/src/guard.rs");
    }
}
