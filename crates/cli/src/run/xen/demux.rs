//! Splitting the test bed's serial line into the guest console and noise.
//!
//! Xen, dom0 and (through `xl create -c`) the guest all write to one serial
//! port. dom0's init (dom0-init.sh) brackets the guest console with two APC
//! strings, like the guest's own exit marker:
//! `ESC _unikit-xen:begin ESC \` and
//! `ESC _unikit-xen:end;xl=<status>;shutdown=<code> ESC \`.
//! Between them every byte is the guest's, except whole lines Xen itself
//! prints (`(XEN) ...`), which stay noise, unless they carry a domU's
//! `console_io` output (`(XEN) (d1) ...`), which a guest uses before its
//! console ring works: those are the guest's too. Everything else is noise
//! (Xen and dom0 boot messages, xl's log after the guest).
//!
//! Line ends: dom0's tty turns `\n` into `\r\n` and Xen's serial driver adds
//! another `\r`, so any run of `\r` right before `\n` is dropped.

const TAG: &[u8] = b"\x1b_unikit-xen:";
/// Longest marker body we wait for before deciding it is not ours.
const MAX_MARKER: usize = 128;
const XEN_PREFIX: &[u8] = b"(XEN) ";

/// How dom0 said the run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// `xl create`'s exit status, or `setup` when dom0 failed before it.
    pub xl: String,
    /// Xen's shutdown reason code for the domain (0 poweroff, 1 reboot,
    /// 2 suspend, 3 crash, 4 watchdog), or `unknown`/`none`.
    pub shutdown: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Boot,
    Guest,
    After,
}

/// Where the bytes of the current line go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// At the start of a line: still deciding (holding up to 6 bytes).
    Start,
    /// A line of the current phase's sink.
    Normal,
    /// A `(XEN) ` line, held whole until its end.
    Xen,
}

pub struct Demux {
    phase: Phase,
    line: Line,
    /// Bytes held back: a possible marker, a line start, a `(XEN)` line.
    held: Vec<u8>,
    /// `\r`s held back (dropped if a `\n` follows).
    crs: usize,
    /// A possible marker, held until it is complete or proves not ours.
    marker: Vec<u8>,
    /// Right after a marker: its line end (`\r*\n`) is not output.
    eat_newline: bool,
    /// The begin marker was seen.
    begun: bool,
    end: Option<End>,
}

/// Output of one [`Demux::feed`].
#[derive(Default)]
pub struct Out {
    pub guest: Vec<u8>,
    pub noise: Vec<u8>,
}

impl Default for Demux {
    fn default() -> Self {
        Self::new()
    }
}

impl Demux {
    pub fn new() -> Demux {
        Demux {
            phase: Phase::Boot,
            line: Line::Start,
            held: Vec::new(),
            crs: 0,
            marker: Vec::new(),
            eat_newline: false,
            begun: false,
            end: None,
        }
    }

    /// Has dom0 started the guest?
    pub fn begun(&self) -> bool {
        self.begun
    }

