//! unikit's UEFI loader (`\EFI\BOOT\BOOTX64.EFI` on the image's EFI system
//! partition). It starts the same x86 VM kernel ELF that QEMU and
//! Firecracker boot, the same way they do: at its PVH entry, in 32-bit
//! protected mode with a `hvm_start_info` in `ebx`.
//!
//! From its own volume it reads `\unikit\kernel`, `\unikit\cmdline` (optional)
//! and `\unikit\initrd` (optional); places the kernel at its physical
//! addresses; puts the start info, module list, command line, initrd and
//! memory map below 1 GiB; finds the ACPI RSDP; exits boot services and
//! jumps. Every failure prints one `unikit-boot: ...` line on the screen and
//! COM1 and powers off: it never hangs.
#![no_std]
#![no_main]

mod console;
mod trampoline;

use uefi::boot::{self, AllocateType, MemoryType};
use uefi::mem::memory_map::{MemoryMap, MemoryMapMut};
use uefi::proto::media::file::{Directory, File, FileAttribute, FileMode, RegularFile};
use uefi::table::cfg::ConfigTableEntry;
use uefi::{CStr16, Status, cstr16, entry};
use unikit_abi::pvh::{MemmapEntry, ModlistEntry, START_MAGIC, StartInfo};

use console::die;
use unikit_boot_uefi::e820;
use unikit_boot_uefi::kernel::{self, Kernel, LIMIT};

const PAGE: u64 = 4096;
/// Below 1 GiB (the kernel's identity map; `kernel::LIMIT`).
const LOW: AllocateType = AllocateType::MaxAddress(LIMIT - 1);

#[entry]
fn main() -> Status {
    let (kernel, kernel_buf, cmdline, initrd) = load_files();
    let rsdp = find_rsdp();

    // The start info, module list, an empty command line in case there is
    // none, and room for the E820 table. The final memory map can only
    // differ from today's by a few entries (exiting allocates its own
    // buffer); 64 more is ample, and running out is still reported.
    let entries = boot::memory_map(MemoryType::LOADER_DATA)
        .unwrap_or_else(|e| die!("cannot read the memory map: {:?}", e.status()))
        .len()
        + 64;
    const MODLIST: usize = 64;
    const EMPTY_CMDLINE: usize = MODLIST + ModlistEntry::SIZE;
    const MEMMAP: usize = EMPTY_CMDLINE + 8;
    let info = alloc(LOW, MemoryType::LOADER_DATA, MEMMAP + entries * MemmapEntry::SIZE, "the boot information");
    let info_addr = info.as_ptr() as u64;
    // LoaderCode: firmware that maps data pages no-execute still runs this.
    let tramp = alloc(LOW, MemoryType::LOADER_CODE, PAGE as usize, "the trampoline page");
    let tramp_addr = tramp.as_ptr() as u64;

    let cmdline_addr = cmdline.map_or(info_addr + EMPTY_CMDLINE as u64, |c| c.as_ptr() as u64);
    let modules = match initrd {
        Some(i) => {
            // The one module: the initrd, without a command line of its own.
            put_u64(info, MODLIST, i.as_ptr() as u64);
            put_u64(info, MODLIST + 8, i.len() as u64);
            1
        }
        None => 0,
    };
    trampoline::prepare(tramp, tramp_addr, kernel_buf, kernel.segments(), kernel.entry, info_addr);

    // SAFETY: every protocol (the file system) was closed in load_files and
    // nothing holds pool memory; from here on only runtime services and our
    // own (LoaderData) pages are used.
    let mut map = unsafe { boot::exit_boot_services(None) };
    console::boot_services_exited();
    // No firmware interrupt handler may run from here on (the kernel's
    // range may hold them, and the kernel expects IF clear).
    trampoline::disable_interrupts();

    map.sort();
    let mut table = e820::Table::new(&mut info[MEMMAP..]);
    for d in map.entries() {
        let Some(size) = d.page_count.checked_mul(PAGE) else { die!("memory map entry too large") };
        if table.push(d.phys_start, size, e820::kind_of(d.ty.0)).is_err() {
            die!("more than {entries} memory map entries");
        }
    }
    let Ok(count) = table.finish() else { die!("more than {entries} memory map entries") };

    let si = StartInfo {
        magic: START_MAGIC,
        version: 1,
        flags: 0,
        nr_modules: modules,
        modlist_paddr: if modules > 0 { info_addr + MODLIST as u64 } else { 0 },
        cmdline_paddr: cmdline_addr,
        rsdp_paddr: rsdp,
        memmap_paddr: info_addr + MEMMAP as u64,
        memmap_entries: count as u32,
        reserved: 0,
    };
    put_u32(info, 0, si.magic);
    put_u32(info, 4, si.version);
    put_u32(info, 8, si.flags);
    put_u32(info, 12, si.nr_modules);
    put_u64(info, 16, si.modlist_paddr);
    put_u64(info, 24, si.cmdline_paddr);
    put_u64(info, 32, si.rsdp_paddr);
    put_u64(info, 40, si.memmap_paddr);
    put_u32(info, 48, si.memmap_entries);
    put_u32(info, 52, si.reserved);

    // SAFETY: the page was prepared above; the segment table's sources are
    // our kernel buffer, its destinations the range `claim` made ours (or
    // boot-services memory, free now).
    unsafe { trampoline::jump(tramp_addr) }
}

