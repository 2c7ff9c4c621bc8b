//! The BIOS boot path of a disk image (issue 14): our own MBR boot sector
//! and stage 2 (crates/boot/bios) plus a load table, all computed here on
//! the host. [`boot_area`] is a pure function; the caller writes
//! [`BootArea::mbr_code`] into bytes 0..440 of LBA 0 and [`BootArea::area`]
//! at `area_lba` (a BIOS boot partition), in 512-byte sectors.
//!
//! The area holds, each part starting on a sector:
//!   1. stage 2 (loaded by stage 1 to 0x8000);
//!   2. the load table, one sector, read by stage 2 from the sector after
//!      stage 2 (layout below);
//!   3. the data of every table entry: the kernel's PT_LOAD segments, the
//!      NUL-terminated command line, the initrd.
//!
//! Load table (little-endian):
//!   0 u32 magic "UKBL"; 4 u32 version 1; 8 u32 number of entries;
//!   12 u32 PVH entry (XEN_ELFNOTE_PHYS32_ENTRY); 16 u32 command line
//!   address (0: none); 20 u32 initrd address; 24 u32 initrd size (0:
//!   none); 28 u32 0; then from 32, 24-byte entries: u64 absolute LBA,
//!   u32 physical address, u32 file size, u32 memory size (zeroed past the
//!   file size), u32 0.
//!
//! Memory: the segments at their physical addresses (1 MiB .. 1 GiB), the
//! command line on the page after the kernel's end, the initrd on the page
//! after that. Stage 2 builds hvm_start_info below 0x7c00.

use anyhow::{Context, Result, bail, ensure};

use crate::elf::{Elf, PT_LOAD};
use unikit_abi::elf::ET_EXEC;

/// Sector size of the disk.
pub const SECTOR: usize = 512;
/// The bytes of LBA 0 the boot code may use (then the disk signature and
/// the partition table).
pub const MBR_CODE: usize = 440;

/// Where the boot sector and stage 2 run (the loader's link addresses).
const STAGE1_ADDR: u64 = 0x7c00;
const STAGE2_ADDR: u64 = 0x8000;
/// Stage 2 must end below stage 2's bounce buffer at 0x10000 (and stage 1
/// reads it in one 64-sector call).
const STAGE2_MAX: u64 = 0x8000;
/// Boot sector fields (stage1.S): a magic, then what stage 1 patches in.
const STAGE1_MAGIC_AT: usize = 0x1aa;
const STAGE1_MAGIC: &[u8; 4] = b"UKB1";
const STAGE1_SECTORS_AT: usize = 0x1ae;
const STAGE1_LBA_AT: usize = 0x1b0;

/// Load table (stage2.S).
const TABLE_MAGIC: u32 = u32::from_le_bytes(*b"UKBL");
const TABLE_VERSION: u32 = 1;
const TABLE_HEADER: usize = 32;
const ENTRY_SIZE: usize = 24;
/// As many entries as fit in the table's one sector.
pub const MAX_ENTRIES: usize = (SECTOR - TABLE_HEADER) / ENTRY_SIZE;

/// Everything stage 2 loads lies in [1 MiB, 1 GiB): below 1 MiB is the
/// loader's, and the kernel reads its boot data through its first 1 GiB.
const LOAD_MIN: u64 = 1 << 20;
const LOAD_MAX: u64 = 1 << 30;
const PAGE: u64 = 4096;

/// Xen's ELF note type for the 32-bit PVH entry point, in a "Xen" note.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The BIOS boot code of a disk: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootArea {
    /// Bytes 0..440 of LBA 0.
    pub mbr_code: [u8; MBR_CODE],
    /// Written at `area_lba`; a whole number of sectors.
    pub area: Vec<u8>,
}

/// One thing stage 2 loads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Load<'a> {
    paddr: u64,
    data: &'a [u8],
    mem_size: u64,
}