    /// dom0's end line, once seen.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    pub fn feed(&mut self, input: &[u8], out: &mut Out) {
        for &b in input {
            self.byte(b, out);
        }
    }

    /// End of stream: release whatever is held.
    pub fn finish(&mut self, out: &mut Out) {
        let marker = std::mem::take(&mut self.marker);
        for b in marker {
            self.plain(b, out);
        }
        self.flush_crs(out);
        let held = std::mem::take(&mut self.held);
        let sink = self.line_sink(&held);
        self.sink(sink, out).extend_from_slice(&held);
        self.line = Line::Start;
    }

    fn byte(&mut self, b: u8, out: &mut Out) {
        if self.marker.is_empty() && b != 0x1b {
            return self.plain(b, out);
        }
        self.marker.push(b);
        let m = &self.marker;
        let n = m.len().min(TAG.len());
        if m[..n] != TAG[..n] {
            // Not ours: release the first byte, look again at the rest.
            let held = std::mem::take(&mut self.marker);
            self.plain(held[0], out);
            for &c in &held[1..] {
                self.byte(c, out);
            }
            return;
        }
        if m.len() > TAG.len() && m.ends_with(b"\x1b\\") {
            let body = String::from_utf8_lossy(&m[TAG.len()..m.len() - 2]).into_owned();
            self.marker.clear();
            self.on_marker(&body, out);
        } else if m.len() > TAG.len() + MAX_MARKER {
            let held = std::mem::take(&mut self.marker);
            for c in held {
                self.plain(c, out);
            }
        }
    }

    fn on_marker(&mut self, body: &str, out: &mut Out) {
        // Whatever the current line held belongs to the phase that ends.
        self.flush_crs(out);
        let held = std::mem::take(&mut self.held);
        let sink = self.line_sink(&held);
        self.sink(sink, out).extend_from_slice(&held);
        if body == "begin" && self.phase == Phase::Boot {
            self.phase = Phase::Guest;
            self.begun = true;
        } else if let Some(rest) = body.strip_prefix("end;") {
            let field = |k: &str| {
                rest.split(';').find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')).unwrap_or("unknown").to_string()
            };
            self.end.get_or_insert(End { xl: field("xl"), shutdown: field("shutdown") });
            self.phase = Phase::After;
        }
        // The marker's own line end is not output: start a fresh line that
        // swallows it.
        self.line = Line::Start;
        self.eat_newline = true;
    }

    /// A byte that is not part of a marker.
    fn plain(&mut self, b: u8, out: &mut Out) {
        if b == b'\r' {
            self.crs += 1;
            return;
        }
        if b == b'\n' {
            self.crs = 0;
            if std::mem::take(&mut self.eat_newline) {
                return;
            }
        } else {
            self.eat_newline = false;
            self.flush_crs(out);
        }
        self.line_byte(b, out);
    }

    fn flush_crs(&mut self, out: &mut Out) {
        for _ in 0..std::mem::take(&mut self.crs) {
            self.line_byte(b'\r', out);
        }
    }

    fn line_byte(&mut self, b: u8, out: &mut Out) {
        match self.line {
            Line::Start => {
                self.held.push(b);
                let n = self.held.len().min(XEN_PREFIX.len());
                if self.held[..n] != XEN_PREFIX[..n] || b == b'\n' {
                    let held = std::mem::take(&mut self.held);
                    let sink = self.phase_sink();
                    self.sink(sink, out).extend_from_slice(&held);
                    self.line = if b == b'\n' { Line::Start } else { Line::Normal };
                } else if self.held.len() == XEN_PREFIX.len() {
                    self.line = Line::Xen;
                }
            }
            Line::Normal => {
                let sink = self.phase_sink();
                self.sink(sink, out).push(b);
                if b == b'\n' {
                    self.line = Line::Start;
                }
            }
            Line::Xen => {
                self.held.push(b);
                if b == b'\n' {
                    let held = std::mem::take(&mut self.held);
                    let sink = self.line_sink(&held);
                    let text = if sink == Sink::Guest { &held[XEN_PREFIX.len()..] } else { &held[..] };
                    self.sink(sink, out).extend_from_slice(text);
                    self.line = Line::Start;
                }
            }
        }
    }

    fn phase_sink(&self) -> Sink {
        if self.phase == Phase::Guest { Sink::Guest } else { Sink::Noise }
    }

    /// Where a held line goes: a `(XEN) (dN) ` line with N > 0 during the
    /// guest phase is the guest's, other `(XEN)` lines are noise.
    fn line_sink(&self, held: &[u8]) -> Sink {
        if !held.starts_with(XEN_PREFIX) {
            return self.phase_sink();
        }
        let rest = &held[XEN_PREFIX.len()..];
        let domu = rest.strip_prefix(b"(d").and_then(|r| {
            let digits = r.iter().take_while(|c| c.is_ascii_digit()).count();
            let n: u32 = std::str::from_utf8(&r[..digits]).ok()?.parse().ok()?;
            (n > 0 && r.get(digits) == Some(&b')')).then_some(())
        });
        if domu.is_some() && self.phase == Phase::Guest { Sink::Guest } else { Sink::Noise }
    }

    fn sink<'a>(&self, s: Sink, out: &'a mut Out) -> &'a mut Vec<u8> {
        match s {
            Sink::Guest => &mut out.guest,
            Sink::Noise => &mut out.noise,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    Guest,
    Noise,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` in every two-way split and bytewise; all must agree.
    fn demux(input: &[u8]) -> (String, String, Option<End>, bool) {
        let whole = run(&[input]);
        for i in 0..=input.len() {
            assert_eq!(run(&[&input[..i], &input[i..]]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&bytes), whole);
        whole
    }

    fn run(chunks: &[&[u8]]) -> (String, String, Option<End>, bool) {
        let mut d = Demux::new();
        let mut out = Out::default();
        for c in chunks {
            d.feed(c, &mut out);
        }
        d.finish(&mut out);
        (
            String::from_utf8_lossy(&out.guest).into_owned(),
            String::from_utf8_lossy(&out.noise).into_owned(),
            d.end().cloned(),
            d.begun(),
        )
    }

    const BEGIN: &str = "\x1b_unikit-xen:begin\x1b\\";

    #[test]
    fn a_whole_run() {
        let input = format!(
            "(XEN) Xen version 4.17\r\n[    0.0] Linux\r\r\nunikit-dom0: starting the guest\r\r\n{BEGIN}\r\r\n\
             Hello\r\r\n(XEN) d1v0 some warning\r\n(XEN) (d1) early words\r\nbye \x1b_unikit:exit=3\x1b\\\r\r\n\
             \x1b_unikit-xen:end;xl=0;shutdown=0\x1b\\\r\r\nDomain 1 has shut down\r\r\n"
        );
        let (guest, noise, end, begun) = demux(input.as_bytes());
        assert_eq!(guest, "Hello\n(d1) early words\nbye \x1b_unikit:exit=3\x1b\\\n");
        assert_eq!(
            noise,
            "(XEN) Xen version 4.17\n[    0.0] Linux\nunikit-dom0: starting the guest\n(XEN) d1v0 some warning\nDomain 1 has shut down\n"
        );
        assert_eq!(end, Some(End { xl: "0".into(), shutdown: "0".into() }));
        assert!(begun);
    }

    #[test]
    fn setup_failure_and_no_markers() {
        let (guest, noise, end, begun) =
            demux(b"unikit-dom0: cannot mount xenfs\r\n\x1b_unikit-xen:end;xl=setup;shutdown=none\x1b\\\r\n");
        assert_eq!(guest, "");
        assert_eq!(noise, "unikit-dom0: cannot mount xenfs\n");
        assert_eq!(end, Some(End { xl: "setup".into(), shutdown: "none".into() }));
        assert!(!begun);
        let (guest, noise, end, begun) = demux(b"(XEN) Panic on CPU 0\r\n(XEN) (d1) x\r\nno end");
        assert_eq!((guest.as_str(), end, begun), ("", None, false));
        assert_eq!(noise, "(XEN) Panic on CPU 0\n(XEN) (d1) x\nno end");
    }

    #[test]
    fn guest_bytes_pass_unchanged() {
        // Partial lines, lone \r, escape sequences, look-alikes of our tag,
        // a line that only starts like Xen's, binary bytes.
        let body: &[u8] = b"progress 10%\rprogress 20%\r\n\x1b[31mred\x1b[0m \x1b_unikit-xe \x1b_other\x1b\\\n(XEN\n(XE) no\n\x00\xff\x1b";
        let mut input = BEGIN.as_bytes().to_vec();
        input.extend_from_slice(body);
        let (guest, noise, end, begun) = demux(&input);
        assert_eq!(guest.as_bytes(), String::from_utf8_lossy(b"progress 10%\rprogress 20%\n\x1b[31mred\x1b[0m \x1b_unikit-xe \x1b_other\x1b\\\n(XEN\n(XE) no\n\x00\xff\x1b").as_bytes());
        assert_eq!((noise.as_str(), end, begun), ("", None, true));
    }

    #[test]
    fn dom0_lines_and_unterminated_markers() {
        // (d0) is dom0, not the guest; an overlong "marker" is released.
        let mut input = format!("{BEGIN}\n(XEN) (d0) dom0 says\n(XEN) (d12) domu\nx").into_bytes();
        input.extend_from_slice(b"\x1b_unikit-xen:");
        input.extend_from_slice(&[b'a'; 200]);
        let (guest, noise, _, _) = demux(&input);
        assert_eq!(noise, "(XEN) (d0) dom0 says\n");
        assert!(guest.starts_with("(d12) domu\nx\x1b_unikit-xen:aaaa"), "{guest:?}");
        assert_eq!(guest.len(), "(d12) domu\nx".len() + TAG.len() + 200);
    }
}
