//! One bounds-checked ELF64 reader (x86_64, little-endian) for every part
//! of unikit that reads ELF: the tender's loader, the CLI's strip,
//! symbolizer, image checks and shared-library lists, and the coming Linux
//! ELF loader (static, static-pie and `PT_INTERP` programs).
//!
//! Facts are from the System V gABI (ELF-64 Object File Format, version
//! 1.5) and the x86-64 psABI. [`Elf::parse`] checks the file header and
//! that both header tables lie inside the file; every later read goes
//! through checked arithmetic and `get`, so a truncated or hostile file
//! yields an [`ElfError`] or `None`, never a panic or an out-of-bounds
//! read. Nothing is allocated: tables are iterators over the file's bytes.

use core::fmt;

use crate::bytes::{range, u16_at, u32_at, u64_at};

/// Size of `Elf64_Ehdr`.
pub const EHDR_SIZE: usize = 64;
/// Size of `Elf64_Phdr`.
pub const PHDR_SIZE: usize = 56;
/// Size of `Elf64_Shdr`.
pub const SHDR_SIZE: usize = 64;
/// Size of `Elf64_Sym`.
pub const SYM_SIZE: usize = 24;
/// Size of `Elf64_Dyn`.
pub const DYN_SIZE: usize = 16;

/// `e_type`: relocatable object.
pub const ET_REL: u16 = 1;
/// `e_type`: executable at fixed addresses.
pub const ET_EXEC: u16 = 2;
/// `e_type`: shared object or position-independent executable.
pub const ET_DYN: u16 = 3;
/// `e_machine`: AMD x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_phnum` value saying the real count is elsewhere (not supported).
pub const PN_XNUM: u16 = 0xffff;

/// `p_type`: unused entry.
pub const PT_NULL: u32 = 0;
/// `p_type`: loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_type`: dynamic linking information.
pub const PT_DYNAMIC: u32 = 2;
/// `p_type`: path of the program interpreter.
pub const PT_INTERP: u32 = 3;
/// `p_type`: notes.
pub const PT_NOTE: u32 = 4;
/// `p_type`: the program header table itself.
pub const PT_PHDR: u32 = 6;
/// `p_type`: thread-local storage template.
pub const PT_TLS: u32 = 7;
/// `p_type`: GNU stack permissions.
pub const PT_GNU_STACK: u32 = 0x6474_e551;
/// `p_type`: GNU read-only-after-relocation range.
pub const PT_GNU_RELRO: u32 = 0x6474_e552;
/// `p_flags`: executable.
pub const PF_X: u32 = 1;
/// `p_flags`: writable.
pub const PF_W: u32 = 2;
/// `p_flags`: readable.
pub const PF_R: u32 = 4;

/// `sh_type`: symbol table.
pub const SHT_SYMTAB: u32 = 2;
/// `sh_type`: string table.
pub const SHT_STRTAB: u32 = 3;
/// `sh_type`: dynamic linking information.
pub const SHT_DYNAMIC: u32 = 6;
/// `sh_type`: notes.
pub const SHT_NOTE: u32 = 7;
/// `sh_type`: occupies no file space (.bss).
pub const SHT_NOBITS: u32 = 8;
/// `sh_type`: dynamic symbol table.
pub const SHT_DYNSYM: u32 = 11;
/// `sh_flags`: occupies memory at run time.
pub const SHF_ALLOC: u64 = 2;

/// Symbol type (low 4 bits of `st_info`): function.
pub const STT_FUNC: u8 = 2;
/// Symbol type: data object.
pub const STT_OBJECT: u8 = 1;

/// `d_tag`: end of the dynamic array.
pub const DT_NULL: u64 = 0;
/// `d_tag`: name of a needed library (string table offset).
pub const DT_NEEDED: u64 = 1;
/// `d_tag`: address of the string table.
pub const DT_STRTAB: u64 = 5;

