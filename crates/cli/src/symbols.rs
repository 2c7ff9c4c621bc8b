//! Symbolized crash backtraces.
//!
//! The guest prints frame-pointer backtraces as bare addresses:
//!
//! ```text
//! backtrace:
//!   #0  0x000000000010506c (faulting instruction)
//!   #1  0x000000000010a924
//! ```
//!
//! [`Annotator`] sits between the guest console and our stdout and appends
//! ` <function>+0x<offset>` to each such frame line, using the function
//! symbols of the unstripped image (`<image>.sym`). Everything else passes
//! through unchanged and without delay.

use std::path::Path;

use unikit_abi::elf::{Elf, STT_FUNC};

/// Longest frame line we look at; longer ones pass through unannotated.
pub const MAX_LINE: usize = 256;

/// How far back [`Symbols::lookup`] looks for an enclosing function when
/// the nearest one below the address does not contain it (nested symbols).
const MAX_NESTED: usize = 16;

struct Func {
    start: u64,
    end: u64,
    name: String,
}

/// The function symbols of an image, demangled, sorted by address.
pub struct Symbols {
    funcs: Vec<Func>,
}

impl Symbols {
    /// Read the `.symtab` of an ELF image.
    pub fn load(path: &Path) -> Result<Symbols, String> {
        let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Symbols::from_elf(&data).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_elf(data: &[u8]) -> Result<Symbols, String> {
        let elf = Elf::parse(data).map_err(|e| e.to_string())?;
        let table = elf.symtab().map_err(|e| e.to_string())?;
        let funcs = table
            .iter()
            .filter(|s| s.kind() == STT_FUNC && s.size != 0 && s.shndx != 0)
            .filter_map(|s| {
                let name = table.name(&s)?;
                let end = s.value.checked_add(s.size)?;
                (!name.is_empty()).then(|| (s.value, end, String::from_utf8_lossy(name)))
            })
            .map(|(start, end, raw)| Func { start, end, name: demangle(&raw) });
        Ok(Symbols::new(funcs))
    }

    fn new(funcs: impl IntoIterator<Item = Func>) -> Symbols {
        let mut funcs: Vec<Func> = funcs.into_iter().collect();
        // By start, the largest first, so that the search below meets the
        // innermost function first.
        funcs.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        funcs.dedup_by(|a, b| a.start == b.start && a.end == b.end);
        Symbols { funcs }
    }

    /// The function containing `addr`, and `addr`'s offset in it.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let after = self.funcs.partition_point(|f| f.start <= addr);
        self.funcs[..after]
            .iter()
            .rev()
            .take(MAX_NESTED)
            .find(|f| addr < f.end)
            .map(|f| (f.name.as_str(), addr - f.start))
    }

    /// What to append to a backtrace line (` name+0xoff`), if it is one and
    /// its address is in a known function.
    ///
    /// Every frame but the faulting instruction holds a return address, the
    /// instruction after a call; the call itself is at `addr - 1`, which is
    /// what is looked up (a call ending a function would otherwise be
    /// attributed to the next one). The offset shown is that of the printed
    /// address, so that `name+offset` is the address on the line.
    pub fn annotation(&self, line: &[u8]) -> Option<String> {
        let (addr, faulting) = parse_frame(line)?;
        let probe = if faulting { addr } else { addr.checked_sub(1)? };
        let (name, off) = self.lookup(probe)?;
        Some(format!(" {name}+{:#x}", off + (addr - probe)))
    }
}

/// Rust demangling without the hash (`{:#}`); other names are kept as they are.
pub fn demangle(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name))
}

/// Does `line` (without its line end) match `^\s*#\d+\s+0x[0-9a-f]{16}`?
/// Returns the address and whether this frame is the faulting instruction.
pub fn parse_frame(line: &[u8]) -> Option<(u64, bool)> {
    let ws = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let mut s = &line[ws(line)..];
    s = s.strip_prefix(b"#")?;
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    s = &s[digits..];
    let spaces = ws(s);
    if spaces == 0 {
        return None;
    }
    s = s[spaces..].strip_prefix(b"0x")?;
    let hex = s.get(..16)?;
    if !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let rest = &s[16..];
    if rest.first().is_some_and(u8::is_ascii_hexdigit) {
        return None; // more than 16 digits: not one of ours
    }
    let addr = u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    let faulting = rest.windows(b"(faulting instruction)".len()).any(|w| w == b"(faulting instruction)");
    Some((addr, faulting))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// At the start of a line, possibly after whitespace (kept in `line`).
    Start,
    /// In a line that starts with whitespace and `#`: bytes are shown at
    /// once and also kept in `line`, to annotate it at its end.
    Frame,
    /// In a frame line, after a `\r` that is held back: a `\n` next ends
    /// the line, and the annotation goes before the `\r\n`.
    FrameCr,
    /// In any other line: bytes pass straight through.
    Other,
}

