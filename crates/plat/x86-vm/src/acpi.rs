//! Just enough ACPI to power the machine off: the RSDP, the RSDT or XSDT,
//! the FADT's PM1 control ports and the DSDT's `\_S5` package.
//!
//! Firmware-booted VMs (VMware, Hyper-V) stop only this way: they have no
//! exit device, and a reset reboots them. A byte search for the `_S5_`
//! name replaces an AML interpreter (the `aml` crate would cost the image
//! tens of KiB for one package of constants); it is how small kernels
//! have long done it. Every table is read through [`PhysRead`], its length
//! and checksum checked: the firmware wrote them, not us.

/// Reads guest-physical memory (the platform maps it first).
pub trait PhysRead {
    /// Fills `buf` from `addr`, or says the range cannot be read.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// How to enter S5 (soft off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerOff {
    /// PM1a control port.
    pub pm1a_cnt: u16,
    /// PM1b control port (0: none).
    pub pm1b_cnt: u16,
    /// `SLP_TYPa` and `SLP_TYPb` from `\_S5`.
    pub slp_typ: (u8, u8),
}

impl PowerOff {
    /// The value to write to PM1x_CNT: SLP_TYP in bits 10-12, SLP_EN (bit 13).
    pub fn value(typ: u8) -> u16 {
        (u16::from(typ & 7) << 10) | (1 << 13)
    }
}

/// Largest table we read (QEMU's DSDT is about 8 KiB, VMware's about 100).
const MAX_TABLE: usize = 1 << 20;

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// The RSDP at `addr`, if one is there: (RSDT, XSDT) addresses.
fn rsdp_at(mem: &dyn PhysRead, addr: u64) -> Option<(u32, u64)> {
    let mut b = [0u8; 36];
    if !mem.read(addr, &mut b[..20]) || &b[..8] != b"RSD PTR " || !checksum_ok(&b[..20]) {
        return None;
    }
    let rsdt = u32_at(&b, 16)?;
    // Revision 2 adds the XSDT, under a checksum of its own.
    if b[15] >= 2 && mem.read(addr + 20, &mut b[20..]) && checksum_ok(&b) {
        return Some((rsdt, u64_at(&b, 24)?));
    }
    Some((rsdt, 0))
}

/// Finds the RSDP: where the boot loader said (`hint`), else in the first
/// KiB of the EBDA or the BIOS area 0xE0000-0xFFFFF, on 16-byte boundaries.
pub fn find_rsdp(mem: &dyn PhysRead, hint: u64) -> Option<u64> {
    if hint != 0 && rsdp_at(mem, hint).is_some() {
        return Some(hint);
    }
    let mut seg = [0u8; 2];
    let ebda = if mem.read(0x40e, &mut seg) { u64::from(u16::from_le_bytes(seg)) << 4 } else { 0 };
    let mut areas = [(0xe_0000u64, 0x2_0000usize), (ebda, 1024)];
    if !(0x8_0000..0xa_0000).contains(&ebda) {
        areas[1].1 = 0;
    }
    // Read a KiB at a time: each read may map pages.
    let mut buf = [0u8; 1024];
    for (base, len) in areas.into_iter().rev() {
        for chunk in (0..len).step_by(buf.len()) {
            let at = base + chunk as u64;
            if !mem.read(at, &mut buf) {
                continue;
            }
            for off in (0..buf.len()).step_by(16) {
                if &buf[off..off + 8] == b"RSD PTR " && rsdp_at(mem, at + off as u64).is_some() {
                    return Some(at + off as u64);
                }
            }
        }
    }
    None
}

/// Reads the whole table at `addr` (header checked: signature, length,
/// checksum) into `out`; returns its length.
fn table<'a>(mem: &dyn PhysRead, addr: u64, sig: &[u8; 4], out: &'a mut alloc::vec::Vec<u8>) -> Option<&'a [u8]> {
    let mut hdr = [0u8; 36];
    if addr == 0 || !mem.read(addr, &mut hdr) || &hdr[..4] != sig {
        return None;
    }
    let len = u32_at(&hdr, 4)? as usize;
    if !(36..=MAX_TABLE).contains(&len) {
        return None;
    }
    out.clear();
    out.resize(len, 0);
    if !mem.read(addr, out) || !checksum_ok(out) {
        return None;
    }
    Some(&out[..])
}

