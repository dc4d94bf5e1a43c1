//! Writing to stdout without panicking on a closed pipe.

use std::io::Write;

/// Print a line; a closed pipe (`dynsim ... | head`) surfaces as an error that `main`
/// treats as success.
pub fn println(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")?;
    out.flush()?;
    Ok(())
}

/// Whether an error is a broken pipe on stdout.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
