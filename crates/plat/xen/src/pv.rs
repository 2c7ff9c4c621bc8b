//! Xen PV entry and boot: from `start_info` to the kernel core.
use crate::mmu::{self, Mmu, PAGE};
use crate::{ACTIVE, MMU, XEN_DYN, time, traps};
use core::arch::global_asm;
use core::sync::atomic::Ordering;
use drivers::xen::abi::{SIF_MOD_START_PFN, SharedInfo, StartInfo};
use drivers::xen::{console, evtchn, hypercall};
use unikit_kernel::boot::{Args, BootInfo};
use unikit_kernel::mem::Region;

// Entry: 64-bit, ring 3, paging on (Xen's tables map the image and the
// boot structures at their pseudo-physical addresses), rsi = start_info.
// Same prologue as PVH: TSC first (boot time zero), then the image's boot
// stack (which has a guard page below it).
global_asm!(
    ".section .text.xen_pv_start, \"ax\"",
    ".global xen_pv_start",
    "xen_pv_start:",
    "rdtsc",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [rip + unikit_boot_tsc], rax",
    "cld",
    "lea rsp, [rip + unikit_boot_stack_top]",
    "mov rdi, rsi",
    "xor ebp, ebp",
    "call {main}",
    "ud2",
    ".text",
    main = sym xen_pv_main,
);

unsafe extern "C" {
    static unikit_boot_stack_bottom: u8;
    static unikit_boot_stack_top: u8;
    static __kernel_start: u8;
}

/// Nothing works yet: say it on Xen's console (if it listens) and stop.
fn fail(what: core::fmt::Arguments) -> ! {
    let _ = core::fmt::write(&mut EmergencyWriter, format_args!("unikit: fatal Xen PV boot error: {what}\n"));
    crate::shutdown(unikit_kernel::exit::EXIT_PANIC)
}

struct EmergencyWriter;
impl core::fmt::Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if !console::write(s.as_bytes()) {
            hypercall::console_io_write(s.as_bytes());
        }
        Ok(())
    }
}

extern "C" fn xen_pv_main(si: *const StartInfo) -> ! {
    ACTIVE.store(true, Ordering::Relaxed);
    unikit_kernel::platform::set_platform(&XEN_DYN);
    // SAFETY: the PV ABI: rsi points at start_info, mapped, and it stays
    // reserved (never handed to the allocator).
    let si: &'static StartInfo = unsafe { &*si };
    if !si.magic.starts_with(b"xen-3.0-x86_64") {
        fail(format_args!("start_info magic is not xen-3.0-x86_64"));
    }
    let shared = crate::shared_info_page();
    if let Err(e) = mmu::update_va_mapping(shared, si.shared_info | mmu::RAM) {
        fail(format_args!("mapping shared info: {e:?}"));
    }
    // SAFETY: mapped just above, for the domain's life.
    unsafe { evtchn::init(shared as *mut SharedInfo) };
    time::init(crate::boot_tsc());

    // SAFETY: start_info's p2m list and top-level table, as the PV ABI says.
    let mmu = MMU.call_once(|| unsafe { Mmu::new(si.mfn_list as *const u64, si.nr_pages, si.pt_base) });
    let Some(con) = mmu.pfn(si.console_mfn) else {
        fail(format_args!("console frame {:#x} is not ours", si.console_mfn))
    };
    // SAFETY: the console page is in the boot region Xen mapped for us.
    if let Some(ring) = unsafe { drivers::io::DmaRegion::from_raw((con * PAGE) as *mut u8, PAGE as usize) } {
        console::init(ring, si.console_evtchn);
    }
    if let Err(e) = traps::init() {
        fail(format_args!("{e:?}"));
    }

    // Everything from the image to the boot stack after the page tables
    // stays reserved; new page tables come from the pages after it.
    let (img_lo, stack) = (
        &raw const __kernel_start as u64,
        (&raw const unikit_boot_stack_bottom as u64, &raw const unikit_boot_stack_top as u64),
    );
    let boot_end =
        [si.pt_base + si.nr_pt_frames * PAGE + PAGE, si as *const _ as u64 + PAGE, si.mfn_list + si.nr_pages * 8]
            .into_iter()
            .max()
            .unwrap_or(0);
    let mut next_free = boot_end.div_ceil(PAGE);
    if let Err(e) = mmu.map_all(&mut next_free) {
        fail(format_args!("mapping memory: {e:?}"));
    }
    let _ = mmu.set_present(0, false); // null pointers fault
    let ram = [Region::new(PAGE, si.nr_pages * PAGE)];
    let reserved = [Region::new(img_lo, next_free * PAGE)];
    // SAFETY: all pseudo-physical memory is now identity mapped; the
    // reserved range holds the image and every boot structure.
    if let Err(e) = unsafe { unikit_kernel::mem::init(&ram, &reserved) } {
        fail(format_args!("memory init: {e:?}"));
    }
    let _ = mmu.set_present(stack.0 - PAGE, false);
    if let Some(store) = mmu.pfn(si.store_mfn) {
        crate::devices::STORE.call_once(|| (store * PAGE, si.store_evtchn));
    }
    drivers::xen::set_frame_translation(crate::frame_of_pv);
    if let Err(e) = time::bind_timer() {
        fail(format_args!("binding the timer VIRQ: {e:?}"));
    }
    if si.mod_start != 0 && si.mod_len != 0 {
        let start = if si.flags & SIF_MOD_START_PFN != 0 { si.mod_start * PAGE } else { si.mod_start };
        match start.checked_add(si.mod_len) {
            Some(end) if start >= img_lo && end <= next_free * PAGE => {
                // SAFETY: inside the reserved boot region, mapped, never written.
                unikit_kernel::boot::set_initrd(unsafe {
                    core::slice::from_raw_parts(start as *const u8, si.mod_len as usize)
                });
            }
            _ => fail(format_args!("boot module [{start:#x}, +{:#x}) is outside the boot region", si.mod_len)),
        }
    }
    let len = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(si.cmd_line.len());
    let cmdline = core::str::from_utf8(&si.cmd_line[..len])
        .unwrap_or_else(|_| fail(format_args!("the command line is not UTF-8")));
    evtchn::restore_upcalls(true);
    unikit_kernel::boot::start(BootInfo { args: Args::Kernel(cmdline), hypervisor: "Xen (PV)", boot_stack: stack })
}
