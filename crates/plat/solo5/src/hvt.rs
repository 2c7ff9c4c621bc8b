//! The Solo5 hvt guest ABI (Solo5 0.12.x, HVT_ABI_VERSION 2): the guest's
//! side of [`unikit_abi::hvt`], which holds every ABI fact (hypercall
//! numbers and argument structures, `struct hvt_boot_info`, the "ABI1"
//! note) with its source in Solo5's headers. The machine the tender sets
//! up (tenders/hvt/hvt_cpu_x86_64.h, hvt_kvm_x86_64.c, hvt_boot_info.c):
//! long mode, identity map of guest memory, nothing mapped below 0x10000,
//! the boot info page at 0x10000, read-only.
//!
//! A hypercall is a 32-bit `out` to port HVT_HYPERCALL_PIO_BASE + number,
//! with the guest-physical address of the argument struct as the value. The
//! tender reads and writes the struct before the `out` instruction retires.
use core::arch::asm;

use unikit_abi::hvt::{
    ABI1_NOTE_SIZE, HYPERCALL_PIO_BASE, HcBlockIo, HcHalt, HcNetIo, HcPoll, HcPuts, HcWalltime, abi1_note, hc, result,
    x86,
};
pub use unikit_abi::hvt::{BootInfo, HVT_ABI_TARGET, HVT_ABI_VERSION};

/// include/hvt_abi.h: lowest guest address the image may occupy.
pub const HVT_GUEST_MIN_BASE: u64 = unikit_abi::hvt::GUEST_MIN_BASE;
/// tenders/hvt/hvt_cpu_x86_64.h: X86_BOOT_INFO_BASE; the tender's low
/// memory (boot info, manifest, command line) is [this, HVT_GUEST_MIN_BASE).
pub const BOOT_INFO_BASE: u64 = x86::BOOT_INFO_BASE;
/// tenders/hvt/hvt_cpu_x86_64.h: X86_GUEST_MAX_MEM_SIZE (4 GiB, so every
/// guest address fits the 32-bit hypercall argument).
pub const MAX_MEM_SIZE: u64 = x86::MAX_MEM_SIZE;

/// include/solo5.h: solo5_result_t, the `ret` of device hypercalls.
pub const SOLO5_R_OK: i32 = result::OK;
pub const SOLO5_R_AGAIN: i32 = result::AGAIN;

/// The Solo5 "ABI1" note (include/elf_abi.h, `struct abi1_note`), 4-aligned.
#[repr(C, align(4))]
pub struct AbiNote([u8; ABI1_NOTE_SIZE]);

#[used]
#[unsafe(link_section = ".note.solo5.abi")]
pub static SOLO5_ABI_NOTE: AbiNote = AbiNote(abi1_note(HVT_ABI_TARGET, HVT_ABI_VERSION));

/// Issues hypercall `nr` with `arg`.
///
/// # Safety
/// `arg` must be the argument struct of hypercall `nr`, and memory is
/// identity mapped (its address is its guest-physical address).
#[inline(always)]
unsafe fn hypercall<T>(nr: u16, arg: &mut T) {
    let gpa = arg as *mut T as u64;
    debug_assert!(gpa < MAX_MEM_SIZE);
    // SAFETY: the tender handles the port exit synchronously; the asm block
    // is not `nomem`, so the compiler assumes it reads and writes `*arg`
    // (whose address escaped through the `as` cast above).
    unsafe {
        asm!("out dx, eax", in("dx") HYPERCALL_PIO_BASE + nr, in("eax") gpa as u32, options(nostack, preserves_flags))
    };
}

/// Guest-physical address of a buffer (identity mapped).
fn gpa<T>(p: *const T) -> u64 {
    p as u64
}

pub fn puts(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut a = HcPuts { data: gpa(bytes.as_ptr()), len: bytes.len() as u64 };
    // SAFETY: HVT_HYPERCALL_PUTS takes `struct hvt_hc_puts`.
    unsafe { hypercall(hc::PUTS, &mut a) };
}

pub fn walltime_ns() -> u64 {
    let mut a = HcWalltime { nsecs: 0 };
    // SAFETY: HVT_HYPERCALL_WALLTIME takes `struct hvt_hc_walltime`.
    unsafe { hypercall(hc::WALLTIME, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.nsecs) }
}

