//! The PVH `hvm_start_info` structure (xen/include/public/arch-x86/hvm/start_info.h;
//! the `repr(C)` structs are `unikit_abi::pvh`'s).
//! Everything read from it is checked: the hypervisor wrote it, not us.
use unikit_abi::pvh::{MEMMAP_TYPE_RAM as E820_RAM, MemmapEntry, ModlistEntry, START_MAGIC as MAGIC, StartInfo};
use unikit_kernel::mem::Region;

pub const MAX_REGIONS: usize = 64;

pub struct BootParams {
    pub cmdline: &'static str,
    pub ram: [Region; MAX_REGIONS],
    pub nr_ram: usize,
    /// Memory holding the start info, memory map and command line.
    pub boot_data: [Region; 3],
    /// The first boot module (QEMU `-initrd`): the initial RAM disk.
    pub initrd: Option<Region>,
    /// Where the loader found the ACPI RSDP (0: not given).
    pub rsdp: u64,
}

#[derive(Debug)]
pub enum Error {
    BadMagic(#[allow(dead_code)] u32),
    NoMemoryMap,
}

/// Longest command line we accept; longer ones are cut (and said so).
const MAX_CMDLINE: usize = 4096;

/// # Safety
/// `paddr` must be what the PVH entry received in `ebx`, in mapped memory.
pub unsafe fn parse(paddr: u64) -> Result<BootParams, Error> {
    // SAFETY: the PVH contract puts a start_info at `paddr`.
    let si = unsafe { &*(paddr as *const StartInfo) };
    if si.magic != MAGIC {
        return Err(Error::BadMagic(si.magic));
    }
    if si.version < 1 || si.memmap_paddr == 0 || si.memmap_entries == 0 {
        return Err(Error::NoMemoryMap);
    }
    let n = (si.memmap_entries as usize).min(1024);
    let map_bytes = (n * core::mem::size_of::<MemmapEntry>()) as u64;
    // SAFETY: the hypervisor describes `n` entries at memmap_paddr (bounded above).
    let map = unsafe { core::slice::from_raw_parts(si.memmap_paddr as *const MemmapEntry, n) };
    let mut ram = [Region::new(0, 0); MAX_REGIONS];
    let mut nr_ram = 0;
    for e in map.iter().filter(|e| e.kind == E820_RAM && e.size > 0) {
        if nr_ram == MAX_REGIONS {
            break;
        }
        let Some(end) = e.addr.checked_add(e.size) else { continue };
        ram[nr_ram] = Region::new(e.addr, end);
        nr_ram += 1;
    }
    let (cmdline, cmd_len) = if si.cmdline_paddr != 0 {
        let base = si.cmdline_paddr as *const u8;
        // SAFETY: a NUL-terminated string at cmdline_paddr; we read byte by
        // byte and never past the NUL or MAX_CMDLINE.
        let len = (0..MAX_CMDLINE).find(|&i| unsafe { base.add(i).read_volatile() } == 0).unwrap_or(MAX_CMDLINE);
        // SAFETY: the `len` bytes before the NUL were just read.
        let bytes = unsafe { core::slice::from_raw_parts(base, len) };
        let s = match core::str::from_utf8(&bytes[..len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        };
        (s, len as u64 + 1)
    } else {
        ("", 0)
    };
    let initrd = if si.nr_modules > 0 && si.modlist_paddr != 0 {
        // SAFETY: the hypervisor describes nr_modules (>= 1) entries there.
        let m = unsafe { (si.modlist_paddr as *const ModlistEntry).read() };
        m.paddr.checked_add(m.size).filter(|_| m.size > 0).map(|end| Region::new(m.paddr, end))
    } else {
        None
    };
    Ok(BootParams {
        initrd,
        rsdp: si.rsdp_paddr,
        cmdline,
        ram,
        nr_ram,
        boot_data: [
            Region::new(paddr, paddr + core::mem::size_of::<StartInfo>() as u64),
            Region::new(si.memmap_paddr, si.memmap_paddr + map_bytes),
            Region::new(si.cmdline_paddr, si.cmdline_paddr + cmd_len),
        ],
    })
}
