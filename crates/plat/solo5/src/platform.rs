//! The `Platform` implementation and the Rust entry point.
use crate::{devices, entry, hvt, mft};
use alloc::string::String;
use arch::idt::TrapFrame;
use arch::paging::{AddressSpace, Flags, PAGE_SIZE};
use arch::tsc::Scale;
use core::fmt::Write;
use spin::Once;
use unikit_kernel::boot::{Args, BootInfo};
use unikit_kernel::mem::{KernelFrames, Region};
use unikit_kernel::platform::{Platform, set_platform};

pub struct Solo5 {
    scale: Once<Scale>,
}

static SOLO5: Solo5 = Solo5 { scale: Once::new() };
static SOLO5_DYN: &dyn Platform = &SOLO5;
static ADDRESS_SPACE: Once<u64> = Once::new();

/// The longest single `poll`: a wait with no deadline (only network events
/// can end it) is re-issued this often. Keeps the value far from any
/// overflow in a tender's time arithmetic.
const MAX_POLL_NS: u64 = 3600 * 1_000_000_000;

impl Solo5 {
    fn scale(&self) -> Scale {
        // Set from the boot info before anything reads the clock; 1 GHz only
        // if something asks before that.
        *self.scale.call_once(|| Scale::from_hz(1_000_000_000))
    }
}

impl Platform for Solo5 {
    fn name(&self) -> &'static str {
        "solo5"
    }

    fn console_write(&self, bytes: &[u8]) {
        hvt::puts(bytes);
    }

    fn monotonic_ns(&self) -> u64 {
        self.scale().ticks_to_ns(self.raw_timestamp())
    }

    fn raw_timestamp(&self) -> u64 {
        arch::cpu::rdtsc().wrapping_sub(entry::boot_tsc())
    }

    fn raw_to_ns(&self, raw: u64) -> u64 {
        self.scale().ticks_to_ns(raw)
    }

    fn wall_clock_ns(&self) -> u64 {
        hvt::walltime_ns()
    }

    fn wait_for_event(&self, deadline_ns: Option<u64>) {
        let timeout = match deadline_ns {
            Some(d) => d.saturating_sub(self.monotonic_ns()).min(MAX_POLL_NS),
            None => MAX_POLL_NS,
        };
        devices::dispatch_ready(hvt::poll(timeout));
    }

    // No interrupts exist on hvt: nothing to mask.
    fn irq_save(&self) -> bool {
        false
    }

    fn irq_restore(&self, _: bool) {}

    fn shutdown(&self, code: i32) -> ! {
        hvt::halt(code)
    }

    fn needs_exit_marker(&self) -> bool {
        false // the halt hypercall carries the code; the tender exits with it
    }

    fn set_guard_page(&self, addr: u64, guard: bool) -> bool {
        if ADDRESS_SPACE.get().is_none() {
            return false;
        }
        // SAFETY: the page belongs to a stack being created or freed; nobody
        // uses it while it is a guard.
        unsafe { AddressSpace::current().set_page_present(addr, !guard, &mut KernelFrames) }.is_ok()
    }

    fn virt_to_phys(&self, vaddr: u64) -> Option<u64> {
        ADDRESS_SPACE.get()?;
        AddressSpace::current().translate(vaddr)
    }

    fn describe(&self, out: &mut dyn Write) -> core::fmt::Result {
        let hz = self.scale().hz;
        write!(
            out,
            ", TSC {}.{:02} GHz (from the tender), no interrupts (poll hypercall)",
            hz / 1_000_000_000,
            hz / 10_000_000 % 100
        )
    }
}

/// Early fatal error: there is no kernel yet to report it.
fn early_fail(args: core::fmt::Arguments) -> ! {
    let _ = writeln!(unikit_kernel::console::BootLogWriter, "unikit: fatal boot error: {args}");
    hvt::halt(unikit_kernel::exit::EXIT_PANIC)
}

fn trap(frame: &mut TrapFrame) {
    if frame.vector < 32 {
        unikit_kernel::exit::cpu_exception(frame)
    }
    // Nothing raises other vectors on hvt (no interrupt controller).
}

