//! GPT disks (UEFI 2.10, chapter 5) with a protective MBR whose boot code
//! is the BIOS loader's: one disk that both firmware kinds boot.
use anyhow::{Result, bail};

pub const SECTOR: u64 = 512;
/// Partitions start on 1 MiB boundaries (what every tool and Azure expect).
pub const ALIGN: u64 = (1 << 20) / SECTOR;
/// The partition entry array: 128 entries of 128 bytes (32 sectors).
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
const ENTRY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;

/// A partition type GUID, as the specification writes it.
pub const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
pub const EFI_SYSTEM: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";

/// GUID text to its on-disk bytes: the first three fields little-endian.
pub fn guid(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("a GUID constant");
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

pub struct Partition<'a> {
    pub type_guid: [u8; 16],
    pub unique_guid: [u8; 16],
    pub name: &'a str,
    /// The contents; the partition is this long, rounded up to [`ALIGN`].
    pub data: &'a [u8],
}

/// Where each partition landed (first LBA, sectors).
pub struct Layout {
    pub parts: Vec<(u64, u64)>,
    pub total_sectors: u64,
}

/// Lays partitions out on 1 MiB boundaries from LBA 2048; the disk ends
/// 1 MiB after the last one (room for the backup table, and a size that
/// is a whole number of MiB).
pub fn layout(sizes: &[u64]) -> Layout {
    let mut lba = ALIGN;
    let mut parts = Vec::new();
    for &bytes in sizes {
        let sectors = bytes.div_ceil(SECTOR).max(1).next_multiple_of(ALIGN);
        parts.push((lba, sectors));
        lba += sectors;
    }
    Layout { parts, total_sectors: lba + ALIGN }
}

/// The whole disk: protective MBR (with `boot_code` in its first 440
/// bytes), primary and backup GPT, the partitions' contents.
pub fn write(boot_code: &[u8; 440], disk_guid: [u8; 16], parts: &[Partition]) -> Result<Vec<u8>> {
    if parts.len() as u64 > ENTRIES {
        bail!("a GPT disk holds at most {ENTRIES} partitions");
    }
    let sizes: Vec<u64> = parts.iter().map(|p| p.data.len() as u64).collect();
    let lay = layout(&sizes);
    let total = lay.total_sectors;
    let mut disk = vec![0u8; (total * SECTOR) as usize];

    // Protective MBR: one 0xEE partition over the whole disk (capped at
    // what 32 bits can say), so MBR-only tools leave it alone.
    disk[..440].copy_from_slice(boot_code);
    let e = &mut disk[446..462];
    e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]); // CHS of LBA 1
    e[4] = 0xee;
    e[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    e[8..12].copy_from_slice(&1u32.to_le_bytes());
    e[12..16].copy_from_slice(&u32::try_from(total - 1).unwrap_or(u32::MAX).to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xaa;

    let mut entries = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
    for (i, (p, &(first, sectors))) in parts.iter().zip(&lay.parts).enumerate() {
        let e = &mut entries[i * ENTRY_SIZE as usize..][..ENTRY_SIZE as usize];
        e[0..16].copy_from_slice(&p.type_guid);
        e[16..32].copy_from_slice(&p.unique_guid);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&(first + sectors - 1).to_le_bytes());
        for (j, u) in p.name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
        let at = (first * SECTOR) as usize;
        disk[at..at + p.data.len()].copy_from_slice(p.data);
    }
    let entries_crc = crc32fast::hash(&entries);
    let last = total - 1;
    let backup_entries = last - ENTRY_SECTORS;
    for (me, other, entries_lba) in [(1, last, 2), (last, 1, backup_entries)] {
        let mut h = [0u8; 92];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&me.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + ENTRY_SECTORS).to_le_bytes());
        h[48..56].copy_from_slice(&(backup_entries - 1).to_le_bytes());
        h[56..72].copy_from_slice(&disk_guid);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        let at = (me * SECTOR) as usize;
        disk[at..at + 92].copy_from_slice(&h);
        let at = (entries_lba * SECTOR) as usize;
        disk[at..at + entries.len()].copy_from_slice(&entries);
    }
    Ok(disk)
}

/// The disk GUID of a GPT disk image, as the guest's `unikit.bootdisk=`
/// option names it (the 16 on-disk bytes in hex).
pub fn guid_hex(g: &[u8; 16]) -> String {
    g.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what a UEFI firmware checks: signature, both header
    /// CRCs, the entry array CRC, usable range, and each partition.
    fn check(disk: &[u8]) -> Vec<(u64, u64, [u8; 16])> {
        let total = disk.len() as u64 / SECTOR;
        let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let mut found = Vec::new();
        for lba in [1, total - 1] {
            let h = &disk[(lba * SECTOR) as usize..][..92];
            assert_eq!(&h[..8], b"EFI PART");
            let mut z = h.to_vec();
            z[16..20].fill(0);
            assert_eq!(crc32fast::hash(&z), u32_at(h, 16), "header CRC at LBA {lba}");
            assert_eq!(u64_at(h, 24), lba);
            let entries = &disk[(u64_at(h, 72) * SECTOR) as usize..][..128 * 128];
            assert_eq!(crc32fast::hash(entries), u32_at(h, 88));
            assert!(u64_at(h, 48) < total - 33 && u64_at(h, 40) == 34);
            found = entries
                .chunks(128)
                .filter(|e| e[..16] != [0; 16])
                .map(|e| (u64_at(e, 32), u64_at(e, 40), e[..16].try_into().unwrap()))
                .collect();
        }
        assert_eq!(&disk[510..512], &[0x55, 0xaa]);
        assert_eq!(disk[446 + 4], 0xee);
        found
    }

    #[test]
    fn two_partitions_on_mib_boundaries() {
        let a = vec![1u8; 5000];
        let b = vec![2u8; 3 << 20];
        let parts = [
            Partition { type_guid: guid(BIOS_BOOT), unique_guid: [1; 16], name: "bios", data: &a },
            Partition { type_guid: guid(EFI_SYSTEM), unique_guid: [2; 16], name: "EFI system", data: &b },
        ];
        let disk = write(&[0x90; 440], [7; 16], &parts).unwrap();
        assert_eq!(disk.len() % (1 << 20), 0);
        let found = check(&disk);
        assert_eq!(found[0].0, 2048);
        assert_eq!(found[1].0, 4096);
        assert_eq!(found[1].1, 4096 + 6144 - 1);
        assert_eq!(found[1].2, guid(EFI_SYSTEM));
        assert_eq!(disk[4096 * 512], 2);
        assert_eq!(disk[2048 * 512 + 4999], 1);
        assert_eq!(&disk[..4], &[0x90; 4]);
    }

    #[test]
    fn guid_bytes_are_mixed_endian() {
        assert_eq!(
            guid(EFI_SYSTEM),
            [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b]
        );
        assert_eq!(guid_hex(&[0xab; 16]).len(), 32);
    }
}
