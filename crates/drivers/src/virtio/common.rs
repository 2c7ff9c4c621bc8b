//! What the net and block drivers share: the transport, the event, the
//! interrupt plumbing and the broken flag.
#![deny(unsafe_code)]
use super::transport::{self, NO_VECTOR, Transport};
use crate::irq::{InterruptController, IrqHandler};
use crate::pci::{self, ConfigAccess, MsixInfo, PciAddress};
use unikit_kernel::dev::DevError;
use unikit_kernel::event::Event;

/// How a device can interrupt.
pub enum IntKind {
    None,
    /// MSI-X: the function, its capability and its mapped table.
    Msix {
        cfg: &'static dyn ConfigAccess,
        addr: PciAddress,
        info: MsixInfo,
        table: unikit_io::IoMem,
    },
    /// A legacy line (virtio-mmio: edge-triggered GSI).
    Gsi(u32),
}

pub struct Ints {
    pub ctrl: Option<&'static dyn InterruptController>,
    pub kind: IntKind,
}

struct MsixHandler {
    event: &'static Event,
}

impl IrqHandler for MsixHandler {
    fn handle(&self) {
        self.event.signal();
    }
}

struct IsrHandler {
    t: &'static dyn Transport,
    event: &'static Event,
}

impl IrqHandler for IsrHandler {
    fn handle(&self) {
        // Reading the ISR acknowledges the interrupt (and deasserts a
        // level-triggered line); 0 means it was not ours.
        if self.t.ack_interrupt() != 0 {
            self.event.signal();
        }
    }
}

impl Ints {
    /// Before queue setup: for MSI-X, allocates a vector, programs table
    /// entry 0 and enables MSI-X. Returns the vector index queues should use.
    pub fn prepare(&self, t: &'static dyn Transport, event: &'static Event) -> Option<u16> {
        let ctrl = self.ctrl?;
        let IntKind::Msix { cfg, addr, info, table } = self.kind else { return None };
        let handler: &'static MsixHandler = alloc::boxed::Box::leak(alloc::boxed::Box::new(MsixHandler { event }));
        let msg = ctrl.alloc_msi(handler)?;
        if !pci::msix_write_entry(&table, 0, msg) {
            return None;
        }
        pci::msix_enable(cfg, addr, &info, true);
        t.set_msix_enabled(true);
        t.set_config_vector(NO_VECTOR);
        Some(0)
    }

    /// After queue setup: whether interrupts work (MSI-X: every queue took
    /// its vector; GSI: the line was routed).
    pub fn finish(&self, t: &'static dyn Transport, event: &'static Event, vectors_ok: bool) -> bool {
        let Some(ctrl) = self.ctrl else { return false };
        match self.kind {
            IntKind::None => false,
            IntKind::Msix { .. } => vectors_ok,
            IntKind::Gsi(gsi) => {
                let handler: &'static IsrHandler =
                    alloc::boxed::Box::leak(alloc::boxed::Box::new(IsrHandler { t, event }));
                ctrl.route_gsi(gsi, false, handler)
            }
        }
    }
}

/// The broken flag: the first protocol violation is remembered, the device
/// is reset (so it stops using our memory) and every later call fails.
pub struct Health {
    t: &'static dyn Transport,
    broken: unikit_io::Broken,
}

impl Health {
    pub fn new(t: &'static dyn Transport) -> Self {
        Self { t, broken: unikit_io::Broken::new() }
    }
    pub fn check(&self) -> Result<(), DevError> {
        self.broken.check().map_err(DevError::Broken)
    }
    pub fn fail(&self, why: &'static str) -> DevError {
        let (why, first) = self.broken.set_first(why);
        if first {
            transport::fail(self.t);
            crate::dwarn!("virtio: device broken ({why}); it is no longer used");
        }
        DevError::Broken(why)
    }
}
