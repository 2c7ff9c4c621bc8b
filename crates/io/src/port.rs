//! x86 port I/O behind typed handles.
use core::marker::PhantomData;

/// A value port I/O moves in one instruction: `u8`, `u16` or `u32`.
pub trait PortValue: Copy + sealed::Sealed {
    /// Size in bytes.
    const SIZE: u16;
    #[doc(hidden)]
    fn port_read(port: u16) -> Self;
    #[doc(hidden)]
    fn port_write(port: u16, v: Self);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

// The `port_read`/`port_write` functions are only reached through `Port` and
// `PortRange`, whose (unsafe) constructors vouch for the port numbers.
macro_rules! port_value {
    ($t:ty, $size:expr, $in:ident, $out:ident) => {
        impl PortValue for $t {
            const SIZE: u16 = $size;
            fn port_read(port: u16) -> Self {
                // SAFETY: only called by `Port`/`PortRange` with a port their
                // constructor's contract declared to be the device's.
                unsafe { arch::io::$in(port) }
            }
            fn port_write(port: u16, v: Self) {
                // SAFETY: as in `port_read`.
                unsafe { arch::io::$out(port, v) }
            }
        }
    };
}
port_value!(u8, 1, inb, outb);
port_value!(u16, 2, inw, outw);
port_value!(u32, 4, inl, outl);

/// One I/O port read and written as a `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port<T> {
    port: u16,
    _t: PhantomData<T>,
}

impl<T: PortValue> Port<T> {
    /// The port `port`.
    ///
    /// # Safety
    /// `port` must be a register of a device this handle's owner drives,
    /// for which reading and writing `T`s has no effect on memory safety
    /// (no DMA set up by it except through [`crate::DmaRegion`]s).
    pub const unsafe fn new(port: u16) -> Self {
        Self { port, _t: PhantomData }
    }
    /// The port number.
    pub fn number(&self) -> u16 {
        self.port
    }
    /// `in`.
    pub fn read(&self) -> T {
        T::port_read(self.port)
    }
    /// `out`.
    pub fn write(&self, v: T) {
        T::port_write(self.port, v)
    }
}

/// A block of `len` I/O ports from `base` (an I/O BAR, a legacy device):
/// accesses are checked to lie inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    base: u16,
    len: u16,
}

impl PortRange {
    /// Ports `[base, base + len)`; `None` if that passes 0xffff.
    ///
    /// # Safety
    /// As for [`Port::new`], for every port of the range.
    pub const unsafe fn new(base: u16, len: u16) -> Option<Self> {
        match base.checked_add(len) {
            Some(_) => Some(Self { base, len }),
            None => None,
        }
    }
    /// First port.
    pub fn base(&self) -> u16 {
        self.base
    }
    /// Number of ports.
    pub fn len(&self) -> u16 {
        self.len
    }
    /// Whether it has no ports.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The typed port at `off`, if all its bytes are inside the range.
    pub fn port<T: PortValue>(&self, off: u16) -> Option<Port<T>> {
        let end = off.checked_add(T::SIZE)?;
        (end <= self.len).then(|| Port { port: self.base + off, _t: PhantomData })
    }
    /// Reads the `T` at `off`; all ones if outside.
    pub fn read<T: PortValue + From<u8> + core::ops::Not<Output = T>>(&self, off: u16) -> T {
        self.port::<T>(off).map_or(!T::from(0), |p| p.read())
    }
    /// Writes the `T` at `off`; dropped if outside.
    pub fn write<T: PortValue>(&self, off: u16, v: T) {
        if let Some(p) = self.port::<T>(off) {
            p.write(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_bounds() {
        // SAFETY: the handles are only checked here, never used for I/O.
        let r = unsafe { PortRange::new(0xc000, 0x20) }.unwrap();
        assert_eq!(r.port::<u32>(0x1c).map(|p| p.number()), Some(0xc01c));
        assert!(r.port::<u32>(0x1d).is_none());
        assert!(r.port::<u8>(0x20).is_none());
        assert!(r.port::<u16>(u16::MAX).is_none());
        // SAFETY: as above.
        assert!(unsafe { PortRange::new(0xfff0, 0x20) }.is_none());
    }
}
