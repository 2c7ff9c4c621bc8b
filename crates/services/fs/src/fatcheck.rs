//! The checks made at mount before the FAT engine sees a volume. The engine
//! trusts cluster numbers: a FAT cell or a directory entry naming cluster
//! 0 or 1 (reserved) or one past the volume made it compute a sector with
//! an overflowing subtraction, which panics in a debug build and, in a
//! release build, wraps to some other sector of the disk, which a write
//! then destroys. A directory whose clusters loop made every lookup in it
//! walk 65,536 entries; chains that share clusters let a write to one file
//! change another, or turn a directory into a loop. So, once here, as
//! fsck.fat does: every FAT cell names a cluster of the volume (or none),
//! every chain that a directory entry starts is followed to its end, and
//! no cluster is in two chains or twice in one. The file system only
//! writes sound chains afterwards, and its write ordering keeps them sound
//! across crashes.
use crate::block::Disk;
use crate::error::{Error, ErrorKind, Result};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

/// Largest FAT read whole for the check (4M FAT32 clusters).
const MAX_FAT_BYTES: u64 = 16 << 20;
/// Most entries one directory may hold (FAT specification).
const MAX_DIR_ENTRIES: usize = 65_536;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Fat12,
    Fat16,
    Fat32,
}

fn corrupt(why: alloc::string::String) -> Error {
    Error::with_detail(ErrorKind::InvalidData, format!("corrupted FAT file system: {why} (fsck.fat can repair it)"))
}

struct Volume<'a> {
    disk: &'a Disk,
    kind: Kind,
    fat: Vec<u8>,
    /// Highest valid cluster number.
    max: u32,
    data_start: u64,
    cluster_bytes: u64,
}

impl Volume<'_> {
    /// FAT cell `n`, raw (FAT32's top four bits masked off).
    fn cell(&self, n: u32) -> u32 {
        let n = n as usize;
        let at = |o: usize| self.fat.get(o).copied().unwrap_or(0) as u32;
        match self.kind {
            Kind::Fat12 => {
                let o = n + n / 2;
                let v = at(o) | at(o + 1) << 8;
                if n.is_multiple_of(2) { v & 0xfff } else { v >> 4 }
            }
            Kind::Fat16 => at(2 * n) | at(2 * n + 1) << 8,
            Kind::Fat32 => (at(4 * n) | at(4 * n + 1) << 8 | at(4 * n + 2) << 16 | at(4 * n + 3) << 24) & 0x0fff_ffff,
        }
    }

    /// The next cluster after `n`, or None at the end of its chain.
    fn next(&self, n: u32) -> Result<Option<u32>> {
        let v = self.cell(n);
        let (bad, eoc) = match self.kind {
            Kind::Fat12 => (0xff7, 0xff8),
            Kind::Fat16 => (0xfff7, 0xfff8),
            Kind::Fat32 => (0x0fff_fff7, 0x0fff_fff8),
        };
        if v >= eoc {
            return Ok(None);
        }
        if v == 0 || v == bad {
            return Err(corrupt(format!("cluster {n}'s chain runs into a free or bad cluster")));
        }
        Ok(Some(v))
    }

    fn valid(&self, c: u32) -> bool {
        (2..=self.max).contains(&c)
    }
}

