//! Just enough bounds-checked ELF64 (little-endian) parsing for our own
//! images: stripping them and reading their symbol table.
//!
//! Every read goes through [`Elf::u16`]/[`Elf::u32`]/[`Elf::u64`] or
//! [`Elf::range`], which return `None` past the end of the file, and every
//! offset computation is checked, so a truncated or corrupt file gives an
//! error, never a panic.

pub const PT_LOAD: u32 = 1;
pub const SHT_SYMTAB: u32 = 2;
pub const SHT_DYNAMIC: u32 = 6;
pub const SHT_NOBITS: u32 = 8;
const DT_NEEDED: u64 = 1;
pub const SHF_ALLOC: u64 = 2;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const EM_X86_64: u16 = 62;

/// A parsed ELF header over the file's bytes.
pub struct Elf<'a> {
    pub data: &'a [u8],
    phoff: usize,
    phnum: usize,
    shoff: usize,
    shnum: usize,
}

pub struct ProgramHeader {
    pub p_type: u32,
    pub offset: u64,
    pub filesz: u64,
}

pub struct Section {
    pub sh_type: u32,
    pub flags: u64,
    pub offset: u64,
    pub size: u64,
    pub link: u32,
    pub entsize: u64,
}

pub struct Symbol {
    pub name: u32,
    pub info: u8,
    pub shndx: u16,
    pub value: u64,
    pub size: u64,
}

impl<'a> Elf<'a> {
    /// Check the ELF header: 64-bit, little-endian, x86-64, sane table entries,
    /// and both tables inside the file.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, String> {
        if data.get(..4) != Some(b"\x7fELF") {
            return Err("not an ELF file".into());
        }
        if data.len() < EHDR_SIZE {
            return Err("ELF header truncated".into());
        }
        if data[4] != 2 || data[5] != 1 {
            return Err("not a 64-bit little-endian ELF file".into());
        }
        let e = Elf { data, phoff: 0, phnum: 0, shoff: 0, shnum: 0 };
        if e.u16(0x12) != Some(EM_X86_64) {
            return Err("not an x86-64 ELF file".into());
        }
        if e.u16(0x34) != Some(EHDR_SIZE as u16) {
            return Err("unexpected ELF header size".into());
        }
        let phoff = e.u64(0x20).ok_or("bad e_phoff")?;
        let phentsize = e.u16(0x36).ok_or("bad e_phentsize")?;
        let phnum = e.u16(0x38).ok_or("bad e_phnum")?;
        let shoff = e.u64(0x28).ok_or("bad e_shoff")?;
        let shentsize = e.u16(0x3a).ok_or("bad e_shentsize")?;
        let shnum = e.u16(0x3c).ok_or("bad e_shnum")?;
        if phnum == 0 || phnum == 0xffff {
            return Err(format!("unsupported program header count {phnum}"));
        }
        if usize::from(phentsize) != PHDR_SIZE {
            return Err(format!("unexpected program header size {phentsize}"));
        }
        if shoff != 0 && shnum == 0 {
            return Err("extended section numbering is not supported".into());
        }
        if shnum != 0 && usize::from(shentsize) != SHDR_SIZE {
            return Err(format!("unexpected section header size {shentsize}"));
        }
        let phoff = usize::try_from(phoff).map_err(|_| "bad e_phoff")?;
        let shoff = usize::try_from(shoff).map_err(|_| "bad e_shoff")?;
        let phnum = usize::from(phnum);
        let shnum = if shoff == 0 { 0 } else { usize::from(shnum) };
        let e = Elf { phoff, phnum, shoff, shnum, ..e };
        e.table(phoff, phnum, PHDR_SIZE).ok_or("program headers lie outside the file")?;
        e.table(shoff, shnum, SHDR_SIZE).ok_or("section headers lie outside the file")?;
        Ok(e)
    }

    pub fn range(&self, off: u64, len: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start..end)
    }

    fn table(&self, off: usize, n: usize, entsize: usize) -> Option<&'a [u8]> {
        self.range(off as u64, n.checked_mul(entsize)? as u64)
    }

    pub fn u16(&self, off: usize) -> Option<u16> {
        Some(u16::from_le_bytes(self.data.get(off..off.checked_add(2)?)?.try_into().ok()?))
    }

    pub fn u32(&self, off: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.data.get(off..off.checked_add(4)?)?.try_into().ok()?))
    }

    pub fn u64(&self, off: usize) -> Option<u64> {
        Some(u64::from_le_bytes(self.data.get(off..off.checked_add(8)?)?.try_into().ok()?))
    }

    pub fn program_headers(&self) -> impl Iterator<Item = ProgramHeader> + '_ {
        // parse() checked that the whole table is inside the file.
        (0..self.phnum).filter_map(move |i| {
            let o = self.phoff + i * PHDR_SIZE;
            Some(ProgramHeader { p_type: self.u32(o)?, offset: self.u64(o + 8)?, filesz: self.u64(o + 0x20)? })
        })
    }

    pub fn sections(&self) -> impl Iterator<Item = Section> + '_ {
        (0..self.shnum).filter_map(move |i| self.section(i))
    }

    pub fn section(&self, i: usize) -> Option<Section> {
        if i >= self.shnum {
            return None;
        }
        let o = self.shoff + i * SHDR_SIZE;
        Some(Section {
            sh_type: self.u32(o + 4)?,
            flags: self.u64(o + 8)?,
            offset: self.u64(o + 0x18)?,
            size: self.u64(o + 0x20)?,
            link: self.u32(o + 0x28)?,
            entsize: self.u64(o + 0x38)?,
        })
    }

    /// The bytes of a section (empty for NOBITS).
    pub fn section_data(&self, s: &Section) -> Option<&'a [u8]> {
        if s.sh_type == SHT_NOBITS {
            return Some(&[]);
        }
        self.range(s.offset, s.size)
    }

    /// The symbols of the `.symtab` section, with its string table.
    pub fn symtab(&self) -> Result<(Vec<Symbol>, &'a [u8]), String> {
        let symtab = self.sections().find(|s| s.sh_type == SHT_SYMTAB).ok_or("no symbol table")?;
        if symtab.entsize != 24 {
            return Err(format!("unexpected symbol size {}", symtab.entsize));
        }
        let data = self.section_data(&symtab).ok_or("symbol table lies outside the file")?;
        let strtab = self.section(symtab.link as usize).ok_or("symbol table has no string table")?;
        let strings = self.section_data(&strtab).ok_or("string table lies outside the file")?;
        let syms = data
            .chunks_exact(24)
            .map(|c| Symbol {
                name: u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                info: c[4],
                shndx: u16::from_le_bytes([c[6], c[7]]),
                value: u64::from_le_bytes(c[8..16].try_into().unwrap_or_default()),
                size: u64::from_le_bytes(c[16..24].try_into().unwrap_or_default()),
            })
            .collect();
        Ok((syms, strings))
    }
}

