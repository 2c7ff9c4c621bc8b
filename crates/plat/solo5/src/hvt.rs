//! The Solo5 hvt guest ABI (Solo5 0.12.x, HVT_ABI_VERSION 2), written from
//! Solo5's public headers:
//! - include/hvt_abi.h: hypercall convention, numbers and argument structs,
//!   `struct hvt_boot_info`, HVT_GUEST_MIN_BASE, HVT_CMDLINE_SIZE;
//! - include/elf_abi.h: the "ABI1" note (`.note.solo5.abi`);
//! - tenders/hvt/hvt_cpu_x86_64.h, hvt_kvm_x86_64.c, hvt_boot_info.c: the
//!   machine the tender sets up (long mode, identity map of guest memory,
//!   nothing mapped below 0x10000, the boot info page at 0x10000, read-only).
//!
//! A hypercall is a 32-bit `out` to port HVT_HYPERCALL_PIO_BASE + number,
//! with the guest-physical address of the argument struct as the value. The
//! tender reads and writes the struct before the `out` instruction retires.
use core::arch::asm;

/// include/hvt_abi.h: HVT_ABI_VERSION.
pub const HVT_ABI_VERSION: u32 = 2;
/// include/elf_abi.h: enum abi_target, HVT_ABI_TARGET.
pub const HVT_ABI_TARGET: u32 = 1;
/// include/hvt_abi.h: lowest guest address the image may occupy.
pub const HVT_GUEST_MIN_BASE: u64 = 0x10_0000;
/// include/hvt_abi.h (x86_64): HVT_HYPERCALL_PIO_BASE.
const HVT_HYPERCALL_PIO_BASE: u16 = 0x500;
/// include/hvt_abi.h: HVT_CMDLINE_SIZE (including the NUL).
pub const HVT_CMDLINE_SIZE: u64 = 8192;
/// tenders/hvt/hvt_cpu_x86_64.h: X86_BOOT_INFO_BASE; the tender's low
/// memory (boot info, manifest, command line) is [this, HVT_GUEST_MIN_BASE).
pub const BOOT_INFO_BASE: u64 = 0x1_0000;
/// tenders/hvt/hvt_cpu_x86_64.h: X86_GUEST_MAX_MEM_SIZE (4 GiB, so every
/// guest address fits the 32-bit hypercall argument).
pub const MAX_MEM_SIZE: u64 = 4 << 30;

// include/hvt_abi.h: enum hvt_hypercall.
const HC_WALLTIME: u16 = 1;
const HC_PUTS: u16 = 2;
const HC_POLL: u16 = 3;
const HC_BLOCK_WRITE: u16 = 4;
const HC_BLOCK_READ: u16 = 5;
const HC_NET_WRITE: u16 = 6;
const HC_NET_READ: u16 = 7;
const HC_HALT: u16 = 8;

/// include/solo5.h: solo5_result_t, the `ret` of device hypercalls.
pub const SOLO5_R_OK: i32 = 0;
pub const SOLO5_R_AGAIN: i32 = 1;

/// include/hvt_abi.h: `struct hvt_boot_info` (x86_64 layout). Only the ABI
/// v2 fields are read; the ring-I/O fields the tender may append are
/// ignored (an ABI v2 guest leaves `guest_features` 0 and the tender keeps
/// using hypercalls).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BootInfo {
    pub mem_size: u64,
    pub kernel_end: u64,
    pub cpu_cycle_freq: u64,
    pub cmdline: u64,
    pub mft: u64,
}

#[repr(C)]
struct Walltime {
    nsecs: u64,
}

#[repr(C)]
struct Puts {
    data: u64,
    len: u64,
}

/// `struct hvt_hc_block_write` and `struct hvt_hc_block_read` (same layout).
#[repr(C)]
struct BlockIo {
    handle: u64,
    offset: u64,
    data: u64,
    len: u64,
    ret: i32,
}

/// `struct hvt_hc_net_write` and `struct hvt_hc_net_read` (same layout).
#[repr(C)]
struct NetIo {
    handle: u64,
    data: u64,
    len: u64,
    ret: i32,
}

#[repr(C)]
struct Poll {
    timeout_nsecs: u64,
    ready_set: u64,
    ret: i32,
}

#[repr(C)]
struct Halt {
    cookie: u64,
    exit_status: i32,
}

/// The Solo5 "ABI1" note (include/elf_abi.h, `struct abi1_note`): a 20-byte
/// note header (namesz 6, descsz 16, type "ABI1", name "Solo5" padded to 8)
/// and `struct abi1_info { abi_target, abi_version, reserved0, reserved1 }`.
#[repr(C, align(4))]
pub struct AbiNote([u32; 9]);

