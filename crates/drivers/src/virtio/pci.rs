//! virtio over PCI: the modern interface (virtio 1.x vendor capabilities:
//! common, notify, ISR and device configuration in memory BARs) and the
//! legacy one (registers in I/O BAR 0).
#![deny(unsafe_code)]
use super::queue::VirtQueue;
use super::transport::{Notify, Regs, Transport};
use crate::pci::{self, Bar, ConfigAccess, PciAddress};
use core::sync::atomic::{AtomicBool, Ordering};
use unikit_io::PortRange;

pub const VENDOR: u16 = 0x1af4;

/// virtio device type of a PCI function (1 net, 2 block, ...), if virtio.
pub fn device_type(cfg: &dyn ConfigAccess, f: &pci::Function) -> Option<u16> {
    match (f.vendor, f.device) {
        (VENDOR, 0x1040..=0x107f) => Some(f.device - 0x1040),
        // Transitional devices: the subsystem id is the type.
        (VENDOR, 0x1000..=0x103f) => Some(cfg.read16(f.addr, pci::SUBSYSTEM_ID)),
        _ => None,
    }
}

const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;

/// A region a virtio capability points at: BAR, offset, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapRegion {
    pub bar: u8,
    pub offset: u64,
    pub len: u64,
}

/// The modern interface's regions, validated against the BARs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModernCaps {
    pub common: CapRegion,
    pub notify: CapRegion,
    pub notify_multiplier: u32,
    pub isr: CapRegion,
    pub device: Option<CapRegion>,
}

/// Finds the first valid capability of each type. A capability pointing at
/// a missing or I/O BAR, or past the end of its BAR, is ignored.
pub fn modern_caps(
    cfg: &dyn ConfigAccess,
    addr: PciAddress,
    caps: &[(u8, u16)],
    bars: &[Option<Bar>; 6],
) -> Option<ModernCaps> {
    let mut found: [Option<(CapRegion, u16)>; 5] = [None; 5];
    for &(id, off) in caps {
        if id != pci::CAP_VENDOR || off > 0x100 - 16 {
            continue;
        }
        let cap_len = cfg.read8(addr, off + 2);
        let ty = cfg.read8(addr, off + 3);
        let bar = cfg.read8(addr, off + 4);
        let offset = cfg.read32(addr, off + 8) as u64;
        let len = cfg.read32(addr, off + 12) as u64;
        if cap_len < 16 || !(CAP_COMMON..=CAP_DEVICE).contains(&ty) || found[ty as usize].is_some() {
            continue;
        }
        let Some(Some(b)) = bars.get(bar as usize) else { continue };
        if b.is_io() || offset.checked_add(len).is_none_or(|e| e > b.size) {
            continue;
        }
        found[ty as usize] = Some((CapRegion { bar, offset, len }, off));
    }
    let (common, _) = found[CAP_COMMON as usize]?;
    let (notify, notify_cap) = found[CAP_NOTIFY as usize]?;
    let (isr, _) = found[CAP_ISR as usize]?;
    if common.len < COMMON_LEN as u64 || isr.len < 1 {
        return None;
    }
    let notify_multiplier = cfg.read32(addr, notify_cap + 16);
    Some(ModernCaps { common, notify, notify_multiplier, isr, device: found[CAP_DEVICE as usize].map(|(r, _)| r) })
}

// Common configuration structure.
const DEVICE_FEATURE_SELECT: usize = 0x00;
const DEVICE_FEATURE: usize = 0x04;
const DRIVER_FEATURE_SELECT: usize = 0x08;
const DRIVER_FEATURE: usize = 0x0c;
const MSIX_CONFIG: usize = 0x10;
const DEVICE_STATUS: usize = 0x14;
const CONFIG_GENERATION: usize = 0x15;
const QUEUE_SELECT: usize = 0x16;
const QUEUE_SIZE: usize = 0x18;
const QUEUE_MSIX_VECTOR: usize = 0x1a;
const QUEUE_ENABLE: usize = 0x1c;
const QUEUE_NOTIFY_OFF: usize = 0x1e;
const QUEUE_DESC: usize = 0x20;
const QUEUE_DRIVER: usize = 0x28;
const QUEUE_DEVICE: usize = 0x30;
const COMMON_LEN: usize = 0x38;

