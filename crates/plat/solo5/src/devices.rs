//! Solo5 devices: NET_BASIC and BLOCK_BASIC manifest entries the tender
//! attached, driven by the net/block read and write hypercalls. The handle
//! of a device is its manifest index. There are no interrupts: the `poll`
//! hypercall (the idle loop's wait) reports which network handles are
//! readable, and their events are signalled from there.
use crate::hvt;
use crate::mft::{Attached, Device};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use unikit_kernel::dev::{self, BlockDevice, DevError, Doorbell, HeldFrame, NetDevice};
use unikit_kernel::event::Event;

const ETH_HEADER: usize = 14;
/// Room for a VLAN tag on top of the MTU, as the net stack allows.
const VLAN_TAG: usize = 4;

/// The devices the tender attached, parsed at boot (before the tender's
/// low memory is unmapped), registered on first use.
pub static ATTACHED: spin::Once<Vec<Attached>> = spin::Once::new();

/// Registered network devices by handle, for the idle loop's `poll`.
static NETS: spin::Mutex<Vec<Arc<SoloNet>>> = spin::Mutex::new(Vec::new());
/// Handles of attached network devices (registered or not): a bit per
/// manifest index, like the `poll` ready set.
static NET_HANDLES: spin::Once<u64> = spin::Once::new();

pub fn set_attached(devs: Vec<Attached>) {
    let mask = devs.iter().filter(|d| matches!(d.dev, Device::Net { .. })).fold(0u64, |m, d| m | 1 << d.handle);
    NET_HANDLES.call_once(|| mask);
    ATTACHED.call_once(|| devs);
}

/// The kernel's device discovery hook: registers every attached device.
#[unsafe(no_mangle)]
pub fn __unikit_probe_devices() {
    for a in ATTACHED.get().map(|v| v.as_slice()).unwrap_or(&[]) {
        match a.dev {
            Device::Net { mac, mtu } => {
                let n = Arc::new(SoloNet {
                    handle: a.handle,
                    name: a.name.clone(),
                    mac,
                    mtu: mtu as usize,
                    event: Event::new(),
                    rx: HeldFrame::new(mtu as usize + ETH_HEADER + VLAN_TAG),
                });
                NETS.lock().push(n.clone());
                dev::register_net(n);
            }
            Device::Block { capacity, block_size } => dev::register_block(Arc::new(SoloBlock {
                handle: a.handle,
                name: a.name.clone(),
                block_size: block_size as usize,
                blocks: capacity / block_size as u64,
            })),
        }
    }
}

/// Handles readiness reported by `poll`: signals registered devices; drains
/// and drops frames of devices nobody has asked for yet (the tender's wait
/// is level-triggered, so unread frames would end every later wait at once).
pub fn dispatch_ready(ready: u64) {
    let ready = ready & NET_HANDLES.get().copied().unwrap_or(0); // ignore handles that are not ours
    if ready == 0 {
        return;
    }
    let mut seen = 0u64;
    for n in NETS.lock().iter() {
        if ready & (1 << n.handle) != 0 {
            seen |= 1 << n.handle;
            n.event.signal();
        }
    }
    let mut orphans = ready & !seen;
    while orphans != 0 {
        let h = orphans.trailing_zeros() as u64;
        orphans &= orphans - 1;
        let mut scratch = [0u8; 2048];
        // Bounded: stop after a burst; the next wait reports the rest.
        for _ in 0..64 {
            if hvt::net_read(h, &mut scratch).0 != hvt::SOLO5_R_OK {
                break;
            }
        }
    }
}

pub struct SoloNet {
    handle: u64,
    name: String,
    mac: [u8; 6],
    mtu: usize,
    event: Event,
    /// The frame `net_read` last fetched, lent to the stack from here.
    rx: HeldFrame,
}

impl SoloNet {
    fn read(&self, buf: &mut [u8]) -> Result<usize, DevError> {
        match hvt::net_read(self.handle, buf) {
            (hvt::SOLO5_R_OK, n) if n as usize <= buf.len() && n as usize >= ETH_HEADER => Ok(n as usize),
            (hvt::SOLO5_R_OK, _) => Err(DevError::Broken("tender reported a frame length outside the buffer")),
            (hvt::SOLO5_R_AGAIN, _) => Err(DevError::WouldBlock),
            _ => Err(DevError::Io),
        }
    }
}

impl NetDevice for SoloNet {
    fn name(&self) -> &str {
        &self.name
    }
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn mtu(&self) -> usize {
        self.mtu
    }
    fn rx_pending(&self) -> Result<bool, DevError> {
        self.rx.pending(|b| self.read(b))
    }
    fn receive_with(&self, f: &mut dyn FnMut(&[u8])) -> Result<bool, DevError> {
        self.rx.lend(|b| self.read(b), f)
    }
    fn transmit_with(&self, len: usize, f: &mut dyn FnMut(&mut [u8])) -> Result<(), DevError> {
        const MAX: usize = 9000 + ETH_HEADER + VLAN_TAG;
        if len < ETH_HEADER || len > self.mtu + ETH_HEADER + VLAN_TAG || len > MAX {
            return Err(DevError::BadLength);
        }
        // Built on the stack, then handed to the tender (which copies it out).
        let mut frame = [0u8; 1500 + ETH_HEADER + VLAN_TAG];
        let Some(buf) = frame.get_mut(..len) else {
            // A jumbo MTU: one heap buffer for this frame.
            let mut v = alloc::vec![0u8; len];
            f(&mut v);
            return match hvt::net_write(self.handle, &v) {
                hvt::SOLO5_R_OK => Ok(()),
                _ => Err(DevError::Io),
            };
        };
        f(buf);
        match hvt::net_write(self.handle, buf) {
            hvt::SOLO5_R_OK => Ok(()),
            _ => Err(DevError::Io),
        }
    }
    fn set_doorbell(&self, doorbell: &'static dyn Doorbell) {
        self.event.forward_to(doorbell);
    }
    fn has_interrupts(&self) -> bool {
        true // the idle loop's poll hypercall signals the event
    }
}

pub struct SoloBlock {
    handle: u64,
    name: String,
    block_size: usize,
    blocks: u64,
}

impl BlockDevice for SoloBlock {
    fn name(&self) -> &str {
        &self.name
    }
    fn block_size(&self) -> usize {
        self.block_size
    }
    fn num_blocks(&self) -> u64 {
        self.blocks
    }
    fn read_only(&self) -> bool {
        false
    }
    /// One hypercall for the whole request: the hvt tender takes any length
    /// that stays inside the device (Solo5's own C bindings send one block
    /// at a time, but the hypercall ABI does not require it).
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
        dev::check_block_request(self, block, buf.len())?;
        match hvt::block_read(self.handle, block * self.block_size as u64, buf) {
            hvt::SOLO5_R_OK => Ok(()),
            _ => Err(DevError::Io),
        }
    }
    fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), DevError> {
        dev::check_block_request(self, block, buf.len())?;
        match hvt::block_write(self.handle, block * self.block_size as u64, buf) {
            hvt::SOLO5_R_OK => Ok(()),
            _ => Err(DevError::Io),
        }
    }
    /// Writes are complete when the hypercall returns (the tender has done
    /// its `pwrite`); the hvt ABI has no flush/fsync call.
    fn flush(&self) -> Result<(), DevError> {
        Ok(())
    }
}
