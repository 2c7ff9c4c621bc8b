//! PVSCSI rings: the rings state page, the request ring and the completion
//! ring, each one page of driver memory the device reads and writes.
//!
//! Layouts from Linux's drivers/scsi/vmw_pvscsi.h (`struct
//! PVSCSIRingsState`, `PVSCSIRingReqDesc` (128 bytes), `PVSCSIRingCmpDesc`
//! (32 bytes), `PVSCSICmdDescSetupRings`), all little-endian.
//!
//! The driver keeps its own copies of the indexes it produces (request
//! producer, completion consumer); of what the device writes (request
//! consumer, completion producer, completion descriptors) every value is
//! checked before use: an index more than a ring ahead, a completion for a
//! context that is not outstanding, a data or sense length larger than
//! what was asked, each is a [`RingError`] and the device is not used again.
#![deny(unsafe_code)]
use unikit_io::DmaRegion;

pub const PAGE: usize = 4096;
/// Request descriptors per page (4096 / 128).
pub const REQ_ENTRIES: u32 = (PAGE / REQ_SIZE) as u32;
/// Completion descriptors per page (4096 / 32).
pub const CMP_ENTRIES: u32 = (PAGE / CMP_SIZE) as u32;
pub const REQ_SIZE: usize = 128;
pub const CMP_SIZE: usize = 32;

/// `PVSCSIRingsState` field offsets.
const RS_REQ_PROD: usize = 0;
const RS_REQ_CONS: usize = 4;
const RS_CMP_PROD: usize = 12;
const RS_CMP_CONS: usize = 16;

/// `PVSCSIRingReqDesc` field offsets.
const REQ_CONTEXT: usize = 0;
const REQ_DATA_ADDR: usize = 8;
const REQ_DATA_LEN: usize = 16;
const REQ_SENSE_ADDR: usize = 24;
const REQ_SENSE_LEN: usize = 32;
const REQ_FLAGS: usize = 36;
const REQ_CDB: usize = 40;
const REQ_CDB_LEN: usize = 56;
const REQ_LUN: usize = 57;
const REQ_TAG: usize = 65;
const REQ_BUS: usize = 66;
const REQ_TARGET: usize = 67;

/// `PVSCSIRingCmpDesc` field offsets.
const CMP_CONTEXT: usize = 0;
const CMP_DATA_LEN: usize = 8;
const CMP_SENSE_LEN: usize = 16;
const CMP_HOST_STATUS: usize = 20;
const CMP_SCSI_STATUS: usize = 22;

/// Request flags.
pub const FLAG_DIR_NONE: u32 = 1 << 2;
pub const FLAG_DIR_TOHOST: u32 = 1 << 3;
pub const FLAG_DIR_TODEVICE: u32 = 1 << 4;
/// SIMPLE QUEUE TAG message (SAM), what Linux puts in `tag`.
const SIMPLE_QUEUE_TAG: u8 = 0x20;

/// 32-bit words of `PVSCSICmdDescSetupRings` (two u32 counts, the state
/// PPN and 32 + 32 page numbers, all u64).
pub const SETUP_RINGS_WORDS: usize = (8 + 8 + 32 * 8 * 2) / 4;

/// A protocol violation by the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingError(pub &'static str);

/// One request, as the driver fills it in.
pub struct Request<'a> {
    pub context: u64,
    pub target: u8,
    pub cdb: &'a [u8],
    pub flags: u32,
    pub data_addr: u64,
    pub data_len: u64,
    pub sense_addr: u64,
    pub sense_len: u32,
}

/// A completion, checked against the request it completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub data_len: u64,
    pub sense_len: u32,
    pub host_status: u16,
    pub scsi_status: u16,
}

/// The three ring pages and the driver's own indexes.
pub struct Rings {
    state: DmaRegion,
    req: DmaRegion,
    cmp: DmaRegion,
    req_prod: u32,
    cmp_cons: u32,
}

impl Rings {
    pub fn new() -> Option<Self> {
        Some(Self {
            state: DmaRegion::alloc(PAGE, PAGE)?,
            req: DmaRegion::alloc(PAGE, PAGE)?,
            cmp: DmaRegion::alloc(PAGE, PAGE)?,
            req_prod: 0,
            cmp_cons: 0,
        })
    }

    /// The words of the `PVSCSI_CMD_SETUP_RINGS` descriptor: one page per
    /// ring, by physical page number.
    pub fn setup_words(&self) -> [u32; SETUP_RINGS_WORDS] {
        let mut w = [0u32; SETUP_RINGS_WORDS];
        let ppn = |r: &DmaRegion| r.dma_addr(0) >> 12;
        let put64 = |w: &mut [u32], i: usize, v: u64| {
            w[i] = v as u32;
            w[i + 1] = (v >> 32) as u32;
        };
        w[0] = 1; // reqRingNumPages
        w[1] = 1; // cmpRingNumPages
        put64(&mut w, 2, ppn(&self.state));
        put64(&mut w, 4, ppn(&self.req)); // reqRingPPNs[0]
        put64(&mut w, 4 + 64, ppn(&self.cmp)); // cmpRingPPNs[0]
        w
    }

