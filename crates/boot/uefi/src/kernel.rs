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

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// A minimal ELF64 x86-64 file: `loads` as (paddr, filesz, memsz), then
    /// a PT_NOTE with a Xen type-18 note whose descriptor is `desc`.
    fn elf(e_type: u16, loads: &[(u64, u64, u64)], desc: Option<&[u8]>) -> Vec<u8> {
        let phnum = loads.len() + usize::from(desc.is_some());
        let mut b = std::vec![0u8; 64 + 56 * phnum];
        b[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        b[0x10..0x12].copy_from_slice(&e_type.to_le_bytes());
        b[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
        b[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(phnum as u16).to_le_bytes());
        let phdr = |i: usize, b: &mut Vec<u8>, p_type: u32, paddr: u64, filesz: u64, memsz: u64| {
            let offset = b.len() as u64;
            b.resize(b.len() + filesz as usize, 0xab);
            let at = 64 + 56 * i;
            b[at..at + 4].copy_from_slice(&p_type.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
            b[at + 16..at + 24].copy_from_slice(&paddr.to_le_bytes());
            b[at + 24..at + 32].copy_from_slice(&paddr.to_le_bytes());
            b[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            b[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
            offset as usize
        };
        for (i, &(paddr, filesz, memsz)) in loads.iter().enumerate() {
            phdr(i, &mut b, PT_LOAD, paddr, filesz, memsz);
        }
        if let Some(desc) = desc {
            let len = 16 + desc.len().next_multiple_of(4);
            let at = phdr(loads.len(), &mut b, 4, 0, len as u64, len as u64);
            let note = &mut b[at..at + len];
            note.fill(0);
            note[0..4].copy_from_slice(&4u32.to_le_bytes());
            note[4..8].copy_from_slice(&(desc.len() as u32).to_le_bytes());
            note[8..12].copy_from_slice(&18u32.to_le_bytes());
            note[12..16].copy_from_slice(b"Xen\0");
            note[16..16 + desc.len()].copy_from_slice(desc);
        }
        b
    }

    const ENTRY: [u8; 4] = 0x10_0010u32.to_le_bytes();

    #[test]
    fn accepts_a_pvh_kernel_and_merges_shared_pages() {
        let f = elf(2, &[(0x10_2000, 0x10, 0x2000), (0x10_0000, 0x1000, 0x1000), (0x10_4800, 8, 0x900)], Some(&ENTRY));
        let k = check(&f).unwrap();
        assert_eq!(k.entry, 0x10_0010);
        let paddrs: Vec<u64> = k.segments().iter().map(|s| s.paddr).collect();
        assert_eq!(paddrs, [0x10_0000, 0x10_2000, 0x10_4800], "sorted by address");
        assert_eq!(k.segments()[1].memsz, 0x2000);
        let (r, n) = k.page_ranges();
        // 0x102000..0x104000 and 0x104800..0x105100 touch pages 0x104000..0x106000: one range.
        assert_eq!(&r[..n], &[(0x10_0000, 0x10_1000), (0x10_2000, 0x10_6000)]);
    }

    #[test]
    fn rejects_what_it_cannot_place() {
        let ok = [(0x10_0000, 0x1000, 0x1000)];
        assert!(matches!(check(b"hello\n"), Err(Error::Elf(ElfError::BadMagic))));
        assert!(matches!(check(&elf(3, &ok, Some(&ENTRY))), Err(Error::NotExec(3))));
        assert!(matches!(check(&elf(2, &[], Some(&ENTRY))), Err(Error::NoLoad)));
        assert!(matches!(check(&elf(2, &ok, None)), Err(Error::NoPvhNote)));
        assert!(matches!(check(&elf(2, &ok, Some(&[1, 2]))), Err(Error::BadPvhNote)));
        let outside = 0x20_0000u32.to_le_bytes();
        assert!(matches!(check(&elf(2, &ok, Some(&outside))), Err(Error::EntryOutside(0x20_0000))));
        let more_file_than_memory = [(0x10_0000, 0x1000, 0x800)];
        assert!(matches!(check(&elf(2, &more_file_than_memory, Some(&ENTRY))), Err(Error::BadSegment(0))));
        let high = [(0x10_0000, 0x1000, 0x1000), (0x3fff_f000, 0, 0x2000)];
        assert!(matches!(check(&elf(2, &high, Some(&ENTRY))), Err(Error::Above1G(1, 0x3fff_f000, 0x4000_1000))));
        let wraps = [(0x10_0000, 0x1000, 0x1000), (u64::MAX - 0xfff, 0, 0x2000)];
        assert!(matches!(check(&elf(2, &wraps, Some(&ENTRY))), Err(Error::Above1G(1, ..))));
        let overlap = [(0x10_0000, 0x1000, 0x3000), (0x10_2000, 0, 0x1000)];
        assert!(matches!(
            check(&elf(2, &overlap, Some(&ENTRY))),
            Err(Error::Overlap(0x10_0000, 0x10_3000, 0x10_2000, 0x10_3000))
        ));
        let many: Vec<(u64, u64, u64)> =
            (0..=MAX_SEGMENTS as u64).map(|i| (0x10_0000 + i * 0x1000, 0, 0x1000)).collect();
        assert!(matches!(check(&elf(2, &many, Some(&ENTRY))), Err(Error::TooManySegments)));
        // A file image past the end of the file.
        let mut cut = elf(2, &ok, Some(&ENTRY));
        cut[64 + 8..64 + 16].copy_from_slice(&0xffff_0000u64.to_le_bytes());
        assert!(matches!(check(&cut), Err(Error::Elf(ElfError::SegmentOutside { index: 0, .. }))));
    }
}
