//! The PC backend of the PVH image: 16550 console, TSC and local APIC
//! timer ([`clock`]), I/O APIC and MSI interrupts ([`irq`]), the kernel's
//! own page tables, and the PC ways to stop a VM. On Xen PVH the same
//! [`Machine`] moves console, time, idle and shutdown to Xen's interfaces
//! once bring-up has set them up (`crate::xen::hvm`); memory and paging
//! stay here (PVH is hardware-virtualized).
pub(crate) mod clock;
pub(crate) mod irq;

use crate::KernelFrames;
#[cfg(feature = "xen")]
use crate::xen::{hvm, time as xen_time};
use arch::hypervisor::Hypervisor;
use arch::idt::TrapFrame;
use arch::paging::{AddressSpace, Flags, PAGE_SIZE};
use core::fmt::Write;
use drivers::pc::uart16550::{COM1, Uart16550};
use hal::{BootInfo, Hal, Region};
use spin::Once;

/// The IDT vector Xen delivers event upcalls on (PVH).
#[cfg(feature = "xen")]
pub const XEN_VECTOR: u8 = 0xf3;
const TIMER_VECTOR: u8 = 0x20;
const SPURIOUS_VECTOR: u8 = 0xff;

/// The x86 VM booted through PVH. Until bring-up finds Xen (PVH on Xen),
/// console, clock, idle and shutdown are the PC devices'; from then on
/// Xen's interfaces (`hvm::active()`). Memory and paging stay ours.
pub struct Machine {
    hypervisor: Once<(Hypervisor, u32)>,
}

pub(crate) static MACHINE: Machine = Machine { hypervisor: Once::new() };
/// COM1: the 16550 every PC-shaped VM (and Firecracker) provides.
static UART: Uart16550 = Uart16550::new(COM1);
static UART_READY: Once<()> = Once::new();
static ADDRESS_SPACE: Once<u64> = Once::new();

#[cfg(feature = "user")]
const USER: Option<&dyn hal::UserMode> = Some(&arch::user::USER);
#[cfg(not(feature = "user"))]
const USER: Option<&dyn hal::UserMode> = None;

pub(crate) static HAL: Hal = Hal {
    platform: &MACHINE,
    console: &MACHINE,
    clock: &MACHINE,
    irq: &MACHINE,
    shutdown: &MACHINE,
    memory: &MACHINE,
    cpu: &arch::fault::CPU,
    user: USER,
};

pub(crate) fn hypervisor() -> (Hypervisor, u32) {
    *MACHINE.hypervisor.call_once(arch::hypervisor::detect)
}

static VMWARE: Once<Option<u32>> = Once::new();

/// The VMware backdoor's version when one answers: VMware, or QEMU shaped
/// like it (`vmport=on`). Never asked on Xen, whose ports are its own.
pub(crate) fn vmware() -> Option<u32> {
    *VMWARE.call_once(|| match hypervisor().0 {
        Hypervisor::Xen => None,
        _ => arch::hypervisor::vmware_backdoor(),
    })
}

/// Where the boot loader found the ACPI RSDP (PVH `rsdp_paddr`; 0: search).
static RSDP_HINT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

pub(crate) fn set_rsdp_hint(paddr: u64) {
    RSDP_HINT.store(paddr, core::sync::atomic::Ordering::Relaxed);
}

/// Physical memory for the ACPI reader: mapped on demand (tables sit in
/// firmware-reserved RAM the kernel's page tables leave out).
struct PhysMem;

impl crate::acpi::PhysRead for PhysMem {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else { return false };
        if buf.is_empty() || end > 1 << 46 || !hal::Memory::map_device(&MACHINE, addr, buf.len() as u64) {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `[addr, end)` was just identity mapped; reading
            // firmware tables has no side effects.
            *b = unsafe { core::ptr::read_volatile((addr + i as u64) as *const u8) };
        }
        true
    }
}