/// The boot sector and stage 2 from the loader ELF
/// (target/x86_64-unknown-none/release/unikit-boot-bios).
fn loader_parts(loader_elf: &[u8]) -> Result<([u8; MBR_CODE], Vec<u8>)> {
    let elf = Elf::parse(loader_elf).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut stage1, mut stage2) = (None, None);
    for (i, ph) in elf.program_headers().enumerate().filter(|(_, p)| p.p_type == PT_LOAD) {
        let data = elf.segment_data(i, &ph).map_err(|e| anyhow::anyhow!("{e}"))?;
        match ph.paddr {
            STAGE1_ADDR => stage1 = Some((data, ph.memsz)),
            STAGE2_ADDR => stage2 = Some((data, ph.memsz)),
            a => bail!("unexpected segment at {a:#x}"),
        }
    }
    let (s1, s1_mem) = stage1.context("no boot sector segment at 0x7c00")?;
    let (s2, s2_mem) = stage2.context("no stage 2 segment at 0x8000")?;
    ensure!(s1.len() as u64 == s1_mem && s1.len() <= MBR_CODE, "the boot sector is not {MBR_CODE} bytes or less");
    ensure!(
        s1.get(STAGE1_MAGIC_AT..STAGE1_MAGIC_AT + 4) == Some(STAGE1_MAGIC),
        "the boot sector lacks its UKB1 field block"
    );
    ensure!(s2_mem >= s2.len() as u64 && s2_mem <= STAGE2_MAX, "stage 2 is larger than {STAGE2_MAX} bytes");
    let mut mbr = [0u8; MBR_CODE];
    mbr[..s1.len()].copy_from_slice(s1);
    let mut stage2 = s2.to_vec();
    stage2.resize(s2_mem as usize, 0);
    Ok((mbr, stage2))
}