/// Why a file or a part of it cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// No `\x7fELF` magic.
    BadMagic,
    /// Shorter than an ELF header.
    TooShort(usize),
    /// Not ELFCLASS64 + ELFDATA2LSB.
    NotElf64Le,
    /// `e_version` is not EV_CURRENT (1).
    BadVersion(u32),
    /// `e_machine` is not x86-64.
    BadMachine(u16),
    /// `e_ehsize` is not 64.
    BadEhsize(u16),
    /// `e_phentsize` is not 56.
    BadPhentsize(u16),
    /// `e_shentsize` is not 64.
    BadShentsize(u16),
    /// Extended numbering (`PN_XNUM`, or section headers without a count).
    ExtendedNumbering,
    /// The program header table lies outside the file.
    PhdrsOutside {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
    },
    /// The section header table lies outside the file.
    ShdrsOutside {
        /// `e_shoff`.
        offset: u64,
        /// `e_shnum`.
        count: u16,
    },
    /// A segment's file image lies outside the file.
    SegmentOutside {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        size: u64,
    },
    /// A section's bytes lie outside the file.
    SectionOutside {
        /// Section index.
        index: usize,
        /// `sh_offset`.
        offset: u64,
        /// `sh_size`.
        size: u64,
    },
    /// No section of the wanted symbol table type.
    NoSymtab,
    /// A symbol table whose `sh_entsize` is not 24.
    BadSymEntsize(u64),
    /// A section's `sh_link` names no section.
    BadLink {
        /// The section.
        index: usize,
        /// Its `sh_link`.
        link: u32,
    },
    /// `PT_INTERP` is not a NUL-terminated path.
    BadInterp,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ElfError::*;
        match *self {
            BadMagic => write!(f, "not an ELF file (bad magic)"),
            TooShort(n) => write!(f, "file too short for an ELF header ({n} < {EHDR_SIZE} bytes)"),
            NotElf64Le => write!(f, "not a 64-bit little-endian ELF file"),
            BadVersion(v) => write!(f, "unknown ELF version {v} (expected 1)"),
            BadMachine(m) => write!(f, "not an x86-64 ELF file (e_machine {m})"),
            BadEhsize(n) => write!(f, "e_ehsize is {n}, expected {EHDR_SIZE}"),
            BadPhentsize(n) => write!(f, "e_phentsize is {n}, expected {PHDR_SIZE}"),
            BadShentsize(n) => write!(f, "e_shentsize is {n}, expected {SHDR_SIZE}"),
            ExtendedNumbering => write!(f, "extended section or program header numbering is not supported"),
            PhdrsOutside { offset, count } => {
                write!(f, "program headers (offset {offset:#x}, {count} entries) lie outside the file")
            }
            ShdrsOutside { offset, count } => {
                write!(f, "section headers (offset {offset:#x}, {count} entries) lie outside the file")
            }
            SegmentOutside { index, offset, size } => {
                write!(f, "phdr[{index}]: file image (offset {offset:#x}, {size:#x} bytes) lies outside the file")
            }
            SectionOutside { index, offset, size } => {
                write!(f, "section {index} (offset {offset:#x}, {size:#x} bytes) lies outside the file")
            }
            NoSymtab => write!(f, "no symbol table"),
            BadSymEntsize(n) => write!(f, "unexpected symbol size {n}"),
            BadLink { index, link } => write!(f, "section {index} links to section {link}, which does not exist"),
            BadInterp => write!(f, "PT_INTERP is not a NUL-terminated path inside the file"),
        }
    }
}

/// The fields of `Elf64_Ehdr` a reader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `e_type`: [`ET_EXEC`], [`ET_DYN`], ...
    pub e_type: u16,
    /// `e_machine` (always [`EM_X86_64`] once parsed).
    pub machine: u16,
    /// `e_entry`.
    pub entry: u64,
    /// `e_phoff`.
    pub phoff: u64,
    /// `e_shoff` (0: no section headers).
    pub shoff: u64,
    /// `e_flags`.
    pub flags: u32,
    /// `e_phnum`.
    pub phnum: u16,
    /// `e_shnum` (0 when `e_shoff` is 0).
    pub shnum: u16,
    /// `e_shstrndx`.
    pub shstrndx: u16,
}