/// The modern interface; the regions are mapped by the caller.
pub struct ModernPci {
    pub common: Regs,
    pub notify: Regs,
    pub notify_multiplier: u32,
    pub isr: Regs,
    pub device: Option<Regs>,
}

impl Transport for ModernPci {
    fn kind(&self) -> &'static str {
        "pci"
    }
    fn is_legacy(&self) -> bool {
        false
    }
    fn device_features(&self) -> u64 {
        self.common.w32(DEVICE_FEATURE_SELECT, 0);
        let lo = self.common.r32(DEVICE_FEATURE) as u64;
        self.common.w32(DEVICE_FEATURE_SELECT, 1);
        let hi = self.common.r32(DEVICE_FEATURE) as u64;
        hi << 32 | lo
    }
    fn set_driver_features(&self, f: u64) {
        self.common.w32(DRIVER_FEATURE_SELECT, 0);
        self.common.w32(DRIVER_FEATURE, f as u32);
        self.common.w32(DRIVER_FEATURE_SELECT, 1);
        self.common.w32(DRIVER_FEATURE, (f >> 32) as u32);
    }
    fn status(&self) -> u8 {
        self.common.r8(DEVICE_STATUS)
    }
    fn set_status(&self, s: u8) {
        self.common.w8(DEVICE_STATUS, s)
    }
    fn queue_max(&self, q: u16) -> u16 {
        self.common.w16(QUEUE_SELECT, q);
        let n = self.common.r16(QUEUE_SIZE);
        if n == 0xffff { 0 } else { n }
    }
    fn queue_size_fixed(&self) -> bool {
        false
    }
    fn setup_queue(&self, q: u16, vq: &VirtQueue, vector: Option<u16>) -> Result<(Notify, bool), &'static str> {
        let c = &self.common;
        c.w16(QUEUE_SELECT, q);
        if c.r16(QUEUE_ENABLE) != 0 {
            return Err("queue already enabled");
        }
        c.w16(QUEUE_SIZE, vq.size());
        c.w64(QUEUE_DESC, vq.desc_addr());
        c.w64(QUEUE_DRIVER, vq.avail_addr());
        c.w64(QUEUE_DEVICE, vq.used_addr());
        let mut vector_ok = false;
        if let Some(v) = vector {
            c.w16(QUEUE_MSIX_VECTOR, v);
            vector_ok = c.r16(QUEUE_MSIX_VECTOR) == v;
        }
        let off = (c.r16(QUEUE_NOTIFY_OFF) as usize)
            .checked_mul(self.notify_multiplier as usize)
            .and_then(|o| self.notify.reg(o, 2))
            .ok_or("queue notify offset outside the notify region")?;
        c.w16(QUEUE_ENABLE, 1);
        Ok((Notify::Mmio16(off, q), vector_ok))
    }
    fn set_config_vector(&self, v: u16) {
        self.common.w16(MSIX_CONFIG, v);
    }
    fn config_len(&self) -> usize {
        self.device.map_or(0, |d| d.len())
    }
    fn config_read8(&self, off: usize) -> u8 {
        self.device.map_or(!0, |d| d.r8(off))
    }
    fn config_generation(&self) -> u32 {
        self.common.r8(CONFIG_GENERATION) as u32
    }
    fn ack_interrupt(&self) -> u32 {
        self.isr.r8(0) as u32
    }
}