/// Blocks in the tender until a network device is readable or `timeout_ns`
/// passes; returns the set of readable handles (bit = manifest index).
pub fn poll(timeout_ns: u64) -> u64 {
    let mut a = HcPoll { timeout_nsecs: timeout_ns, ready_set: 0, ret: 0 };
    // SAFETY: HVT_HYPERCALL_POLL takes `struct hvt_hc_poll`.
    unsafe { hypercall(hc::POLL, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.ready_set) }
}

pub fn halt(code: i32) -> ! {
    let mut a = HcHalt { cookie: 0, exit_status: code };
    // SAFETY: HVT_HYPERCALL_HALT takes `struct hvt_hc_halt`; a null cookie
    // means "no trap frame to look at".
    unsafe { hypercall(hc::HALT, &mut a) };
    // The tender never resumes a halted guest.
    arch::cpu::halt_forever()
}

/// Reads `buf.len()` bytes at byte `offset` of block device `handle`.
/// Returns the tender's `solo5_result_t`.
pub fn block_read(handle: u64, offset: u64, buf: &mut [u8]) -> i32 {
    let mut a = HcBlockIo { handle, offset, data: gpa(buf.as_mut_ptr()), len: buf.len() as u64, ret: -1 };
    // SAFETY: HVT_HYPERCALL_BLOCK_READ takes `struct hvt_hc_block_read`;
    // the tender writes at most `len` bytes into `buf`.
    unsafe { hypercall(hc::BLOCK_READ, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.ret) }
}

pub fn block_write(handle: u64, offset: u64, buf: &[u8]) -> i32 {
    let mut a = HcBlockIo { handle, offset, data: gpa(buf.as_ptr()), len: buf.len() as u64, ret: -1 };
    // SAFETY: HVT_HYPERCALL_BLOCK_WRITE takes `struct hvt_hc_block_write`.
    unsafe { hypercall(hc::BLOCK_WRITE, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.ret) }
}

/// Receives one frame into `buf`: (`solo5_result_t`, length the tender
/// reports; the caller checks it against `buf`).
pub fn net_read(handle: u64, buf: &mut [u8]) -> (i32, u64) {
    let mut a = HcNetIo { handle, data: gpa(buf.as_mut_ptr()), len: buf.len() as u64, ret: -1 };
    // SAFETY: HVT_HYPERCALL_NET_READ takes `struct hvt_hc_net_read`; the
    // tender writes at most `len` bytes into `buf`.
    unsafe { hypercall(hc::NET_READ, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { (core::ptr::read_volatile(&a.ret), core::ptr::read_volatile(&a.len)) }
}

pub fn net_write(handle: u64, frame: &[u8]) -> i32 {
    let mut a = HcNetIo { handle, data: gpa(frame.as_ptr()), len: frame.len() as u64, ret: -1 };
    // SAFETY: HVT_HYPERCALL_NET_WRITE takes `struct hvt_hc_net_write`.
    unsafe { hypercall(hc::NET_WRITE, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.ret) }
}

/// A range of the tender's read-only low memory, or None if `[addr,
/// addr + len)` is not inside it.
pub fn low_mem(addr: u64, len: u64) -> Option<&'static [u8]> {
    let end = addr.checked_add(len)?;
    if addr < BOOT_INFO_BASE || end > HVT_GUEST_MIN_BASE {
        return None;
    }
    // SAFETY: [0x10000, 0x100000) is mapped (read-only) by the tender's page
    // tables and nothing writes it while the guest runs; the kernel copies
    // what it keeps before switching to its own page tables.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) })
}

/// Reads `struct hvt_boot_info` at `addr` (from the tender: `rdi` at entry).
pub fn read_boot_info(addr: u64) -> Option<BootInfo> {
    BootInfo::from_bytes(low_mem(addr, core::mem::size_of::<BootInfo>() as u64)?)
}

/// The command line: a NUL-terminated string of at most HVT_CMDLINE_SIZE
/// bytes in low memory. None if it is not where it must be.
pub fn cmdline(addr: u64) -> Option<&'static [u8]> {
    let avail = (unikit_abi::hvt::CMDLINE_SIZE as u64).min(HVT_GUEST_MIN_BASE.saturating_sub(addr));
    unikit_abi::hvt::cmdline(low_mem(addr, avail)?)
}
