//! The legacy 8259 interrupt controllers. unikit uses the local APIC, so the
//! PICs are moved off the CPU exception vectors (firmware such as SeaBIOS
//! leaves IRQ0 on vector 8, where a timer tick would look like a double
//! fault) and masked.
use arch::io::outb;

/// Vectors the PICs are moved to; only their spurious IRQs (7 and 15) can
/// still arrive once everything is masked.
pub const VECTOR_BASE: u8 = 0xe0;

pub fn remap_and_mask() {
    // SAFETY: the standard ICW1-ICW4 initialisation of both PICs, then OCW1
    // masking every line; no other code drives the PICs.
    unsafe {
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, VECTOR_BASE);
        outb(0xa1, VECTOR_BASE + 8);
        outb(0x21, 0x04);
        outb(0xa1, 0x02);
        outb(0x21, 0x01);
        outb(0xa1, 0x01);
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}