impl Elf<'_> {
    /// The shared libraries a dynamically linked program or library names
    /// (`DT_NEEDED` entries of its `.dynamic` section), in order.
    pub fn needed(&self) -> Result<Vec<String>, String> {
        let Some(dynamic) = self.sections().find(|s| s.sh_type == SHT_DYNAMIC) else {
            return Ok(Vec::new()); // statically linked
        };
        let data = self.section_data(&dynamic).ok_or(".dynamic lies outside the file")?;
        let strtab = self.section(dynamic.link as usize).ok_or(".dynamic has no string table")?;
        let strings = self.section_data(&strtab).ok_or(".dynstr lies outside the file")?;
        let mut out = Vec::new();
        for e in data.chunks_exact(16) {
            let tag = u64::from_le_bytes(e[..8].try_into().unwrap_or_default());
            let val = u64::from_le_bytes(e[8..].try_into().unwrap_or_default());
            if tag == DT_NEEDED {
                let name = u32::try_from(val).ok().and_then(|o| string_at(strings, o)).ok_or("bad DT_NEEDED offset")?;
                out.push(String::from_utf8_lossy(name).into_owned());
            }
        }
        Ok(out)
    }
}

/// The NUL-terminated string at `off` in a string table.
pub fn string_at(strings: &[u8], off: u32) -> Option<&[u8]> {
    let s = strings.get(off as usize..)?;
    let len = s.iter().position(|&b| b == 0)?;
    Some(&s[..len])
}

/// Strip an image: keep only what the program headers cover (the header, the
/// program headers, every loaded segment and note), drop the section headers
/// and everything after the loaded data (symbol and string tables).
///
/// Our linker scripts put all loaded data first; anything else (a section
/// with file contents inside or before that data, section headers in the
/// middle, a segment past the end of the file) is refused with the reason.
pub fn strip(data: &[u8]) -> Result<Vec<u8>, String> {
    let elf = Elf::parse(data)?;
    let mut end: u64 = 0;
    let mut loads = 0;
    for ph in elf.program_headers() {
        let seg_end = ph.offset.checked_add(ph.filesz).ok_or("a segment's file range overflows")?;
        if seg_end > data.len() as u64 {
            return Err("a segment lies past the end of the file".into());
        }
        end = end.max(seg_end);
        loads += usize::from(ph.p_type == PT_LOAD);
    }
    if loads == 0 {
        return Err("no loadable segment".into());
    }
    let phdrs_end = (elf.phoff + elf.phnum * PHDR_SIZE) as u64;
    if end < phdrs_end {
        return Err("the program headers are not covered by the loaded data".into());
    }
    if elf.shnum != 0 && (elf.shoff as u64) < end {
        return Err("the section headers lie inside the loaded data".into());
    }
    for s in elf.sections() {
        let has_bytes = s.sh_type != SHT_NOBITS && s.sh_type != 0 && s.size != 0;
        if has_bytes && s.flags & SHF_ALLOC == 0 && s.offset < end {
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
        assert_eq!(odd(b"hello"), "not an ELF file");
        assert_eq!(odd(b"\x7fELF\x02\x01"), "ELF header truncated");
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
        assert!(odd(&e).contains("program header count"));
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
        assert!(odd(&e).contains("section header size"));
        // Section headers past the end of the file.
        let mut e = build(0x300, &[(PT_LOAD, 0, 0x200)], 0x300, &syms);
        e.truncate(e.len() - 1);
        assert!(odd(&e).contains("section headers lie outside"));
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
