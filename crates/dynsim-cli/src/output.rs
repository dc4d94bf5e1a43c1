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

/// The message of an error and its causes, joined by `: `, each cause once: a cause whose
/// text the message already holds (a library error that prints its source, such as
/// `x.npy: No such file or directory (os error 2)`) is not repeated.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use anyhow::Context;

    #[test]
    fn every_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let e = anyhow::Error::new(dynsim_store::StoreError::Io { path: "x.npy".into(), source: io });
        assert_eq!(error_text(&e), "x.npy: No such file or directory (os error 2)");
        let e = Err::<(), _>(e).context("reading the left recording").expect_err("error");
        assert_eq!(error_text(&e), "reading the left recording: x.npy: No such file or directory (os error 2)");
    }
}