/// `Elf64_Phdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgramHeader {
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags` ([`PF_R`], [`PF_W`], [`PF_X`]).
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_paddr`.
    pub paddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_align`.
    pub align: u64,
}

impl ProgramHeader {
    fn read(b: &[u8]) -> Option<ProgramHeader> {
        Some(ProgramHeader {
            p_type: u32_at(b, 0)?,
            flags: u32_at(b, 4)?,
            offset: u64_at(b, 8)?,
            vaddr: u64_at(b, 16)?,
            paddr: u64_at(b, 24)?,
            filesz: u64_at(b, 32)?,
            memsz: u64_at(b, 40)?,
            align: u64_at(b, 48)?,
        })
    }

    /// Writes the header in its file layout (56 bytes), for tests and
    /// tools that build images.
    pub fn to_bytes(&self) -> [u8; PHDR_SIZE] {
        let mut b = [0u8; PHDR_SIZE];
        b[0..4].copy_from_slice(&self.p_type.to_le_bytes());
        b[4..8].copy_from_slice(&self.flags.to_le_bytes());
        for (i, v) in [self.offset, self.vaddr, self.paddr, self.filesz, self.memsz, self.align].iter().enumerate() {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// A `PT_LOAD` segment.
    pub fn is_load(&self) -> bool {
        self.p_type == PT_LOAD
    }

    /// Readable.
    pub fn readable(&self) -> bool {
        self.flags & PF_R != 0
    }

    /// Writable.
    pub fn writable(&self) -> bool {
        self.flags & PF_W != 0
    }

    /// Executable.
    pub fn executable(&self) -> bool {
        self.flags & PF_X != 0
    }

    /// End of the file image (`p_offset + p_filesz`), if it does not wrap.
    pub fn file_end(&self) -> Option<u64> {
        self.offset.checked_add(self.filesz)
    }

    /// End of the memory image (`p_vaddr + p_memsz`), if it does not wrap.
    pub fn mem_end(&self) -> Option<u64> {
        self.vaddr.checked_add(self.memsz)
    }
}

/// `Elf64_Shdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SectionHeader {
    /// `sh_name`: offset in the section name string table.
    pub name: u32,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_offset`.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_link`.
    pub link: u32,
    /// `sh_info`.
    pub info: u32,
    /// `sh_addralign`.
    pub addralign: u64,
    /// `sh_entsize`.
    pub entsize: u64,
}

impl SectionHeader {
    fn read(b: &[u8]) -> Option<SectionHeader> {
        Some(SectionHeader {
            name: u32_at(b, 0)?,
            sh_type: u32_at(b, 4)?,
            flags: u64_at(b, 8)?,
            addr: u64_at(b, 16)?,
            offset: u64_at(b, 24)?,
            size: u64_at(b, 32)?,
            link: u32_at(b, 40)?,
            info: u32_at(b, 44)?,
            addralign: u64_at(b, 48)?,
            entsize: u64_at(b, 56)?,
        })
    }

    /// Whether the section has bytes in the file.
    pub fn has_file_bytes(&self) -> bool {
        self.sh_type != SHT_NOBITS && self.sh_type != 0 && self.size != 0
    }
}

/// `Elf64_Sym`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Symbol {
    /// `st_name`: offset in the linked string table.
    pub name: u32,
    /// `st_info`: binding (high 4 bits) and type (low 4 bits).
    pub info: u8,
    /// `st_other`: visibility.
    pub other: u8,
    /// `st_shndx`: section index (0: undefined).
    pub shndx: u16,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
}

impl Symbol {
    fn read(b: &[u8]) -> Option<Symbol> {
        Some(Symbol {
            name: u32_at(b, 0)?,
            info: *b.get(4)?,
            other: *b.get(5)?,
            shndx: u16_at(b, 6)?,
            value: u64_at(b, 8)?,
            size: u64_at(b, 16)?,
        })
    }

    /// Symbol type ([`STT_FUNC`], ...).
    pub fn kind(&self) -> u8 {
        self.info & 0xf
    }

    /// Symbol binding (0 local, 1 global, 2 weak).
    pub fn binding(&self) -> u8 {
        self.info >> 4
    }
}

/// `Elf64_Dyn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dyn {
    /// `d_tag`.
    pub tag: u64,
    /// `d_val` / `d_ptr`.
    pub val: u64,
}

/// How a program is linked, as an ELF loader must treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage<'a> {
    /// `ET_EXEC` without `PT_INTERP`: loaded at its own addresses.
    Static,
    /// `ET_DYN` without `PT_INTERP`: a static-pie program (or a loader such
    /// as ld.so itself), loaded at a chosen base and relocating itself.
    StaticPie,
    /// Has a `PT_INTERP`: the named interpreter is loaded too and started
    /// first.
    Dynamic {
        /// The interpreter's path (without its NUL).
        interpreter: &'a [u8],
    },
}

