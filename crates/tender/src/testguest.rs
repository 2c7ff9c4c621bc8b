//! Building tiny Solo5 hvt executables by hand, for tests: the notes, a
//! manifest, and guests made of a few hypercall `outl`s. Used by the
//! tender's own tests and by the CLI's tests (tests/solo5.rs); not part of
//! the tender's behaviour.

use crate::abi;
use crate::elf::{PF_R, PF_X, PT_LOAD, PT_NOTE, Phdr};

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;

/// A note record with the Solo5 name and `desc` (already padded).
pub fn solo5_note(ntype: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&6u32.to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&ntype.to_le_bytes());
    n.extend_from_slice(b"Solo5\0\0\0");
    n.extend_from_slice(desc);
    while n.len() % 4 != 0 {
        n.push(0);
    }
    n
}

pub fn abi_note(target: u32, version: u32) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [target, version, 0, 0] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    solo5_note(abi::ABI1_NOTE_TYPE, &d)
}

/// The MFT1 note for a manifest body (4 bytes of alignment padding first).
pub fn mft_note(mft: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 4];
    d.extend_from_slice(mft);
    solo5_note(abi::MFT1_NOTE_TYPE, &d)
}

/// `struct mft` with the reserved first entry and `devs` (name, type).
pub fn mft(devs: &[(&str, u32)]) -> Vec<u8> {
    let n = devs.len() + 1;
    let mut m = vec![0u8; abi::MFT_HDR_SIZE + n * abi::MFT_ENTRY_SIZE];
    m[0..4].copy_from_slice(&abi::MFT_VERSION.to_le_bytes());
    m[4..8].copy_from_slice(&(n as u32).to_le_bytes());
    let e0 = abi::MFT_HDR_SIZE;
    m[e0 + 68..e0 + 72].copy_from_slice(&abi::mft_type::RESERVED_FIRST.to_le_bytes());
    for (i, (name, ty)) in devs.iter().enumerate() {
        let e = abi::MFT_HDR_SIZE + (i + 1) * abi::MFT_ENTRY_SIZE;
        m[e..e + name.len()].copy_from_slice(name.as_bytes());
        m[e + 68..e + 72].copy_from_slice(&ty.to_le_bytes());
    }
    m
}

