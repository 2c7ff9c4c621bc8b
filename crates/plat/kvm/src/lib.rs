//! The kvm platform: unikit as an x86_64 virtual machine booted through PVH
//! (QEMU `-kernel` on q35 or microvm, Firecracker >= 1.12, cloud-hypervisor).
//!
//! Boot: `entry` (32-bit stub) -> [`kvm_main`]: CPU tables, memory map,
//! frame allocator, the kernel's own page tables, then the kernel core.
#![no_std]

extern crate alloc;

mod clock;
mod entry;
mod irq;
mod start_info;
mod virtio_mmio;
mod xen_pvh;

// The Xen PV entry and its drivers live there; the ELF notes here point at it.
use unikit_plat_xen as _;

use arch::hypervisor::Hypervisor;
use arch::idt::TrapFrame;
use arch::paging::{AddressSpace, Flags, FrameSource, PAGE_SIZE};
use core::fmt::Write;
use drivers::pc::uart16550::{COM1, Uart16550};
use hal::{Args, BootInfo, Hal, Region};
use spin::Once;
use unikit_plat_xen::{hvm, time as xen_time};

const TIMER_VECTOR: u8 = 0x20;
const SPURIOUS_VECTOR: u8 = 0xff;

/// The x86 VM booted through PVH. Until bring-up finds Xen (PVH on Xen),
/// console, clock, idle and shutdown are the PC devices'; from then on
/// Xen's interfaces (`hvm::active()`). Memory and paging stay ours.
pub struct Kvm {
    hypervisor: Once<(Hypervisor, u32)>,
}

pub(crate) static KVM: Kvm = Kvm { hypervisor: Once::new() };
// SAFETY: COM1 is the 16550 every PC-shaped VM (and Firecracker) provides.
static UART: Uart16550 = unsafe { Uart16550::new(COM1) };
static UART_READY: Once<()> = Once::new();
static ADDRESS_SPACE: Once<u64> = Once::new();

static HAL: Hal =
    Hal { platform: &KVM, console: &KVM, clock: &KVM, irq: &KVM, shutdown: &KVM, memory: &KVM, cpu: &arch::fault::CPU };

/// Page-table frames come from the kernel's frame allocator.
pub(crate) struct KernelFrames;

impl FrameSource for KernelFrames {
    fn alloc_zeroed_frame(&mut self) -> Option<u64> {
        unikit_kernel::mem::alloc_zeroed_frame()
    }
}

fn hypervisor() -> (Hypervisor, u32) {
    *KVM.hypervisor.call_once(arch::hypervisor::detect)
}

fn pc_console_write(bytes: &[u8]) {
    UART_READY.call_once(|| UART.init());
    UART.write(bytes);
}

impl hal::Platform for Kvm {
    fn name(&self) -> &'static str {
        if hvm::active() { "xen" } else { "kvm" }
    }

    fn bring_up(&self, boot: &BootInfo) {
        build_page_tables(boot.memory, boot.reserved);
        if hypervisor().0 == Hypervisor::Xen {
            xen_pvh();
        }
        arch::cpu::irq_restore(true);
    }

    fn options(&self) -> &'static [&'static str] {
        // Firecracker's additions (virtio-mmio devices, `pci=off`).
        &["virtio_mmio.device=", "pci="]
    }

    fn describe(&self, out: &mut dyn Write) -> core::fmt::Result {
        if hvm::active() {
            let hz = (1_000_000_000u128 * 1_000_000 / xen_time::ticks_to_ns(1_000_000).max(1) as u128) as u64;
            write!(out, ", PVH, pvclock (TSC {}.{:02} GHz), event channels", hz / 1_000_000_000, hz / 10_000_000 % 100)
        } else {
            clock::describe(out)
        }
    }
}

impl hal::Console for Kvm {
    fn write(&self, bytes: &[u8]) {
        if hvm::active() { hvm::console_write(bytes) } else { pc_console_write(bytes) }
    }
}

impl hal::Clock for Kvm {
    fn monotonic_ns(&self) -> u64 {
        if hvm::active() { xen_time::monotonic_ns() } else { clock::monotonic_ns() }
    }

    fn raw_timestamp(&self) -> u64 {
        arch::cpu::rdtsc()
    }

    fn raw_to_ns(&self, raw: u64) -> u64 {
        if hvm::active() { xen_time::ticks_to_ns(raw) } else { clock::ticks_to_ns(raw) }
    }

    fn wall_clock_ns(&self) -> u64 {
        if hvm::active() { xen_time::wall_clock_ns() } else { clock::wall_clock_ns() }
    }