/// One note record (`Elf64_Nhdr`, name, descriptor; each padded to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    /// `n_type`.
    pub n_type: u32,
    /// The name's `n_namesz` bytes (its NUL included, padding not).
    pub name: &'a [u8],
    /// `n_descsz` as found.
    pub descsz: usize,
    /// The descriptor, or `None` if `n_descsz` runs past the data (the
    /// walk ends after such a note).
    pub desc: Option<&'a [u8]>,
    /// Where the record's header starts in the data walked.
    pub offset: usize,
}

/// The notes in a `PT_NOTE` segment or `SHT_NOTE` section; the walk stops
/// at the first record whose header or name does not fit.
#[derive(Debug, Clone)]
pub struct Notes<'a> {
    data: &'a [u8],
    pos: Option<usize>,
}

impl<'a> Notes<'a> {
    /// Walks the note records in `data`.
    pub fn new(data: &'a [u8]) -> Notes<'a> {
        Notes { data, pos: Some(0) }
    }
}

fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

impl<'a> Iterator for Notes<'a> {
    type Item = Note<'a>;

    fn next(&mut self) -> Option<Note<'a>> {
        let pos = self.pos.take()?;
        let namesz = u32_at(self.data, pos)? as usize;
        let descsz = u32_at(self.data, pos.checked_add(4)?)? as usize;
        let n_type = u32_at(self.data, pos.checked_add(8)?)?;
        let name_at = pos.checked_add(12)?;
        let name = self.data.get(name_at..name_at.checked_add(namesz)?)?;
        let desc_at = name_at.checked_add(align4(namesz)?)?;
        let desc = desc_at.checked_add(descsz).and_then(|end| self.data.get(desc_at..end));
        if desc.is_some() {
            self.pos = align4(descsz).and_then(|d| desc_at.checked_add(d));
        }
        Some(Note { n_type, name, descsz, desc, offset: pos })
    }
}

/// A symbol table and its string table.
#[derive(Debug, Clone, Copy)]
pub struct SymbolTable<'a> {
    data: &'a [u8],
    strings: &'a [u8],
}

impl<'a> SymbolTable<'a> {
    /// Every symbol, the null one first.
    pub fn iter(&self) -> impl Iterator<Item = Symbol> + use<'a> {
        self.data.chunks_exact(SYM_SIZE).filter_map(Symbol::read)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.data.len() / SYM_SIZE
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A symbol's name, if its offset lies in the string table.
    pub fn name(&self, s: &Symbol) -> Option<&'a [u8]> {
        string_at(self.strings, s.name)
    }

    /// The string table.
    pub fn strings(&self) -> &'a [u8] {
        self.strings
    }
}

/// A parsed ELF64 file: a checked header over the file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Elf<'a> {
    data: &'a [u8],
    hdr: Header,
}

impl<'a> Elf<'a> {
    /// Checks the file header (magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT,
    /// x86-64, header and table entry sizes) and that the program and
    /// section header tables lie inside the file. Any `e_type` is accepted:
    /// callers check what they can load.
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, ElfError> {
        if data.get(..4) != Some(b"\x7fELF") {
            return Err(ElfError::BadMagic);
        }
        if data.len() < EHDR_SIZE {
            return Err(ElfError::TooShort(data.len()));
        }
        // EI_CLASS = ELFCLASS64, EI_DATA = ELFDATA2LSB.
        if data[4] != 2 || data[5] != 1 {
            return Err(ElfError::NotElf64Le);
        }
        let h = |o| u16_at(data, o).unwrap_or(0);
        let version = u32_at(data, 0x14).unwrap_or(0);
        if version != 1 {
            return Err(ElfError::BadVersion(version));
        }
        let machine = h(0x12);
        if machine != EM_X86_64 {
            return Err(ElfError::BadMachine(machine));
        }
        if h(0x34) as usize != EHDR_SIZE {
            return Err(ElfError::BadEhsize(h(0x34)));
        }
        let (phentsize, phnum, shentsize, shnum) = (h(0x36), h(0x38), h(0x3a), h(0x3c));
        let shoff = u64_at(data, 0x28).unwrap_or(0);
        if phnum == PN_XNUM || (shoff != 0 && shnum == 0) {
            return Err(ElfError::ExtendedNumbering);
        }
        let hdr = Header {
            e_type: h(0x10),
            machine,
            entry: u64_at(data, 0x18).unwrap_or(0),
            phoff: u64_at(data, 0x20).unwrap_or(0),
            shoff,
            flags: u32_at(data, 0x30).unwrap_or(0),
            phnum,
            shnum: if shoff == 0 { 0 } else { shnum },
            shstrndx: h(0x3e),
        };
        if phnum != 0 {
            if phentsize as usize != PHDR_SIZE {
                return Err(ElfError::BadPhentsize(phentsize));
            }
            if range(data, hdr.phoff, phnum as u64 * PHDR_SIZE as u64).is_none() {
                return Err(ElfError::PhdrsOutside { offset: hdr.phoff, count: phnum });
            }
        }
        if hdr.shnum != 0 {
            if shentsize as usize != SHDR_SIZE {
                return Err(ElfError::BadShentsize(shentsize));
            }
            if range(data, shoff, hdr.shnum as u64 * SHDR_SIZE as u64).is_none() {
                return Err(ElfError::ShdrsOutside { offset: shoff, count: hdr.shnum });
            }
        }
        Ok(Elf { data, hdr })
    }