/// Checks the volume described by `boot` on `disk` (see the module notes).
pub fn check(disk: &Disk, boot: &[u8; 512], kind: Kind) -> Result<()> {
    let u16_at = |o: usize| u16::from_le_bytes([boot[o], boot[o + 1]]) as u64;
    let u32_at = |o: usize| u32::from_le_bytes([boot[o], boot[o + 1], boot[o + 2], boot[o + 3]]) as u64;
    let bps = u16_at(0x0b);
    let spc = boot[0x0d] as u64;
    let reserved = u16_at(0x0e);
    let fats = boot[0x10] as u64;
    let root_entries = u16_at(0x11);
    let total = if u16_at(0x13) != 0 { u16_at(0x13) } else { u32_at(0x20) };
    let per_fat = if kind == Kind::Fat32 { u32_at(0x24) } else { u16_at(0x16) };
    if bps == 0 || spc == 0 || fats == 0 || per_fat == 0 {
        return Err(corrupt("zero in the boot sector's geometry".into()));
    }
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let data_sector = reserved + fats * per_fat + root_sectors;
    if data_sector >= total {
        return Err(corrupt("no data area".into()));
    }
    let clusters = (total - data_sector) / spc;
    let fat_bytes = per_fat * bps;
    if fat_bytes > MAX_FAT_BYTES {
        return Ok(()); // too large to hold for the check; trust it
    }
    let mut fat = vec![0u8; fat_bytes as usize];
    disk.read_at(reserved * bps, &mut fat)?;
    let max = u32::try_from(clusters + 1).map_err(|_| corrupt("too many clusters".into()))?;
    let v = Volume { disk, kind, fat, max, data_start: data_sector * bps, cluster_bytes: spc * bps };
    // Only the cells the FAT has room for can name a cluster.
    let cells = match kind {
        Kind::Fat12 => fat_bytes * 2 / 3,
        Kind::Fat16 => fat_bytes / 2,
        Kind::Fat32 => fat_bytes / 4,
    };
    if (max as u64) >= cells {
        return Err(corrupt(format!("{clusters} clusters but a FAT of {cells} cells")));
    }
    for n in 2..=max {
        // A free or bad cell is fine here; only a link must stay inside.
        if let Ok(Some(next)) = v.next(n)
            && !v.valid(next)
        {
            return Err(corrupt(format!("cluster {n} links to cluster {next}, outside the volume")));
        }
    }
    // The directory tree, each directory cluster once.
    let mut seen = vec![0u64; (max as usize + 64) / 64];
    let mut todo: Vec<Option<u32>> = vec![None]; // None: the root
    if kind == Kind::Fat32 {
        let root = u32_at(0x2c) as u32;
        if !v.valid(root) {
            return Err(corrupt(format!("root directory at cluster {root}, outside the volume")));
        }
        todo[0] = Some(root);
    }
    while let Some(dir) = todo.pop() {
        let bytes = read_dir(&v, dir, reserved + fats * per_fat, root_entries, bps, &mut seen)?;
        for e in bytes.chunks_exact(32).take(MAX_DIR_ENTRIES) {
            match e[0] {
                0 => break,
                0xe5 => continue,
                _ => {}
            }
            let attr = e[11];
            // Exactly "." and "..": any other name that starts with a dot
            // is an entry like the rest (a hostile ".A" pointing at its
            // parent made a recursive walk overflow the stack).
            let dot = &e[..11] == b".          " || &e[..11] == b"..         ";
            if attr & 0x3f == 0x0f || attr & 0x08 != 0 {
                continue; // a long-name part, or the volume label
            }
            let hi = if kind == Kind::Fat32 { u16::from_le_bytes([e[20], e[21]]) as u32 } else { 0 };
            let c = hi << 16 | u16::from_le_bytes([e[26], e[27]]) as u32;
            if c == 0 {
                // An empty file, or ".." of a top-level directory. A
                // directory with no cluster would be read as the root:
                // a directory inside itself, which a recursive walk never
                // leaves.
                if attr & 0x10 != 0 && !dot {
                    let name = core::str::from_utf8(&e[..11]).unwrap_or("?");
                    return Err(corrupt(format!("directory {name:?} has no cluster")));
                }
                continue;
            }
            if !v.valid(c) {
                let name = core::str::from_utf8(&e[..11]).unwrap_or("?");
                return Err(corrupt(format!("entry {name:?} starts at cluster {c}, outside the volume")));
            }
            if dot {
                continue; // the directory itself and its parent
            }
            if attr & 0x10 != 0 {
                if todo.len() >= 4096 {
                    return Err(corrupt("more than 4096 directories pending".into()));
                }
                todo.push(Some(c));
            } else {
                walk(&v, c, &mut seen)?;
            }
        }
    }
    Ok(())
}

/// Marks the clusters of the chain starting at `c`; a cluster marked
/// before means a loop or a cross-link.
fn mark(c: u32, seen: &mut [u64]) -> Result<()> {
    let (w, b) = (c as usize / 64, 1u64 << (c % 64));
    if seen[w] & b != 0 {
        return Err(corrupt(format!("cluster {c} is in two chains, or twice in one")));
    }
    seen[w] |= b;
    Ok(())
}

fn walk(v: &Volume<'_>, mut c: u32, seen: &mut [u64]) -> Result<()> {
    loop {
        mark(c, seen)?;
        match v.next(c)? {
            Some(n) => c = n,
            None => return Ok(()),
        }
    }
}

/// A directory's bytes: the FAT12/16 root's fixed sectors, or its cluster
/// chain (marked as [`walk`] does).
fn read_dir(
    v: &Volume<'_>,
    dir: Option<u32>,
    root_sector: u64,
    root_entries: u64,
    bps: u64,
    seen: &mut [u64],
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let Some(mut c) = dir else {
        out.resize((root_entries * 32) as usize, 0);
        v.disk.read_at(root_sector * bps, &mut out)?;
        return Ok(out);
    };
    loop {
        mark(c, seen)?;
        if out.len() >= MAX_DIR_ENTRIES * 32 {
            return Err(corrupt("a directory longer than FAT allows".into()));
        }
        let at = out.len();
        out.resize(at + v.cluster_bytes as usize, 0);
        v.disk.read_at(v.data_start + (c as u64 - 2) * v.cluster_bytes, &mut out[at..])?;
        match v.next(c)? {
            Some(n) => c = n,
            None => return Ok(out),
        }
    }
}