    /// After SETUP_RINGS the device has zeroed the indexes; the driver's
    /// copies start there too.
    pub fn reset_indexes(&mut self) {
        self.req_prod = 0;
        self.cmp_cons = 0;
    }

    /// Requests the device has not consumed yet (checked: the device's
    /// consumer index never passes the producer).
    fn in_flight(&self) -> Result<u32, RingError> {
        let cons = self.state.read::<u32>(RS_REQ_CONS);
        let n = self.req_prod.wrapping_sub(cons);
        if n > REQ_ENTRIES {
            return Err(RingError("request consumer index out of range"));
        }
        Ok(n)
    }

    /// Posts a request and publishes it (the caller kicks the device).
    pub fn push(&mut self, r: &Request<'_>) -> Result<(), RingError> {
        if r.cdb.is_empty() || r.cdb.len() > 16 {
            return Err(RingError("CDB length outside 1..=16"));
        }
        if self.in_flight()? == REQ_ENTRIES {
            return Err(RingError("request ring full"));
        }
        let e = (self.req_prod % REQ_ENTRIES) as usize * REQ_SIZE;
        let q = &self.req;
        q.fill(e, REQ_SIZE, 0);
        q.write::<u64>(e + REQ_CONTEXT, r.context);
        q.write::<u64>(e + REQ_DATA_ADDR, r.data_addr);
        q.write::<u64>(e + REQ_DATA_LEN, r.data_len);
        q.write::<u64>(e + REQ_SENSE_ADDR, r.sense_addr);
        q.write::<u32>(e + REQ_SENSE_LEN, r.sense_len);
        q.write::<u32>(e + REQ_FLAGS, r.flags);
        q.write_bytes(e + REQ_CDB, r.cdb);
        q.write::<u8>(e + REQ_CDB_LEN, r.cdb.len() as u8);
        // LUN 0 in SAM's 8-byte form (all zero).
        q.write_bytes(e + REQ_LUN, &[0u8; 8]);
        q.write::<u8>(e + REQ_TAG, SIMPLE_QUEUE_TAG);
        q.write::<u8>(e + REQ_BUS, 0);
        q.write::<u8>(e + REQ_TARGET, r.target);
        // The descriptor before the index that publishes it.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.req_prod = self.req_prod.wrapping_add(1);
        self.state.write::<u32>(RS_REQ_PROD, self.req_prod);
        Ok(())
    }

    /// The next completion, if the device produced one; it must complete
    /// the outstanding request `context` with at most `data_len` data bytes
    /// and `sense_len` sense bytes.
    pub fn pop(&mut self, context: u64, data_len: u64, sense_len: u32) -> Result<Option<Completion>, RingError> {
        let prod = self.state.read::<u32>(RS_CMP_PROD);
        let ready = prod.wrapping_sub(self.cmp_cons);
        if ready == 0 {
            return Ok(None);
        }
        // One request is outstanding at a time: more than one completion
        // (or an index that went backwards) is the device's error.
        if ready > 1 {
            return Err(RingError("completion producer index out of range"));
        }
        // The index before the descriptor it publishes.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        let e = (self.cmp_cons % CMP_ENTRIES) as usize * CMP_SIZE;
        let q = &self.cmp;
        let got = q.read::<u64>(e + CMP_CONTEXT);
        let c = Completion {
            data_len: q.read::<u64>(e + CMP_DATA_LEN),
            sense_len: q.read::<u32>(e + CMP_SENSE_LEN),
            host_status: q.read::<u16>(e + CMP_HOST_STATUS),
            scsi_status: q.read::<u16>(e + CMP_SCSI_STATUS),
        };
        self.cmp_cons = self.cmp_cons.wrapping_add(1);
        self.state.write::<u32>(RS_CMP_CONS, self.cmp_cons);
        if got != context {
            return Err(RingError("completion for a request that is not outstanding"));
        }
        if c.data_len > data_len {
            return Err(RingError("completion reports more data than requested"));
        }
        if c.sense_len > sense_len {
            return Err(RingError("completion reports more sense data than the buffer holds"));
        }
        Ok(Some(c))
    }

    /// The pages, for the fake device in tests.
    #[cfg(test)]
    pub fn pages(&self) -> (&DmaRegion, &DmaRegion, &DmaRegion) {
        (&self.state, &self.req, &self.cmp)
    }
}

#[cfg(test)]
#[path = "ring_tests.rs"]
mod tests;
