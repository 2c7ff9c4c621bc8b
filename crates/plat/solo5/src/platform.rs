//! The hardware services ([`hal`]) and the Rust entry point.
use crate::{devices, entry, hvt, mft};
use arch::idt::TrapFrame;
use arch::paging::{AddressSpace, Flags, FrameSource, PAGE_SIZE};
use arch::tsc::Scale;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};
use hal::{Args, BootInfo, Hal, Region};
use spin::Once;

pub struct Solo5 {
    scale: Once<Scale>,
}

static SOLO5: Solo5 = Solo5 { scale: Once::new() };
static ADDRESS_SPACE: Once<u64> = Once::new();

static HAL: Hal = Hal {
    platform: &SOLO5,
    console: &SOLO5,
    clock: &SOLO5,
    irq: &SOLO5,
    shutdown: &SOLO5,
    memory: &SOLO5,
    cpu: &arch::fault::CPU,
    user: None,
};

/// Where the tender put the manifest (bring-up reads it).
static MFT: AtomicU64 = AtomicU64::new(0);

/// Page-table frames come from the kernel's frame allocator.
struct KernelFrames;

impl FrameSource for KernelFrames {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        unikit_kernel::mem::alloc_zeroed_frame()
    }
}

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

impl hal::Platform for Solo5 {
    fn name(&self) -> &'static str {
        "solo5"
    }

    /// Reads the manifest out of the tender's low memory, then builds the
    /// kernel's page tables (which unmap that memory).
    fn bring_up(&self, boot: &BootInfo) {
        let entries = mft::DEVICES.len() + 1;
        let addr = MFT.load(Ordering::Relaxed);
        let Some(m) = hvt::low_mem(addr, mft::size(entries) as u64) else {
            early_fail(format_args!("manifest at {addr:#x} is outside the tender's low memory"))
        };
        match mft::parse(m, mft::DEVICES) {
            Ok(devs) => devices::set_attached(devs),
            Err(e) => early_fail(format_args!("the tender's manifest: {e}")),
        }
        let (img_start, text_end, rodata_end, _) = entry::image();
        let mem_end = boot.memory.iter().map(|r| r.end).max().unwrap_or(0);
        build_page_tables(img_start, text_end, rodata_end, mem_end);
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

impl hal::Console for Solo5 {
    fn write(&self, bytes: &[u8]) {
        hvt::puts(bytes);
    }
}

impl hal::Clock for Solo5 {
    fn monotonic_ns(&self) -> u64 {
        self.scale().ticks_to_ns(arch::cpu::rdtsc().wrapping_sub(entry::boot_tsc()))
    }

    fn raw_timestamp(&self) -> u64 {
        arch::cpu::rdtsc()
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
}

// No interrupts exist on hvt: nothing to mask.
impl hal::IrqControl for Solo5 {
    fn save(&self) -> bool {
        false
    }

    fn restore(&self, _: bool) {}
}

impl hal::Shutdown for Solo5 {
    fn shutdown(&self, code: i32) -> ! {
        hvt::halt(code)
    }

    fn needs_exit_marker(&self) -> bool {
        false // the halt hypercall carries the code; the tender exits with it
    }
}

impl hal::Memory for Solo5 {
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
}

/// Early fatal error: say it through the tender and stop.
fn early_fail(args: core::fmt::Arguments) -> ! {
    unikit_kernel::console::print_to(&SOLO5, format_args!("unikit: fatal boot error: {args}\n"));
    hvt::halt(unikit_kernel::exit::EXIT_PANIC)
}

fn trap(frame: &mut TrapFrame) {
    if frame.vector < 32 {
        unikit_kernel::crash::exception(&frame.decode())
    }
    // Nothing raises other vectors on hvt (no interrupt controller).
}

/// Rust entry, called by the entry stub on the boot stack with `rdi` =
/// the tender's `struct hvt_boot_info`.
pub extern "C" fn solo5_main(boot_info: u64) -> ! {
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

    let (img_start, _, _, img_end) = entry::image();
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
    let Some(cmdline) = hvt::cmdline(bi.cmdline) else {
        early_fail(format_args!(
            "command line at {:#x} is not a NUL-terminated string in the tender's low memory",
            bi.cmdline
        ))
    };
    // Text, as the tender wrote it; a stray byte ends it (the heap to make
    // a lossy copy does not exist yet).
    let cmdline = match core::str::from_utf8(cmdline) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&cmdline[..e.valid_up_to()]).unwrap_or(""),
    };
    MFT.store(bi.mft, Ordering::Relaxed);
    // The last page stays unused: upstream solo5-hvt's guest-address check
    // refuses a hypercall buffer that ends exactly at the top of memory.
    let ram = [Region::new(hvt::HVT_GUEST_MIN_BASE, mem_end)];
    let reserved = [Region::new(img_start, kernel_end), Region::new(mem_end - PAGE_SIZE, mem_end)];
    let (lo, hi) = entry::boot_stack();
    // SAFETY: guest RAM from the boot info, identity mapped writable by the
    // tender above the image; the image (boot stack included) is reserved.
    // The command line and manifest live below HVT_GUEST_MIN_BASE, outside
    // the RAM handed over, and are read before bring-up unmaps them.
    unsafe {
        unikit_kernel::boot::enter(
            HAL,
            BootInfo {
                args: Args::Kernel(cmdline),
                memory: &ram,
                reserved: &reserved,
                reclaimable: &[],
                initrd: None,
                boot_stack: Region::new(lo, hi),
                hypervisor: "Solo5 hvt",
                boot_timestamp: entry::boot_tsc(),
            },
        )
    }
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
    hal::Memory::set_guard_page(&SOLO5, entry::boot_stack().0 - PAGE_SIZE, true);
}
