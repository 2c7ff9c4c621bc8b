//! The x86_64 machine state a Solo5 hvt guest starts in
//! (tenders/hvt/hvt_cpu_x86_64.{c,h}, hvt_kvm_x86_64.c `hvt_vcpu_init`):
//! long mode with paging on, an identity map of all guest memory (2 MiB
//! pages, except the first 2 MiB which use 4 KiB pages so that the lowest
//! 64 KiB are unmapped and 64 KiB..1 MiB is read-only), a three-entry GDT,
//! `%rdi` = the boot info, `%rsp` = top of memory - 8.

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use crate::abi::x86::*;
use crate::mem::{BadRange, GuestMem};

/// Write the page tables for `mem_size` bytes of guest memory.
pub fn write_page_tables(mem: &GuestMem, mem_size: u64) -> Result<(), BadRange> {
    assert!(mem_size.is_multiple_of(GUEST_PAGE_SIZE) && (GUEST_PAGE_SIZE..=MAX_MEM_SIZE).contains(&mem_size));
    // PML4[0] -> PDPT; PDPT[0..4] -> the four page directories.
    mem.write_bytes(PML4_BASE, &[0; 0x1000])?;
    mem.write_bytes(PDPTE_BASE, &[0; 0x1000])?;
    mem.write_bytes(PDE_BASE, &[0; 0x4000])?;
    mem.write_bytes(PT0E_BASE, &[0; 0x1000])?;
    mem.write_u64(PML4_BASE, PDPTE_BASE | PTE_P | PTE_RW)?;
    for i in 0..4 {
        mem.write_u64(PDPTE_BASE + 8 * i, (PDE_BASE + 0x1000 * i) | PTE_P | PTE_RW)?;
    }
    // PDE[0] -> PT0: 4 KiB pages for the first 2 MiB.
    mem.write_u64(PDE_BASE, PT0E_BASE | PTE_P | PTE_RW)?;
    let mut paddr = 0;
    while paddr < GUEST_PAGE_SIZE {
        let pte = if paddr < PT0_MAP_START {
            0 // zero page, GDT, page tables: not present
        } else if paddr < crate::abi::GUEST_MIN_BASE {
            paddr | PTE_P // boot info, manifest, command line: read-only
        } else {
            paddr | PTE_P | PTE_RW
        };
        mem.write_u64(PT0E_BASE + (paddr / 0x1000) * 8, pte)?;
        paddr += 0x1000;
    }
    // The rest: 2 MiB pages; PDEs are contiguous across the four directories.
    let mut pde = PDE_BASE + 8;
    while paddr < mem_size {
        mem.write_u64(pde, paddr | PTE_P | PTE_RW | PTE_PS)?;
        pde += 8;
        paddr += GUEST_PAGE_SIZE;
    }
    Ok(())
}

fn code_segment() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: GDT_CODE * 8,
        type_: 9, // execute-only, accessed
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    }
}

fn data_segment() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: GDT_DATA * 8,
        type_: 3, // read-write, accessed
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        ..Default::default()
    }
}

/// A GDT descriptor for a segment (`sreg_to_desc`).
fn descriptor(s: &kvm_segment) -> u64 {
    let limit = if s.g != 0 { (s.limit as u64 & 0xffff_f000) >> 12 } else { s.limit as u64 };
    let base = s.base;
    (limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | (s.type_ as u64 & 0xf) << 40
        | (s.s as u64 & 1) << 44
        | (s.dpl as u64 & 3) << 45
        | (s.present as u64 & 1) << 47
        | ((limit >> 16) & 0xf) << 48
        | (s.avl as u64 & 1) << 52
        | (s.l as u64 & 1) << 53
        | (s.db as u64 & 1) << 54
        | (s.g as u64 & 1) << 55
        | ((base >> 24) & 0xff) << 56
}

/// Write the GDT: null, code, data.
pub fn write_gdt(mem: &GuestMem) -> Result<(), BadRange> {
    mem.write_u64(GDT_BASE, 0)?;
    mem.write_u64(GDT_BASE + 8 * GDT_CODE as u64, descriptor(&code_segment()))?;
    mem.write_u64(GDT_BASE + 8 * GDT_DATA as u64, descriptor(&data_segment()))
}

/// Special registers: long mode, paging, the segments above.
pub fn sregs(mut s: kvm_sregs) -> kvm_sregs {
    s.cr0 = CR0_INIT;
    s.cr3 = CR3_INIT;
    s.cr4 = CR4_INIT;
    s.efer = EFER_INIT;
    s.cs = code_segment();
    let data = data_segment();
    s.ss = data;
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.gdt.base = GDT_BASE;
    s.gdt.limit = GDT_ENTRIES * 8 - 1;
    s.tr = kvm_segment { selector: 0, base: 0, limit: 0, type_: 11, present: 1, ..Default::default() };
    s.ldt = kvm_segment { selector: 0, unusable: 1, ..Default::default() };
    s
}

/// General registers: entry point, boot info in %rdi, stack at the top.
pub fn regs(entry: u64, mem_size: u64) -> kvm_regs {
    kvm_regs { rip: entry, rflags: RFLAGS_INIT, rsp: mem_size - 8, rdi: BOOT_INFO_BASE, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tables_identity_map() {
        let size = 8 << 20;
        let mem = GuestMem::new(size).unwrap();
        write_page_tables(&mem, size).unwrap();
        assert_eq!(mem.read_u64(PML4_BASE), Ok(0x3003));
        assert_eq!(mem.read_u64(PDPTE_BASE), Ok(0x4003));
        assert_eq!(mem.read_u64(PDPTE_BASE + 24), Ok(0x7003));
        assert_eq!(mem.read_u64(PDE_BASE), Ok(0x8003));
        assert_eq!(mem.read_u64(PT0E_BASE), Ok(0)); // zero page unmapped
        assert_eq!(mem.read_u64(PT0E_BASE + 15 * 8), Ok(0)); // 0xf000 unmapped
        assert_eq!(mem.read_u64(PT0E_BASE + 16 * 8), Ok(0x10001)); // boot info, read-only
        assert_eq!(mem.read_u64(PT0E_BASE + 0xff * 8), Ok(0xff001));
        assert_eq!(mem.read_u64(PT0E_BASE + 0x100 * 8), Ok(0x100003));
        assert_eq!(mem.read_u64(PDE_BASE + 8), Ok(0x200083));
        assert_eq!(mem.read_u64(PDE_BASE + 24), Ok(0x600083));
        assert_eq!(mem.read_u64(PDE_BASE + 32), Ok(0)); // beyond 8 MiB
    }

    #[test]
    fn gdt_matches_the_usual_flat_descriptors() {
        let mem = GuestMem::new(2 << 20).unwrap();
        write_gdt(&mem).unwrap();
        assert_eq!(mem.read_u64(GDT_BASE + 8), Ok(0x00af_9900_0000_ffff));
        assert_eq!(mem.read_u64(GDT_BASE + 16), Ok(0x00cf_9300_0000_ffff));
        let s = sregs(kvm_sregs::default());
        assert_eq!(s.cs.selector, 8);
        assert_eq!(s.ds.selector, 16);
        assert_eq!(s.gdt.limit, 23);
        assert_eq!(s.cr0, 0x8001_0021);
        assert_eq!(s.efer, 0x500);
        let r = regs(0x10_0000, 2 << 20);
        assert_eq!((r.rip, r.rsp, r.rdi, r.rflags), (0x10_0000, 0x1f_fff8, 0x1_0000, 2));
    }
}
