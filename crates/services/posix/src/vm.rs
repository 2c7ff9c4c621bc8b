//! The program's address space: its areas (VMAs), demand paging, `mmap`
//! and `brk`, and copies between its memory and the kernel's.
//!
//! Pages are given frames on first touch (a page fault, or a copy the
//! kernel makes). The kernel's identity map covers the guest's RAM, so a
//! page at an address inside RAM (a program linked at 0x400000) can only
//! be backed by the frame at that very address: it is claimed from the
//! frame allocator. Everything the loader and `mmap` choose lies far above
//! RAM, as Linux lays a process out.

use crate::errno::{EFAULT, EINVAL, ENOMEM, Errno};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use spin::Mutex;
use unikit_kernel::mem;
use unikit_kernel::user::{self, PAGE};

pub use unikit_kernel::user::UserProt as Prot;

/// Top of the stack area (Linux's, without randomization).
pub const STACK_TOP: u64 = 0x7fff_ffff_f000;
/// Room the main thread's stack may grow to.
pub const STACK_SIZE: u64 = 8 << 20;
/// Below the stack area, `mmap` hands out addresses downwards from here.
const MMAP_TOP: u64 = STACK_TOP - STACK_SIZE - (1 << 30);
/// Where a position-independent program is loaded (Linux's choice).
pub const PIE_BASE: u64 = 0x5555_5555_4000;
/// Lowest address a mapping may use (Linux's `mmap_min_addr`).
const MIN_ADDR: u64 = 0x10000;
/// Addresses a program may use: the lower half of the address space.
const USER_END: u64 = 0x7fff_ffff_f000 + PAGE;
/// Below this, addresses that are not RAM may be device registers.
const LOW_LIMIT: u64 = 4 << 30;

#[derive(Clone, Copy, Debug)]
struct Area {
    end: u64,
    prot: Prot,
}

/// The address space of the one program.
pub struct Vm {
    areas: BTreeMap<u64, Area>,
    /// Frames of pages made inaccessible (`PROT_NONE`) that keep their data.
    parked: BTreeMap<u64, u64>,
    brk_start: u64,
    brk: u64,
}

static VM: Mutex<Vm> = Mutex::new(Vm { areas: BTreeMap::new(), parked: BTreeMap::new(), brk_start: 0, brk: 0 });

const fn page_down(a: u64) -> u64 {
    a & !(PAGE - 1)
}

fn page_up(a: u64) -> Option<u64> {
    a.checked_add(PAGE - 1).map(page_down)
}

/// Whether `[start, end)` may hold program pages at all.
fn usable(start: u64, end: u64) -> bool {
    if start < MIN_ADDR || end > USER_END || start >= end {
        return false;
    }
    // Below 4 GiB only RAM (backed by its own frames); elsewhere anything.
    let mut p = start;
    while p < end.min(LOW_LIMIT) {
        if !mem::is_ram(p) {
            return false;
        }
        p += PAGE;
    }
    true
}

impl Vm {
    /// Areas overlapping `[start, end)`, split at its bounds.
    fn split(&mut self, start: u64, end: u64) {
        for at in [start, end] {
            if let Some((&s, &a)) = self.areas.range(..at).next_back()
                && a.end > at
            {
                self.areas.insert(s, Area { end: at, prot: a.prot });
                self.areas.insert(at, Area { end: a.end, prot: a.prot });
            }
        }
    }

    fn overlapping(&self, start: u64, end: u64) -> Vec<(u64, Area)> {
        let first = self.areas.range(..start).next_back().filter(|(_, a)| a.end > start).map(|(&s, &a)| (s, a));
        first.into_iter().chain(self.areas.range(start..end).map(|(&s, &a)| (s, a))).collect()
    }

    fn area_at(&self, addr: u64) -> Option<(u64, Area)> {
        self.areas.range(..=addr).next_back().filter(|(_, a)| a.end > addr).map(|(&s, &a)| (s, a))
    }

    /// Drops every page and area in `[start, end)`.
    fn remove(&mut self, start: u64, end: u64) {
        self.split(start, end);
        for (s, a) in self.overlapping(start, end) {
            self.areas.remove(&s);
            let mut p = s;
            while p < a.end {
                if let Some(pa) = user::unmap(p).or_else(|| self.parked.remove(&p)) {
                    mem::free_frames(pa, 1);
                }
                p += PAGE;
            }
        }
    }

    fn insert(&mut self, start: u64, end: u64, prot: Prot) {
        self.remove(start, end);
        self.areas.insert(start, Area { end, prot });
    }

    /// A free range of `len` bytes, top-down below `MMAP_TOP`.
    fn find_free(&self, len: u64) -> Option<u64> {
        let mut top = MMAP_TOP;
        for (&s, a) in self.areas.range(..MMAP_TOP).rev() {
            if a.end <= top && top - a.end >= len {
                return Some(top - len);
            }
            top = top.min(s);
        }
        top.checked_sub(len).filter(|&s| s >= LOW_LIMIT)
    }