// Legacy register block in I/O BAR 0.
const L_HOST_FEATURES: u16 = 0x00;
const L_GUEST_FEATURES: u16 = 0x04;
const L_QUEUE_PFN: u16 = 0x08;
const L_QUEUE_SIZE: u16 = 0x0c;
const L_QUEUE_SELECT: u16 = 0x0e;
const L_QUEUE_NOTIFY: u16 = 0x10;
const L_STATUS: u16 = 0x12;
const L_ISR: u16 = 0x13;
const L_CONFIG_VECTOR: u16 = 0x14;
const L_QUEUE_VECTOR: u16 = 0x16;

/// The legacy interface: registers in I/O space (the I/O BAR).
pub struct LegacyPci {
    pub io: PortRange,
    /// MSI-X enabled: two more registers, device config moves from 0x14 to 0x18.
    pub msix: AtomicBool,
}

impl LegacyPci {
    fn cfg_off(&self) -> u16 {
        if self.msix.load(Ordering::Relaxed) { 0x18 } else { 0x14 }
    }
    fn inb(&self, r: u16) -> u8 {
        self.io.read(r)
    }
    fn inw(&self, r: u16) -> u16 {
        self.io.read(r)
    }
    fn inl(&self, r: u16) -> u32 {
        self.io.read(r)
    }
    fn outb(&self, r: u16, v: u8) {
        self.io.write(r, v)
    }
    fn outw(&self, r: u16, v: u16) {
        self.io.write(r, v)
    }
    fn outl(&self, r: u16, v: u32) {
        self.io.write(r, v)
    }
}

impl Transport for LegacyPci {
    fn kind(&self) -> &'static str {
        "pci-legacy"
    }
    fn is_legacy(&self) -> bool {
        true
    }
    fn device_features(&self) -> u64 {
        self.inl(L_HOST_FEATURES) as u64
    }
    fn set_driver_features(&self, f: u64) {
        self.outl(L_GUEST_FEATURES, f as u32)
    }
    fn status(&self) -> u8 {
        self.inb(L_STATUS)
    }
    fn set_status(&self, s: u8) {
        self.outb(L_STATUS, s)
    }
    fn queue_max(&self, q: u16) -> u16 {
        self.outw(L_QUEUE_SELECT, q);
        self.inw(L_QUEUE_SIZE)
    }
    fn queue_size_fixed(&self) -> bool {
        true
    }
    fn setup_queue(&self, q: u16, vq: &VirtQueue, vector: Option<u16>) -> Result<(Notify, bool), &'static str> {
        self.outw(L_QUEUE_SELECT, q);
        if self.inw(L_QUEUE_SIZE) != vq.size() {
            return Err("legacy queue size changed");
        }
        let pfn = u32::try_from(vq.desc_addr() >> 12).map_err(|_| "queue above 16 TiB for a legacy device")?;
        let mut vector_ok = false;
        if let Some(v) = vector.filter(|_| self.msix.load(Ordering::Relaxed)) {
            self.outw(L_QUEUE_VECTOR, v);
            vector_ok = self.inw(L_QUEUE_VECTOR) == v;
        }
        self.outl(L_QUEUE_PFN, pfn);
        let port = self.io.port::<u16>(L_QUEUE_NOTIFY).ok_or("notify port outside the I/O BAR")?;
        Ok((Notify::Port16(port, q), vector_ok))
    }
    fn set_msix_enabled(&self, on: bool) {
        self.msix.store(on, Ordering::Relaxed);
    }
    fn set_config_vector(&self, v: u16) {
        if self.msix.load(Ordering::Relaxed) {
            self.outw(L_CONFIG_VECTOR, v);
        }
    }
    fn config_len(&self) -> usize {
        self.io.len().saturating_sub(self.cfg_off()) as usize
    }
    fn config_read8(&self, off: usize) -> u8 {
        if off >= self.config_len() {
            return !0;
        }
        self.inb(self.cfg_off() + off as u16)
    }
    fn config_generation(&self) -> u32 {
        0
    }
    fn ack_interrupt(&self) -> u32 {
        self.inb(L_ISR) as u32
    }
}
