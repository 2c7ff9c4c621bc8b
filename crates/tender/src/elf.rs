//! The tender's view of a Solo5 hvt unikernel: the header checks, the
//! Solo5 notes and the load plan, on top of the shared bounds-checked
//! reader [`unikit_abi::elf`].
//!
//! The checks follow Solo5's loader (tenders/common/elf.c: `ehdr_is_valid`,
//! `elf_load`, `elf_load_note`): every offset and size taken from the file
//! goes through checked arithmetic and slice bounds, so a hostile file can
//! only produce an error.

use crate::abi;
pub use unikit_abi::elf::{ET_EXEC, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, ProgramHeader as Phdr};

/// Why an executable is refused (the message names the field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfError(pub String);

impl std::fmt::Display for ElfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<unikit_abi::elf::ElfError> for ElfError {
    fn from(e: unikit_abi::elf::ElfError) -> ElfError {
        ElfError(e.to_string())
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ElfError> {
    Err(ElfError(msg.into()))
}

const PAGE_SIZE: u64 = 0x1000;

/// A parsed executable (borrowing the file's bytes).
#[derive(Debug)]
pub struct Elf<'a> {
    file: unikit_abi::elf::Elf<'a>,
    pub entry: u64,
    pub phdrs: Vec<Phdr>,
}

/// One segment to copy into guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub file_offset: u64,
    pub filesz: u64,
    pub memsz: u64,
    /// Page-aligned range the protection applies to.
    pub prot_start: u64,
    pub prot_end: u64,
    pub writable: bool,
}

/// Where everything goes in guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    pub entry: u64,
    /// Highest address occupied by the program (`kernel_end`).
    pub end: u64,
    pub segments: Vec<Segment>,
}

impl<'a> Elf<'a> {
    /// Validate the ELF header (`ehdr_is_valid`: the shared reader's checks,
    /// plus a static executable with program headers) and read the program
    /// headers.
    pub fn parse(bytes: &'a [u8]) -> Result<Elf<'a>, ElfError> {
        let file = unikit_abi::elf::Elf::parse(bytes)?;
        let h = file.header();
        if h.phnum < 1 {
            return err("no program headers");
        }
        if h.e_type != ET_EXEC {
            return err(format!("not a static executable (e_type {}, expected ET_EXEC)", h.e_type));
        }
        Ok(Elf { file, entry: h.entry, phdrs: file.program_headers().collect() })
    }

    /// The content of the Solo5-owned note of `note_type` (`elf_load_note`):
    /// the descriptor minus the `note_align` padding before its first member.
    /// `Ok(None)` when the file has no such note.
    pub fn solo5_note(&self, note_type: u32, note_align: usize, max_size: usize) -> Result<Option<&'a [u8]>, ElfError> {
        debug_assert!(note_align.is_power_of_two());
        for (i, p) in self.phdrs.iter().enumerate() {
            if p.p_type != PT_NOTE {
                continue;
            }
            if p.filesz < 12 {
                return err(format!("phdr[{i}]: PT_NOTE smaller than a note header ({} < 12 bytes)", p.filesz));
            }
            let Ok(seg) = self.file.segment_data(i, p) else {
                return err(format!(
                    "phdr[{i}]: PT_NOTE (offset {:#x}, {} bytes) lies outside the file",
                    p.offset, p.filesz
                ));
            };
            for n in unikit_abi::elf::Notes::new(seg) {
                if n.name != &abi::NOTE_NAME[..] || n.n_type != note_type {
                    continue;
                }
                let descsz = n.descsz;
                if descsz < 1 || descsz > max_size {
                    return err(format!(
                        "phdr[{i}]: Solo5 note {note_type:#x} has descsz {descsz} (must be 1..={max_size})"
                    ));
                }
                let Some(desc) = n.desc else {
                    return err(format!(
                        "phdr[{i}]: Solo5 note {note_type:#x} is truncated ({} < {} bytes)",
                        seg.len() - n.offset,
                        abi::NOTE_HDR_SIZE + descsz
                    ));
                };
                // The descriptor starts NOTE_HDR_SIZE into the record; its
                // first member is aligned to `note_align` within the note.
                let pad = abi::NOTE_HDR_SIZE.next_multiple_of(note_align) - abi::NOTE_HDR_SIZE;
                if descsz <= pad {
                    return err(format!("phdr[{i}]: Solo5 note {note_type:#x} is empty after alignment padding"));
                }
                return Ok(desc.get(pad..));
            }
        }
        Ok(None)
    }

