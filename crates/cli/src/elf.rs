//! ELF for the CLI, on the shared bounds-checked reader
//! [`unikit_abi::elf`]: stripping our images and listing the libraries a
//! host tool needs. (Symbols are read in `symbols`, the end of an image's
//! loaded data with `unikit_abi::elf::Elf::load_end`.)
//!
//! [`Elf`] derefs to the shared reader and adds what needs allocation.

use std::ops::Deref;

pub use unikit_abi::elf::{DT_NEEDED, ElfError, PHDR_SIZE, PT_LOAD, SHF_ALLOC, SHT_DYNAMIC, dyn_entries, string_at};

/// A parsed ELF64 x86-64 file (see [`unikit_abi::elf::Elf`]).
pub struct Elf<'a>(unikit_abi::elf::Elf<'a>);

impl<'a> Deref for Elf<'a> {
    type Target = unikit_abi::elf::Elf<'a>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> Elf<'a> {
    /// Check the ELF header and that both header tables lie inside the file.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, ElfError> {
        unikit_abi::elf::Elf::parse(data).map(Elf)
    }

    /// The shared libraries a dynamically linked program or library names
    /// (`DT_NEEDED` entries of its `.dynamic` section), in order.
    pub fn needed(&self) -> Result<Vec<String>, String> {
        let Some((i, dynamic)) = self.find_section(SHT_DYNAMIC) else {
            return Ok(Vec::new()); // statically linked
        };
        let data = self.section_data(i, &dynamic).map_err(|_| ".dynamic lies outside the file")?;
        let strings = self.linked_data(i, &dynamic).map_err(|e| format!(".dynamic's string table: {e}"))?;
        let mut out = Vec::new();
        for e in dyn_entries(data).filter(|e| e.tag == DT_NEEDED) {
            let name = u32::try_from(e.val).ok().and_then(|o| string_at(strings, o)).ok_or("bad DT_NEEDED offset")?;
            out.push(String::from_utf8_lossy(name).into_owned());
        }
        Ok(out)
    }
}