#[used]
#[unsafe(link_section = ".note.solo5.abi")]
pub static SOLO5_ABI_NOTE: AbiNote = AbiNote([
    6,
    16,
    0x3149_4241, // ABI1_NOTE_TYPE, "ABI1"
    u32::from_le_bytes(*b"Solo"),
    u32::from_le_bytes(*b"5\0\0\0"),
    HVT_ABI_TARGET,
    HVT_ABI_VERSION,
    0,
    0,
]);

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
        asm!("out dx, eax", in("dx") HVT_HYPERCALL_PIO_BASE + nr, in("eax") gpa as u32, options(nostack, preserves_flags))
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
    let mut a = Puts { data: gpa(bytes.as_ptr()), len: bytes.len() as u64 };
    // SAFETY: HVT_HYPERCALL_PUTS takes `struct hvt_hc_puts`.
    unsafe { hypercall(HC_PUTS, &mut a) };
}

pub fn walltime_ns() -> u64 {
    let mut a = Walltime { nsecs: 0 };
    // SAFETY: HVT_HYPERCALL_WALLTIME takes `struct hvt_hc_walltime`.
    unsafe { hypercall(HC_WALLTIME, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.nsecs) }
}

/// Blocks in the tender until a network device is readable or `timeout_ns`
/// passes; returns the set of readable handles (bit = manifest index).
pub fn poll(timeout_ns: u64) -> u64 {
    let mut a = Poll { timeout_nsecs: timeout_ns, ready_set: 0, ret: 0 };
    // SAFETY: HVT_HYPERCALL_POLL takes `struct hvt_hc_poll`.
    unsafe { hypercall(HC_POLL, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.ready_set) }
}

pub fn halt(code: i32) -> ! {
    let mut a = Halt { cookie: 0, exit_status: code };
    // SAFETY: HVT_HYPERCALL_HALT takes `struct hvt_hc_halt`; a null cookie
    // means "no trap frame to look at".
    unsafe { hypercall(HC_HALT, &mut a) };
    // The tender never resumes a halted guest.
    arch::cpu::halt_forever()
}

/// Reads `buf.len()` bytes at byte `offset` of block device `handle`.
/// Returns the tender's `solo5_result_t`.
pub fn block_read(handle: u64, offset: u64, buf: &mut [u8]) -> i32 {
    let mut a = BlockIo { handle, offset, data: gpa(buf.as_mut_ptr()), len: buf.len() as u64, ret: -1 };
    // SAFETY: HVT_HYPERCALL_BLOCK_READ takes `struct hvt_hc_block_read`;
    // the tender writes at most `len` bytes into `buf`.
    unsafe { hypercall(HC_BLOCK_READ, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.ret) }
}

pub fn block_write(handle: u64, offset: u64, buf: &[u8]) -> i32 {
    let mut a = BlockIo { handle, offset, data: gpa(buf.as_ptr()), len: buf.len() as u64, ret: -1 };
    // SAFETY: HVT_HYPERCALL_BLOCK_WRITE takes `struct hvt_hc_block_write`.
    unsafe { hypercall(HC_BLOCK_WRITE, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { core::ptr::read_volatile(&a.ret) }
}

/// Receives one frame into `buf`: (`solo5_result_t`, length the tender
/// reports; the caller checks it against `buf`).
pub fn net_read(handle: u64, buf: &mut [u8]) -> (i32, u64) {
    let mut a = NetIo { handle, data: gpa(buf.as_mut_ptr()), len: buf.len() as u64, ret: -1 };
    // SAFETY: HVT_HYPERCALL_NET_READ takes `struct hvt_hc_net_read`; the
    // tender writes at most `len` bytes into `buf`.
    unsafe { hypercall(HC_NET_READ, &mut a) };
    // SAFETY: reading back what the tender wrote.
    unsafe { (core::ptr::read_volatile(&a.ret), core::ptr::read_volatile(&a.len)) }
}

pub fn net_write(handle: u64, frame: &[u8]) -> i32 {
    let mut a = NetIo { handle, data: gpa(frame.as_ptr()), len: frame.len() as u64, ret: -1 };
    // SAFETY: HVT_HYPERCALL_NET_WRITE takes `struct hvt_hc_net_write`.
    unsafe { hypercall(HC_NET_WRITE, &mut a) };
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
    let b = low_mem(addr, core::mem::size_of::<BootInfo>() as u64)?;
    let f = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    Some(BootInfo { mem_size: f(0), kernel_end: f(1), cpu_cycle_freq: f(2), cmdline: f(3), mft: f(4) })
}

/// The command line: a NUL-terminated string of at most HVT_CMDLINE_SIZE
/// bytes in low memory. None if it is not where it must be.
pub fn cmdline(addr: u64) -> Option<&'static [u8]> {
    let avail = HVT_CMDLINE_SIZE.min(HVT_GUEST_MIN_BASE.saturating_sub(addr));
    let bytes = low_mem(addr, avail)?;
    let n = bytes.iter().position(|&c| c == 0)?;
    Some(&bytes[..n])
}
