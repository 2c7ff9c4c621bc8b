use super::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// A fake configuration space: dwords by (address, offset), BAR size masks.
#[derive(Default)]
struct FakeConfig {
    regs: Mutex<HashMap<(PciAddress, u16), u32>>,
    /// BAR register -> (size mask of writable bits, flag bits)
    bars: HashMap<(PciAddress, u16), (u32, u32)>,
}

impl FakeConfig {
    fn set(&self, a: PciAddress, off: u16, v: u32) {
        self.regs.lock().unwrap().insert((a, off), v);
    }
}

impl ConfigAccess for FakeConfig {
    fn read32(&self, a: PciAddress, off: u16) -> u32 {
        *self.regs.lock().unwrap().get(&(a, off & !3)).unwrap_or(&!0)
    }
    fn write32(&self, a: PciAddress, off: u16, v: u32) {
        let v = match self.bars.get(&(a, off)) {
            Some(&(mask, flags)) => v & mask | flags,
            None => v,
        };
        self.set(a, off & !3, v);
    }
}

const A: PciAddress = PciAddress { bus: 0, device: 3, function: 0 };

#[test]
fn capability_walk_stops_on_loops_and_bad_pointers() {
    let c = FakeConfig::default();
    c.set(A, STATUS & !3, (STATUS_CAP_LIST as u32) << 16);
    c.set(A, CAP_PTR, 0x40);
    c.set(A, 0x40, 0x11 | 0x50 << 8); // MSI-X -> 0x50
    c.set(A, 0x50, 0x09 | 0x40 << 8); // vendor -> back to 0x40: a loop
    let caps = capabilities(&c, A);
    assert_eq!(caps, vec![(0x11, 0x40), (0x09, 0x50)]);
    c.set(A, 0x50, 0x09 | 0x20 << 8); // points into the header: stop
    assert_eq!(capabilities(&c, A).len(), 2);
    c.set(A, STATUS & !3, 0);
    assert!(capabilities(&c, A).is_empty());
}

#[test]
fn bars_are_sized_and_64_bit_pairs_joined() {
    let mut c = FakeConfig::default();
    c.bars.insert((A, 0x10), (0xffff_ffe0, 1)); // I/O, 32 bytes
    c.bars.insert((A, 0x14), (0xffff_f000, 0)); // mem32, 4 KiB
    c.bars.insert((A, 0x20), (0xffff_c000, 0xc)); // mem64 prefetchable, 16 KiB
    c.bars.insert((A, 0x24), (0xffff_ffff, 0));
    for off in [0x18u16, 0x1c] {
        c.bars.insert((A, off), (0, 0)); // unimplemented
    }
    c.set(A, COMMAND, 0);
    c.set(A, 0x10, 0xc001);
    c.set(A, 0x14, 0);
    c.set(A, 0x18, 0);
    c.set(A, 0x1c, 0);
    c.set(A, 0x20, 0xc);
    c.set(A, 0x24, 0);
    let bars = read_bars(&c, A);
    assert_eq!(bars[0], Some(Bar { index: 0, kind: BarKind::Io, prefetchable: false, base: 0xc000, size: 32 }));
    assert_eq!(bars[1], Some(Bar { index: 1, kind: BarKind::Mem32, prefetchable: false, base: 0, size: 4096 }));
    assert_eq!(bars[2], None);
    assert_eq!(bars[3], None);
    let mut b4 = bars[4].unwrap();
    assert_eq!((b4.kind, b4.prefetchable, b4.size), (BarKind::Mem64, true, 0x4000));
    assert_eq!(bars[5], None);
    set_bar(&c, A, &mut b4, 0x1_2345_c000);
    assert_eq!(read_bars(&c, A)[4].unwrap().base, 0x1_2345_c000);
    // Original values were restored after sizing.
    assert_eq!(c.read32(A, 0x10), 0xc001);
}

#[test]
fn bogus_bar_masks_are_ignored() {
    let mut c = FakeConfig::default();
    c.bars.insert((A, 0x10), (0xff00_f000, 0)); // holes in the mask: not a power of two
    for off in [0x14u16, 0x18, 0x1c, 0x20, 0x24] {
        c.bars.insert((A, off), (0, 0));
    }
    c.set(A, COMMAND, 0);
    for off in [0x10u16, 0x14, 0x18, 0x1c, 0x20, 0x24] {
        c.set(A, off, 0);
    }
    assert!(read_bars(&c, A).iter().all(|b| b.is_none()));
}

#[test]
fn window_allocates_around_taken_ranges() {
    let mut w = Window::new(0xc000_0000, 0xfec0_0000);
    w.reserve(0xc000_0000, 0x1000);
    w.reserve(0xc000_4000, 0x100);
    assert_eq!(w.alloc(0x1000), Some(0xc000_1000));
    assert_eq!(w.alloc(0x4000), Some(0xc000_8000));
    assert_eq!(w.alloc(0x1000), Some(0xc000_2000));
    assert_eq!(w.alloc(0x1000), Some(0xc000_3000));
    assert_eq!(w.alloc(0x1000), Some(0xc000_5000));
    assert_eq!(w.alloc(0x1000_0000_0000), None);
    assert_eq!(w.alloc(3), None);
    let mut io = Window::new(0xc000, 0x1_0000);
    assert_eq!(io.alloc(0x40), Some(0xc000));
    assert_eq!(io.alloc(0x4000), None);
}

#[test]
fn enumeration_follows_bridges_once() {
    let c = FakeConfig::default();
    let b0 = PciAddress { bus: 0, device: 0, function: 0 };
    let br = PciAddress { bus: 0, device: 1, function: 0 };
    let d1 = PciAddress { bus: 1, device: 0, function: 0 };
    c.set(b0, 0, 0x29c0_8086);
    c.set(b0, 0xc, 0);
    c.set(br, 0, 0x000c_1b36);
    c.set(br, 0xc, 0x0001_0000); // header type 1
    c.set(br, 0x18, 0x0001_0100); // secondary bus 1
    c.set(d1, 0, 0x1041_1af4);
    c.set(d1, 0xc, 0);
    // A bridge on bus 1 claiming bus 0 as its secondary must not loop.
    let br2 = PciAddress { bus: 1, device: 2, function: 0 };
    c.set(br2, 0, 0x000c_1b36);
    c.set(br2, 0xc, 0x0001_0000);
    c.set(br2, 0x18, 0x0000_0000);
    let f = enumerate(&c);
    let addrs: Vec<_> = f.iter().map(|f| f.addr).collect();
    assert_eq!(addrs, vec![b0, br, d1, br2]);
    assert_eq!(f[2].device, 0x1041);
}
