//! Port I/O.
use core::arch::asm;

/// # Safety
/// Writing an I/O port can have arbitrary side effects on the machine.
#[inline]
pub unsafe fn outb(port: u16, val: u8) {
    // SAFETY: caller guarantees the port write is meaningful.
    unsafe { asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags)) }
}

/// # Safety
/// See [`outb`].
#[inline]
pub unsafe fn outw(port: u16, val: u16) {
    // SAFETY: caller guarantees the port write is meaningful.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") val, options(nomem, nostack, preserves_flags)) }
}

/// # Safety
/// Reading some I/O ports has side effects (e.g. clears status).
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: caller guarantees the port read is meaningful.
    unsafe { asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags)) }
    v
}