/// ACPI soft-off (S5), as the FADT and `\_S5` say.
fn acpi_power_off() -> Result<core::convert::Infallible, &'static str> {
    let rsdp = crate::acpi::find_rsdp(&PhysMem, RSDP_HINT.load(core::sync::atomic::Ordering::Relaxed))
        .ok_or("no ACPI RSDP")?;
    let p = crate::acpi::power_off(&PhysMem, rsdp)?;
    // SAFETY: the FADT names these as the PM1 control ports; writing
    // SLP_EN with the S5 type powers the machine off.
    unsafe {
        arch::io::outw(p.pm1a_cnt, crate::acpi::PowerOff::value(p.slp_typ.0));
        if p.pm1b_cnt != 0 {
            arch::io::outw(p.pm1b_cnt, crate::acpi::PowerOff::value(p.slp_typ.1));
        }
    }
    // The write takes effect at once on every VMM seen; give it a moment.
    for _ in 0..1_000_000 {
        core::hint::spin_loop();
    }
    Err("the machine did not power off")
}

fn pc_console_write(bytes: &[u8]) {
    UART_READY.call_once(|| UART.init());
    UART.write(bytes);
}

impl hal::Platform for Machine {
    fn name(&self) -> &'static str {
        #[cfg(feature = "xen")]
        if hvm::active() {
            return "xen";
        }
        if vmware().is_some() {
            return "vmware";
        }
        "kvm"
    }

    fn bring_up(&self, boot: &BootInfo) {
        build_page_tables(boot.memory, boot.reserved);
        #[cfg(feature = "xen")]
        if hypervisor().0 == Hypervisor::Xen {
            xen_pvh();
        }
        arch::cpu::irq_restore(true);
    }

    fn options(&self) -> &'static [&'static str] {
        // Firecracker's additions (virtio-mmio devices, `pci=off`), and the
        // boot disk our firmware loaders name.
        &["virtio_mmio.device=", "pci=", unikit_kernel::dev::BOOT_DISK_OPTION]
    }

    fn describe(&self, out: &mut dyn Write) -> core::fmt::Result {
        #[cfg(feature = "xen")]
        if hvm::active() {
            return crate::xen::describe(out, "PVH");
        }
        if let Some(v) = vmware() {
            write!(out, ", VMware backdoor version {v}")?;
            crate::entry::pvh::describe_guestinfo(out)?;
        }
        clock::describe(out)
    }
}

impl hal::Console for Machine {
    fn write(&self, bytes: &[u8]) {
        #[cfg(feature = "xen")]
        if hvm::active() {
            return crate::xen::console_write(bytes);
        }
        pc_console_write(bytes)
    }
}

impl hal::Clock for Machine {
    fn monotonic_ns(&self) -> u64 {
        #[cfg(feature = "xen")]
        if hvm::active() {
            return xen_time::monotonic_ns();
        }
        clock::monotonic_ns()
    }

    fn raw_timestamp(&self) -> u64 {
        arch::cpu::rdtsc()
    }

    fn raw_to_ns(&self, raw: u64) -> u64 {
        #[cfg(feature = "xen")]
        if hvm::active() {
            return xen_time::ticks_to_ns(raw);
        }
        clock::ticks_to_ns(raw)
    }

    fn wall_clock_ns(&self) -> u64 {
        #[cfg(feature = "xen")]
        if hvm::active() {
            return xen_time::wall_clock_ns();
        }
        clock::wall_clock_ns()
    }

    fn wait_for_event(&self, deadline_ns: Option<u64>) {
        #[cfg(feature = "xen")]
        if hvm::active() {
            return hvm::wait(deadline_ns);
        }
        clock::wait(deadline_ns)
    }

    #[cfg(feature = "user")]
    fn arm_timer(&self, deadline_ns: u64) {
        #[cfg(feature = "xen")]
        if hvm::active() {
            return xen_time::arm(Some(deadline_ns));
        }
        clock::arm(deadline_ns)
    }
}

impl hal::IrqControl for Machine {
    fn save(&self) -> bool {
        arch::cpu::irq_save()
    }

    fn restore(&self, was_enabled: bool) {
        arch::cpu::irq_restore(was_enabled)
    }
}

impl hal::Shutdown for Machine {
    fn shutdown(&self, code: i32) -> ! {
        #[cfg(feature = "xen")]
        if hvm::active() {
            hvm::shutdown(code);
        }
        shutdown(code)
    }
}

impl hal::Memory for Machine {
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

