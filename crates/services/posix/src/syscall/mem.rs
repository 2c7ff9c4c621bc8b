//! Memory: `mmap` (anonymous, and private copies of files), `munmap`,
//! `mprotect`, `mremap`.

use super::SysResult;
use crate::errno::*;
use crate::fd;
use crate::vm::{self, Prot};
use alloc::vec;

const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const PAGE: u64 = 4096;

pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fdn: i64, off: u64) -> SysResult {
    if len == 0 || !off.is_multiple_of(PAGE) || flags & (MAP_SHARED | MAP_PRIVATE) == 0 {
        return Err(EINVAL);
    }
    let prot = vm::prot_from_bits(prot);
    let file = if flags & MAP_ANONYMOUS == 0 { Some(fd::get(fdn)?) } else { None };
    // A file's bytes are copied in: map writable first, then set `prot`.
    let initial = if file.is_some() { Prot { read: true, write: true, exec: false } } else { prot };
    let at = if flags & MAP_FIXED_NOREPLACE != 0 {
        if !vm::is_free(addr, len) {
            return Err(EEXIST);
        }
        vm::map_fixed(addr, len, initial).map(|_| addr)?
    } else if flags & MAP_FIXED != 0 {
        if !addr.is_multiple_of(PAGE) {
            return Err(EINVAL);
        }
        vm::map_fixed(addr, len, initial).map(|_| addr)?
    } else {
        vm::map_anywhere(addr, len, initial)?
    };
    if let Some(f) = file {
        let mut done = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        while done < len {
            let want = ((len - done) as usize).min(buf.len());
            let n = match f.pread(off + done, &mut buf[..want]) {
                Ok(n) => n,
                Err(e) => {
                    let _ = vm::unmap(at, len);
                    return Err(if e == ESPIPE { ENODEV } else { e });
                }
            };
            if n == 0 {
                break;
            }
            vm::write(at + done, &buf[..n])?;
            done += n as u64;
        }
        vm::protect(at, len, prot)?;
    }
    Ok(at)
}

pub fn munmap(addr: u64, len: u64) -> SysResult {
    vm::unmap(addr, len).map(|_| 0)
}

pub fn mprotect(addr: u64, len: u64, prot: u64) -> SysResult {
    vm::protect(addr, len, vm::prot_from_bits(prot)).map(|_| 0)
}

pub fn mremap(old: u64, old_len: u64, new_len: u64, flags: u64, new_addr: u64) -> SysResult {
    if !old.is_multiple_of(PAGE) || new_len == 0 || flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
        return Err(EINVAL);
    }
    let old_len = old_len.div_ceil(PAGE) * PAGE;
    let new_len = new_len.div_ceil(PAGE) * PAGE;
    let prot = vm::prot_at(old).ok_or(EFAULT)?;
    if new_len <= old_len && flags & MREMAP_FIXED == 0 {
        if new_len < old_len {
            vm::unmap(old + new_len, old_len - new_len)?;
        }
        return Ok(old);
    }
    if flags & MREMAP_FIXED == 0 && vm::is_free(old + old_len, new_len - old_len) {
        vm::map_fixed(old + old_len, new_len - old_len, prot)?;
        return Ok(old);
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return Err(ENOMEM);
    }
    let rw = Prot { read: true, write: true, exec: false };
    let to = if flags & MREMAP_FIXED != 0 {
        vm::map_fixed(new_addr, new_len, rw).map(|_| new_addr)?
    } else {
        vm::map_anywhere(0, new_len, rw)?
    };
    vm::move_pages(old, to, old_len.min(new_len))?;
    vm::unmap(old, old_len)?;
    vm::protect(to, new_len, prot)?;
    Ok(to)
}