    fn is_free(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end).is_empty()
    }

    /// Gives the page at `va` a frame (zeroed, or its own one in RAM).
    fn populate(&mut self, va: u64, prot: Prot) -> Result<(), Errno> {
        let pa = match self.parked.remove(&va) {
            Some(pa) => pa,
            None if mem::is_ram(va) => {
                if !mem::claim_frames(va, 1) {
                    return Err(ENOMEM);
                }
                user::zero_frame(va);
                va
            }
            None => mem::alloc_zeroed_frame().ok_or(ENOMEM)?,
        };
        if !user::map(va, pa, prot) {
            mem::free_frames(pa, 1);
            return Err(ENOMEM);
        }
        Ok(())
    }

    /// Makes the page at `addr` present for an access (a page fault, or a
    /// copy the kernel is about to make). False: the program may not.
    fn fault_in(&mut self, addr: u64, write: bool, exec: bool) -> bool {
        let Some((_, a)) = self.area_at(addr) else { return false };
        if !a.prot.read || (write && !a.prot.write) || (exec && !a.prot.exec) {
            return false;
        }
        let va = page_down(addr);
        if user::page(va).is_some() {
            return false; // present with these rights: the fault was something else
        }
        self.populate(va, a.prot).is_ok()
    }

    fn protect(&mut self, start: u64, end: u64, prot: Prot) -> Result<(), Errno> {
        let covered: u64 = self.overlapping(start, end).iter().map(|(s, a)| a.end.min(end) - (*s).max(start)).sum();
        if covered != end - start {
            return Err(ENOMEM);
        }
        self.split(start, end);
        for (s, a) in self.overlapping(start, end) {
            self.areas.insert(s, Area { end: a.end, prot });
            let mut p = s;
            while p < a.end {
                if prot.read {
                    let pa = self.parked.remove(&p).or_else(|| user::page(p).map(|(pa, _)| pa));
                    if let Some(pa) = pa
                        && !user::map(p, pa, prot)
                    {
                        return Err(ENOMEM);
                    }
                } else if let Some(pa) = user::page(p).map(|(pa, _)| pa) {
                    // Keep the data of a page made inaccessible. A frame of
                    // the identity map stays the program's while parked.
                    if pa == p {
                        user::map(p, pa, Prot { read: true, write: false, exec: false });
                    } else {
                        user::unmap(p);
                        self.parked.insert(p, pa);
                    }
                }
                p += PAGE;
            }
        }
        Ok(())
    }
}

/// Rights from Linux `PROT_*` bits.
pub fn prot_from_bits(bits: u64) -> Prot {
    Prot { read: bits & 7 != 0, write: bits & 2 != 0, exec: bits & 4 != 0 }
}

/// Maps `[start, start + len)` with `prot` at exactly that place, replacing
/// what was there (the loader, `MAP_FIXED`).
pub fn map_fixed(start: u64, len: u64, prot: Prot) -> Result<(), Errno> {
    let end = page_up(start.checked_add(len).ok_or(ENOMEM)?).ok_or(ENOMEM)?;
    let start = page_down(start);
    if !usable(start, end) {
        return Err(ENOMEM);
    }
    VM.lock().insert(start, end, prot);
    Ok(())
}

/// Maps `len` bytes anywhere free (near `hint` if that is free); returns
/// the address.
pub fn map_anywhere(hint: u64, len: u64, prot: Prot) -> Result<u64, Errno> {
    let len = page_up(len).ok_or(ENOMEM)?;
    let mut vm = VM.lock();
    let hint = page_down(hint);
    let start = match hint.checked_add(len) {
        Some(end) if hint != 0 && usable(hint, end) && vm.is_free(hint, end) => hint,
        _ => vm.find_free(len).ok_or(ENOMEM)?,
    };
    vm.insert(start, start + len, prot);
    Ok(start)
}

/// Whether `[start, start + len)` is entirely free (`MAP_FIXED_NOREPLACE`).
pub fn is_free(start: u64, len: u64) -> bool {
    start.checked_add(len).is_some_and(|end| VM.lock().is_free(page_down(start), end))
}

/// The rights of the area holding `addr`.
pub fn prot_at(addr: u64) -> Option<Prot> {
    VM.lock().area_at(addr).map(|(_, a)| a.prot)
}

/// Moves the contents of `len` bytes at `from` to `to` (`mremap`): pages
/// change address where they can, pages of the identity map are copied.
pub fn move_pages(from: u64, to: u64, len: u64) -> Result<(), Errno> {
    let mut off = 0;
    while off < len {
        let (src, dst) = (from + off, to + off);
        let moved = {
            let mut vm = VM.lock();
            let frame = vm.parked.remove(&src).or_else(|| user::page(src).map(|(pa, _)| pa));
            match frame {
                Some(pa) if pa != src => {
                    user::unmap(src);
                    if let Some(old) = user::unmap(dst) {
                        mem::free_frames(old, 1);
                    }
                    let prot = vm.area_at(dst).map(|(_, a)| a.prot).ok_or(EFAULT)?;
                    if !user::map(dst, pa, prot) {
                        return Err(ENOMEM);
                    }
                    true
                }
                Some(_) => false,
                None => true, // never touched: nothing to move
            }
        };
        if !moved {
            let data = read_vec(src, PAGE as usize)?;
            write(dst, &data)?;
        }
        off += PAGE;
    }
    Ok(())
}

