//! The legacy 8259 interrupt controllers. unikit uses the local APIC, so the
//! PICs are masked: firmware such as SeaBIOS leaves the PIT ticking on IRQ0,
//! delivered on vector 8, where it would look like a double fault.
//!
//! Masking alone (two port writes) suffices: with every line masked the PIC
//! raises nothing, not even its spurious IRQ 7/15 (those need a line that
//! was unmasked). Re-initialising it would cost eight more VM exits at boot.
use arch::io::outb;

pub fn mask_all() {
    // SAFETY: OCW1 on both PICs: mask every line; no other code drives them.
    unsafe {
        outb(0x21, 0xff);
        outb(0xa1, 0xff);
    }
}