/// Streaming backtrace annotator.
///
/// Nothing is delayed except the `\r` of a frame line's `\r\n` (until the
/// `\n` arrives), because the annotation goes before the line end. The copy
/// of a frame line is capped at [`MAX_LINE`] bytes.
pub struct Annotator {
    symbols: Option<Symbols>,
    state: State,
    line: Vec<u8>,
}

impl Annotator {
    pub fn new(symbols: Option<Symbols>) -> Annotator {
        Annotator { symbols, state: State::Start, line: Vec::new() }
    }

    /// `name+0xoff` for a code address, if the image's symbols know it.
    pub fn name(&self, addr: u64) -> Option<String> {
        let (name, off) = self.symbols.as_ref()?.lookup(addr)?;
        Some(format!("{}+{off:#x}", demangle(name)))
    }

    /// Annotate a chunk; what should be shown is appended to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.symbols.is_none() {
            out.extend_from_slice(input);
            return;
        }
        for &b in input {
            self.byte(b, out);
        }
    }

    /// End of stream: release the held-back `\r`, if any. (A frame line
    /// without a line end is not annotated.)
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state == State::FrameCr {
            out.push(b'\r');
        }
        self.state = State::Start;
        self.line.clear();
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match self.state {
            State::Other => {
                out.push(b);
                if b == b'\n' {
                    self.new_line();
                }
            }
            State::Start => {
                out.push(b);
                if b == b'\n' {
                    self.new_line();
                } else if b.is_ascii_whitespace() {
                    self.line.push(b);
                    if self.line.len() > MAX_LINE {
                        self.other();
                    }
                } else if b == b'#' {
                    self.line.push(b);
                    self.state = State::Frame;
                } else {
                    self.other();
                }
            }
            State::Frame => match b {
                b'\n' => {
                    self.annotate(out);
                    out.push(b'\n');
                    self.new_line();
                }
                b'\r' => self.state = State::FrameCr,
                _ => {
                    out.push(b);
                    self.line.push(b);
                    if self.line.len() > MAX_LINE {
                        self.other();
                    }
                }
            },
            State::FrameCr => {
                if b == b'\n' {
                    self.annotate(out);
                    out.extend_from_slice(b"\r\n");
                    self.new_line();
                } else {
                    // A lone `\r` inside the line: it is part of the line.
                    out.push(b'\r');
                    self.line.push(b'\r');
                    self.state = State::Frame;
                    if self.line.len() > MAX_LINE {
                        self.other();
                    }
                    self.byte(b, out);
                }
            }
        }
    }

    fn annotate(&self, out: &mut Vec<u8>) {
        if let Some(a) = self.symbols.as_ref().and_then(|s| s.annotation(&self.line)) {
            out.extend_from_slice(a.as_bytes());
        }
    }

    fn new_line(&mut self) {
        self.state = State::Start;
        self.line.clear();
    }

    fn other(&mut self) {
        self.state = State::Other;
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn func(start: u64, size: u64, name: &str) -> Func {
        Func { start, end: start + size, name: demangle(name) }
    }

    fn symbols() -> Symbols {
        Symbols::new([
            func(0x1000, 0x20, "_ZN4core9panicking5panic17h0123456789abcdefE"),
            func(0x1020, 0x10, "_start"),
            func(0x1040, 0x40, "_RNvCs1234_7mycrate4main"),
            func(0x1100, 0x100, "outer"),
            func(0x1180, 0x10, "inner"),
            func(0x1100, 0x100, "outer_alias"),
        ])
    }

    #[test]
    fn lookup() {
        let s = symbols();
        assert_eq!(s.funcs.len(), 5, "exact aliases are merged");
        assert_eq!(s.lookup(0xfff), None);
        assert_eq!(s.lookup(0x1000), Some(("core::panicking::panic", 0)));
        assert_eq!(s.lookup(0x101f), Some(("core::panicking::panic", 0x1f)));
        assert_eq!(s.lookup(0x1020), Some(("_start", 0)));
        assert_eq!(s.lookup(0x1030), None, "gap between functions");
        assert_eq!(s.lookup(0x107f), Some(("mycrate::main", 0x3f)));
        assert_eq!(s.lookup(0x1080), None);
        assert_eq!(s.lookup(0x1184), Some(("inner", 4)));
        assert_eq!(s.lookup(0x1190), Some(("outer", 0x90)), "nested symbol");
        assert_eq!(s.lookup(u64::MAX), None);
        assert_eq!(Symbols::new([]).lookup(0x1000), None);
    }

    #[test]
    fn demangling() {
        assert_eq!(demangle("_ZN4core9panicking5panic17h0123456789abcdefE"), "core::panicking::panic");
        assert_eq!(demangle("_ZN5alloc3vec12Vec$LT$T$GT$4push17h0123456789abcdefE"), "alloc::vec::Vec<T>::push");
        assert_eq!(demangle("_RNvCs1234_7mycrate4main"), "mycrate::main");
        assert_eq!(demangle("memcpy"), "memcpy");
    }

    #[test]
    fn frame_lines() {
        let f = |l: &str| parse_frame(l.as_bytes());
        assert_eq!(f("  #0  0x000000000010506c"), Some((0x10506c, false)));
        assert_eq!(f("  #0  0x000000000010506c (faulting instruction)"), Some((0x10506c, true)));
        assert_eq!(f("#12 0xffffffff80001000 x"), Some((0xffffffff80001000, false)));
        assert_eq!(f("\t#3\t0x0000000000000001"), Some((1, false)));
        for no in [
            "",
            "backtrace:",
            "  rip 0x000000000010506c  rsp 0x00000000001284e0",
            "  # 0x000000000010506c",
            "  #x  0x000000000010506c",
            "  #1 0x10506c",
            "  #1  0x000000000010506C",
            "  #1  0x0000000000105g6c",
            "  #1  0x00000000001050600",
            "  #10x000000000010506c",
            "  #1  000000000010506c",
            "x #1  0x000000000010506c",
        ] {
            assert_eq!(f(no), None, "{no:?}");
        }
    }

    #[test]
    fn annotations() {
        let s = symbols();
        let a = |l: &str| s.annotation(l.as_bytes());
        // Return address right after a call that ends `core::panicking::panic`.
        assert_eq!(a("  #1  0x0000000000001020").as_deref(), Some(" core::panicking::panic+0x20"));
        // The faulting instruction is looked up as it is.
        assert_eq!(a("  #0  0x0000000000001020 (faulting instruction)").as_deref(), Some(" _start+0x0"));
        assert_eq!(a("  #2  0x0000000000001050").as_deref(), Some(" mycrate::main+0x10"));
        assert_eq!(a("  #2  0x0000000000009000"), None);
        assert_eq!(a("  #2  0x0000000000000000"), None);
        assert_eq!(a("hello"), None);
    }

    /// Feed `input` in the given pieces and return what comes out.
    fn run(pieces: &[&[u8]]) -> Vec<u8> {
        let mut a = Annotator::new(Some(symbols()));
        let mut out = Vec::new();
        for p in pieces {
            a.feed(p, &mut out);
        }
        a.finish(&mut out);
        out
    }

    /// Same output however the input is split in two or three pieces.
    fn annotate(input: &[u8]) -> Vec<u8> {
        let whole = run(&[input]);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = run(&[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
        whole
    }

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn stream_with_crlf_and_lf() {
        for nl in ["\r\n", "\n"] {
            let input = format!(
                "[unikit] CPU EXCEPTION in thread 'main': page fault{nl}\
                 backtrace:{nl}  #0  0x0000000000001010 (faulting instruction){nl}\
                 \x20 #1  0x0000000000001050{nl}  #2  0x0000000000009999{nl}after #1 0x0000000000001050{nl}"
            );
            assert_eq!(
                text(annotate(input.as_bytes())),
                format!(
                    "[unikit] CPU EXCEPTION in thread 'main': page fault{nl}\
                     backtrace:{nl}  #0  0x0000000000001010 (faulting instruction) core::panicking::panic+0x10{nl}\
                     \x20 #1  0x0000000000001050 mycrate::main+0x10{nl}  #2  0x0000000000009999{nl}after #1 0x0000000000001050{nl}"
                )
            );
        }
    }

    #[test]
    fn a_line_split_across_chunks() {
        let out = run(&[b"  #1  0x00000000", b"00001050\r", b"\nnext\n"]);
        assert_eq!(text(out), "  #1  0x0000000000001050 mycrate::main+0x10\r\nnext\n");
    }

    #[test]
    fn shows_frame_lines_before_their_end() {
        let mut a = Annotator::new(Some(symbols()));
        let mut out = Vec::new();
        a.feed(b"  #1  0x0000000000001050\r", &mut out);
        assert_eq!(out, b"  #1  0x0000000000001050", "only the \\r waits");
        a.finish(&mut out);
        assert_eq!(out, b"  #1  0x0000000000001050\r", "and is released at the end");
    }

    #[test]
    fn odd_input_passes_through() {
        for input in [
            &b"  #1  0x0000000000001050"[..], // no line end
            b"\r\r\n\n  \n#\n##\r\r\r\n",
            b"  #1  0x0000000000009999\n",
        ] {
            assert_eq!(annotate(input), input, "{input:?}");
        }
        // A lone `\r` is part of the line.
        assert_eq!(
            text(annotate(b"  #1  0x0000000000001050\rx\r\r\n")),
            "  #1  0x0000000000001050\rx\r mycrate::main+0x10\r\n"
        );
        let data: Vec<u8> = (0..=255u8).collect();
        assert_eq!(run(&[&data]), data);
        let mut a = Annotator::new(None);
        let mut out = Vec::new();
        a.feed(b"  #1  0x0000000000001050\n", &mut out);
        assert_eq!(out, b"  #1  0x0000000000001050\n");
    }

    #[test]
    fn long_lines_are_not_buffered() {
        let long = format!("  #1  0x0000000000001050 {}\n", "x".repeat(MAX_LINE));
        let mut a = Annotator::new(Some(symbols()));
        let mut out = Vec::new();
        a.feed(long.as_bytes(), &mut out);
        assert_eq!(text(out), long);
        assert!(a.line.capacity() <= 2 * MAX_LINE + 16);
        let spaces = format!("{}#1 0x0000000000001050\n", " ".repeat(MAX_LINE * 4));
        assert_eq!(text(run(&[spaces.as_bytes()])), spaces);
    }

    #[test]
    fn reads_an_elf_symbol_table() {
        use crate::elf::tests::build;
        // Symbols: null, a FUNC, a zero-size FUNC, an OBJECT, an undefined FUNC.
        let strings = b"\0_ZN3app4main17h0123456789abcdefE\0empty\0DATA\0undef\0";
        let at = |name: &str| {
            let needle = format!("\0{name}\0");
            strings.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap() as u32 + 1
        };
        let syms: [(u32, u8, u16, u64, u64); 5] = [
            (0, 0, 0, 0, 0),
            (at("_ZN3app4main17h0123456789abcdefE"), 0x12, 1, 0x2000, 0x30),
            (at("empty"), 0x12, 1, 0x2100, 0),
            (at("DATA"), 0x11, 1, 0x2200, 8),
            (at("undef"), 0x12, 0, 0x2300, 8),
        ];
        let symoff = 0x200;
        let stroff = symoff + 24 * syms.len();
        let mut e = build(
            0x400,
            &[(crate::elf::PT_LOAD, 0, 0x200)],
            0x400,
            &[
                (unikit_abi::elf::SHT_SYMTAB, 0, symoff as u64, 24 * syms.len() as u64, 2, 24),
                (3, 0, stroff as u64, strings.len() as u64, 0, 0),
            ],
        );
        for (i, &(name, info, shndx, value, size)) in syms.iter().enumerate() {
            let o = symoff + 24 * i;
            e[o..o + 4].copy_from_slice(&name.to_le_bytes());
            e[o + 4] = info;
            e[o + 6..o + 8].copy_from_slice(&shndx.to_le_bytes());
            e[o + 8..o + 16].copy_from_slice(&value.to_le_bytes());
            e[o + 16..o + 24].copy_from_slice(&size.to_le_bytes());
        }
        e[stroff..stroff + strings.len()].copy_from_slice(strings);
        let s = Symbols::from_elf(&e).unwrap();
        assert_eq!(s.funcs.len(), 1);
        assert_eq!(s.lookup(0x2010), Some(("app::main", 0x10)));
        assert_eq!(s.lookup(0x2100), None);
        assert_eq!(s.lookup(0x2200), None);
        // Once stripped, there is nothing to read.
        let stripped = crate::elf::strip(&e).unwrap();
        assert_eq!(Symbols::from_elf(&stripped).err().as_deref(), Some("no symbol table"));
        assert!(Symbols::from_elf(b"garbage").is_err());
    }
}