/// Rust entry, called by the entry stub on the boot stack with `rdi` =
/// the tender's `struct hvt_boot_info`.
pub extern "C" fn solo5_main(boot_info: u64) -> ! {
    set_platform(&SOLO5_DYN);
    // The tender's GDT (0x1000) is not mapped in the guest, so a segment
    // load through it would fault; load ours (and a TSS for the emergency
    // stack), then the IDT, so CPU exceptions are reported as on kvm.
    // SAFETY: boot CPU, interrupts off, before anything else uses the tables.
    unsafe {
        arch::gdt::init();
        arch::idt::init(trap);
    }
    let Some(bi) = hvt::read_boot_info(boot_info) else {
        early_fail(format_args!("boot info at {boot_info:#x} is outside the tender's low memory"))
    };
    if bi.cpu_cycle_freq == 0 {
        early_fail(format_args!("the tender gave no TSC frequency"));
    }
    SOLO5.scale.call_once(|| Scale::from_hz(bi.cpu_cycle_freq));

    let (img_start, text_end, rodata_end, img_end) = entry::image();
    // The tender's kernel_end is the end of the last PT_LOAD it loaded; our
    // own symbol also covers a .bss it might not count.
    let kernel_end = bi.kernel_end.max(img_end).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let mem_end = bi.mem_size / PAGE_SIZE * PAGE_SIZE;
    if bi.mem_size > hvt::MAX_MEM_SIZE || mem_end <= kernel_end + 16 * PAGE_SIZE {
        early_fail(format_args!(
            "guest memory size {:#x} does not fit the image (ends at {kernel_end:#x}) and a heap",
            bi.mem_size
        ));
    }
    // The last page stays unused: upstream solo5-hvt's guest-address check
    // refuses a hypercall buffer that ends exactly at the top of memory.
    let ram = [Region::new(hvt::HVT_GUEST_MIN_BASE, mem_end)];
    let reserved = [Region::new(img_start, kernel_end), Region::new(mem_end - PAGE_SIZE, mem_end)];
    // SAFETY: guest RAM from the boot info, identity mapped writable by the
    // tender above the image; the image itself is reserved.
    if let Err(e) = unsafe { unikit_kernel::mem::init(&ram, &reserved) } {
        early_fail(format_args!("memory init: {e:?}"));
    }

    // Copy what we need out of the tender's low memory, then unmap it.
    let Some(cmdline) = hvt::cmdline(bi.cmdline) else {
        early_fail(format_args!(
            "command line at {:#x} is not a NUL-terminated string in the tender's low memory",
            bi.cmdline
        ))
    };
    let cmdline: &'static str = String::from_utf8_lossy(cmdline).into_owned().leak();
    let entries = mft::DEVICES.len() + 1;
    let Some(m) = hvt::low_mem(bi.mft, mft::size(entries) as u64) else {
        early_fail(format_args!("manifest at {:#x} is outside the tender's low memory", bi.mft))
    };
    match mft::parse(m, mft::DEVICES) {
        Ok(devs) => devices::set_attached(devs),
        Err(e) => early_fail(format_args!("the tender's manifest: {e}")),
    }

    build_page_tables(img_start, text_end, rodata_end, mem_end);
    unikit_kernel::boot::start(BootInfo {
        args: Args::Kernel(cmdline),
        hypervisor: "Solo5 hvt",
        boot_stack: entry::boot_stack(),
    })
}

/// Builds the kernel's identity map: text read+execute, read-only data
/// read-only, data and RAM read+write (never executable); nothing below
/// the image (page 0, the tender's tables and low memory) is mapped. A
/// guard page goes under the boot stack.
fn build_page_tables(img: u64, text_end: u64, rodata_end: u64, mem_end: u64) {
    let mut frames = KernelFrames;
    fn fail<T>(e: arch::paging::MapError) -> T {
        early_fail(format_args!("building page tables: {e:?}"))
    }
    const TEXT: Flags = Flags { writable: false, executable: true, device: false };
    const RODATA: Flags = Flags { writable: false, executable: false, device: false };
    const DATA: Flags = Flags { writable: true, executable: false, device: false };
    let mut aspace = AddressSpace::new(&mut frames).unwrap_or_else(fail);
    for (start, end, flags) in [(img, text_end, TEXT), (text_end, rodata_end, RODATA), (rodata_end, mem_end, DATA)] {
        if end > start {
            // SAFETY: tables come from the frame allocator, identity mapped.
            unsafe { aspace.identity_map(start, end - start, flags, &mut frames) }.unwrap_or_else(fail);
        }
    }
    // SAFETY: everything the kernel uses (image, boot stack, frame bitmap,
    // heap) is mapped; the tender's low memory is no longer needed.
    unsafe { aspace.activate() };
    ADDRESS_SPACE.call_once(|| aspace.root());
    SOLO5.set_guard_page(entry::boot_stack().0 - PAGE_SIZE, true);
}