/// The address of the first table with signature `sig` the RSDT/XSDT lists.
fn find_table(mem: &dyn PhysRead, rsdp: u64, sig: &[u8; 4]) -> Option<u64> {
    let (rsdt, xsdt) = rsdp_at(mem, rsdp)?;
    let mut buf = alloc::vec::Vec::new();
    let (root, width) = match table(mem, xsdt, b"XSDT", &mut buf) {
        Some(t) => (t, 8),
        None => (table(mem, u64::from(rsdt), b"RSDT", &mut buf)?, 4),
    };
    let mut s = [0u8; 4];
    root[36..].chunks_exact(width).find_map(|e| {
        let addr = if width == 8 { u64_at(e, 0)? } else { u64::from(u32_at(e, 0)?) };
        (mem.read(addr, &mut s) && &s == sig).then_some(addr)
    })
}

/// How to power off, from the FADT and the DSDT's `\_S5`.
pub fn power_off(mem: &dyn PhysRead, rsdp: u64) -> Result<PowerOff, &'static str> {
    let fadt_addr = find_table(mem, rsdp, b"FACP").ok_or("no FADT")?;
    let mut buf = alloc::vec::Vec::new();
    let fadt = table(mem, fadt_addr, b"FACP", &mut buf).ok_or("bad FADT")?;
    let pm1a = u32_at(fadt, 64).ok_or("short FADT")?;
    let pm1b = u32_at(fadt, 68).unwrap_or(0);
    if pm1a == 0 || pm1a > 0xffff || pm1b > 0xffff {
        return Err("FADT has no PM1a control port");
    }
    // X_DSDT (ACPI 2.0+) wins over the 32-bit DSDT field when set.
    let dsdt = u64_at(fadt, 140).filter(|&a| a != 0).unwrap_or(u64::from(u32_at(fadt, 40).unwrap_or(0)));
    let mut dbuf = alloc::vec::Vec::new();
    let dsdt = table(mem, dsdt, b"DSDT", &mut dbuf).ok_or("bad DSDT")?;
    let slp_typ = s5(&dsdt[36..]).ok_or("no \\_S5 package in the DSDT")?;
    Ok(PowerOff { pm1a_cnt: pm1a as u16, pm1b_cnt: pm1b as u16, slp_typ })
}