/// Strip an image: keep only what the program headers cover (the header, the
/// program headers, every loaded segment and note), drop the section headers
/// and everything after the loaded data (symbol and string tables).
///
/// Our linker scripts put all loaded data first; anything else (a section
/// with file contents inside or before that data, section headers in the
/// middle, a segment past the end of the file) is refused with the reason.
pub fn strip(data: &[u8]) -> Result<Vec<u8>, String> {
    let elf = Elf::parse(data).map_err(|e| e.to_string())?;
    let h = *elf.header();
    let mut end: u64 = 0;
    let mut loads = 0;
    for ph in elf.program_headers() {
        let seg_end = ph.file_end().ok_or("a segment's file range overflows")?;
        if seg_end > data.len() as u64 {
            return Err("a segment lies past the end of the file".into());
        }
        end = end.max(seg_end);
        loads += usize::from(ph.p_type == PT_LOAD);
    }
    if loads == 0 {
        return Err("no loadable segment".into());
    }
    // parse() checked that the program header table lies inside the file.
    let phdrs_end = h.phoff + h.phnum as u64 * PHDR_SIZE as u64;
    if end < phdrs_end {
        return Err("the program headers are not covered by the loaded data".into());
    }
    if h.shnum != 0 && h.shoff < end {
        return Err("the section headers lie inside the loaded data".into());
    }
    for s in elf.sections() {
        if s.has_file_bytes() && s.flags & SHF_ALLOC == 0 && s.offset < end {
            return Err("a non-loaded section lies inside the loaded data".into());
        }
    }
    let mut out = data[..end as usize].to_vec();
    out[0x28..0x30].fill(0); // e_shoff
    out[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    Ok(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use unikit_abi::elf::SHT_SYMTAB;

    /// A minimal ELF64 x86-64 file: `segments` are (type, offset, filesz);
    /// the file is `size` bytes; `sections` are (type, flags, offset, size,
    /// link, entsize) and go at `shoff` (0: none), preceded by a NULL one.
    pub fn build(
        size: usize,
        segments: &[(u32, u64, u64)],
        shoff: usize,
        sections: &[(u32, u64, u64, u64, u32, u64)],
    ) -> Vec<u8> {
        let shnum = if sections.is_empty() { 0 } else { sections.len() + 1 };
        let mut e = vec![0u8; size.max(shoff + shnum * 64)];
        e[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        e[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
        e[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        e[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        e[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        e[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        e[0x3c..0x3e].copy_from_slice(&(shnum as u16).to_le_bytes());
        e[0x3e..0x40].copy_from_slice(&(shnum.saturating_sub(1) as u16).to_le_bytes());
        for (i, &(ty, off, filesz)) in segments.iter().enumerate() {
            let ph = 64 + 56 * i;
            e[ph..ph + 4].copy_from_slice(&ty.to_le_bytes());
            e[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            e[ph + 0x20..ph + 0x28].copy_from_slice(&filesz.to_le_bytes());
        }
        for (i, &(ty, flags, off, sz, link, entsize)) in sections.iter().enumerate() {
            let sh = shoff + 64 * (i + 1);
            e[sh + 4..sh + 8].copy_from_slice(&ty.to_le_bytes());
            e[sh + 8..sh + 16].copy_from_slice(&flags.to_le_bytes());
            e[sh + 0x18..sh + 0x20].copy_from_slice(&off.to_le_bytes());
            e[sh + 0x20..sh + 0x28].copy_from_slice(&sz.to_le_bytes());
            e[sh + 0x28..sh + 0x2c].copy_from_slice(&link.to_le_bytes());
            e[sh + 0x38..sh + 0x40].copy_from_slice(&entsize.to_le_bytes());
        }
        e
    }

    #[test]
    fn strips_to_the_end_of_the_loaded_data() {
        let e = build(
            0x400,
            &[(PT_LOAD, 0, 0x200), (4, 0x180, 0x90), (PT_LOAD, 0x200, 0x80)],
            0x400,
            &[(1, SHF_ALLOC, 0x100, 0x100, 0, 0), (SHT_SYMTAB, 0, 0x300, 0x48, 3, 24), (3, 0, 0x348, 0x10, 0, 0)],
        );
        let s = strip(&e).unwrap();
        assert_eq!(s.len(), 0x280);
        assert_eq!(s[0x28..0x30], [0; 8]);
        assert_eq!(s[0x3c..0x40], [0; 4]);
        assert_eq!(s[0x40..0x280], e[0x40..0x280]);
        // The result is still a valid ELF file without sections, and
        // stripping again changes nothing.
        let again = Elf::parse(&s).unwrap();
        assert_eq!(again.sections().count(), 0);
        assert_eq!(strip(&s).unwrap(), s);
    }

    #[test]
    fn refuses_odd_files() {
        let odd = |e: &[u8]| strip(e).unwrap_err();
        assert_eq!(odd(b"hello"), "not an ELF file (bad magic)");
        assert_eq!(odd(b"\x7fELF\x02\x01"), "file too short for an ELF header (6 < 64 bytes)");
        let good = build(0x300, &[(PT_LOAD, 0, 0x200)], 0, &[]);
        assert!(strip(&good).is_ok());
        let mut e = good.clone();
        e[4] = 1;
        assert!(odd(&e).contains("64-bit"));
        let mut e = good.clone();
        e[0x12] = 3;
        assert!(odd(&e).contains("x86-64"));
        let mut e = good.clone();
        e[0x38..0x3a].copy_from_slice(&0u16.to_le_bytes());
        assert!(odd(&e).contains("no loadable segment"));
        let mut e = good.clone();
        e[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(odd(&e).contains("program headers"));
        let mut e = good.clone();
        e[0x38..0x3a].copy_from_slice(&100u16.to_le_bytes());
        assert!(odd(&e).contains("outside the file"));
        // Segments: past the end, overflowing, none loadable.
        assert!(odd(&build(0x300, &[(PT_LOAD, 0, 0x301)], 0, &[])).contains("past the end"));
        assert!(odd(&build(0x300, &[(PT_LOAD, u64::MAX, 2)], 0, &[])).contains("overflows"));
        assert!(odd(&build(0x300, &[(4, 0, 0x200)], 0, &[])).contains("no loadable"));
        // Program headers not covered by any segment.
        assert!(odd(&build(0x300, &[(PT_LOAD, 0, 0x50)], 0, &[])).contains("not covered"));
        // Section headers, or a symbol table, inside the loaded data.
        let syms = [(SHT_SYMTAB, 0, 0x280, 0x18, 0, 24)];
        assert!(odd(&build(0x300, &[(PT_LOAD, 0, 0x200)], 0x100, &syms)).contains("section headers lie inside"));
        let syms = [(SHT_SYMTAB, 0, 0x180, 0x18, 0, 24)];
        assert!(odd(&build(0x300, &[(PT_LOAD, 0, 0x200)], 0x300, &syms)).contains("non-loaded section"));
        // Extended section numbering, odd entry sizes.
        let mut e = build(0x300, &[(PT_LOAD, 0, 0x200)], 0x300, &syms);
        e[0x3c..0x3e].fill(0);
        assert!(odd(&e).contains("extended"));
        let mut e = build(0x300, &[(PT_LOAD, 0, 0x200)], 0x300, &syms);
        e[0x3a] = 40;
        assert!(odd(&e).contains("e_shentsize is 40"));
        // Section headers past the end of the file.
        let mut e = build(0x300, &[(PT_LOAD, 0, 0x200)], 0x300, &syms);
        e.truncate(e.len() - 1);
        assert!(odd(&e).contains("section headers (offset 0x300, 2 entries) lie outside the file"));
    }

    #[test]
    fn never_panics_on_truncations() {
        let e = build(
            0x400,
            &[(PT_LOAD, 0, 0x200)],
            0x300,
            &[(SHT_SYMTAB, 0, 0x200, 0x30, 2, 24), (3, 0, 0x230, 0x10, 0, 0)],
        );
        for n in 0..e.len() {
            let _ = strip(&e[..n]);
            if let Ok(elf) = Elf::parse(&e[..n]) {
                let _ = elf.symtab();
            }
        }
    }

    #[test]
    fn needed_libraries() {
        // .dynamic at 0x200: NEEDED "libc.so.6", (an unrelated tag), NEEDED "libz.so.1", NULL.
        let mut e = build(
            0x400,
            &[(PT_LOAD, 0, 0x200)],
            0x300,
            &[(SHT_DYNAMIC, 0, 0x200, 0x40, 2, 16), (3, 0, 0x240, 0x20, 0, 0)],
        );
        let dynamic: [(u64, u64); 4] = [(1, 1), (0x6ffffef5, 7), (1, 11), (0, 0)];
        for (i, (tag, val)) in dynamic.iter().enumerate() {
            e[0x200 + 16 * i..0x208 + 16 * i].copy_from_slice(&tag.to_le_bytes());
            e[0x208 + 16 * i..0x210 + 16 * i].copy_from_slice(&val.to_le_bytes());
        }
        e[0x240..0x240 + 21].copy_from_slice(b"\0libc.so.6\0libz.so.1\0");
        assert_eq!(Elf::parse(&e).unwrap().needed().unwrap(), ["libc.so.6", "libz.so.1"]);
        // A bad string offset is an error, not a panic.
        e[0x208..0x210].copy_from_slice(&0x1000u64.to_le_bytes());
        assert!(Elf::parse(&e).unwrap().needed().is_err());
        // A real dynamically linked program of the host.
        if let Ok(ls) = std::fs::read("/bin/ls") {
            assert!(Elf::parse(&ls).unwrap().needed().unwrap().iter().any(|l| l == "libc.so.6"));
        }
    }
}
