//! Error reporting: one `error:` line, an optional `hint:` line.

use std::fmt;

/// Exit code for the tool's own failures (as docker and podman use).
pub const EXIT_TOOL_FAILURE: u8 = 125;

/// An error with a suggestion of what to do about it.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// Build an error that carries a hint line.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted { message: message.into(), hint: hint.into() }.into()
}

/// Print an error (with its causes on the same line) and its hint, if any.
pub fn report(e: &anyhow::Error) {
    eprintln!("error: {e:#}");
    if let Some(h) = e.chain().find_map(|c| c.downcast_ref::<Hinted>()) {
        eprintln!("hint: {}", h.hint);
    }
}

/// Print a warning line on stderr.
pub fn warn(msg: impl fmt::Display) {
    eprintln!("unikit: warning: {msg}");
}