/// Reads the three files and claims the kernel's range. Returns the
/// checked kernel, the address of its file image (below 1 GiB), the
/// NUL-terminated command line and the initrd.
fn load_files() -> (Kernel, u64, Option<&'static mut [u8]>, Option<&'static mut [u8]>) {
    let mut fs = boot::get_image_file_system(boot::image_handle())
        .unwrap_or_else(|e| die!("cannot open the volume this loader was started from: {:?}", e.status()));
    let mut root = fs.open_volume().unwrap_or_else(|e| die!("cannot open the volume's root: {:?}", e.status()));

    // Read the kernel anywhere first: its range is only known once it is
    // parsed, and no buffer of ours may land in it.
    let name = "\\unikit\\kernel";
    let file = read(&mut root, cstr16!("\\unikit\\kernel"), name, AllocateType::AnyPages)
        .unwrap_or_else(|| die!("{name} not found on the EFI system partition"));
    let len = file.len() - 1;
    let kernel = kernel::check(&file[..len]).unwrap_or_else(|e| die!("{name}: {e}"));
    claim(&kernel);
    // The trampoline copies from this copy, in 32-bit mode: below 1 GiB.
    let low = alloc(LOW, MemoryType::LOADER_DATA, len, name);
    low.copy_from_slice(&file[..len]);
    let kernel_buf = low.as_ptr() as u64;
    free(file);

    let cmdline = read(&mut root, cstr16!("\\unikit\\cmdline"), "\\unikit\\cmdline", LOW).map(|c| {
        // `unikit build` ends the file with a newline; the kernel wants the line.
        let mut n = c.len() - 1;
        while n > 0 && matches!(c[n - 1], b'\n' | b'\r') {
            n -= 1;
        }
        c[n] = 0;
        if core::str::from_utf8(&c[..n]).is_err() || c[..n].contains(&0) {
            die!("\\unikit\\cmdline is not a UTF-8 line");
        }
        &mut c[..=n]
    });
    let initrd = read(&mut root, cstr16!("\\unikit\\initrd"), "\\unikit\\initrd", LOW)
        .map(|i| {
            let n = i.len() - 1;
            &mut i[..n]
        })
        .filter(|i| !i.is_empty());
    (kernel, kernel_buf, cmdline, initrd)
}

/// Reads a whole file into pages allocated as `at` says, with one zero
/// byte after it. `None` if the file does not exist.
fn read(root: &mut Directory, path: &CStr16, name: &str, at: AllocateType) -> Option<&'static mut [u8]> {
    let handle = match root.open(path, FileMode::Read, FileAttribute::empty()) {
        Ok(h) => h,
        Err(e) if e.status() == Status::NOT_FOUND => return None,
        Err(e) => die!("{name}: cannot open: {:?}", e.status()),
    };
    let mut f = handle.into_regular_file().unwrap_or_else(|| die!("{name} is a directory"));
    let size = f
        .set_position(RegularFile::END_OF_FILE)
        .and_then(|()| f.get_position())
        .and_then(|n| f.set_position(0).map(|()| n))
        .unwrap_or_else(|e| die!("{name}: cannot find its size: {:?}", e.status()));
    if size >= LIMIT {
        die!("{name} is {size} bytes: too large to load below 1 GiB");
    }
    let len = size as usize;
    let buf = alloc(at, MemoryType::LOADER_DATA, len + 1, name);
    let mut done = 0;
    while done < len {
        match f.read(&mut buf[done..len]) {
            Ok(0) => die!("{name}: the file ended after {done} of {len} bytes"),
            Ok(n) => done += n,
            Err(e) => die!("{name}: read error: {:?}", e.status()),
        }
    }
    Some(buf)
}

