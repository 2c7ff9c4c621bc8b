//! The legacy 8259 interrupt controllers. unikit uses the local APIC, so the
//! PICs are masked: firmware such as SeaBIOS leaves the PIT ticking on IRQ0,
//! delivered on vector 8, where it would look like a double fault.
//!
//! Masking alone (two port writes) suffices: with every line masked the PIC
//! raises nothing, not even its spurious IRQ 7/15 (those need a line that
//! was unmasked). Re-initialising it would cost eight more VM exits at boot.
#![deny(unsafe_code)]
use unikit_io::pc::{PIC_MASTER, PIC_SLAVE};

pub fn mask_all() {
    // OCW1 on both PICs (the data port): mask every line.
    PIC_MASTER.write::<u8>(1, 0xff);
    PIC_SLAVE.write::<u8>(1, 0xff);
}
