//! Checks of the kernel ELF before anything is placed, and the physical
//! page ranges it needs. Pure code over the file's bytes (no firmware calls).

use core::fmt;

use unikit_abi::elf::{ET_EXEC, Elf, ElfError, PT_LOAD};

/// Everything the kernel reads must lie below 1 GiB: its early page tables
/// identity-map only that much (crates/plat/x86-vm, and issue 14's contract).
pub const LIMIT: u64 = 1 << 30;
/// More PT_LOADs than the trampoline's copy table holds is not our kernel.
pub const MAX_SEGMENTS: usize = 16;
const PAGE: u64 = 4096;
/// `XEN_ELFNOTE_PHYS32_ENTRY` (xen/include/public/elfnote.h): the 32-bit PVH entry.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// One PT_LOAD: `filesz` bytes at file `offset` go to `paddr`, then zeroes up to `memsz`.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Segment {
    pub paddr: u64,
    pub offset: u64,
    pub filesz: u64,
    pub memsz: u64,
}

impl Segment {
    fn end(&self) -> u64 {
        // Checked in `check`: paddr + memsz <= LIMIT.
        self.paddr + self.memsz
    }
}

/// A checked kernel: its segments (sorted by address) and PVH entry.
pub struct Kernel {
    segments: [Segment; MAX_SEGMENTS],
    count: usize,
    pub entry: u32,
}

#[derive(Debug)]
pub enum Error {
    Elf(ElfError),
    NotExec(u16),
    NoLoad,
    TooManySegments,
    FileImageTooLarge(usize),
    BadSegment(usize),
    Above1G(usize, u64, u64),
    Overlap(u64, u64, u64, u64),
    NoPvhNote,
    BadPvhNote,
    EntryOutside(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Elf(e) => write!(f, "{e}"),
            Error::NotExec(t) => write!(f, "not an executable ELF (e_type {t}, expected 2)"),
            Error::NoLoad => write!(f, "no PT_LOAD segment"),
            Error::TooManySegments => write!(f, "more than {MAX_SEGMENTS} PT_LOAD segments"),
            Error::FileImageTooLarge(n) => write!(f, "file is {n} bytes, more than the 1 GiB it could load"),
            Error::BadSegment(i) => write!(f, "PT_LOAD {i}: p_filesz is larger than p_memsz"),
            Error::Above1G(i, a, e) => {
                write!(f, "PT_LOAD {i} at {a:#x}..{e:#x} does not lie below 1 GiB")
            }
            Error::Overlap(a, b, c, d) => write!(f, "PT_LOADs {a:#x}..{b:#x} and {c:#x}..{d:#x} overlap"),
            Error::NoPvhNote => write!(f, "no PVH entry note (Xen note type 18): not a PVH kernel"),
            Error::BadPvhNote => write!(f, "the PVH entry note (Xen note type 18) has no 4-byte address"),
            Error::EntryOutside(e) => write!(f, "the PVH entry {e:#x} lies in no PT_LOAD segment"),
        }
    }
}

impl From<ElfError> for Error {
    fn from(e: ElfError) -> Error {
        Error::Elf(e)
    }
}

/// Checks `file`: ELF64 x86-64 EXEC, PT_LOADs inside the file, below 1 GiB
/// and disjoint, and a PVH entry note pointing into one of them.
pub fn check(file: &[u8]) -> Result<Kernel, Error> {
    if file.len() as u64 >= LIMIT {
        return Err(Error::FileImageTooLarge(file.len()));
    }
    let elf = Elf::parse(file)?;
    if elf.e_type() != ET_EXEC {
        return Err(Error::NotExec(elf.e_type()));
    }
    let mut k = Kernel { segments: [Segment::default(); MAX_SEGMENTS], count: 0, entry: 0 };
    for (i, ph) in elf.program_headers().enumerate() {
        if ph.p_type != PT_LOAD || ph.memsz == 0 {
            continue;
        }
        // Bounds of the file image (the reader's own check).
        elf.segment_data(i, &ph)?;
        if ph.filesz > ph.memsz {
            return Err(Error::BadSegment(i));
        }
        let end = ph.paddr.checked_add(ph.memsz).filter(|&e| e <= LIMIT);
        let Some(end) = end else {
            return Err(Error::Above1G(i, ph.paddr, ph.paddr.wrapping_add(ph.memsz)));
        };
        if k.count == MAX_SEGMENTS {
            return Err(Error::TooManySegments);
        }
        for s in &k.segments[..k.count] {
            if ph.paddr < s.end() && s.paddr < end {
                return Err(Error::Overlap(s.paddr, s.end(), ph.paddr, end));
            }
        }
        k.segments[k.count] = Segment { paddr: ph.paddr, offset: ph.offset, filesz: ph.filesz, memsz: ph.memsz };
        k.count += 1;
    }
    if k.count == 0 {
        return Err(Error::NoLoad);
    }
    k.segments[..k.count].sort_unstable_by_key(|s| s.paddr);

    let mut entry = None;
    for note in elf.segment_notes() {
        let (_, note) = note?;
        if note.name == b"Xen\0" && note.n_type == XEN_ELFNOTE_PHYS32_ENTRY {
            let d = note.desc.and_then(|d| d.get(..4)).ok_or(Error::BadPvhNote)?;
            entry = Some(u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
            break;
        }
    }
    let entry = entry.ok_or(Error::NoPvhNote)?;
    if !k.segments().iter().any(|s| (s.paddr..s.end()).contains(&u64::from(entry))) {
        return Err(Error::EntryOutside(entry));
    }
    k.entry = entry;
    Ok(k)
}

impl Kernel {
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.count]
    }

    /// The whole pages the segments touch, merged where they meet (two
    /// segments may share a page), in address order.
    pub fn page_ranges(&self) -> ([(u64, u64); MAX_SEGMENTS], usize) {
        let mut out = [(0, 0); MAX_SEGMENTS];
        let mut n = 0;
        for s in self.segments() {
            let (start, end) = (s.paddr & !(PAGE - 1), s.end().next_multiple_of(PAGE));
            if n > 0 && out[n - 1].1 >= start {
                out[n - 1].1 = out[n - 1].1.max(end);
            } else {
                out[n] = (start, end);
                n += 1;
            }
        }
        (out, n)
    }
}