/// `len` zeroed bytes in whole pages of type `ty` (LoaderData or
/// LoaderCode: E820 RAM once the kernel runs; it reserves what it keeps).
fn alloc(at: AllocateType, ty: MemoryType, len: usize, what: &str) -> &'static mut [u8] {
    let pages = len.div_ceil(PAGE as usize).max(1);
    let p = boot::allocate_pages(at, ty, pages)
        .unwrap_or_else(|e| die!("no memory for {what} ({len} bytes): {:?}", e.status()));
    // SAFETY: the firmware just gave us these pages (identity-mapped);
    // zeroing them first makes them initialised bytes. Never freed while
    // the slice lives, except by `free`, which takes the slice.
    unsafe {
        p.as_ptr().write_bytes(0, len);
        core::slice::from_raw_parts_mut(p.as_ptr(), len)
    }
}

fn free(buf: &'static mut [u8]) {
    let pages = buf.len().div_ceil(PAGE as usize).max(1);
    let p = core::ptr::NonNull::from(buf).cast::<u8>();
    // SAFETY: `buf` came whole from `alloc` and is given up here.
    let _ = unsafe { boot::free_pages(p, pages) };
}

/// Makes the kernel's physical range ours before anything else is
/// allocated below 1 GiB. Free (Conventional) pages are allocated at their
/// address. Boot-services pages cannot be (the firmware uses them now),
/// but they are free once boot services exit, and the trampoline copies
/// the kernel only then. Anything else (runtime services, ACPI, MMIO,
/// reserved, a hole, or another loaded image) stays in use after the exit:
/// that is a kernel this machine cannot boot, and we say so.
fn claim(k: &Kernel) {
    let map = boot::memory_map(MemoryType::LOADER_DATA)
        .unwrap_or_else(|e| die!("cannot read the memory map: {:?}", e.status()));
    let (ranges, n) = k.page_ranges();
    for &(start, end) in &ranges[..n] {
        let mut covered = 0;
        for d in map.entries() {
            let d_end = d.phys_start.saturating_add(d.page_count.saturating_mul(PAGE));
            let (s, e) = (start.max(d.phys_start), end.min(d_end));
            if s >= e {
                continue;
            }
            covered += e - s;
            match d.ty {
                MemoryType::CONVENTIONAL => {
                    if let Err(err) = boot::allocate_pages(
                        AllocateType::Address(s),
                        MemoryType::LOADER_DATA,
                        ((e - s) / PAGE) as usize,
                    ) {
                        die!("cannot reserve the kernel's memory {s:#x}..{e:#x}: {:?}", err.status());
                    }
                }
                MemoryType::BOOT_SERVICES_CODE | MemoryType::BOOT_SERVICES_DATA => {}
                MemoryType::LOADER_CODE | MemoryType::LOADER_DATA => die!(
                    "the kernel's memory {start:#x}..{end:#x} overlaps {s:#x}..{e:#x}, where the firmware loaded this loader or its buffers"
                ),
                ty => die!(
                    "the kernel's memory {start:#x}..{end:#x} overlaps {s:#x}..{e:#x}, which the firmware keeps ({ty:?})"
                ),
            }
        }
        if covered != end - start {
            die!("the kernel's memory {start:#x}..{end:#x} is not all RAM in the firmware's memory map");
        }
    }
}

/// The ACPI RSDP: the ACPI 2.0 table if the firmware has one, else 1.0; 0 if none.
fn find_rsdp() -> u64 {
    uefi::system::with_config_table(|t| {
        let find = |g| t.iter().find(|e| e.guid == g).map(|e| e.address as u64);
        find(ConfigTableEntry::ACPI2_GUID).or_else(|| find(ConfigTableEntry::ACPI_GUID)).unwrap_or(0)
    })
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::fail(format_args!("internal error: {}", info.message()))
}