    /// Check every loadable segment against a guest of `mem_size` bytes
    /// (`elf_load`): inside memory above `min_base`, ascending, not
    /// overlapping, page-aligned once aligned to `p_align`, never W+X.
    pub fn load_plan(&self, mem_size: u64, min_base: u64) -> Result<LoadPlan, ElfError> {
        if self.entry < min_base || self.entry >= mem_size {
            return err(format!(
                "entry point {:#x} is outside guest memory ({min_base:#x}..{mem_size:#x})",
                self.entry
            ));
        }
        let mut end = 0u64;
        let mut last_vaddr = 0u64;
        let mut segments = Vec::new();
        for (i, p) in self.phdrs.iter().enumerate() {
            if p.p_type != PT_LOAD || p.memsz == 0 {
                continue;
            }
            let bad = |what: String| err(format!("phdr[{i}]: {what}"));
            if p.vaddr < min_base {
                return bad(format!("p_vaddr {:#x} is below the lowest load address {min_base:#x}", p.vaddr));
            }
            if p.vaddr < last_vaddr {
                return bad(format!("p_vaddr {:#x} is not in ascending order (previous {last_vaddr:#x})", p.vaddr));
            }
            last_vaddr = p.vaddr;
            if p.align == 0 || !p.align.is_power_of_two() {
                return bad(format!("p_align {:#x} is not a power of two", p.align));
            }
            let start = p.vaddr & !(p.align - 1);
            if start < min_base {
                return bad(format!("aligned start {start:#x} is below the lowest load address {min_base:#x}"));
            }
            if start < end {
                return bad(format!("segment at {start:#x} overlaps the previous one (which ends at {end:#x})"));
            }
            if p.vaddr >= mem_size {
                return bad(format!("p_vaddr {:#x} is outside guest memory ({mem_size:#x} bytes)", p.vaddr));
            }
            match p.vaddr.checked_add(p.filesz) {
                Some(e) if e <= mem_size => {}
                _ => {
                    return bad(format!(
                        "file image {:#x}+{:#x} does not fit in guest memory ({mem_size:#x} bytes)",
                        p.vaddr, p.filesz
                    ));
                }
            }
            if p.memsz < p.filesz {
                return bad(format!("p_memsz {:#x} is smaller than p_filesz {:#x}", p.memsz, p.filesz));
            }
            let seg_end =
                p.vaddr.checked_add(p.memsz).and_then(|e| e.checked_add(p.align - 1)).map(|e| e & !(p.align - 1));
            let seg_end = match seg_end {
                Some(e) if e <= mem_size => e,
                _ => {
                    return bad(format!(
                        "memory image {:#x}+{:#x} does not fit in guest memory ({mem_size:#x} bytes)",
                        p.vaddr, p.memsz
                    ));
                }
            };
            if self.file.segment_data(i, p).is_err() {
                return bad(format!(
                    "file image (offset {:#x}, {:#x} bytes) lies outside the file",
                    p.offset, p.filesz
                ));
            }
            if start % PAGE_SIZE != 0 || seg_end % PAGE_SIZE != 0 {
                return bad(format!("segment {start:#x}..{seg_end:#x} is not page-aligned"));
            }
            if p.flags & PF_W != 0 && p.flags & PF_X != 0 {
                return bad("segment is both writable and executable".into());
            }
            end = end.max(seg_end);
            segments.push(Segment {
                vaddr: p.vaddr,
                file_offset: p.offset,
                filesz: p.filesz,
                memsz: p.memsz,
                prot_start: start,
                prot_end: seg_end,
                writable: p.flags & PF_W != 0,
            });
        }
        if segments.is_empty() {
            return err("no loadable segments");
        }
        Ok(LoadPlan { entry: self.entry, end, segments })
    }

    /// The file bytes of a planned segment (checked by [`Elf::load_plan`]).
    pub fn file_image(&self, s: &Segment) -> &'a [u8] {
        self.file.range(s.file_offset, s.filesz).unwrap_or_default()
    }
}

/// `struct abi1_info`: what the ABI note asks for.
pub use unikit_abi::hvt::AbiInfo;

