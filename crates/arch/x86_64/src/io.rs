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

/// # Safety
/// Reading some I/O ports has side effects.
#[inline]
pub unsafe fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: caller guarantees the port read is meaningful.
    unsafe { asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// Reading some I/O ports has side effects.
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: caller guarantees the port read is meaningful.
    unsafe { asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags)) }
    v
}

/// # Safety
/// Writing an I/O port can have arbitrary side effects on the machine.
#[inline]
pub unsafe fn outl(port: u16, val: u32) {
    // SAFETY: caller guarantees the port write is meaningful.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") val, options(nomem, nostack, preserves_flags)) }
}