    fn wait_for_event(&self, deadline_ns: Option<u64>) {
        if hvm::active() { hvm::wait(deadline_ns) } else { clock::wait(deadline_ns) }
    }
}

impl hal::IrqControl for Kvm {
    fn save(&self) -> bool {
        arch::cpu::irq_save()
    }

    fn restore(&self, was_enabled: bool) {
        arch::cpu::irq_restore(was_enabled)
    }
}

impl hal::Shutdown for Kvm {
    fn shutdown(&self, code: i32) -> ! {
        if hvm::active() { hvm::shutdown(code) } else { shutdown(code) }
    }
}

impl hal::Memory for Kvm {
    fn set_guard_page(&self, addr: u64, guard: bool) -> bool {
        if ADDRESS_SPACE.get().is_none() {
            return false;
        }
        let _irq = unikit_kernel::platform::IrqGuard::new();
        // SAFETY: the page belongs to a stack being created or freed; nobody
        // uses it while it is a guard.
        unsafe { AddressSpace::current().set_page_present(addr, !guard, &mut KernelFrames) }.is_ok()
    }

    fn map_device(&self, phys: u64, len: u64) -> bool {
        if ADDRESS_SPACE.get().is_none() || len == 0 {
            return false;
        }
        let start = phys / PAGE_SIZE * PAGE_SIZE;
        let Some(end) = phys.checked_add(len).map(|e| e.div_ceil(PAGE_SIZE) * PAGE_SIZE) else { return false };
        let _irq = unikit_kernel::platform::IrqGuard::new();
        let mut aspace = AddressSpace::current();
        // SAFETY: device registers, mapped uncached; tables from the frame allocator.
        let ok = unsafe { aspace.identity_map(start, end - start, Flags::DEVICE, &mut KernelFrames) }.is_ok();
        arch::cpu::flush_tlb();
        ok
    }

    fn virt_to_phys(&self, vaddr: u64) -> Option<u64> {
        ADDRESS_SPACE.get()?;
        AddressSpace::current().translate(vaddr)
    }
}

/// Stops the VM. The exit marker has already told the host the code; these
/// are the ways to make the hypervisor stop, most specific first.
fn shutdown(code: i32) -> ! {
    // SAFETY: each write targets a device that, when present, stops the VM,
    // and is ignored when absent.
    unsafe {
        // QEMU isa-debug-exit: QEMU exits with status (code << 1) | 1.
        arch::io::outb(0xf4, code as u8);
        // ACPI S5 on QEMU q35 (ICH9 PM1a_CNT at 0x604) and on piix (0xb004).
        arch::io::outw(0x604, 0x2000);
        arch::io::outw(0xb004, 0x2000);
        // i8042 reset line: Firecracker stops; QEMU with -no-reboot exits.
        arch::io::outb(0x64, 0xfe);
    }
    // No exit device at all (e.g. QEMU microvm without isa-debug-exit has
    // no i8042 either): a triple fault resets the VM, which ends it.
    arch::cpu::triple_fault()
}

/// Early fatal error: there is no kernel yet to report it.
fn early_fail(args: core::fmt::Arguments) -> ! {
    unikit_kernel::console::print_to(&KVM, format_args!("unikit: fatal boot error: {args}\n"));
    hal::Shutdown::shutdown(&KVM, unikit_kernel::exit::EXIT_PANIC)
}

fn trap(frame: &mut TrapFrame) {
    match frame.vector {
        v if v < 32 => unikit_kernel::exit::exception(&frame.decode()),
        v if v == SPURIOUS_VECTOR as u64 => {}
        v if v == xen_pvh::XEN_VECTOR as u64 => hvm::upcall(),
        v if irq::dispatch(v) => {}
        _ => clock::eoi(), // timer: waking the idle wait is all it has to do
    }
}

/// Rust entry, called by the PVH stub on the boot stack with paging on.
pub extern "C" fn kvm_main(start_info: u64) -> ! {
    // SAFETY: boot CPU, interrupts off, before anything else uses the tables.
    unsafe {
        arch::gdt::init();
        arch::idt::init(trap);
    }
    drivers::pc::i8259::mask_all();
    // SAFETY: the PVH contract: ebx (passed through) points at start_info.
    let params = match unsafe { start_info::parse(start_info) } {
        Ok(p) => p,
        Err(e) => early_fail(format_args!("bad PVH start_info: {e:?}")),
    };
    let (img_lo, img_hi) = entry::kernel_image();
    let mut reserved = [Region::new(0, 0); 5];
    reserved[0] = Region::new(img_lo, img_hi);
    reserved[1..4].copy_from_slice(&params.boot_data);
    if let Some(rd) = params.initrd {
        reserved[4] = rd;
    }
    // SAFETY: the module is reserved RAM, mapped, never written.
    let initrd =
        params.initrd.map(|rd| unsafe { core::slice::from_raw_parts(rd.start as *const u8, rd.len() as usize) });
    let (lo, hi) = entry::boot_stack();
    // SAFETY: RAM from the memory map, identity mapped by the boot tables
    // (first 4 GiB) minus what holds the kernel and the boot data.
    unsafe {
        unikit_kernel::boot::enter(
            HAL,
            BootInfo {
                args: Args::Kernel(params.cmdline),
                memory: &params.ram[..params.nr_ram],
                reserved: &reserved,
                initrd,
                boot_stack: Region::new(lo, hi),
                hypervisor: hypervisor().0.name(),
                boot_timestamp: entry::boot_tsc(),
            },
        )
    }
}