/// Read the ABI note and check it asks for hvt ABI version 2 (hvt_main.c).
pub fn check_abi(elf: &Elf) -> Result<AbiInfo, ElfError> {
    let Some(desc) = elf.solo5_note(abi::ABI1_NOTE_TYPE, abi::ABI1_NOTE_ALIGN, abi::ABI1_NOTE_MAX_SIZE)? else {
        return err("no Solo5 ABI note (.note.solo5.abi) in the executable: it is not a Solo5 unikernel");
    };
    let Some(abi::AbiInfo { target, version }) = abi::AbiInfo::from_bytes(desc) else {
        return err(format!("the Solo5 ABI note is too short ({} bytes)", desc.len()));
    };
    if target != abi::HVT_ABI_TARGET {
        return err(format!(
            "the executable is built for the Solo5 '{}' target (ABI target {target}), not hvt",
            abi::abi_target_name(target)
        ));
    }
    if version != abi::HVT_ABI_VERSION {
        return err(format!(
            "the executable requests hvt ABI version {version}; this tender implements version {}",
            abi::HVT_ABI_VERSION
        ));
    }
    Ok(AbiInfo { target, version })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testguest::*;
    use unikit_abi::elf::EHDR_SIZE;

    fn good() -> Vec<u8> {
        exe(&[0xf4], &[abi_note(1, 2), mft_note(&mft(&[("service", 2)]))])
    }

    #[test]
    fn parses_a_good_executable() {
        let f = good();
        let e = Elf::parse(&f).unwrap();
        assert_eq!(e.entry, 0x10_0000);
        assert_eq!(e.phdrs.len(), 3);
        assert_eq!(check_abi(&e).unwrap(), AbiInfo { target: 1, version: 2 });
        let m = e.solo5_note(abi::MFT1_NOTE_TYPE, 8, abi::MFT1_NOTE_MAX_SIZE).unwrap().unwrap();
        assert_eq!(m.len(), 8 + 2 * 104);
        let plan = e.load_plan(2 << 20, abi::GUEST_MIN_BASE).unwrap();
        assert_eq!(plan.end, 0x10_1000);
        assert_eq!(plan.segments.len(), 1);
        assert_eq!(e.file_image(&plan.segments[0]), &[0xf4]);
        assert!(!plan.segments[0].writable);
    }

    #[test]
    fn abi_note_mismatches_are_refused() {
        let none = exe(&[0xf4], &[mft_note(&mft(&[]))]);
        let e = check_abi(&Elf::parse(&none).unwrap()).unwrap_err();
        assert!(e.0.contains("no Solo5 ABI note"), "{e}");
        let spt = exe(&[0xf4], &[abi_note(2, 2)]);
        let e = check_abi(&Elf::parse(&spt).unwrap()).unwrap_err();
        assert_eq!(e.0, "the executable is built for the Solo5 'spt' target (ABI target 2), not hvt");
        let v1 = exe(&[0xf4], &[abi_note(1, 1)]);
        let e = check_abi(&Elf::parse(&v1).unwrap()).unwrap_err();
        assert_eq!(e.0, "the executable requests hvt ABI version 1; this tender implements version 2");
    }

    #[test]
    fn note_sizes_are_checked() {
        // descsz larger than the limit.
        let mut n = abi_note(1, 2);
        n[4..8].copy_from_slice(&1000u32.to_le_bytes());
        let f = exe(&[0xf4], &[n]);
        assert!(check_abi(&Elf::parse(&f).unwrap()).unwrap_err().0.contains("descsz 1000"));
        // descsz that runs past the segment.
        let mut n = abi_note(1, 2);
        n[4..8].copy_from_slice(&32u32.to_le_bytes());
        let f = exe(&[0xf4], &[n]);
        assert!(check_abi(&Elf::parse(&f).unwrap()).unwrap_err().0.contains("truncated"));
        // A PT_NOTE smaller than a note header.
        let f = exe(&[0xf4], &[vec![0u8; 8]]);
        assert!(check_abi(&Elf::parse(&f).unwrap()).unwrap_err().0.contains("smaller than a note header"));
        // A foreign note before ours in the same segment is skipped.
        let mut gnu = Vec::new();
        gnu.extend_from_slice(&4u32.to_le_bytes());
        gnu.extend_from_slice(&5u32.to_le_bytes());
        gnu.extend_from_slice(&3u32.to_le_bytes());
        gnu.extend_from_slice(b"GNU\0");
        gnu.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        gnu.extend(abi_note(1, 2));
        let f = exe(&[0xf4], &[gnu]);
        assert!(check_abi(&Elf::parse(&f).unwrap()).is_ok());
    }

    #[test]
    fn header_checks() {
        let f = good();
        assert!(Elf::parse(&f[..10]).unwrap_err().0.contains("too short"));
        let mut b = f.clone();
        b[0] = 0;
        assert!(Elf::parse(&b).unwrap_err().0.contains("magic"));
        let mut b = f.clone();
        b[4] = 1;
        assert!(Elf::parse(&b).unwrap_err().0.contains("64-bit little-endian"));
        let mut b = f.clone();
        b[0x10] = 3; // ET_DYN
        assert!(Elf::parse(&b).unwrap_err().0.contains("ET_EXEC"));
        let mut b = f.clone();
        b[0x12] = 183; // aarch64
        assert!(Elf::parse(&b).unwrap_err().0.contains("x86-64"));
        let mut b = f.clone();
        b[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Elf::parse(&b).unwrap_err().0.contains("outside the file"));
        let mut b = f.clone();
        b[0x38..0x3a].copy_from_slice(&0u16.to_le_bytes());
        assert!(Elf::parse(&b).unwrap_err().0.contains("no program headers"));
    }

    fn with_load(p: Phdr) -> Vec<u8> {
        let mut f = good();
        let o = EHDR_SIZE;
        f[o..o + 4].copy_from_slice(&p.p_type.to_le_bytes());
        f[o + 4..o + 8].copy_from_slice(&p.flags.to_le_bytes());
        f[o + 8..o + 16].copy_from_slice(&p.offset.to_le_bytes());
        f[o + 16..o + 24].copy_from_slice(&p.vaddr.to_le_bytes());
        f[o + 32..o + 40].copy_from_slice(&p.filesz.to_le_bytes());
        f[o + 40..o + 48].copy_from_slice(&p.memsz.to_le_bytes());
        f[o + 48..o + 56].copy_from_slice(&p.align.to_le_bytes());
        f
    }

    #[test]
    fn load_plan_checks() {
        let base = Phdr {
            p_type: PT_LOAD,
            flags: PF_R | PF_X,
            offset: 0x1000,
            vaddr: 0x10_0000,
            paddr: 0x10_0000,
            filesz: 1,
            memsz: 1,
            align: 0x1000,
        };
        let mem = 4 << 20;
        let plan = |p: Phdr| {
            let f = with_load(p);
            Elf::parse(&f).unwrap().load_plan(mem, abi::GUEST_MIN_BASE).map(|_| ()).map_err(|e| e.0)
        };
        assert_eq!(plan(base), Ok(()));
        assert!(plan(Phdr { vaddr: 0x1000, ..base }).unwrap_err().contains("below the lowest"));
        assert!(plan(Phdr { vaddr: 0x40_0000, ..base }).unwrap_err().contains("outside guest memory"));
        assert!(plan(Phdr { memsz: u64::MAX, ..base }).unwrap_err().contains("does not fit"));
        assert!(plan(Phdr { filesz: 0x40_0000, memsz: 0x40_0000, ..base }).unwrap_err().contains("does not fit"));
        assert!(plan(Phdr { filesz: 2, memsz: 1, ..base }).unwrap_err().contains("smaller than p_filesz"));
        assert!(plan(Phdr { align: 3, ..base }).unwrap_err().contains("power of two"));
        assert!(plan(Phdr { align: 0, ..base }).unwrap_err().contains("power of two"));
        assert!(plan(Phdr { align: 16, ..base }).unwrap_err().contains("page-aligned"));
        assert!(plan(Phdr { flags: PF_R | PF_W | PF_X, ..base }).unwrap_err().contains("writable and executable"));
        assert!(plan(Phdr { offset: u64::MAX - 1, ..base }).unwrap_err().contains("outside the file"));
        assert!(
            plan(Phdr { offset: 0x1000, filesz: 0x10_0000, memsz: 0x10_0000, ..base })
                .unwrap_err()
                .contains("outside the file")
        );
        // Entry point outside memory.
        let mut f = with_load(base);
        f[0x18..0x20].copy_from_slice(&(8u64 << 20).to_le_bytes());
        assert!(Elf::parse(&f).unwrap().load_plan(mem, abi::GUEST_MIN_BASE).unwrap_err().0.contains("entry point"));
    }
}