/// The kernel's PVH entry point and loaded segments, checked.
fn kernel_loads(kernel_elf: &[u8]) -> Result<(u32, Vec<Load<'_>>)> {
    let elf = Elf::parse(kernel_elf).map_err(|e| anyhow::anyhow!("not an ELF64 x86-64 file: {e}"))?;
    // Loaded at its physical addresses without relocation.
    ensure!(
        elf.e_type() == ET_EXEC,
        "not an executable ELF file (e_type {}): a kernel is linked at fixed addresses",
        elf.e_type()
    );
    let mut entry = None;
    for n in elf.segment_notes() {
        let (_, n) = n.map_err(|e| anyhow::anyhow!("{e}"))?;
        if n.n_type == XEN_ELFNOTE_PHYS32_ENTRY && n.name == b"Xen\0" {
            let d = n.desc.context("the PVH entry note is cut short")?;
            let v = match *d {
                [a, b, c, d] => u32::from_le_bytes([a, b, c, d]) as u64,
                [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
                _ => bail!("the PVH entry note has {} bytes, not 4 or 8", d.len()),
            };
            entry = Some(v);
        }
    }
    let entry = entry.context("no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): not a unikit x86 VM image")?;
    let mut loads: Vec<Load> = Vec::new();
    for (i, ph) in elf.program_headers().enumerate().filter(|(_, p)| p.p_type == PT_LOAD && p.memsz != 0) {
        let data = elf.segment_data(i, &ph).map_err(|e| anyhow::anyhow!("{e}"))?;
        ensure!(ph.filesz <= ph.memsz, "segment {i}: file size {:#x} > memory size {:#x}", ph.filesz, ph.memsz);
        let end = ph.paddr.checked_add(ph.memsz).context("a segment's address range overflows")?;
        ensure!(
            ph.paddr >= LOAD_MIN && end <= LOAD_MAX,
            "segment {i} at {:#x}..{end:#x} is not inside 1 MiB..1 GiB",
            ph.paddr
        );
        if let Some(o) = loads.iter().find(|l| l.paddr < end && ph.paddr < l.paddr + l.mem_size) {
            bail!("segment {i} at {:#x} overlaps the one at {:#x}", ph.paddr, o.paddr);
        }
        loads.push(Load { paddr: ph.paddr, data, mem_size: ph.memsz });
    }
    ensure!(!loads.is_empty(), "the kernel has no loadable segment");
    ensure!(
        loads.iter().any(|l| (l.paddr..l.paddr + l.data.len() as u64).contains(&entry)),
        "the PVH entry {entry:#x} is not inside a loaded segment"
    );
    Ok((entry as u32, loads))
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

fn sectors(bytes: usize) -> usize {
    bytes.div_ceil(SECTOR)
}

/// Build the boot sector and the boot area: see the module documentation.
pub fn boot_area(
    loader_elf: &[u8],
    kernel_elf: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
    area_lba: u64,
) -> Result<BootArea> {
    let (mut mbr, stage2) = loader_parts(loader_elf).context("the BIOS loader")?;
    let (entry, mut loads) = kernel_loads(kernel_elf).context("the kernel image")?;
    ensure!(!cmdline.contains('\0'), "the command line contains a NUL byte");

    // The command line and initrd go on the pages after the kernel.
    let kernel_end = loads.iter().map(|l| l.paddr + l.mem_size).max().unwrap_or(LOAD_MIN);
    let mut cmd = cmdline.as_bytes().to_vec();
    cmd.push(0);
    let cmd_at = align_up(kernel_end, PAGE);
    let mut next = align_up(cmd_at + cmd.len() as u64, PAGE);
    let (initrd_at, initrd_len) = match initrd {
        Some(rd) if !rd.is_empty() => {
            let at = next;
            next = at.checked_add(rd.len() as u64).context("the initrd is too large")?;
            (at, rd.len() as u64)
        }
        _ => (0, 0),
    };
    ensure!(
        next <= LOAD_MAX,
        "the kernel, command line and initrd need memory up to {next:#x}, above the 1 GiB the loader can use"
    );
    loads.push(Load { paddr: cmd_at, data: &cmd, mem_size: cmd.len() as u64 });
    if let Some(rd) = initrd.filter(|_| initrd_len != 0) {
        loads.push(Load { paddr: initrd_at, data: rd, mem_size: initrd_len });
    }
    ensure!(loads.len() <= MAX_ENTRIES, "{} things to load; the BIOS loader's table holds {MAX_ENTRIES}", loads.len());

    // Layout of the area, in sectors.
    let stage2_sectors = sectors(stage2.len());
    let table_lba = stage2_sectors;
    let mut data_lba = table_lba + 1;
    let mut table = vec![0u8; SECTOR];
    let mut put = |at: usize, v: u32| table[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put(0, TABLE_MAGIC);
    put(4, TABLE_VERSION);
    put(8, loads.len() as u32);
    put(12, entry);
    put(16, cmd_at as u32);
    put(20, initrd_at as u32);
    put(24, initrd_len as u32);
    let mut placed = Vec::with_capacity(loads.len());
    for (i, l) in loads.iter().enumerate() {
        let e = TABLE_HEADER + i * ENTRY_SIZE;
        let lba = area_lba.checked_add(data_lba as u64).context("the boot area's LBA overflows")?;
        table[e..e + 8].copy_from_slice(&lba.to_le_bytes());
        // Addresses and sizes are below 1 GiB (checked above).
        table[e + 8..e + 12].copy_from_slice(&(l.paddr as u32).to_le_bytes());
        table[e + 12..e + 16].copy_from_slice(&(l.data.len() as u32).to_le_bytes());
        table[e + 16..e + 20].copy_from_slice(&(l.mem_size as u32).to_le_bytes());
        placed.push(data_lba);
        data_lba += sectors(l.data.len());
    }

    let mut area = vec![0u8; data_lba * SECTOR];
    area[..stage2.len()].copy_from_slice(&stage2);
    area[table_lba * SECTOR..(table_lba + 1) * SECTOR].copy_from_slice(&table);
    for (l, s) in loads.iter().zip(placed) {
        area[s * SECTOR..s * SECTOR + l.data.len()].copy_from_slice(l.data);
    }

    let n = u16::try_from(stage2_sectors).context("stage 2 is too large")?;
    mbr[STAGE1_SECTORS_AT..STAGE1_SECTORS_AT + 2].copy_from_slice(&n.to_le_bytes());
    mbr[STAGE1_LBA_AT..STAGE1_LBA_AT + 8].copy_from_slice(&area_lba.to_le_bytes());
    Ok(BootArea { mbr_code: mbr, area })
}

#[cfg(test)]
mod tests {
    use super::*;
    use unikit_abi::elf::PT_NOTE;

    /// An ELF64 x86-64 file with `segs` (type, paddr, data, memsz) laid
    /// out one after another after the program headers.
    fn elf(segs: &[(u32, u64, &[u8], u64)]) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56 * segs.len()];
        e[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
        e[0x10..0x12].copy_from_slice(&2u16.to_le_bytes());
        e[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
        e[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
        e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        e[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
        e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        e[0x38..0x3a].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, &(ty, paddr, data, memsz)) in segs.iter().enumerate() {
            let off = e.len() as u64;
            let ph = 64 + 56 * i;
            e[ph..ph + 4].copy_from_slice(&ty.to_le_bytes());
            e[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
            e[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes());
            e[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
            e[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            e[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
            e.extend_from_slice(data);
        }
        e
    }

    fn pvh_note(entry: u32) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
        n.extend_from_slice(b"Xen\0");
        n.extend_from_slice(&entry.to_le_bytes());
        n
    }

    fn loader() -> Vec<u8> {
        let mut s1 = vec![0xf4u8; 0x1b8];
        s1[STAGE1_MAGIC_AT..STAGE1_MAGIC_AT + 4].copy_from_slice(STAGE1_MAGIC);
        s1[STAGE1_SECTORS_AT..STAGE1_SECTORS_AT + 10].fill(0);
        let s2 = vec![0x90u8; 700];
        elf(&[(PT_LOAD, 0x7c00, &s1, 0x1b8), (PT_LOAD, 0x8000, &s2, 800)])
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn le64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn writes_the_table_and_data() {
        let text = vec![0xaau8; 1000];
        let data = vec![0xbbu8; 600];
        let note = pvh_note(0x100010);
        let kernel = elf(&[
            (PT_LOAD, 0x100000, &text, 1000),
            (PT_NOTE, 0, &note, note.len() as u64),
            (PT_LOAD, 0x101000, &data, 0x3000),
        ]);
        let rd = vec![0xccu8; 70000];
        let b = boot_area(&loader(), &kernel, Some(&rd), "hello world", 34).unwrap();

        // Stage 1: fields patched, code kept, the rest zero.
        assert_eq!(b.mbr_code[0], 0xf4);
        assert_eq!(u16::from_le_bytes([b.mbr_code[0x1ae], b.mbr_code[0x1af]]), 2);
        assert_eq!(le64(&b.mbr_code, 0x1b0), 34);
        assert_eq!(&b.mbr_code[0x1b8..], &[0; 0]);

        // Stage 2 padded to its memory size, then to a sector.
        assert_eq!(b.area[..700], vec![0x90; 700][..]);
        assert_eq!(b.area[700..1024], vec![0; 324][..]);

        // The table, in sector 2 of the area.
        let t = &b.area[1024..1536];
        assert_eq!(&t[..4], b"UKBL");
        assert_eq!(le32(t, 4), 1);
        assert_eq!(le32(t, 8), 4);
        assert_eq!(le32(t, 12), 0x100010);
        // The kernel ends at 0x104000: command line there, initrd a page on.
        assert_eq!(le32(t, 16), 0x104000);
        assert_eq!(le32(t, 20), 0x105000);
        assert_eq!(le32(t, 24), 70000);
        let want = [
            (34 + 3, 0x100000, 1000, 1000),
            (34 + 5, 0x101000, 600, 0x3000),
            (34 + 7, 0x104000, 12, 12),
            (34 + 8, 0x105000, 70000, 70000),
        ];
        for (i, &(lba, at, file, mem)) in want.iter().enumerate() {
            let e = 32 + 24 * i;
            assert_eq!((le64(t, e), le32(t, e + 8), le32(t, e + 12), le32(t, e + 16)), (lba, at, file, mem), "{i}");
        }
        assert!(t[32 + 24 * 4..].iter().all(|&x| x == 0));

        // The data at those sectors.
        let at = |lba: u64| (lba - 34) as usize * SECTOR;
        assert_eq!(b.area[at(37)..at(37) + 1000], text[..]);
        assert_eq!(b.area[at(39)..at(39) + 600], data[..]);
        assert_eq!(&b.area[at(41)..at(41) + 12], b"hello world\0");
        assert_eq!(b.area[at(42)..at(42) + 70000], rd[..]);
        assert_eq!(b.area.len(), at(42) + 70000usize.div_ceil(512) * 512);
    }

    #[test]
    fn no_initrd_no_module() {
        let note = pvh_note(0x100000);
        let kernel = elf(&[(PT_LOAD, 0x100000, &[1, 2, 3], 3), (PT_NOTE, 0, &note, 16)]);
        let b = boot_area(&loader(), &kernel, Some(&[]), "", 1).unwrap();
        let t = &b.area[1024..1536];
        assert_eq!(le32(t, 8), 2);
        assert_eq!(le32(t, 16), 0x101000);
        assert_eq!((le32(t, 20), le32(t, 24)), (0, 0));
        assert_eq!(b.area.len(), 5 * SECTOR);
    }

    fn err(loader: &[u8], kernel: &[u8], initrd: Option<&[u8]>, cmdline: &str) -> String {
        match boot_area(loader, kernel, initrd, cmdline, 1) {
            Ok(_) => panic!("accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn refuses_bad_kernels() {
        let note = pvh_note(0x100000);
        let ok = [1u8; 16];
        let e = err(&loader(), b"MZ", None, "");
        assert!(e.contains("not an ELF64 x86-64 file"), "{e}");
        let mut arm = elf(&[(PT_LOAD, 0x100000, &ok, 16), (PT_NOTE, 0, &note, 16)]);
        arm[0x12] = 183;
        assert!(err(&loader(), &arm, None, "").contains("not an ELF64 x86-64"));
        let mut pie = elf(&[(PT_LOAD, 0x100000, &ok, 16), (PT_NOTE, 0, &note, 16)]);
        pie[0x10] = 3;
        assert!(err(&loader(), &pie, None, "").contains("not an executable ELF file (e_type 3)"));
        let e = err(&loader(), &elf(&[(PT_LOAD, 0x100000, &ok, 16)]), None, "");
        assert!(e.contains("no PVH entry note"), "{e}");
        let low = elf(&[(PT_LOAD, 0x8000, &ok, 16), (PT_NOTE, 0, &pvh_note(0x8000), 16)]);
        assert!(err(&loader(), &low, None, "").contains("not inside 1 MiB..1 GiB"));
        let high = elf(&[(PT_LOAD, 0x3fff_f000, &ok, 0x2000), (PT_NOTE, 0, &pvh_note(0x3fff_f000), 16)]);
        assert!(err(&loader(), &high, None, "").contains("not inside 1 MiB..1 GiB"));
        let overlap = elf(&[(PT_LOAD, 0x100000, &ok, 0x2000), (PT_LOAD, 0x101000, &ok, 16), (PT_NOTE, 0, &note, 16)]);
        assert!(err(&loader(), &overlap, None, "").contains("overlaps"));
        let outside = elf(&[(PT_LOAD, 0x100000, &ok, 16), (PT_NOTE, 0, &pvh_note(0x200000), 16)]);
        assert!(err(&loader(), &outside, None, "").contains("not inside a loaded segment"));
        let short = elf(&[(PT_LOAD, 0x100000, &ok, 8), (PT_NOTE, 0, &note, 16)]);
        assert!(err(&loader(), &short, None, "").contains("file size"));
        let mut cut = elf(&[(PT_LOAD, 0x100000, &ok, 16), (PT_NOTE, 0, &note, 16)]);
        cut.truncate(cut.len() - 20);
        assert!(err(&loader(), &cut, None, "").contains("the kernel image"));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let note = pvh_note(0x100000);
        let ok = [1u8; 16];
        let kernel = elf(&[(PT_LOAD, 0x100000, &ok, 16), (PT_NOTE, 0, &note, 16)]);
        assert!(err(&loader(), &kernel, None, "a\0b").contains("NUL"));
        // An initrd reaching past 1 GiB (a large memory size stands in for
        // a large file: the segment ends just below 1 GiB).
        let big = elf(&[(PT_LOAD, 0x100000, &ok, 0x3fef_f000), (PT_NOTE, 0, &note, 16)]);
        let e = err(&loader(), &big, Some(&[0u8; 0x2000]), "");
        assert!(e.contains("above the 1 GiB"), "{e}");
        let segs: Vec<(u32, u64, &[u8], u64)> = (0..MAX_ENTRIES as u64)
            .map(|i| (PT_LOAD, 0x100000 + i * 0x1000, &ok[..], 16))
            .chain([(PT_NOTE, 0, &note[..], 16)])
            .collect();
        let e = err(&loader(), &elf(&segs), None, "");
        assert!(e.contains("table holds"), "{e}");
    }

    #[test]
    fn refuses_bad_loaders() {
        let note = pvh_note(0x100000);
        let kernel = elf(&[(PT_LOAD, 0x100000, &[1u8; 16], 16), (PT_NOTE, 0, &note, 16)]);
        let s2 = [0u8; 16];
        let e = err(&elf(&[(PT_LOAD, 0x8000, &s2, 16)]), &kernel, None, "");
        assert!(e.contains("no boot sector"), "{e}");
        let s1 = [0u8; 0x1b8];
        let e = err(&elf(&[(PT_LOAD, 0x7c00, &s1, 0x1b8), (PT_LOAD, 0x8000, &s2, 16)]), &kernel, None, "");
        assert!(e.contains("UKB1"), "{e}");
        let big = [0u8; 500];
        let e = err(&elf(&[(PT_LOAD, 0x7c00, &big, 500), (PT_LOAD, 0x8000, &s2, 16)]), &kernel, None, "");
        assert!(e.contains("440 bytes"), "{e}");
        let mut s1 = [0u8; 0x1b8];
        s1[STAGE1_MAGIC_AT..STAGE1_MAGIC_AT + 4].copy_from_slice(STAGE1_MAGIC);
        let e = err(&elf(&[(PT_LOAD, 0x7c00, &s1, 0x1b8), (PT_LOAD, 0x8000, &s2, 0x9000)]), &kernel, None, "");
        assert!(e.contains("stage 2 is larger"), "{e}");
    }

    /// Manual boot check (not run by default): writes a raw disk, the MBR
    /// with a protective 0xee entry (as on a GPT disk) and the area at
    /// UNIKIT_BIOS_AREA_LBA (default 1), for
    /// `qemu-system-x86_64 -M pc -accel tcg -serial stdio -drive file=IMG,format=raw`.
    /// UNIKIT_BIOS_LOADER, UNIKIT_BIOS_KERNEL, UNIKIT_BIOS_IMAGE, and
    /// optionally UNIKIT_BIOS_INITRD and UNIKIT_BIOS_CMDLINE.
    #[test]
    #[ignore]
    fn write_raw_image() {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
        let loader = std::fs::read(var("UNIKIT_BIOS_LOADER")).unwrap();
        let kernel = std::fs::read(var("UNIKIT_BIOS_KERNEL")).unwrap();
        let initrd = std::env::var("UNIKIT_BIOS_INITRD").ok().map(|p| std::fs::read(p).unwrap());
        let cmdline = std::env::var("UNIKIT_BIOS_CMDLINE").unwrap_or_default();
        let lba: u64 = std::env::var("UNIKIT_BIOS_AREA_LBA").map_or(1, |v| v.parse().unwrap());
        let b = boot_area(&loader, &kernel, initrd.as_deref(), &cmdline, lba).unwrap();
        let mut img = vec![0u8; lba as usize * SECTOR];
        img[..MBR_CODE].copy_from_slice(&b.mbr_code);
        let e = 446;
        img[e + 4] = 0xee;
        img[e + 8..e + 12].copy_from_slice(&1u32.to_le_bytes());
        img[e + 12..e + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        img[510] = 0x55;
        img[511] = 0xaa;
        img.extend_from_slice(&b.area);
        img.resize(img.len().div_ceil(1 << 20) * (1 << 20), 0);
        std::fs::write(var("UNIKIT_BIOS_IMAGE"), img).unwrap();
    }
}
