//! The ELF loader: maps a static, static-pie or dynamically linked x86_64
//! program (and its `PT_INTERP`, e.g. `ld-linux-x86-64.so.2`) and builds
//! the initial stack Linux gives a new process (System V ABI AMD64, 3.4.1).

use crate::vm::{self, Prot};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use unikit_abi::elf::{self, Elf};
use unikit_kernel::user::PAGE;

use elf::{EM_X86_64, ET_DYN, ET_EXEC};

// Auxiliary vector keys (include/uapi/linux/auxvec.h, elf.h).
const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;

/// Where a program starts.
pub struct Start {
    /// First instruction (the interpreter's, for a dynamic program).
    pub entry: u64,
    /// Initial stack pointer (pointing at `argc`).
    pub sp: u64,
}

/// One loaded ELF file.
struct Image {
    bias: u64,
    entry: u64,
    phdr: u64,
    phnum: u64,
    end: u64,
}

fn page_down(a: u64) -> u64 {
    a & !(PAGE - 1)
}

fn page_up(a: u64) -> u64 {
    a.div_ceil(PAGE) * PAGE
}

/// A program file, read piece by piece: a large program is never copied
/// whole into the kernel's heap (which would take the very frames a
/// program linked at fixed addresses needs).
struct Source {
    path: String,
    file: unikit_fs::File,
    len: u64,
}

impl Source {
    fn open(path: &str) -> Result<Self, String> {
        let file = unikit_fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        let len = file.metadata().map_err(|e| format!("{path}: {e}"))?.len();
        Ok(Self { path: path.into(), file, len })
    }

    fn read_at(&mut self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let end = off.checked_add(len as u64).filter(|&e| e <= self.len);
        if end.is_none() {
            return Err(format!("{}: truncated (needs bytes {off:#x}+{len:#x}, has {:#x})", self.path, self.len));
        }
        let mut v = alloc::vec![0u8; len];
        self.file.seek(unikit_fs::SeekFrom::Start(off)).map_err(|e| format!("{}: {e}", self.path))?;
        self.file.read_exact(&mut v).map_err(|e| format!("{}: {e}", self.path))?;
        Ok(v)
    }
}

/// The ELF header and program headers of `src` (section headers are not
/// needed to load a program and are left out).
fn headers(src: &mut Source) -> Result<Vec<u8>, String> {
    let path = src.path.clone();
    let mut head = src.read_at(0, (elf::EHDR_SIZE as u64).min(src.len) as usize)?;
    if head.len() < elf::EHDR_SIZE {
        return Err(format!("{path}: not an ELF file (too short)"));
    }
    let phoff = u64::from_le_bytes(head[0x20..0x28].try_into().unwrap());
    let phnum = u16::from_le_bytes([head[0x38], head[0x39]]) as u64;
    let end = phoff.checked_add(phnum * elf::PHDR_SIZE as u64).filter(|&e| e <= 64 * 1024);
    let Some(end) = end else { return Err(format!("{path}: program headers out of range")) };
    if end > head.len() as u64 {
        head = src.read_at(0, end as usize)?;
    }
    head[0x28..0x30].fill(0); // e_shoff
    head[0x3c..0x3e].fill(0); // e_shnum
    Ok(head)
}

