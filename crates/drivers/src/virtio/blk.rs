//! virtio-blk: one request queue, one request at a time, through a bounce
//! buffer owned by the driver (so a device that writes late or too much
//! only ever touches driver memory, never the caller's buffer).
use super::common::{Health, Ints};
use super::dma::DmaBuf;
use super::queue::{Buffer, QueueError, VirtQueue};
use super::transport::{self, F_ANY_LAYOUT, Notify, Transport};
use alloc::string::String;
use unikit_kernel::dev::{BlockDevice, DevError, check_block_request};
use unikit_kernel::event::Event;
use unikit_kernel::sync::Mutex;

const F_SIZE_MAX: u64 = 1 << 1;
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;

const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

const SECTOR: usize = 512;
/// Largest transfer per request.
const CHUNK: usize = 64 * 1024;
/// Bounce buffer layout: header (16 bytes), status (1 byte), data from 512.
const HDR: usize = 0;
const STATUS: usize = 16;
const DATA: usize = 512;
/// A request the device has not completed after this long breaks it.
const TIMEOUT_NS: u64 = 30_000_000_000;

struct State {
    q: VirtQueue,
    buf: DmaBuf,
    notify: Notify,
}

pub struct VirtioBlk {
    name: String,
    capacity: u64,
    read_only: bool,
    flush: bool,
    chunk: usize,
    state: Mutex<State>,
    event: &'static Event,
    irq: bool,
    health: Health,
    kind: &'static str,
}

impl VirtioBlk {
    /// Brings the device up. On error the device is reset and not used.
    pub fn new(name: String, t: &'static dyn Transport, ints: &Ints) -> Result<Self, &'static str> {
        Self::init(name, t, ints).inspect_err(|_| transport::fail(t))
    }

    fn init(name: String, t: &'static dyn Transport, ints: &Ints) -> Result<Self, &'static str> {
        let features = transport::negotiate(t, F_SIZE_MAX | F_RO | F_FLUSH | F_ANY_LAYOUT)?;
        let event: &'static Event = alloc::boxed::Box::leak(alloc::boxed::Box::new(Event::new()));
        let vector = ints.prepare(t, event);
        let mut cap = [0u8; 8];
        transport::read_config(t, 0, &mut cap)?;
        let capacity = u64::from_le_bytes(cap);
        if capacity > u64::MAX / SECTOR as u64 {
            return Err("capacity out of range");
        }
        let mut chunk = CHUNK;
        if features & F_SIZE_MAX != 0 {
            let mut m = [0u8; 4];
            transport::read_config(t, 8, &mut m)?;
            let max = u32::from_le_bytes(m) as usize / SECTOR * SECTOR;
            if max == 0 {
                return Err("size_max smaller than a sector");
            }
            chunk = chunk.min(max);
        }
        let size = transport::queue_size(t, 0, 16)?;
        let q = VirtQueue::new(size).map_err(|_| "cannot allocate the request queue")?;
        let buf = DmaBuf::new(DATA + CHUNK, 4096).ok_or("out of memory for the bounce buffer")?;
        let (notify, vector_ok) = t.setup_queue(0, &q, vector)?;
        let irq = ints.finish(t, event, vector.is_some() && vector_ok);
        let mut q = q;
        q.suppress_interrupts(!irq);
        transport::driver_ok(t);
        Ok(Self {
            name,
            capacity,
            read_only: features & F_RO != 0,
            flush: features & F_FLUSH != 0,
            chunk,
            state: Mutex::new(State { q, buf, notify }),
            event,
            irq,
            health: Health::new(t),
            kind: t.kind(),
        })
    }

    pub fn transport_kind(&self) -> &'static str {
        self.kind
    }

    /// One request of `len` data bytes (already in the bounce buffer for
    /// writes), waiting for its completion.
    fn request(&self, st: &mut State, ty: u32, sector: u64, len: usize) -> Result<(), DevError> {
        self.health.check()?;
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&ty.to_le_bytes());
        hdr[8..16].copy_from_slice(&sector.to_le_bytes());
        st.buf.write(HDR, &hdr);
        st.buf.write(STATUS, &[0xff]);
        let h = Buffer { addr: st.buf.addr(HDR), len: 16, device_writes: false };
        let d = Buffer { addr: st.buf.addr(DATA), len: len as u32, device_writes: ty == T_IN };
        let s = Buffer { addr: st.buf.addr(STATUS), len: 1, device_writes: true };
        let chain: &[Buffer] = if len == 0 { &[h, s] } else { &[h, d, s] };
        st.q.add(chain, 0).map_err(|e| self.qerr(e))?;
        if st.q.needs_notify() {
            st.notify.ring();
        }
        let deadline = unikit_kernel::time::monotonic_ns().saturating_add(TIMEOUT_NS);
        let mut spins = 0u32;
        loop {
            if st.q.pop_used().map_err(|e| self.qerr(e))?.is_some() {
                break;
            }
            if unikit_kernel::time::monotonic_ns() > deadline {
                st.q.set_broken("request timed out");
                return Err(self.health.fail("request timed out"));
            }
            if self.irq {
                let soon = unikit_kernel::time::monotonic_ns() + 10_000_000;
                self.event.wait(Some(soon));
            } else {
                spins += 1;
                if spins.is_multiple_of(64) {
                    unikit_kernel::sched::yield_now();
                } else {
                    core::hint::spin_loop();
                }
            }
        }
        let mut status = [0u8];
        st.buf.read(STATUS, &mut status);
        match status[0] {
            S_OK => Ok(()),
            S_IOERR | S_UNSUPP => Err(DevError::Io),
            _ => Err(self.health.fail("bogus request status")),
        }
    }

    fn qerr(&self, e: QueueError) -> DevError {
        match e {
            // One request at a time on a queue of >= 2 entries: never full.
            QueueError::Full | QueueError::BadRequest => self.health.fail("request queue refused a request"),
            QueueError::Broken(why) => self.health.fail(why),
        }
    }
}

impl BlockDevice for VirtioBlk {
    fn name(&self) -> &str {
        &self.name
    }
    fn block_size(&self) -> usize {
        SECTOR
    }
    fn num_blocks(&self) -> u64 {
        self.capacity
    }
    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), DevError> {
        self.health.check()?;
        check_block_request(self, block, buf.len())?;
        let mut st = self.state.lock();
        for (i, part) in buf.chunks_mut(self.chunk).enumerate() {
            let sector = block + (i * self.chunk / SECTOR) as u64;
            self.request(&mut st, T_IN, sector, part.len())?;
            st.buf.read(DATA, part);
        }
        Ok(())
    }

    fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), DevError> {
        self.health.check()?;
        if self.read_only {
            return Err(DevError::ReadOnly);
        }
        check_block_request(self, block, buf.len())?;
        let mut st = self.state.lock();
        for (i, part) in buf.chunks(self.chunk).enumerate() {
            let sector = block + (i * self.chunk / SECTOR) as u64;
            st.buf.write(DATA, part);
            self.request(&mut st, T_OUT, sector, part.len())?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), DevError> {
        self.health.check()?;
        if !self.flush || self.read_only {
            return Ok(());
        }
        let mut st = self.state.lock();
        self.request(&mut st, T_FLUSH, 0, 0)
    }
}

impl VirtioBlk {
    /// Whether completions interrupt (otherwise requests are polled).
    pub fn has_irq(&self) -> bool {
        self.irq
    }
}