/// SLP_TYPa and SLP_TYPb from the AML `Name (_S5, Package () { a, b, ... })`.
pub fn s5(aml: &[u8]) -> Option<(u8, u8)> {
    const NAME_OP: u8 = 0x08;
    const PACKAGE_OP: u8 = 0x12;
    let mut from = 0;
    while let Some(i) = aml.get(from..)?.windows(4).position(|w| w == b"_S5_").map(|i| i + from) {
        from = i + 1;
        // NameOp, optionally with the root prefix: `08 _S5_` or `08 5C _S5_`.
        let named = i >= 1 && aml[i - 1] == NAME_OP || i >= 2 && aml[i - 1] == b'\\' && aml[i - 2] == NAME_OP;
        if !named || aml.get(i + 4) != Some(&PACKAGE_OP) {
            continue;
        }
        // PkgLength: the top two bits of its first byte count the bytes after it.
        let lead = *aml.get(i + 5)?;
        let mut p = i + 6 + usize::from(lead >> 6);
        let _num_elements = *aml.get(p)?;
        p += 1;
        let mut element = || -> Option<u8> {
            let v = match *aml.get(p)? {
                0x0a => {
                    p += 1;
                    *aml.get(p)?
                }
                0x00 => 0, // ZeroOp
                0x01 => 1, // OneOp
                _ => return None,
            };
            p += 1;
            Some(v)
        };
        let a = element()?;
        let b = element().unwrap_or(0);
        return Some((a, b));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Physical memory as a map of blobs.
    struct Mem(BTreeMap<u64, Vec<u8>>);

    impl PhysRead for Mem {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            // Bytes no blob holds read as zero, as unused RAM would.
            for (i, b) in buf.iter_mut().enumerate() {
                let a = addr + i as u64;
                *b = self
                    .0
                    .range(..=a)
                    .next_back()
                    .and_then(|(&base, v)| v.get((a - base) as usize))
                    .copied()
                    .unwrap_or(0);
            }
            addr < 1 << 32
        }
    }

    fn fix_checksum(t: &mut [u8], at: usize, range: core::ops::Range<usize>) {
        t[at] = 0;
        let sum = t[range].iter().fold(0u8, |a, &x| a.wrapping_add(x));
        t[at] = sum.wrapping_neg();
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 36];
        t[..4].copy_from_slice(sig);
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t[8] = 2;
        let n = t.len();
        fix_checksum(&mut t, 9, 0..n);
        t
    }

    fn rsdp(rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut r = vec![0u8; 36];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[15] = if xsdt != 0 { 2 } else { 0 };
        r[16..20].copy_from_slice(&rsdt.to_le_bytes());
        r[20..24].copy_from_slice(&36u32.to_le_bytes());
        r[24..32].copy_from_slice(&xsdt.to_le_bytes());
        fix_checksum(&mut r, 8, 0..20);
        fix_checksum(&mut r, 32, 0..36);
        r
    }

    /// QEMU's `Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero })`.
    const QEMU_S5: &[u8] = &[0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00];
    /// A VMware-style `\_S5` with byte constants.
    const BYTE_S5: &[u8] = &[0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x08, 0x02, 0x0a, 0x05, 0x0a, 0x07];

    fn machine(s5_aml: &[u8], with_xsdt: bool) -> Mem {
        let mut dsdt_body = vec![0x10, 0x20, b'_', b'S', b'5', b'_']; // a decoy: not a NameOp
        dsdt_body.extend_from_slice(s5_aml);
        let dsdt = sdt(b"DSDT", &dsdt_body);
        let mut fadt_body = vec![0u8; 244 - 36];
        fadt_body[40 - 36..44 - 36].copy_from_slice(&0x5000u32.to_le_bytes());
        fadt_body[64 - 36..68 - 36].copy_from_slice(&0x1004u32.to_le_bytes());
        let fadt = sdt(b"FACP", &fadt_body);
        let mut m = BTreeMap::new();
        m.insert(0x5000, dsdt);
        m.insert(0x4000, fadt);
        m.insert(0x3000, sdt(b"APIC", &[0u8; 8]));
        m.insert(0x2000, sdt(b"RSDT", &[0x00, 0x30, 0, 0, 0x00, 0x40, 0, 0]));
        let xsdt = if with_xsdt {
            m.insert(0x1000, sdt(b"XSDT", &[0x00, 0x30, 0, 0, 0, 0, 0, 0, 0x00, 0x40, 0, 0, 0, 0, 0, 0]));
            0x1000
        } else {
            0
        };
        m.insert(0xf_5a40, rsdp(0x2000, xsdt));
        Mem(m)
    }

    #[test]
    fn finds_the_rsdp_and_the_s5_values() {
        for with_xsdt in [false, true] {
            let m = machine(BYTE_S5, with_xsdt);
            let r = find_rsdp(&m, 0).unwrap();
            assert_eq!(r, 0xf_5a40);
            assert_eq!(find_rsdp(&m, r), Some(r));
            let p = power_off(&m, r).unwrap();
            assert_eq!(p, PowerOff { pm1a_cnt: 0x1004, pm1b_cnt: 0, slp_typ: (5, 7) });
        }
        let m = machine(QEMU_S5, false);
        assert_eq!(power_off(&m, 0xf_5a40).unwrap().slp_typ, (0, 0));
        assert_eq!(PowerOff::value(5), 0x3400);
    }

    #[test]
    fn hostile_tables_are_refused_not_trusted() {
        // A broken checksum anywhere in the chain.
        let mut m = machine(BYTE_S5, false);
        m.0.get_mut(&0x4000).unwrap()[50] ^= 1;
        assert_eq!(power_off(&m, 0xf_5a40), Err("bad FADT"));
        // A length that runs past what exists.
        let mut m = machine(BYTE_S5, false);
        m.0.get_mut(&0x5000).unwrap()[4] = 0xff;
        assert!(power_off(&m, 0xf_5a40).is_err());
        // No RSDP at all, and a bogus hint.
        let m = Mem(BTreeMap::new());
        assert_eq!(find_rsdp(&m, 0x1234), None);
    }

    #[test]
    fn s5_parser_survives_truncation() {
        for cut in 0..BYTE_S5.len() {
            let _ = s5(&BYTE_S5[..cut]);
        }
        assert_eq!(s5(BYTE_S5), Some((5, 7)));
        assert_eq!(s5(b"_S5_"), None);
        // Long PkgLength encoding (one extra byte).
        assert_eq!(s5(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x02, 0x01, 0x0a, 0x03]), Some((1, 3)));
    }
}