/// Maps the `PT_LOAD` segments of the program at `path`; ET_DYN files at
/// `base` (or anywhere free when `base` is `None`).
fn map_image(path: &str, base: Option<u64>) -> Result<(Image, Option<String>), String> {
    let mut src = Source::open(path)?;
    let head = headers(&mut src)?;
    let elf = Elf::parse(&head).map_err(|e| format!("{path}: not a loadable ELF file ({e})"))?;
    let h = elf.header();
    if h.machine != EM_X86_64 {
        return Err(format!("{path}: not an x86_64 program (ELF machine {})", h.machine));
    }
    let loads: Vec<elf::ProgramHeader> = elf.program_headers().filter(|p| p.is_load() && p.memsz > 0).collect();
    if loads.is_empty() {
        return Err(format!("{path}: no loadable segment"));
    }
    let lo = loads.iter().map(|p| page_down(p.vaddr)).min().unwrap_or(0);
    let hi = loads.iter().filter_map(|p| p.mem_end()).max().ok_or_else(|| format!("{path}: segment out of range"))?;
    let bias = match elf.e_type() {
        ET_EXEC => 0,
        ET_DYN => {
            let span = page_up(hi - lo);
            let rw = Prot { read: true, write: true, exec: false };
            // Reserve the whole span first, so segments land in one hole.
            let at = match base {
                Some(b) => {
                    vm::map_fixed(b, span, rw).map_err(|_| format!("{path}: no room at {b:#x}"))?;
                    b
                }
                None => vm::map_anywhere(0, span, rw).map_err(|_| format!("{path}: no room for {span} bytes"))?,
            };
            vm::unmap(at, span).ok();
            at - lo
        }
        t => return Err(format!("{path}: not an executable (ELF type {t})")),
    };
    let interp = match elf.program_headers().find(|p| p.p_type == elf::PT_INTERP) {
        Some(p) if p.filesz > 0 && p.filesz < 4096 => {
            let b = src.read_at(p.offset, p.filesz as usize)?;
            Some(String::from_utf8_lossy(b.split(|&c| c == 0).next().unwrap_or(&[])).into_owned())
        }
        Some(_) => return Err(format!("{path}: bad PT_INTERP")),
        None => None,
    };
    let rw = Prot { read: true, write: true, exec: false };
    let mut prev_end = 0u64; // end of the last segment's pages: a page may be shared
    let mut protections: Vec<(u64, u64, Prot)> = Vec::new();
    for (i, ph) in elf.program_headers().enumerate() {
        if !ph.is_load() || ph.memsz == 0 {
            continue;
        }
        if ph.filesz > ph.memsz {
            return Err(format!("{path}: segment {i} has more file bytes than memory"));
        }
        let start = ph.vaddr.checked_add(bias).ok_or_else(|| format!("{path}: segment {i} out of range"))?;
        let end = start.checked_add(ph.memsz).ok_or_else(|| format!("{path}: segment {i} out of range"))?;
        let (pstart, pend) = (page_down(start).max(prev_end), page_up(end));
        if pend > pstart {
            vm::map_fixed(pstart, pend - pstart, rw).map_err(|_| {
                format!(
                    "{path}: cannot map segment {i} at {start:#x}-{end:#x} (inside memory the kernel uses, \
                     or outside what a program may use: give the VM more memory, or link the program as PIE)"
                )
            })?;
        }
        let mut done = 0u64;
        while done < ph.filesz {
            let n = (ph.filesz - done).min(64 * 1024);
            let data = src.read_at(ph.offset + done, n as usize)?;
            vm::write(start + done, &data).map_err(|_| {
                format!(
                    "{path}: cannot load segment {i} at {:#x}: that memory is the kernel's (give the VM more memory, or link the program as PIE)",
                    start + done
                )
            })?;
            done += n;
        }
        let prot = Prot { read: ph.readable() || ph.executable(), write: ph.writable(), exec: ph.executable() };
        protections.push((page_down(start), pend, prot));
        prev_end = pend;
    }
    // Final rights; a page two segments share gets both segments' rights.
    for (k, &(s, e, p)) in protections.iter().enumerate() {
        let mut p = p;
        if let Some(&(_, pe, pp)) = k.checked_sub(1).and_then(|j| protections.get(j))
            && pe > s
        {
            p = Prot { read: p.read || pp.read, write: p.write || pp.write, exec: p.exec || pp.exec };
        }
        vm::protect(s, e - s, p).map_err(|_| format!("{path}: cannot protect {s:#x}"))?;
    }
    // The program headers as the program sees them in memory.
    let phdr = elf
        .program_headers()
        .find(|p| p.p_type == elf::PT_PHDR)
        .map(|p| p.vaddr + bias)
        .or_else(|| {
            let off = h.phoff;
            loads
                .iter()
                .find(|p| p.offset <= off && off < p.offset + p.filesz)
                .map(|p| p.vaddr + (off - p.offset) + bias)
        })
        .unwrap_or(0);
    let image = Image { bias, entry: elf.entry() + bias, phdr, phnum: h.phnum as u64, end: hi + bias };
    Ok((image, interp))
}