    /// The whole file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The checked file header.
    pub fn header(&self) -> &Header {
        &self.hdr
    }

    /// `e_entry`.
    pub fn entry(&self) -> u64 {
        self.hdr.entry
    }

    /// `e_type`.
    pub fn e_type(&self) -> u16 {
        self.hdr.e_type
    }

    /// `len` bytes at file offset `off`, if inside the file.
    pub fn range(&self, off: u64, len: u64) -> Option<&'a [u8]> {
        range(self.data, off, len)
    }

    /// Program header `i`.
    pub fn program_header(&self, i: usize) -> Option<ProgramHeader> {
        if i >= self.hdr.phnum as usize {
            return None;
        }
        let off = self.hdr.phoff.checked_add((i * PHDR_SIZE) as u64)?;
        ProgramHeader::read(self.range(off, PHDR_SIZE as u64)?)
    }

    /// Every program header, in file order.
    pub fn program_headers(&self) -> impl ExactSizeIterator<Item = ProgramHeader> + use<'a> {
        let e = *self;
        // parse() checked that the whole table lies inside the file.
        (0..e.hdr.phnum as usize).map(move |i| e.program_header(i).unwrap_or_default())
    }

    /// The file image of program header `index` (`ph`).
    pub fn segment_data(&self, index: usize, ph: &ProgramHeader) -> Result<&'a [u8], ElfError> {
        self.range(ph.offset, ph.filesz).ok_or(ElfError::SegmentOutside { index, offset: ph.offset, size: ph.filesz })
    }

    /// The notes of every `PT_NOTE` segment: (program header index, note).
    /// A note segment outside the file is an error.
    pub fn segment_notes(&self) -> impl Iterator<Item = Result<(usize, Note<'a>), ElfError>> + use<'a> {
        let e = *self;
        e.program_headers().enumerate().filter(|(_, p)| p.p_type == PT_NOTE).flat_map(move |(i, p)| {
            let (notes, err) = match e.segment_data(i, &p) {
                Ok(d) => (Some(Notes::new(d).map(move |n| Ok((i, n)))), None),
                Err(x) => (None, Some(Err(x))),
            };
            notes.into_iter().flatten().chain(err)
        })
    }

    /// The program interpreter named by `PT_INTERP` (without its NUL), or
    /// `None` for a static program.
    pub fn interpreter(&self) -> Result<Option<&'a [u8]>, ElfError> {
        let Some((i, p)) = self.program_headers().enumerate().find(|(_, p)| p.p_type == PT_INTERP) else {
            return Ok(None);
        };
        let d = self.segment_data(i, &p)?;
        match d.split_last() {
            Some((0, path)) if !path.contains(&0) && !path.is_empty() => Ok(Some(path)),
            _ => Err(ElfError::BadInterp),
        }
    }

    /// How the program is linked; `None` for a file that is neither
    /// `ET_EXEC` nor `ET_DYN` (an object file, a core dump).
    pub fn linkage(&self) -> Result<Option<Linkage<'a>>, ElfError> {
        Ok(match (self.hdr.e_type, self.interpreter()?) {
            (ET_EXEC | ET_DYN, Some(interpreter)) => Some(Linkage::Dynamic { interpreter }),
            (ET_EXEC, None) => Some(Linkage::Static),
            (ET_DYN, None) => Some(Linkage::StaticPie),
            _ => None,
        })
    }

    /// The entries of the `PT_DYNAMIC` segment up to `DT_NULL`, or `None`
    /// when the program has none.
    pub fn dynamic(&self) -> Result<Option<impl Iterator<Item = Dyn> + use<'a>>, ElfError> {
        let Some((i, p)) = self.program_headers().enumerate().find(|(_, p)| p.p_type == PT_DYNAMIC) else {
            return Ok(None);
        };
        let d = self.segment_data(i, &p)?;
        Ok(Some(dyn_entries(d)))
    }

    /// The file offset holding virtual address `vaddr` (inside the file
    /// image of a `PT_LOAD` segment), for `d_ptr` values such as
    /// `DT_STRTAB`.
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        self.program_headers().filter(|p| p.is_load()).find_map(|p| {
            let delta = vaddr.checked_sub(p.vaddr)?;
            (delta < p.filesz).then(|| p.offset.checked_add(delta)).flatten()
        })
    }

    /// The highest physical address a `PT_LOAD` segment occupies
    /// (`p_paddr + p_memsz`): where the image ends in a VM's memory. `None`
    /// if there is no loadable segment or an end wraps.
    pub fn load_end(&self) -> Option<u64> {
        let mut end = None;
        for p in self.program_headers().filter(|p| p.is_load()) {
            let e = p.paddr.checked_add(p.memsz)?;
            end = Some(end.map_or(e, |x: u64| x.max(e)));
        }
        end
    }

    /// Section header `i`.
    pub fn section(&self, i: usize) -> Option<SectionHeader> {
        if i >= self.hdr.shnum as usize {
            return None;
        }
        let off = self.hdr.shoff.checked_add((i * SHDR_SIZE) as u64)?;
        SectionHeader::read(self.range(off, SHDR_SIZE as u64)?)
    }

    /// Every section header, in file order (none once stripped of them).
    pub fn sections(&self) -> impl ExactSizeIterator<Item = SectionHeader> + use<'a> {
        let e = *self;
        (0..e.hdr.shnum as usize).map(move |i| e.section(i).unwrap_or_default())
    }

    /// The bytes of section `index` (`s`); empty for `SHT_NOBITS`.
    pub fn section_data(&self, index: usize, s: &SectionHeader) -> Result<&'a [u8], ElfError> {
        if s.sh_type == SHT_NOBITS {
            return Ok(&[]);
        }
        self.range(s.offset, s.size).ok_or(ElfError::SectionOutside { index, offset: s.offset, size: s.size })
    }

    /// A section's name from the section name string table, if readable.
    pub fn section_name(&self, s: &SectionHeader) -> Option<&'a [u8]> {
        let i = self.hdr.shstrndx as usize;
        let strtab = self.section(i)?;
        string_at(self.section_data(i, &strtab).ok()?, s.name)
    }

    /// The first section of type `sh_type` with its index.
    pub fn find_section(&self, sh_type: u32) -> Option<(usize, SectionHeader)> {
        self.sections().enumerate().find(|(_, s)| s.sh_type == sh_type)
    }

    /// The bytes of the section `s` (index `index`) links to through
    /// `sh_link` (a string table for symbol and dynamic sections).
    pub fn linked_data(&self, index: usize, s: &SectionHeader) -> Result<&'a [u8], ElfError> {
        let l = s.link as usize;
        let linked = self.section(l).ok_or(ElfError::BadLink { index, link: s.link })?;
        self.section_data(l, &linked)
    }

    /// The `.symtab` symbols with their string table.
    pub fn symtab(&self) -> Result<SymbolTable<'a>, ElfError> {
        self.symbols(SHT_SYMTAB)
    }

    /// The symbols of the first section of `sh_type` ([`SHT_SYMTAB`] or
    /// [`SHT_DYNSYM`]).
    pub fn symbols(&self, sh_type: u32) -> Result<SymbolTable<'a>, ElfError> {
        let (i, s) = self.find_section(sh_type).ok_or(ElfError::NoSymtab)?;
        if s.entsize != SYM_SIZE as u64 {
            return Err(ElfError::BadSymEntsize(s.entsize));
        }
        Ok(SymbolTable { data: self.section_data(i, &s)?, strings: self.linked_data(i, &s)? })
    }
}

