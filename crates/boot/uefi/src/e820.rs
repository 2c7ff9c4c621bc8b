//! The final UEFI memory map as the E820 table PVH's `hvm_start_info`
//! carries (`struct hvm_memmap_table_entry`, 24 bytes each).

use unikit_abi::pvh::{
    MEMMAP_TYPE_ACPI, MEMMAP_TYPE_NVS, MEMMAP_TYPE_RAM, MEMMAP_TYPE_RESERVED, MEMMAP_TYPE_UNUSABLE, MemmapEntry,
};

/// E820 type of a UEFI memory type (UEFI spec, EFI_MEMORY_TYPE; numbers, so
/// that this stays pure). Once boot services have exited, loader and boot
/// services memory is free for the OS; runtime services, MMIO and the rest
/// stay the firmware's.
pub fn kind_of(uefi_type: u32) -> u32 {
    match uefi_type {
        // LoaderCode, LoaderData, BootServicesCode, BootServicesData, Conventional
        1..=4 | 7 => MEMMAP_TYPE_RAM,
        8 => MEMMAP_TYPE_UNUSABLE,
        9 => MEMMAP_TYPE_ACPI,
        10 => MEMMAP_TYPE_NVS,
        _ => MEMMAP_TYPE_RESERVED,
    }
}

/// Writes entries into `buf`, merging a range into the previous one when
/// it has the same type and starts where that one ends.
pub struct Table<'a> {
    buf: &'a mut [u8],
    written: usize,
    pending: Option<MemmapEntry>,
}

/// The table's room ran out.
#[derive(Debug)]
pub struct Full;

impl<'a> Table<'a> {
    pub fn new(buf: &'a mut [u8]) -> Table<'a> {
        Table { buf, written: 0, pending: None }
    }

    /// Adds a range; ranges must come in address order.
    pub fn push(&mut self, addr: u64, size: u64, kind: u32) -> Result<(), Full> {
        if size == 0 {
            return Ok(());
        }
        if let Some(p) = self.pending.as_mut()
            && p.kind == kind
            && p.end() == Some(addr)
        {
            p.size += size;
            return Ok(());
        }
        self.flush()?;
        self.pending = Some(MemmapEntry { addr, size, kind, reserved: 0 });
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Full> {
        let Some(e) = self.pending.take() else { return Ok(()) };
        let at = self.written * MemmapEntry::SIZE;
        let slot = self.buf.get_mut(at..at + MemmapEntry::SIZE).ok_or(Full)?;
        slot[0..8].copy_from_slice(&e.addr.to_le_bytes());
        slot[8..16].copy_from_slice(&e.size.to_le_bytes());
        slot[16..20].copy_from_slice(&e.kind.to_le_bytes());
        slot[20..24].copy_from_slice(&0u32.to_le_bytes());
        self.written += 1;
        Ok(())
    }

    /// Writes the last entry; returns the number of entries.
    pub fn finish(mut self) -> Result<usize, Full> {
        self.flush()?;
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(buf: &[u8], n: usize) -> [(u64, u64, u32); 4] {
        let mut out = [(0, 0, 0); 4];
        for (i, o) in out.iter_mut().enumerate().take(n) {
            let e = MemmapEntry::from_bytes(&buf[i * MemmapEntry::SIZE..]).unwrap();
            *o = (e.addr, e.size, e.kind);
        }
        out
    }

    #[test]
    fn maps_uefi_types_to_e820() {
        let want = [2, 1, 1, 1, 1, 2, 2, 1, 5, 3, 4, 2, 2, 2, 2, 2];
        for (ty, &kind) in want.iter().enumerate() {
            assert_eq!(kind_of(ty as u32), kind, "UEFI type {ty}");
        }
        assert_eq!(kind_of(0x8000_0000), MEMMAP_TYPE_RESERVED, "OEM types stay reserved");
    }

    #[test]
    fn merges_adjacent_ranges_of_one_type() {
        let mut buf = [0u8; 4 * MemmapEntry::SIZE];
        let mut t = Table::new(&mut buf);
        t.push(0, 0x1000, 1).unwrap();
        t.push(0x1000, 0x9f000, 1).unwrap(); // adjacent, same type: merged
        t.push(0xa0000, 0, 2).unwrap(); // empty: dropped
        t.push(0x10_0000, 0x1000, 1).unwrap(); // gap: new entry
        t.push(0x10_1000, 0x1000, 3).unwrap(); // other type: new entry
        t.push(0x10_2000, 0x1000, 1).unwrap();
        assert_eq!(t.finish().unwrap(), 4);
        assert_eq!(
            entries(&buf, 4),
            [(0, 0xa0000, 1), (0x10_0000, 0x1000, 1), (0x10_1000, 0x1000, 3), (0x10_2000, 0x1000, 1)]
        );
    }

    #[test]
    fn says_when_the_room_runs_out() {
        let mut buf = [0u8; MemmapEntry::SIZE];
        let mut t = Table::new(&mut buf);
        t.push(0, 0x1000, 1).unwrap();
        t.push(0x2000, 0x1000, 1).unwrap();
        assert!(t.finish().is_err());
        let mut t = Table::new(&mut buf);
        t.push(0, 0x1000, 1).unwrap();
        assert_eq!(t.finish().unwrap(), 1);
    }
}