/// PVH on Xen: move console, time, idle and shutdown to Xen's interfaces.
/// If Xen's interfaces cannot be set up, stay on the PC devices (which a
/// Xen PVH guest mostly lacks, but the kernel still runs).
fn xen_pvh() {
    let map = |phys: u64| -> bool {
        let mut aspace = AddressSpace::current();
        // SAFETY: a page Xen shares with us (ring), mapped at its own address.
        let ok =
            unsafe { aspace.identity_map(phys & !(PAGE_SIZE - 1), PAGE_SIZE, Flags::RAM, &mut KernelFrames) }.is_ok();
        arch::cpu::flush_tlb();
        ok
    };
    // SAFETY: boot CPU, interrupts off; trap() routes the vector to Xen's upcall.
    unsafe { arch::idt::enable_vector(xen_pvh::XEN_VECTOR) };
    match hvm::init(&map, xen_pvh::XEN_VECTOR) {
        Ok(()) => {}
        Err(e) => unikit_kernel::kprintln!("unikit: Xen PVH interfaces unavailable ({e:?}); staying on PC devices"),
    }
}

/// The kernel's device discovery hook, run on first use: virtio on PCI (q35) and the
/// virtio-mmio devices named on the command line (microvm, Firecracker);
/// on Xen, netfront and blkfront from xenstore.
#[unsafe(no_mangle)]
pub fn __unikit_probe_devices() {
    if unikit_plat_xen::active() || unikit_plat_xen::hvm::active() {
        return unikit_plat_xen::probe_devices();
    }
    let irq: &'static dyn drivers::irq::InterruptController = &irq::CONTROLLER;
    let mmio = virtio_mmio::devices(&unikit_kernel::boot::command_line().options);
    if mmio.is_empty() {
        drivers::virtio::probe_pci(Some(irq));
    }
    for d in mmio {
        if let Err(e) = drivers::virtio::probe_mmio(d.base, d.size, d.irq, Some(irq)) {
            unikit_kernel::kprintln!("unikit: virtio-mmio device at {:#x}: {e}", d.base);
        }
    }
}

/// Builds the kernel's own identity map (RAM and boot data; page 0 left
/// unmapped so null dereferences fault; the local APIC uncached), switches
/// to it and returns the boot stub's tables to the frame allocator.
fn build_page_tables(ram: &[Region], reserved: &[Region]) {
    let mut frames = KernelFrames;
    fn fail<T>(e: arch::paging::MapError) -> T {
        early_fail(format_args!("building page tables: {e:?}"))
    }
    let mut aspace = AddressSpace::new(&mut frames).unwrap_or_else(fail);
    for r in ram.iter().chain(reserved.iter()).filter(|r| !r.is_empty()) {
        let start = (r.start / PAGE_SIZE * PAGE_SIZE).max(PAGE_SIZE);
        let end = r.end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        if end > start {
            // SAFETY: tables come from the frame allocator, identity mapped.
            unsafe { aspace.identity_map(start, end - start, Flags::RAM, &mut frames) }.unwrap_or_else(fail);
        }
    }
    let apic = arch::apic::LocalApic::mmio_base();
    // SAFETY: as above; the APIC page is device memory.
    unsafe { aspace.identity_map(apic, PAGE_SIZE, Flags::DEVICE, &mut frames) }.unwrap_or_else(fail);
    // SAFETY: every page the kernel uses (image, stacks, heap, boot data) is mapped.
    unsafe { aspace.activate() };
    ADDRESS_SPACE.call_once(|| aspace.root());
    hal::Memory::set_guard_page(&KVM, entry::boot_stack().0 - PAGE_SIZE, true);
    for page in entry::boot_page_tables() {
        unikit_kernel::mem::free_frames(page, 1);
    }
}

pub(crate) fn timer_vectors() -> (u8, u8) {
    (TIMER_VECTOR, SPURIOUS_VECTOR)
}
