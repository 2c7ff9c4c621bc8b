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
