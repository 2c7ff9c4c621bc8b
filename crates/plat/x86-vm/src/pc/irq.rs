//! Device interrupts on the kvm platform: vectors 0x30..=0xef are handed to
//! drivers, raised by MSI/MSI-X messages or routed from I/O APIC pins.
use super::clock;
use arch::ioapic::IoApic;
use core::sync::atomic::{AtomicU8, Ordering};
use drivers::irq::{InterruptController, IrqHandler, MsiMessage};
use hal::Memory;
use spin::Once;

const FIRST_VECTOR: u8 = 0x30;
const LAST_VECTOR: u8 = 0xef;

static NEXT: AtomicU8 = AtomicU8::new(FIRST_VECTOR);
static HANDLERS: [Once<&'static dyn IrqHandler>; 256] = [const { Once::new() }; 256];
static IOAPIC: Once<Option<IoApic>> = Once::new();

pub struct Controller;
pub static CONTROLLER: Controller = Controller;

fn alloc_vector(handler: &'static dyn IrqHandler) -> Option<u8> {
    let v = NEXT.fetch_add(1, Ordering::Relaxed);
    if !(FIRST_VECTOR..=LAST_VECTOR).contains(&v) {
        return None;
    }
    HANDLERS[v as usize].call_once(|| handler);
    // SAFETY: the handler is installed before the gate, and trap() dispatches it.
    unsafe { arch::idt::enable_vector(v) };
    Some(v)
}

fn ioapic() -> Option<&'static IoApic> {
    IOAPIC
        .call_once(|| {
            let base = arch::ioapic::DEFAULT_BASE;
            // SAFETY: mapped uncached just above; QEMU q35/microvm and
            // Firecracker put the I/O APIC at the architectural default.
            super::MACHINE.map_device(base, 4096).then(|| unsafe { IoApic::new(base) })
        })
        .as_ref()
}

impl InterruptController for Controller {
    fn alloc_msi(&self, handler: &'static dyn IrqHandler) -> Option<MsiMessage> {
        let apic = clock::local_apic();
        let v = alloc_vector(handler)?;
        Some(MsiMessage { address: 0xfee0_0000 | ((apic.id() as u64 & 0xff) << 12), data: v as u32 })
    }

    fn route_gsi(&self, gsi: u32, level: bool, handler: &'static dyn IrqHandler) -> bool {
        let apic = clock::local_apic();
        let Some(io) = ioapic() else { return false };
        let Some(v) = alloc_vector(handler) else { return false };
        io.route(gsi, v, apic.id(), level)
    }
}

/// Runs the handler for a device vector; false if `vector` is not one.
pub fn dispatch(vector: u64) -> bool {
    let Some(h) = HANDLERS.get(vector as usize).and_then(|o| o.get()) else { return false };
    h.handle();
    clock::eoi();
    true
}