/// Loads the program at `path` with `argv` and `envp` and returns where
/// it starts.
pub fn load(path: &str, argv: &[String], envp: &[String]) -> Result<Start, String> {
    let (exe, interp) = map_image(path, Some(vm::PIE_BASE))?;
    // The heap of `brk` right after the image, as Linux has it; for a
    // program linked into low memory (the guest's RAM), far above it.
    let brk = if exe.end < 4 << 30 { 0x10_0000_0000 } else { page_up(exe.end) };
    vm::set_brk_start(brk);
    let (entry, base) = match &interp {
        Some(ip) => {
            let (img, _) = map_image(ip, None).map_err(|e| format!("interpreter {e}"))?;
            (img.entry, img.bias)
        }
        None => (exe.entry, 0),
    };
    let stack_lo = vm::STACK_TOP - vm::STACK_SIZE;
    vm::map_fixed(stack_lo, vm::STACK_SIZE, Prot { read: true, write: true, exec: false })
        .map_err(|_| String::from("cannot map the stack"))?;
    let sp = build_stack(path, argv, envp, &exe, base)?;
    Ok(Start { entry, sp })
}

/// Writes argc, argv, envp, auxv and their strings below `STACK_TOP`.
fn build_stack(path: &str, argv: &[String], envp: &[String], exe: &Image, base: u64) -> Result<u64, String> {
    let mut strings: Vec<u8> = Vec::new();
    let offsets = |s: &[u8], strings: &mut Vec<u8>| {
        let o = strings.len();
        strings.extend_from_slice(s);
        strings.push(0);
        o
    };
    let arg_off: Vec<usize> = argv.iter().map(|a| offsets(a.as_bytes(), &mut strings)).collect();
    let env_off: Vec<usize> = envp.iter().map(|e| offsets(e.as_bytes(), &mut strings)).collect();
    let execfn = offsets(path.as_bytes(), &mut strings);
    let platform = offsets(b"x86_64", &mut strings);
    let mut random = [0u8; 16];
    crate::random::fill(&mut random);
    let rand_off = strings.len();
    strings.extend_from_slice(&random);

    let top = vm::STACK_TOP - 8; // a zero word ends the stack
    let strings_at = (top - strings.len() as u64) & !15;
    let s = |o: usize| strings_at + o as u64;
    let auxv: [(u64, u64); 17] = [
        (AT_PHDR, exe.phdr),
        (AT_PHENT, elf::PHDR_SIZE as u64),
        (AT_PHNUM, exe.phnum),
        (AT_PAGESZ, PAGE),
        (AT_BASE, base),
        (AT_FLAGS, 0),
        (AT_ENTRY, exe.entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_PLATFORM, s(platform)),
        (AT_HWCAP, crate::cpu::hwcap()),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_RANDOM, s(rand_off)),
        (AT_EXECFN, s(execfn)),
    ];
    let mut words: Vec<u64> = Vec::new();
    words.push(argv.len() as u64);
    words.extend(arg_off.iter().map(|&o| s(o)));
    words.push(0);
    words.extend(env_off.iter().map(|&o| s(o)));
    words.push(0);
    for (k, v) in auxv.iter().chain([(AT_HWCAP2, 0), (AT_NULL, 0)].iter()) {
        words.push(*k);
        words.push(*v);
    }
    let sp = (strings_at - words.len() as u64 * 8) & !15;
    if sp < vm::STACK_TOP - vm::STACK_SIZE / 2 {
        return Err(String::from("arguments and environment too large for the stack"));
    }
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    vm::write(sp, &bytes).map_err(|_| String::from("cannot write the stack"))?;
    vm::write(strings_at, &strings).map_err(|_| String::from("cannot write the stack"))?;
    Ok(sp)
}