/// `Elf64_Dyn` entries in `data`, up to `DT_NULL`.
pub fn dyn_entries(data: &[u8]) -> impl Iterator<Item = Dyn> + '_ {
    data.chunks_exact(DYN_SIZE)
        .filter_map(|c| Some(Dyn { tag: u64_at(c, 0)?, val: u64_at(c, 8)? }))
        .take_while(|d| d.tag != DT_NULL)
}

/// The NUL-terminated string at `off` in a string table (without the NUL).
pub fn string_at(strings: &[u8], off: u32) -> Option<&[u8]> {
    let s = strings.get(off as usize..)?;
    let len = s.iter().position(|&b| b == 0)?;
    Some(&s[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with a header, `phdrs` right after it and `size` bytes.
    fn file(size: usize, phdrs: &[ProgramHeader]) -> [u8; 0x400] {
        assert!(size <= 0x400);
        let mut f = [0u8; 0x400];
        f[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        f[0x10..0x12].copy_from_slice(&ET_DYN.to_le_bytes());
        f[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
        f[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
        f[0x18..0x20].copy_from_slice(&0x1234u64.to_le_bytes());
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, p) in phdrs.iter().enumerate() {
            f[64 + 56 * i..120 + 56 * i].copy_from_slice(&p.to_bytes());
        }
        f
    }

    #[test]
    fn header_checks() {
        let f = file(0x400, &[]);
        let e = Elf::parse(&f).unwrap();
        assert_eq!((e.e_type(), e.entry(), e.program_headers().len(), e.sections().len()), (ET_DYN, 0x1234, 0, 0));
        let bad = |i: usize, v: u8| {
            let mut g = f;
            g[i] = v;
            Elf::parse(&g).unwrap_err()
        };
        assert_eq!(bad(0, 0), ElfError::BadMagic);
        assert_eq!(bad(4, 1), ElfError::NotElf64Le);
        assert_eq!(bad(5, 2), ElfError::NotElf64Le);
        assert_eq!(bad(0x14, 0), ElfError::BadVersion(0));
        assert_eq!(bad(0x12, 3), ElfError::BadMachine(3));
        assert_eq!(bad(0x34, 52), ElfError::BadEhsize(52));
        assert_eq!(Elf::parse(&f[..63]).unwrap_err(), ElfError::TooShort(63));
        assert_eq!(Elf::parse(b"hello").unwrap_err(), ElfError::BadMagic);
        let mut g = f;
        g[0x38..0x3a].copy_from_slice(&PN_XNUM.to_le_bytes());
        assert_eq!(Elf::parse(&g).unwrap_err(), ElfError::ExtendedNumbering);
        let mut g = f;
        g[0x38] = 20; // 20 program headers do not fit in 0x400 bytes
        assert_eq!(Elf::parse(&g).unwrap_err(), ElfError::PhdrsOutside { offset: 64, count: 20 });
        let mut g = f;
        g[0x28..0x30].copy_from_slice(&0x200u64.to_le_bytes());
        assert_eq!(Elf::parse(&g).unwrap_err(), ElfError::ExtendedNumbering);
        g[0x3c] = 1;
        assert_eq!(Elf::parse(&g).unwrap_err(), ElfError::BadShentsize(0));
        g[0x3a] = 64;
        g[0x3c] = 20;
        assert_eq!(Elf::parse(&g).unwrap_err(), ElfError::ShdrsOutside { offset: 0x200, count: 20 });
    }

    #[test]
    fn segments_interpreter_dynamic_and_load_end() {
        let load = |off, vaddr, paddr, filesz, memsz| ProgramHeader {
            p_type: PT_LOAD,
            flags: PF_R,
            offset: off,
            vaddr,
            paddr,
            filesz,
            memsz,
            align: 0x1000,
        };
        let interp = ProgramHeader { p_type: PT_INTERP, offset: 0x300, filesz: 8, ..Default::default() };
        let dynamic = ProgramHeader { p_type: PT_DYNAMIC, offset: 0x340, filesz: 48, ..Default::default() };
        let mut f = file(
            0x400,
            &[interp, load(0, 0x40_0000, 0x10_0000, 0x400, 0x2000), load(0, 0x50_0000, 0x12_0000, 0, 0x2000), dynamic],
        );
        f[0x300..0x308].copy_from_slice(b"/lib/ld\0");
        for (i, (t, v)) in [(DT_NEEDED, 1u64), (DT_STRTAB, 0x40_0380), (DT_NULL, 0)].iter().enumerate() {
            f[0x340 + 16 * i..0x348 + 16 * i].copy_from_slice(&t.to_le_bytes());
            f[0x348 + 16 * i..0x350 + 16 * i].copy_from_slice(&v.to_le_bytes());
        }
        let e = Elf::parse(&f).unwrap();
        assert_eq!(e.interpreter(), Ok(Some(&b"/lib/ld"[..])));
        assert_eq!(e.linkage(), Ok(Some(Linkage::Dynamic { interpreter: b"/lib/ld" })));
        let d: [Dyn; 2] = [Dyn { tag: DT_NEEDED, val: 1 }, Dyn { tag: DT_STRTAB, val: 0x40_0380 }];
        assert!(e.dynamic().unwrap().unwrap().eq(d));
        assert_eq!(e.vaddr_to_offset(0x40_0380), Some(0x380));
        assert_eq!(e.vaddr_to_offset(0x40_0400), None);
        assert_eq!(e.load_end(), Some(0x12_2000));
        // A path without its NUL, a segment outside the file.
        let mut g = f;
        g[0x307] = b'x';
        assert_eq!(Elf::parse(&g).unwrap().interpreter(), Err(ElfError::BadInterp));
        let far = ProgramHeader { offset: 0x3ff, filesz: 2, ..interp };
        let g = file(0x400, &[far]);
        let e = Elf::parse(&g).unwrap();
        assert_eq!(e.interpreter(), Err(ElfError::SegmentOutside { index: 0, offset: 0x3ff, size: 2 }));
        assert_eq!(e.load_end(), None);
        let mut pie = file(0x400, &[load(0, 0, 0, 0x100, 0x100)]);
        assert_eq!(Elf::parse(&pie).unwrap().linkage(), Ok(Some(Linkage::StaticPie)));
        pie[0x10] = ET_EXEC as u8;
        assert_eq!(Elf::parse(&pie).unwrap().linkage(), Ok(Some(Linkage::Static)));
        pie[0x10] = ET_REL as u8;
        assert_eq!(Elf::parse(&pie).unwrap().linkage(), Ok(None));
        let wrap = load(0, 0, u64::MAX, 0, 1);
        assert_eq!(Elf::parse(&file(0x400, &[wrap])).unwrap().load_end(), None);
    }

    #[test]
    fn notes_walk() {
        let mut d = [0u8; 64];
        // "GNU\0", desc 5 bytes (padded to 8); then a note whose desc runs past.
        d[0..12].copy_from_slice(&[4, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0]);
        d[12..16].copy_from_slice(b"GNU\0");
        d[16..21].copy_from_slice(&[1, 2, 3, 4, 5]);
        d[24..36].copy_from_slice(&[6, 0, 0, 0, 200, 0, 0, 0, 9, 0, 0, 0]);
        d[36..42].copy_from_slice(b"Solo5\0");
        let mut n = Notes::new(&d);
        let a = n.next().unwrap();
        assert_eq!((a.n_type, a.name, a.desc), (3, &b"GNU\0"[..], Some(&[1u8, 2, 3, 4, 5][..])));
        let b = n.next().unwrap();
        assert_eq!((b.n_type, b.name, b.descsz, b.desc, b.offset), (9, &b"Solo5\0"[..], 200, None, 24));
        assert_eq!(n.next(), None);
        // A name that runs past the data ends the walk at once.
        d[0] = 200;
        assert_eq!(Notes::new(&d).next(), None);
    }

    #[test]
    fn string_tables() {
        assert_eq!(string_at(b"\0ab\0c", 1), Some(&b"ab"[..]));
        assert_eq!(string_at(b"\0ab\0c", 4), None);
        assert_eq!(string_at(b"\0ab\0c", 99), None);
    }
}
