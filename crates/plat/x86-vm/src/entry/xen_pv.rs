//! Xen PV entry (x86_64 PV ABI): Xen loads the image's ELF, reads the Xen
//! notes below and jumps to `xen_pv_start` in 64-bit mode, ring 3, on its
//! own page tables, with `rsi` = `start_info`. From there to one
//! `BootInfo` and the kernel.
use crate::boot;
use crate::xen::mmu::{self, Mmu, PAGE};
use crate::xen::{ACTIVE, HAL, MMU, time, traps};
use core::arch::global_asm;
use core::sync::atomic::Ordering;
use drivers::xen::abi::{SIF_MOD_START_PFN, SharedInfo, StartInfo};
use drivers::xen::{console, evtchn};
use hal::{Args, BootInfo, Region};

// The Xen PV notes (xen/include/public/elfnote.h). The pseudo-physical
// layout is the identity (VIRT_BASE 0), like PVH. HYPERCALL_PAGE names the
// page Xen fills with its stubs (crate::xen::hypercall_page).
global_asm!(
    r#"
    .section .note.xen, "a", @note
    .p2align 2
    .long 4, 2f - 1f, 6             /* GUEST_OS */
    .asciz "Xen"
1:  .asciz "unikit"
2:  .p2align 2
    .long 4, 2f - 1f, 8             /* LOADER */
    .asciz "Xen"
1:  .asciz "generic"
2:  .p2align 2
    .long 4, 2f - 1f, 5             /* XEN_VERSION */
    .asciz "Xen"
1:  .asciz "xen-3.0"
2:  .p2align 2
    .long 4, 2f - 1f, 10            /* FEATURES */
    .asciz "Xen"
1:  .asciz "!writable_page_tables"
2:  .p2align 2
    .long 4, 8, 3                   /* VIRT_BASE */
    .asciz "Xen"
    .quad 0
    .long 4, 8, 4                   /* PADDR_OFFSET */
    .asciz "Xen"
    .quad 0
    .long 4, 8, 1                   /* ENTRY */
    .asciz "Xen"
    .quad xen_pv_start
    .long 4, 8, 2                   /* HYPERCALL_PAGE */
    .asciz "Xen"
    .quad xen_hypercall_page
    .text
    "#,
    options(att_syntax)
);

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

/// Nothing works yet: say it on Xen's console (if it listens) and stop.
fn fail(what: core::fmt::Arguments) -> ! {
    unikit_kernel::console::print_to(&crate::xen::XEN, format_args!("unikit: fatal Xen PV boot error: {what}\n"));
    crate::xen::shutdown(unikit_kernel::exit::EXIT_PANIC)
}

extern "C" fn xen_pv_main(si: *const StartInfo) -> ! {
    ACTIVE.store(true, Ordering::Relaxed);
    crate::xen::hypercall_page::bind();
    // SAFETY: the PV ABI: rsi points at start_info, mapped, and it stays
    // reserved (never handed to the allocator).
    let si: &'static StartInfo = unsafe { &*si };
    if !si.magic.starts_with(b"xen-3.0-x86_64") {
        fail(format_args!("start_info magic is not xen-3.0-x86_64"));
    }
    let shared = crate::xen::shared_info_page();
    if let Err(e) = mmu::update_va_mapping(shared, si.shared_info | mmu::RAM) {
        fail(format_args!("mapping shared info: {e:?}"));
    }
    // SAFETY: mapped just above, for the domain's life.
    unsafe { evtchn::init(shared as *mut SharedInfo) };
    time::init(boot::boot_tsc());

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
    let (img_lo, stack) = (boot::kernel_image().0, boot::boot_stack());
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
    if let Some(store) = mmu.pfn(si.store_mfn) {
        crate::xen::devices::STORE.call_once(|| (store * PAGE, si.store_evtchn));
    }
    drivers::xen::set_frame_translation(crate::xen::frame_of_pv);
    if let Err(e) = time::bind_timer() {
        fail(format_args!("binding the timer VIRQ: {e:?}"));
    }
    let mut initrd = None;
    if si.mod_start != 0 && si.mod_len != 0 {
        let start = if si.flags & SIF_MOD_START_PFN != 0 { si.mod_start * PAGE } else { si.mod_start };
        match start.checked_add(si.mod_len) {
            Some(end) if start >= img_lo && end <= next_free * PAGE => {
                // SAFETY: inside the reserved boot region, mapped, never written.
                initrd = Some(unsafe { core::slice::from_raw_parts(start as *const u8, si.mod_len as usize) });
            }
            _ => fail(format_args!("boot module [{start:#x}, +{:#x}) is outside the boot region", si.mod_len)),
        }
    }
    let len = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(si.cmd_line.len());
    let cmdline = core::str::from_utf8(&si.cmd_line[..len])
        .unwrap_or_else(|_| fail(format_args!("the command line is not UTF-8")));
    // SAFETY: all pseudo-physical memory is now identity mapped; the
    // reserved range holds the image and every boot structure.
    unsafe {
        unikit_kernel::boot::enter(
            HAL,
            BootInfo {
                args: Args::Kernel(cmdline),
                memory: &ram,
                reserved: &reserved,
                reclaimable: &[],
                initrd,
                boot_stack: Region::new(stack.0, stack.1),
                hypervisor: "Xen (PV)",
                boot_timestamp: boot::boot_tsc(),
            },
        )
    }
}

/// After the kernel's memory exists: the boot stack's guard page, then
/// events on.
pub(crate) fn bring_up() {
    if let Some(mmu) = MMU.get() {
        let _ = mmu.set_present(boot::boot_stack().0 - PAGE, false);
    }
    evtchn::restore_upcalls(true);
}
