//! Guest memory: one anonymous mapping, guest-physical address 0 upwards.
//!
//! Every access the tender makes on the guest's behalf goes through
//! [`GuestMem::range`] / [`GuestMem::range_mut`], which check `gpa + len`
//! with overflow-checked arithmetic against the guest's size (and, for
//! writes, against the read-only ranges of the guest's text), and only then
//! hand out a host pointer. Nothing else in the tender computes a host
//! address from a guest one.

use std::io;
use std::ptr::NonNull;

/// Why a guest range was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRange {
    /// `gpa + len` overflows or ends past guest memory.
    Outside,
    /// A write would land in memory the guest may only read (its text).
    ReadOnly,
}

impl std::fmt::Display for BadRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadRange::Outside => "outside guest memory",
            BadRange::ReadOnly => "in read-only guest memory",
        })
    }
}

pub struct GuestMem {
    ptr: NonNull<u8>,
    /// Size of the mapping.
    alloc: u64,
    /// Ranges `[start, end)` mapped read-only (host and therefore guest).
    read_only: Vec<(u64, u64)>,
}

// SAFETY: the mapping is owned by this value and only accessed through
// checked ranges; the tender's vCPU loop is single-threaded.
unsafe impl Send for GuestMem {}

impl GuestMem {
    /// Map `size` bytes of zeroed, private-to-this-process memory. Pages are
    /// only backed when touched (`MAP_NORESERVE`), so a large `--mem` costs
    /// nothing until the guest uses it.
    pub fn new(size: u64) -> io::Result<GuestMem> {
        let len = usize::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(GuestMem { ptr, alloc: size, read_only: Vec::new() })
    }

    pub fn size(&self) -> u64 {
        self.alloc
    }

    /// Host address of the mapping (for KVM_SET_USER_MEMORY_REGION).
    pub fn host_base(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Check `[gpa, gpa + len)` and return its host address.
    pub fn range(&self, gpa: u64, len: u64) -> Result<*const u8, BadRange> {
        match gpa.checked_add(len) {
            Some(end) if end <= self.alloc => {}
            _ => return Err(BadRange::Outside),
        }
        // SAFETY: gpa + len <= alloc, so the offset stays inside the mapping
        // (and alloc fits in usize, checked in `new`).
        Ok(unsafe { self.ptr.as_ptr().add(gpa as usize) })
    }

    /// As [`GuestMem::range`], for memory the tender will write.
    pub fn range_mut(&self, gpa: u64, len: u64) -> Result<*mut u8, BadRange> {
        let p = self.range(gpa, len)?;
        let end = gpa + len;
        if len > 0 && self.read_only.iter().any(|&(s, e)| gpa < e && s < end) {
            return Err(BadRange::ReadOnly);
        }
        Ok(p.cast_mut())
    }

    /// Is `gpa` inside one of the read-only ranges?
    pub fn is_read_only(&self, gpa: u64) -> bool {
        self.read_only.iter().any(|&(s, e)| (s..e).contains(&gpa))
    }

    pub fn read_bytes(&self, gpa: u64, out: &mut [u8]) -> Result<(), BadRange> {
        let p = self.range(gpa, out.len() as u64)?;
        // SAFETY: the range is inside the mapping (checked above) and does not
        // overlap `out`, which is host memory outside it.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    pub fn write_bytes(&self, gpa: u64, data: &[u8]) -> Result<(), BadRange> {
        let p = self.range_mut(gpa, data.len() as u64)?;
        // SAFETY: as in `read_bytes`, and the range is writable.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    pub fn read_u64(&self, gpa: u64) -> Result<u64, BadRange> {
        let mut b = [0u8; 8];
        self.read_bytes(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn read_u32(&self, gpa: u64) -> Result<u32, BadRange> {
        let mut b = [0u8; 4];
        self.read_bytes(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn write_u64(&self, gpa: u64, v: u64) -> Result<(), BadRange> {
        self.write_bytes(gpa, &v.to_le_bytes())
    }

    pub fn write_u32(&self, gpa: u64, v: u32) -> Result<(), BadRange> {
        self.write_bytes(gpa, &v.to_le_bytes())
    }

    /// Make `[start, end)` (page-aligned, inside memory) read-only for the
    /// host mapping, which KVM carries over to the guest (hvt_kvm.c
    /// `hvt_guest_mprotect`): the guest cannot write its own text, and the
    /// tender refuses to write there on its behalf.
    pub fn protect_read_only(&mut self, start: u64, end: u64) -> io::Result<()> {
        if start >= end || end > self.alloc || !start.is_multiple_of(4096) || !end.is_multiple_of(4096) {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: the range lies inside our mapping (checked above).
        let r = unsafe {
            libc::mprotect(self.ptr.as_ptr().add(start as usize).cast(), (end - start) as usize, libc::PROT_READ)
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        self.read_only.push((start, end));
        Ok(())
    }
}

impl Drop for GuestMem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.alloc as usize) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        let mut m = GuestMem::new(2 << 20).unwrap();
        let size = m.size();
        assert!(m.range(0, size).is_ok());
        assert!(m.range(size, 0).is_ok());
        assert_eq!(m.range(size, 1), Err(BadRange::Outside));
        assert_eq!(m.range(size - 1, 2), Err(BadRange::Outside));
        assert_eq!(m.range(u64::MAX, 2), Err(BadRange::Outside));
        assert_eq!(m.range(1, u64::MAX), Err(BadRange::Outside));
        m.write_u64(size - 8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.read_u64(size - 8), Ok(0x1122_3344_5566_7788));
        assert_eq!(m.read_u32(size - 8), Ok(0x5566_7788));
        assert_eq!(m.write_u64(size - 7, 0), Err(BadRange::Outside));
        m.protect_read_only(0x10_0000, 0x10_2000).unwrap();
        assert_eq!(m.range_mut(0x10_1fff, 1), Err(BadRange::ReadOnly));
        assert_eq!(m.range_mut(0xf_fff0, 0x20), Err(BadRange::ReadOnly));
        assert!(m.range_mut(0x10_2000, 16).is_ok());
        assert!(m.range_mut(0xf_fff0, 0x10).is_ok());
        assert!(m.range(0x10_1000, 8).is_ok());
        assert_eq!(m.write_u32(0x10_0000, 1), Err(BadRange::ReadOnly));
        assert!(m.protect_read_only(0x1000, 0x1001).is_err());
        assert!(m.protect_read_only(0, size + 4096).is_err());
    }
}