    #[cfg(feature = "user")]
    fn map_user(&self, va: u64, pa: u64, prot: hal::UserProt) -> bool {
        if ADDRESS_SPACE.get().is_none() || !prot.read {
            return false;
        }
        let flags = Flags { writable: prot.write, executable: prot.exec, device: false };
        let _irq = unikit_kernel::platform::IrqGuard::new();
        // SAFETY: the kernel's user layer owns `va` (a user page, or with
        // `pa == va` a frame it claimed from the identity map) and `pa`.
        unsafe { AddressSpace::current().map_page(va, pa, flags, true, &mut KernelFrames) }.is_ok()
    }

    #[cfg(feature = "user")]
    fn unmap_user(&self, va: u64) -> Option<u64> {
        ADDRESS_SPACE.get()?;
        let _irq = unikit_kernel::platform::IrqGuard::new();
        let mut aspace = AddressSpace::current();
        let (pa, _) = aspace.user_page(va)?;
        if pa == va {
            // A frame of the identity map: it becomes the kernel's page again.
            // SAFETY: the program no longer uses the page.
            unsafe { aspace.map_page(va, va, Flags::RAM, false, &mut KernelFrames) }.ok()?;
        } else {
            // SAFETY: as above.
            unsafe { aspace.unmap_page(va, &mut KernelFrames) }?;
        }
        Some(pa)
    }

    #[cfg(feature = "user")]
    fn user_page(&self, va: u64) -> Option<(u64, hal::UserProt)> {
        ADDRESS_SPACE.get()?;
        let (pa, f) = AddressSpace::current().user_page(va)?;
        Some((pa, hal::UserProt { read: true, write: f.writable, exec: f.executable }))
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
    }
    // A firmware-booted VM (VMware, Hyper-V) stops only through ACPI, at
    // ports only its tables name; a reset would reboot it. Elsewhere the
    // ports below do, without a table walk.
    if (vmware().is_some() || hypervisor().0 == Hypervisor::HyperV)
        && let Err(why) = acpi_power_off()
    {
        unikit_kernel::console::print_to(&MACHINE, format_args!("unikit: ACPI power-off: {why}\n"));
    }
    // SAFETY: as above.
    unsafe {
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
pub(crate) fn early_fail(args: core::fmt::Arguments) -> ! {
    unikit_kernel::console::print_to(&MACHINE, format_args!("unikit: fatal boot error: {args}\n"));
    hal::Shutdown::shutdown(&MACHINE, unikit_kernel::exit::EXIT_PANIC)
}

pub(crate) fn trap(frame: &mut TrapFrame) {
    match frame.vector {
        v if v < 32 => {
            #[cfg(feature = "user")]
            if arch::user::user_exception(frame) {
                return;
            }
            unikit_kernel::crash::exception(&frame.decode())
        }
        v if v == SPURIOUS_VECTOR as u64 => {}
        #[cfg(feature = "xen")]
        v if v == XEN_VECTOR as u64 => hvm::upcall(),
        v if irq::dispatch(v) => {}
        _ => {
            // The timer: it wakes the idle wait, or ends a user thread's slice.
            clock::eoi();
            #[cfg(feature = "user")]
            if frame.cs & 3 != 3 {
                unikit_kernel::sched::timer_tick();
            }
        }
    }
    #[cfg(feature = "user")]
    if frame.vector >= 32 {
        arch::user::user_interrupt_return(frame);
    }
}

#[cfg(feature = "xen")]
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
    unsafe { arch::idt::enable_vector(XEN_VECTOR) };
    match hvm::init(&map, XEN_VECTOR) {
        Ok(()) => {}
        Err(e) => unikit_kernel::kprintln!("unikit: Xen PVH interfaces unavailable ({e:?}); staying on PC devices"),
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
    hal::Memory::set_guard_page(&MACHINE, crate::boot::boot_stack().0 - PAGE_SIZE, true);
    for page in crate::entry::pvh::boot_page_tables() {
        unikit_kernel::mem::free_frames(page, 1);
    }
}

pub(crate) fn timer_vectors() -> (u8, u8) {
    (TIMER_VECTOR, SPURIOUS_VECTOR)
}
