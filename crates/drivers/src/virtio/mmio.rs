//! virtio-mmio, version 2 (virtio 1.x) and version 1 (legacy), as QEMU
//! microvm and Firecracker provide.
#![deny(unsafe_code)]
use super::queue::VirtQueue;
use super::transport::{Notify, Regs, Transport};

pub const MAGIC_VALUE: u32 = 0x7472_6976; // "virt"

pub const MAGIC: usize = 0x000;
pub const VERSION: usize = 0x004;
pub const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const GUEST_PAGE_SIZE: usize = 0x028;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const QUEUE_ALIGN: usize = 0x03c;
const QUEUE_PFN: usize = 0x040;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const INTERRUPT_STATUS: usize = 0x060;
const INTERRUPT_ACK: usize = 0x064;
const STATUS: usize = 0x070;
const QUEUE_DESC: usize = 0x080;
const QUEUE_DRIVER: usize = 0x090;
const QUEUE_DEVICE: usize = 0x0a0;
const CONFIG_GENERATION: usize = 0x0fc;
const CONFIG: usize = 0x100;

pub struct Mmio {
    pub regs: Regs,
    /// 1 (legacy) or 2.
    pub version: u32,
}

impl Transport for Mmio {
    fn kind(&self) -> &'static str {
        if self.version == 1 { "mmio-legacy" } else { "mmio" }
    }
    fn is_legacy(&self) -> bool {
        self.version == 1
    }
    fn device_features(&self) -> u64 {
        self.regs.w32(DEVICE_FEATURES_SEL, 0);
        let lo = self.regs.r32(DEVICE_FEATURES) as u64;
        self.regs.w32(DEVICE_FEATURES_SEL, 1);
        let hi = self.regs.r32(DEVICE_FEATURES) as u64;
        hi << 32 | lo
    }
    fn set_driver_features(&self, f: u64) {
        self.regs.w32(DRIVER_FEATURES_SEL, 0);
        self.regs.w32(DRIVER_FEATURES, f as u32);
        self.regs.w32(DRIVER_FEATURES_SEL, 1);
        self.regs.w32(DRIVER_FEATURES, (f >> 32) as u32);
    }
    fn status(&self) -> u8 {
        self.regs.r32(STATUS) as u8
    }
    fn set_status(&self, s: u8) {
        self.regs.w32(STATUS, s as u32)
    }
    fn queue_max(&self, q: u16) -> u16 {
        self.regs.w32(QUEUE_SEL, q as u32);
        self.regs.r32(QUEUE_NUM_MAX).min(u16::MAX as u32) as u16
    }
    fn queue_size_fixed(&self) -> bool {
        false
    }
    fn setup_queue(&self, q: u16, vq: &VirtQueue, _vector: Option<u16>) -> Result<(Notify, bool), &'static str> {
        let r = &self.regs;
        r.w32(QUEUE_SEL, q as u32);
        r.w32(QUEUE_NUM, vq.size() as u32);
        if self.version == 1 {
            if r.r32(QUEUE_PFN) != 0 {
                return Err("queue already in use");
            }
            let pfn = u32::try_from(vq.desc_addr() >> 12).map_err(|_| "queue above 16 TiB for a legacy device")?;
            r.w32(GUEST_PAGE_SIZE, 4096);
            r.w32(QUEUE_ALIGN, 4096);
            r.w32(QUEUE_PFN, pfn);
        } else {
            if r.r32(QUEUE_READY) != 0 {
                return Err("queue already in use");
            }
            r.w64(QUEUE_DESC, vq.desc_addr());
            r.w64(QUEUE_DRIVER, vq.avail_addr());
            r.w64(QUEUE_DEVICE, vq.used_addr());
            r.w32(QUEUE_READY, 1);
        }
        let reg = r.reg(QUEUE_NOTIFY, 4).ok_or("notify register outside the device window")?;
        Ok((Notify::Mmio32(reg, q as u32), false))
    }
    fn config_len(&self) -> usize {
        self.regs.len().saturating_sub(CONFIG)
    }
    fn config_read8(&self, off: usize) -> u8 {
        if off >= self.config_len() {
            return !0;
        }
        self.regs.r8(CONFIG + off)
    }
    fn config_generation(&self) -> u32 {
        if self.version == 1 { 0 } else { self.regs.r32(CONFIG_GENERATION) }
    }
    fn ack_interrupt(&self) -> u32 {
        let s = self.regs.r32(INTERRUPT_STATUS);
        if s != 0 {
            self.regs.w32(INTERRUPT_ACK, s);
        }
        s
    }
}