/// A minimal static x86_64 executable: one RX segment at 0x100000 with
/// `code`, then one PT_NOTE per entry of `notes`.
pub fn exe(code: &[u8], notes: &[Vec<u8>]) -> Vec<u8> {
    let phnum = 1 + notes.len();
    let hdrs = EHDR_SIZE + phnum * PHDR_SIZE;
    let code_off = 0x1000usize;
    let mut f = vec![0u8; code_off];
    f.extend_from_slice(code);
    let mut note_offs = Vec::new();
    for n in notes {
        while !f.len().is_multiple_of(8) {
            f.push(0);
        }
        note_offs.push(f.len());
        f.extend_from_slice(n);
    }
    assert!(hdrs <= code_off);
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[0x10..0x12].copy_from_slice(&ET_EXEC.to_le_bytes());
    f[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
    f[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
    f[0x18..0x20].copy_from_slice(&0x10_0000u64.to_le_bytes());
    f[0x20..0x28].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
    f[0x34..0x36].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    f[0x36..0x38].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    f[0x38..0x3a].copy_from_slice(&(phnum as u16).to_le_bytes());
    let mut ph = |i: usize, p: Phdr| {
        let o = EHDR_SIZE + i * PHDR_SIZE;
        f[o..o + 4].copy_from_slice(&p.p_type.to_le_bytes());
        f[o + 4..o + 8].copy_from_slice(&p.flags.to_le_bytes());
        f[o + 8..o + 16].copy_from_slice(&p.offset.to_le_bytes());
        f[o + 16..o + 24].copy_from_slice(&p.vaddr.to_le_bytes());
        f[o + 24..o + 32].copy_from_slice(&p.vaddr.to_le_bytes());
        f[o + 32..o + 40].copy_from_slice(&p.filesz.to_le_bytes());
        f[o + 40..o + 48].copy_from_slice(&p.memsz.to_le_bytes());
        f[o + 48..o + 56].copy_from_slice(&p.align.to_le_bytes());
    };
    let len = code.len() as u64;
    ph(
        0,
        Phdr {
            p_type: PT_LOAD,
            flags: PF_R | PF_X,
            offset: code_off as u64,
            vaddr: 0x10_0000,
            paddr: 0x10_0000,
            filesz: len,
            memsz: len,
            align: 0x1000,
        },
    );
    for (i, n) in notes.iter().enumerate() {
        ph(
            1 + i,
            Phdr {
                p_type: PT_NOTE,
                flags: PF_R,
                offset: note_offs[i] as u64,
                vaddr: 0,
                paddr: 0,
                filesz: n.len() as u64,
                memsz: n.len() as u64,
                align: 4,
            },
        );
    }
    f
}

/// Machine code: `outl(0x500 + nr, arg)` for each call, then `hlt`.
pub fn hypercalls(calls: &[(u16, u32)]) -> Vec<u8> {
    let mut c = Vec::new();
    for &(nr, arg) in calls {
        c.push(0xba); // mov edx, imm32
        c.extend_from_slice(&(abi::HYPERCALL_PIO_BASE as u32 + nr as u32).to_le_bytes());
        c.push(0xb8); // mov eax, imm32
        c.extend_from_slice(&arg.to_le_bytes());
        c.push(0xef); // out dx, eax
    }
    c.push(0xf4); // hlt
    c
}

/// Where [`guest`] puts things: code at the entry point, then its data.
pub const CODE: u64 = 0x10_0000;
pub const PUTS_ARGS: u64 = 0x10_0100;
pub const HALT_ARGS: u64 = 0x10_0110;
pub const MESSAGE: u64 = 0x10_0200;

/// An executable with one read-only segment: `code` at [`CODE`], a puts
/// argument structure (`puts_data`, `puts_len`) at [`PUTS_ARGS`], a halt
/// structure (no cookie, `status`) at [`HALT_ARGS`] and `message` at
/// [`MESSAGE`]; plus the given notes.
pub fn guest(code: &[u8], puts_data: u64, puts_len: u64, status: i32, message: &[u8], notes: &[Vec<u8>]) -> Vec<u8> {
    let mut img = vec![0u8; (MESSAGE - CODE) as usize];
    assert!(code.len() <= (PUTS_ARGS - CODE) as usize);
    img[..code.len()].copy_from_slice(code);
    let p = (PUTS_ARGS - CODE) as usize;
    img[p..p + 8].copy_from_slice(&puts_data.to_le_bytes());
    img[p + 8..p + 16].copy_from_slice(&puts_len.to_le_bytes());
    let h = (HALT_ARGS - CODE) as usize;
    img[h + 8..h + 12].copy_from_slice(&status.to_le_bytes());
    img.extend_from_slice(message);
    exe(&img, notes)
}

/// The standard notes: hvt ABI 2 and a manifest with `devs`.
pub fn hvt_notes(devs: &[(&str, u32)]) -> Vec<Vec<u8>> {
    vec![abi_note(abi::HVT_ABI_TARGET, abi::HVT_ABI_VERSION), mft_note(&mft(devs))]
}

/// A guest that prints `message` and halts with `status`.
pub fn hello(message: &[u8], status: i32) -> Vec<u8> {
    let code = hypercalls(&[(abi::hc::PUTS, PUTS_ARGS as u32), (abi::hc::HALT, HALT_ARGS as u32)]);
    guest(&code, MESSAGE, message.len() as u64, status, message, &hvt_notes(&[]))
}

/// A guest whose puts buffer is `len` bytes at `data` (e.g. outside memory).
pub fn bad_puts(data: u64, len: u64) -> Vec<u8> {
    let code = hypercalls(&[(abi::hc::PUTS, PUTS_ARGS as u32), (abi::hc::HALT, HALT_ARGS as u32)]);
    guest(&code, data, len, 0, b"", &hvt_notes(&[]))
}

/// A guest that passes `arg` as the address of hypercall `nr`'s structure.
pub fn bad_struct(nr: u16, arg: u32) -> Vec<u8> {
    guest(&hypercalls(&[(nr, arg)]), 0, 0, 0, b"", &hvt_notes(&[]))
}
