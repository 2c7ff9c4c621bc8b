//! Guest console filtering: find and strip the exit marker.
//!
//! Before it stops, the guest kernel prints
//! `ESC _ unikit:exit=<i32> [;reason=<word>] ESC \` and then `\n`.
//! [`MarkerFilter`] removes that marker (and the one line end after it) from
//! the byte stream, however the stream is split into chunks, and lets every
//! other byte through unchanged. The marker's bytes and its parser are
//! `unikit_abi::exit`'s, shared with the guest that writes it.

use unikit_abi::exit::{Parse, parse};

/// What the guest reported in its exit marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestExit {
    pub code: i32,
    /// `panic`, `exception`, ... when the guest did not exit normally.
    pub reason: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// Not right after a marker.
    Nothing,
    /// Just after a marker: a `\n` (or `\r\n`) here is part of it.
    Marker,
    /// After a marker and a `\r`.
    MarkerCr,
}

/// Streaming marker stripper.
pub struct MarkerFilter {
    pending: Vec<u8>,
    after: After,
    exit: Option<GuestExit>,
}

impl Default for MarkerFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl MarkerFilter {
    pub fn new() -> MarkerFilter {
        MarkerFilter { pending: Vec::new(), after: After::Nothing, exit: None }
    }

    /// The first marker seen so far.
    pub fn exit(&self) -> Option<&GuestExit> {
        self.exit.as_ref()
    }

    /// Filter a chunk; what should be shown is appended to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.byte(b, out);
        }
    }

    /// End of stream: release anything held back.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.after == After::MarkerCr {
            out.push(b'\r');
        }
        self.after = After::Nothing;
        out.append(&mut self.pending);
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.after {
            After::Nothing => {}
            After::Marker => {
                self.after = After::Nothing;
                match b {
                    b'\n' => return,
                    b'\r' => {
                        self.after = After::MarkerCr;
                        return;
                    }
                    _ => {}
                }
            }
            After::MarkerCr => {
                self.after = After::Nothing;
                if b == b'\n' {
                    return;
                }
                out.push(b'\r');
            }
        }
        if self.pending.is_empty() && b != 0x1b {
            out.push(b);
            return;
        }
        self.pending.push(b);
        match parse(&self.pending) {
            Parse::Partial => {}
            Parse::Done(exit) => {
                self.pending.clear();
                let reason = exit.reason.map(|r| r.as_str().to_string());
                self.exit.get_or_insert(GuestExit { code: exit.code, reason });
                self.after = After::Marker;
            }
            Parse::No => {
                // Release the first byte and look again at the rest: a new
                // marker may start inside what was held back.
                let held = std::mem::take(&mut self.pending);
                out.push(held[0]);
                for &c in &held[1..] {
                    self.byte(c, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` split at every pair of positions; all splits must agree.
    fn filter(input: &[u8]) -> (Vec<u8>, Option<GuestExit>) {
        let whole = run(&[input]);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = run(&[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, whole, "split at {i},{j} of {input:?}");
            }
        }
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytewise), whole);
        whole
    }

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Option<GuestExit>) {
        let mut f = MarkerFilter::new();
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c, &mut out);
        }
        f.finish(&mut out);
        (out, f.exit().cloned())
    }

    #[test]
    fn strips_marker_and_newline() {
        let (out, exit) = filter(b"Hello\n\x1b_unikit:exit=3\x1b\\\n");
        assert_eq!(out, b"Hello\n");
        assert_eq!(exit, Some(GuestExit { code: 3, reason: None }));
    }

    #[test]
    fn reason_and_negative_code() {
        let (out, exit) = filter(b"boom\x1b_unikit:exit=-101;reason=panic\x1b\\\r\nafter");
        assert_eq!(out, b"boomafter");
        assert_eq!(exit, Some(GuestExit { code: -101, reason: Some("panic".into()) }));
    }

    #[test]
    fn only_one_newline_is_eaten() {
        let (out, _) = filter(b"\x1b_unikit:exit=0\x1b\\\n\nx\r");
        assert_eq!(out, b"\nx\r");
        let (out, _) = filter(b"\x1b_unikit:exit=0\x1b\\\rx");
        assert_eq!(out, b"\rx");
        let (out, _) = filter(b"\x1b_unikit:exit=0\x1b\\");
        assert_eq!(out, b"");
    }

    #[test]
    fn look_alikes_pass_through() {
        for text in [
            &b"\x1b[31mred\x1b[0m"[..],
            b"\x1b_unikit:exi",
            b"\x1b_unikit:exit=",
            b"\x1b_unikit:exit=12",
            b"\x1b_unikit:exit=12\x1b",
            b"\x1b_unikit:exit=x\x1b\\",
            b"\x1b_unikit:exit=\x1b\\",
            b"\x1b_unikit:exit=1;reason=\x1b\\",
            b"\x1b_unikit:exit=1;reasons=x\x1b\\",
            b"\x1b_unikit:exit=99999999999\x1b\\",
            b"\x1b_unikit:exit=1\x1b]",
            b"\x1b\x1b\x1b",
            b"plain text\n",
        ] {
            let (out, exit) = filter(text);
            assert_eq!(out, text, "{text:?}");
            assert_eq!(exit, None, "{text:?}");
        }
    }

    #[test]
    fn marker_inside_a_false_start() {
        let (out, exit) = filter(b"a\x1b_unikit:exit=1\x1b_unikit:exit=7\x1b\\\nb");
        assert_eq!(out, b"a\x1b_unikit:exit=1b");
        assert_eq!(exit, Some(GuestExit { code: 7, reason: None }));
    }

    #[test]
    fn first_marker_wins() {
        let (out, exit) = filter(b"\x1b_unikit:exit=1\x1b\\\n\x1b_unikit:exit=2\x1b\\\n");
        assert!(out.is_empty());
        assert_eq!(exit.unwrap().code, 1);
    }

    #[test]
    fn passes_binary_data() {
        let data: Vec<u8> = (0..=255u8).collect();
        assert_eq!(filter(&data).0, data);
    }
}
