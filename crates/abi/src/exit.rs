//! The console exit marker.
//!
//! On platforms where the host sees only the console (VMs), the last thing
//! the guest prints is `ESC _ unikit:exit=<code>[;reason=<reason>] ESC \`
//! (then a line end): an ANSI "application program command" that terminals
//! do not display. `unikit run` reads the exit code from it and strips it.
//! `<code>` is a decimal `i32`; `<reason>` is 1 to [`MAX_REASON`] bytes of
//! `[A-Za-z0-9_-]` (`panic`, `exception`, `deadlock`).
//!
//! The guest writes it with [`Marker`]; the host recognizes it, however
//! the stream is split, with [`parse`] on the bytes held back since a
//! candidate `ESC`.

use core::fmt;

/// What every marker starts with: `ESC _ unikit:exit=`.
pub const PREFIX: &[u8] = b"\x1b_unikit:exit=";
/// What comes between the code and the reason.
pub const REASON_KEY: &[u8] = b";reason=";
/// The string terminator `ESC \` that ends the marker.
pub const TERMINATOR: &[u8] = b"\x1b\\";
/// Longest code: "-2147483648".
pub const MAX_DIGITS: usize = 11;
/// Longest reason.
pub const MAX_REASON: usize = 32;

/// The marker, for the guest to print: `Display` writes its exact bytes
/// (without the line end that follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker<'a> {
    /// The exit code.
    pub code: i32,
    /// Why the guest stopped when it did not exit normally; must be a
    /// [`valid_reason`] (an invalid one is left out, so the marker still
    /// parses).
    pub reason: Option<&'a str>,
}

impl fmt::Display for Marker<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PREFIX and TERMINATOR are ASCII.
        f.write_str("\x1b_unikit:exit=")?;
        write!(f, "{}", self.code)?;
        if let Some(r) = self.reason.filter(|r| valid_reason(r.as_bytes())) {
            write!(f, ";reason={r}")?;
        }
        f.write_str("\x1b\\")
    }
}

/// Whether `r` is a reason the parser accepts.
pub fn valid_reason(r: &[u8]) -> bool {
    !r.is_empty() && r.len() <= MAX_REASON && r.iter().all(|&b| reason_byte(b))
}

fn reason_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A reason read from a marker (no allocation: at most [`MAX_REASON`]
/// bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    buf: [u8; MAX_REASON],
    len: u8,
}

impl Reason {
    /// The reason's text.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored (see `parse`).
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// What a whole marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code.
    pub code: i32,
    /// The reason, if any.
    pub reason: Option<Reason>,
}

/// What [`parse`] makes of the bytes held back since a candidate `ESC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// The bytes so far can still become a marker.
    Partial,
    /// The bytes are exactly one whole marker.
    Done(Exit),
    /// The bytes are not (the start of) a marker.
    No,
}

/// Does `buf` (which starts at a candidate `ESC`) form a marker, a prefix
/// of one, or neither? Never reads past `buf`, never panics.
pub fn parse(buf: &[u8]) -> Parse {
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Parse::No;
    }
    let Some(rest) = buf.get(PREFIX.len()..).filter(|r| !r.is_empty()) else {
        return Parse::Partial;
    };
    let sign = usize::from(rest[0] == b'-');
    let digits = rest[sign..].iter().take_while(|b| b.is_ascii_digit()).count();
    let num_end = sign + digits;
    if num_end == rest.len() {
        return if num_end <= MAX_DIGITS { Parse::Partial } else { Parse::No };
    }
    if digits == 0 {
        return Parse::No;
    }
    let Some(code) = core::str::from_utf8(&rest[..num_end]).ok().and_then(|s| s.parse::<i32>().ok()) else {
        return Parse::No;
    };
    let mut tail = &rest[num_end..];
    let mut reason = None;
    if tail[0] == b';' {
        let n = tail.len().min(REASON_KEY.len());
        if tail[..n] != REASON_KEY[..n] {
            return Parse::No;
        }
        if tail.len() <= REASON_KEY.len() {
            return Parse::Partial;
        }
        let word = &tail[REASON_KEY.len()..];
        let len = word.iter().take_while(|&&b| reason_byte(b)).count();
        if len > MAX_REASON {
            return Parse::No;
        }
        if len == word.len() {
            return Parse::Partial;
        }
        if len == 0 {
            return Parse::No;
        }
        let mut buf = [0u8; MAX_REASON];
        buf[..len].copy_from_slice(&word[..len]);
        reason = Some(Reason { buf, len: len as u8 });
        tail = &word[len..];
    }
    match tail {
        [0x1b] => Parse::Partial,
        [0x1b, b'\\'] => Parse::Done(Exit { code, reason }),
        _ => Parse::No,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn encodes_what_the_parser_reads() {
        for (code, reason) in [(0, None), (-2147483648, Some("panic")), (i32::MAX, Some("a_b-C9"))] {
            let s = Marker { code, reason }.to_string();
            let Parse::Done(e) = parse(s.as_bytes()) else { panic!("{s:?}") };
            assert_eq!(e.code, code);
            assert_eq!(e.reason.as_ref().map(Reason::as_str), reason);
            // Every proper prefix is Partial.
            for i in 1..s.len() {
                assert_eq!(parse(&s.as_bytes()[..i]), Parse::Partial, "{s:?} cut at {i}");
            }
        }
        assert_eq!(Marker { code: 3, reason: None }.to_string(), "\x1b_unikit:exit=3\x1b\\");
        // An invalid reason is left out rather than producing a marker the
        // host would not recognize.
        assert_eq!(Marker { code: 1, reason: Some("two words") }.to_string(), "\x1b_unikit:exit=1\x1b\\");
    }

    #[test]
    fn look_alikes() {
        for s in [&b"x"[..], b"\x1b[", b"\x1b_unikit:exit=x", b"\x1b_unikit:exit=1;r=", b"\x1b_unikit:exit=1\x1b]"] {
            assert_eq!(parse(s), Parse::No, "{s:?}");
        }
        assert_eq!(parse(b"\x1b_unikit:exit=99999999999\x1b\\"), Parse::No);
    }
}