/// `munmap`.
pub fn unmap(start: u64, len: u64) -> Result<(), Errno> {
    if !start.is_multiple_of(PAGE) || len == 0 {
        return Err(EINVAL);
    }
    let end = page_up(start.checked_add(len).ok_or(EINVAL)?).ok_or(EINVAL)?;
    VM.lock().remove(start, end);
    Ok(())
}

/// `mprotect`.
pub fn protect(start: u64, len: u64, prot: Prot) -> Result<(), Errno> {
    if !start.is_multiple_of(PAGE) {
        return Err(EINVAL);
    }
    let end = page_up(start.checked_add(len).ok_or(ENOMEM)?).ok_or(ENOMEM)?;
    if end == start {
        return Ok(());
    }
    VM.lock().protect(start, end, prot)
}

/// Sets where the heap of `brk` starts (after the program's image).
pub fn set_brk_start(addr: u64) {
    let mut vm = VM.lock();
    vm.brk_start = addr;
    vm.brk = addr;
}

/// `brk`: moves the break to `addr` when possible; returns the break.
pub fn brk(addr: u64) -> u64 {
    let mut vm = VM.lock();
    let (start, cur) = (vm.brk_start, vm.brk);
    if addr < start {
        return cur;
    }
    let (Some(old_end), Some(new_end)) = (page_up(cur), page_up(addr)) else { return cur };
    let rw = Prot { read: true, write: true, exec: false };
    if new_end > old_end {
        if !usable(old_end, new_end) || !vm.is_free(old_end, new_end) {
            return cur;
        }
        vm.insert(old_end, new_end, rw);
    } else if new_end < old_end {
        vm.remove(new_end, old_end);
    }
    vm.brk = addr;
    addr
}

/// A page fault of the program at `addr`: true when it was resolved (the
/// page is now there), false for a real fault.
pub fn page_fault(addr: u64, write: bool, exec: bool) -> bool {
    VM.lock().fault_in(addr, write, exec)
}

/// Runs `op` on the program's memory, faulting pages in as needed.
fn with_faults(
    addr: u64,
    len: usize,
    write: bool,
    mut op: impl FnMut() -> Result<(), user::BadAddress>,
) -> Result<(), Errno> {
    // Each retry makes one more page present; bound them by the range.
    for _ in 0..=(len as u64 / PAGE + 2) {
        match op() {
            Ok(()) => return Ok(()),
            Err(user::BadAddress(p)) => {
                if p < addr || !page_fault(p, write, false) {
                    return Err(EFAULT);
                }
            }
        }
    }
    Err(EFAULT)
}

/// Copies from the program's memory.
pub fn read(addr: u64, out: &mut [u8]) -> Result<(), Errno> {
    with_faults(addr, out.len(), false, || user::copy_in(addr, out))
}

/// Reads `len` bytes of the program's memory into a new buffer.
pub fn read_vec(addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| ENOMEM)?;
    v.resize(len, 0);
    read(addr, &mut v)?;
    Ok(v)
}

/// Copies into the program's memory.
pub fn write(addr: u64, data: &[u8]) -> Result<(), Errno> {
    with_faults(addr, data.len(), true, || user::copy_out(addr, data))
}

/// Reads a value the program passed by pointer.
pub fn read_u64(addr: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    read(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Writes a value the program gets back by pointer.
pub fn write_u64(addr: u64, v: u64) -> Result<(), Errno> {
    write(addr, &v.to_le_bytes())
}

/// Reads a `struct timespec` the program passed, in nanoseconds (EINVAL
/// for a negative time or nanoseconds out of range, as Linux).
pub fn read_timespec(addr: u64) -> Result<u64, Errno> {
    let (s, ns) = (read_u64(addr)? as i64, read_u64(addr + 8)? as i64);
    if s < 0 || !(0..1_000_000_000).contains(&ns) {
        return Err(EINVAL);
    }
    Ok((s as u64).saturating_mul(1_000_000_000).saturating_add(ns as u64))
}

/// Reads `cnt` `struct iovec`s (base, length); the caller bounds `cnt`.
pub fn read_iovecs(addr: u64, cnt: u64) -> Result<Vec<(u64, u64)>, Errno> {
    let raw = read_vec(addr, cnt as usize * 16)?;
    Ok(raw
        .chunks_exact(16)
        .map(|c| (u64::from_le_bytes(c[..8].try_into().unwrap()), u64::from_le_bytes(c[8..].try_into().unwrap())))
        .collect())
}

/// Reads a NUL-terminated string of at most `max` bytes.
pub fn read_cstr(addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut p = addr;
    loop {
        // Up to the end of the page, so no read crosses into an unmapped one.
        let chunk = (PAGE - p % PAGE) as usize;
        let mut buf = [0u8; 256];
        let n = chunk.min(buf.len());
        read(p, &mut buf[..n])?;
        if let Some(i) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..i]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > max {
            return Err(crate::errno::ENAMETOOLONG);
        }
        p += n as u64;
    }
}
