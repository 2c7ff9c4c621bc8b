//! storvsc: Hyper-V's synthetic SCSI controller over a VMBus channel, as a
//! block device (the first disk: path 0, target 0, LUN 0).
//!
//! The VSTOR protocol (Linux `drivers/scsi/storvsc_drv.c`): every request
//! is a 64-byte `vstor_packet` (operation, flags, status, then a 52-byte
//! union) sent in-band with a completion requested; the host answers with a
//! completion packet carrying the same transaction ID and a
//! `COMPLETE_IO` packet. Start-up: BEGIN_INITIALIZATION,
//! QUERY_PROTOCOL_VERSION (newest first), QUERY_PROPERTIES,
//! END_INITIALIZATION. SCSI commands are EXECUTE_SRB packets whose data
//! travels in a GPA-direct packet (one range listing the frames of our
//! bounce buffer). Only the Windows 8 and later layout (the SRB with its
//! 16-byte extension) is spoken: every Gen2 and Azure host has it.
use super::abi::{Le, pkt};
use super::{Channel, Error, Platform};
use crate::io::DmaRegion;

const OP_COMPLETE_IO: u32 = 1;
const OP_EXECUTE_SRB: u32 = 3;
const OP_BEGIN_INITIALIZATION: u32 = 7;
const OP_END_INITIALIZATION: u32 = 8;
const OP_QUERY_PROTOCOL_VERSION: u32 = 9;
const OP_QUERY_PROPERTIES: u32 = 10;
const REQUEST_COMPLETION_FLAG: u32 = 1;

/// `vstor_packet`: 12-byte head + 52-byte union.
const PACKET_SIZE: usize = 64;
/// `vmscsi_request` with the Windows 8 extension.
const SRB_SIZE: u16 = 52;
/// Sense bytes the host may return (Windows 8 on).
const SENSE_SIZE: u8 = 0x14;
/// `major << 8 | minor`: Windows 10 (6.2), 8.1 (6.0), 8 (5.1).
const VERSIONS: [u16; 3] = [6 << 8 | 2, 6 << 8, 5 << 8 | 1];

const DATA_WRITE: u8 = 0;
const DATA_READ: u8 = 1;
const DATA_NONE: u8 = 2;
const SRB_FLAGS_QUEUE_ACTION_ENABLE: u32 = 0x02;
const SRB_FLAGS_DISABLE_SYNCH_TRANSFER: u32 = 0x08;
const SRB_FLAGS_DATA_IN: u32 = 0x40;
const SRB_FLAGS_DATA_OUT: u32 = 0x80;
const SRB_STATUS_SUCCESS: u8 = 0x01;

/// Bytes per request through the bounce buffer (at most what the host allows).
const BOUNCE: usize = 64 * 1024;
/// Packets that are not the answer we wait for, tolerated per request.
const MAX_UNSOLICITED: usize = 64;

/// A storvsc disk.
pub struct StorVsc<P: Platform> {
    ch: Channel<P>,
    next_id: u64,
    bounce: DmaRegion,
    /// Bytes per request: the bounce size capped by the host's maximum.
    max_bytes: usize,
    blocks: u64,
    block_size: usize,
    version: u16,
}

/// Direction of a command's data.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    None,
    In(usize),
    Out(usize),
}

impl<P: Platform> StorVsc<P> {
    /// Runs the VSTOR start-up on an open channel and reads the capacity.
    pub fn new(ch: Channel<P>) -> Result<Self, Error> {
        let bounce = DmaRegion::alloc(BOUNCE, super::abi::PAGE).ok_or(Error::NoMemory)?;
        let mut s = Self { ch, next_id: 1, bounce, max_bytes: BOUNCE, blocks: 0, block_size: 512, version: 0 };
        s.control(OP_BEGIN_INITIALIZATION, &[])?;
        for v in VERSIONS {
            let mut b = [0u8; 4];
            b[..2].copy_from_slice(&v.to_le_bytes());
            match s.control(OP_QUERY_PROTOCOL_VERSION, &b) {
                Ok(_) => {
                    s.version = v;
                    break;
                }
                Err(Error::Refused(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        if s.version == 0 {
            return Err(Error::NoVersion);
        }
        let props = s.control(OP_QUERY_PROPERTIES, &[])?;
        // vmstorage_channel_properties.max_transfer_bytes, at 12 + 12.
        let max = props.u32_at(24).unwrap_or(0) as usize;
        if max < 4096 {
            return Err(Error::Hostile("storvsc maximum transfer under a page"));
        }
        s.max_bytes = BOUNCE.min(max / 4096 * 4096);
        s.control(OP_END_INITIALIZATION, &[])?;
        s.read_capacity()?;
        Ok(s)
    }

    /// Negotiated VSTOR version (`major << 8 | minor`).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks on the disk.
    pub fn num_blocks(&self) -> u64 {
        self.blocks
    }

    fn packet(op: u32, body: &[u8]) -> [u8; PACKET_SIZE] {
        let mut p = [0u8; PACKET_SIZE];
        p[0..4].copy_from_slice(&op.to_le_bytes());
        p[4..8].copy_from_slice(&REQUEST_COMPLETION_FLAG.to_le_bytes());
        p[12..12 + body.len()].copy_from_slice(body);
        p
    }

    /// Waits for the completion of transaction `id`; returns its vstor
    /// packet after checking it is a COMPLETE_IO with status 0.
    fn completion(&mut self, id: u64) -> Result<[u8; PACKET_SIZE], Error> {
        let mut waited = 0;
        let mut other = 0;
        loop {
            let Some(p) = self.ch.recv()? else {
                if !self.ch.wait(waited) {
                    return Err(Error::Timeout);
                }
                waited += 1;
                continue;
            };
            if p.desc.ty != pkt::COMP || p.desc.trans_id != id {
                // Unsolicited (a bus rescan notice, say): not ours.
                other += 1;
                if other > MAX_UNSOLICITED {
                    return Err(Error::Hostile("storvsc: too many unsolicited packets"));
                }
                continue;
            }
            let b = p.payload();
            // Everything up to the SRB's data_transfer_length (12 + 12) must be there.
            if b.len() < 28 {
                return Err(Error::Hostile("storvsc completion too short"));
            }
            let mut out = [0u8; PACKET_SIZE];
            let n = b.len().min(PACKET_SIZE);
            out[..n].copy_from_slice(&b[..n]);
            if out[..].u32_at(0) != Some(OP_COMPLETE_IO) {
                return Err(Error::Hostile("storvsc completion of another operation"));
            }
            return match out[..].u32_at(8) {
                Some(0) => Ok(out),
                Some(s) => Err(Error::Refused(s)),
                None => Err(Error::Hostile("storvsc completion too short")),
            };
        }
    }

    fn control(&mut self, op: u32, body: &[u8]) -> Result<[u8; PACKET_SIZE], Error> {
        let id = self.next_id;
        self.next_id += 1;
        self.ch.send_inband(id, &Self::packet(op, body), true)?;
        self.completion(id)
    }

    /// Runs one SCSI command; returns the bytes the host says it moved.
    fn scsi(&mut self, cdb: &[u8], dir: Dir) -> Result<usize, Error> {
        let (data_in, len, flags) = match dir {
            Dir::None => (DATA_NONE, 0, 0),
            Dir::In(n) => (DATA_READ, n, SRB_FLAGS_DATA_IN),
            Dir::Out(n) => (DATA_WRITE, n, SRB_FLAGS_DATA_OUT),
        };
        if len > self.max_bytes || cdb.len() > 16 {
            return Err(Error::Invalid("SCSI request too large"));
        }
        let mut srb = [0u8; SRB_SIZE as usize];
        srb[0..2].copy_from_slice(&SRB_SIZE.to_le_bytes());
        // port, path, target, LUN: all 0 (the first disk).
        srb[8] = cdb.len() as u8;
        srb[9] = SENSE_SIZE;
        srb[10] = data_in;
        srb[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        srb[16..16 + cdb.len()].copy_from_slice(cdb);
        let srb_flags = flags | SRB_FLAGS_QUEUE_ACTION_ENABLE | SRB_FLAGS_DISABLE_SYNCH_TRANSFER;
        srb[40..44].copy_from_slice(&srb_flags.to_le_bytes());
        srb[44..48].copy_from_slice(&60u32.to_le_bytes()); // timeout, seconds
        let body = Self::packet(OP_EXECUTE_SRB, &srb);
        let id = self.next_id;
        self.next_id += 1;
        if len == 0 {
            self.ch.send_inband(id, &body, true)?;
        } else {
            // GPA direct: reserved, one range; the range is the byte count,
            // offset 0 and the frames of the bounce buffer it covers.
            let pages = len.div_ceil(super::abi::PAGE);
            let mut head = alloc::vec::Vec::with_capacity(16 + 8 * pages);
            head.extend_from_slice(&0u32.to_le_bytes());
            head.extend_from_slice(&1u32.to_le_bytes());
            head.extend_from_slice(&(len as u32).to_le_bytes());
            head.extend_from_slice(&0u32.to_le_bytes());
            for i in 0..pages {
                head.extend_from_slice(&(self.bounce.dma_addr(i * super::abi::PAGE) >> 12).to_le_bytes());
            }
            self.ch.send(pkt::DATA_USING_GPA_DIRECT, pkt::FLAG_COMPLETION_REQUESTED, id, &head, &body)?;
        }
        let r = self.completion(id)?;
        let (srb_status, scsi_status) = (r[14], r[15]);
        if srb_status & 0x3f != SRB_STATUS_SUCCESS || scsi_status != 0 {
            return Err(Error::Scsi { srb_status, scsi_status });
        }
        let moved = r[..].u32_at(24).unwrap_or(0) as usize;
        if moved > len {
            return Err(Error::Hostile("storvsc moved more than asked"));
        }
        Ok(moved)
    }

    fn read_capacity(&mut self) -> Result<(), Error> {
        // READ CAPACITY (16): service action 0x10, 32 bytes back.
        let mut cdb = [0u8; 16];
        cdb[0] = 0x9e;
        cdb[1] = 0x10;
        cdb[10..14].copy_from_slice(&32u32.to_be_bytes());
        if self.scsi(&cdb, Dir::In(32))? < 12 {
            return Err(Error::Hostile("short READ CAPACITY answer"));
        }
        let mut b = [0u8; 12];
        self.bounce.read_bytes(0, &mut b);
        let last = u64::from_be_bytes(b[0..8].try_into().unwrap_or([0; 8]));
        let bs = u32::from_be_bytes(b[8..12].try_into().unwrap_or([0; 4])) as usize;
        if !(512..=4096).contains(&bs) || !bs.is_power_of_two() || last == u64::MAX {
            return Err(Error::Hostile("impossible disk geometry"));
        }
        self.blocks = last + 1;
        self.block_size = bs;
        Ok(())
    }

    fn check(&self, block: u64, len: usize) -> Result<u64, Error> {
        if !len.is_multiple_of(self.block_size) {
            return Err(Error::Invalid("not whole blocks"));
        }
        let n = (len / self.block_size) as u64;
        match block.checked_add(n) {
            Some(end) if end <= self.blocks => Ok(n),
            _ => Err(Error::Invalid("beyond the end of the disk")),
        }
    }

    fn rw_cdb(op: u8, block: u64, count: u32) -> [u8; 16] {
        let mut cdb = [0u8; 16];
        cdb[0] = op;
        cdb[2..10].copy_from_slice(&block.to_be_bytes());
        cdb[10..14].copy_from_slice(&count.to_be_bytes());
        cdb
    }

    /// Reads whole blocks from `block` into `buf` (READ (16)).
    pub fn read(&mut self, mut block: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check(block, buf.len())?;
        for chunk in buf.chunks_mut(self.max_bytes / self.block_size * self.block_size) {
            let n = (chunk.len() / self.block_size) as u32;
            if self.scsi(&Self::rw_cdb(0x88, block, n), Dir::In(chunk.len()))? != chunk.len() {
                return Err(Error::Hostile("storvsc read fell short"));
            }
            self.bounce.read_bytes(0, chunk);
            block += n as u64;
        }
        Ok(())
    }

    /// Writes whole blocks from `buf` at `block` (WRITE (16)).
    pub fn write(&mut self, mut block: u64, buf: &[u8]) -> Result<(), Error> {
        self.check(block, buf.len())?;
        for chunk in buf.chunks(self.max_bytes / self.block_size * self.block_size) {
            let n = (chunk.len() / self.block_size) as u32;
            self.bounce.write_bytes(0, chunk);
            if self.scsi(&Self::rw_cdb(0x8a, block, n), Dir::Out(chunk.len()))? != chunk.len() {
                return Err(Error::Hostile("storvsc write fell short"));
            }
            block += n as u64;
        }
        Ok(())
    }

    /// SYNCHRONIZE CACHE (10): completed writes become durable.
    pub fn flush(&mut self) -> Result<(), Error> {
        let mut cdb = [0u8; 10];
        cdb[0] = 0x35;
        self.scsi(&cdb, Dir::None).map(|_| ())
    }
}

/// A storvsc disk as the kernel's block device (guest only).
#[cfg(target_os = "none")]
pub struct StorVscDisk<P: Platform> {
    name: alloc::string::String,
    blocks: u64,
    block_size: usize,
    dev: spin::Mutex<StorVsc<P>>,
    /// Set once the host broke the protocol: the disk is not used again.
    broken: crate::io::Broken,
}

#[cfg(target_os = "none")]
impl<P: Platform> StorVscDisk<P> {
    /// Wraps a started disk under `name`.
    pub fn new(name: alloc::string::String, dev: StorVsc<P>) -> Self {
        Self {
            name,
            blocks: dev.num_blocks(),
            block_size: dev.block_size(),
            dev: spin::Mutex::new(dev),
            broken: crate::io::Broken::new(),
        }
    }

    fn run(&self, f: impl FnOnce(&mut StorVsc<P>) -> Result<(), Error>) -> Result<(), unikit_kernel::dev::DevError> {
        use unikit_kernel::dev::DevError;
        if let Some(why) = self.broken.get() {
            return Err(DevError::Broken(why));
        }
        f(&mut self.dev.lock()).map_err(|e| match e {
            Error::Invalid(_) => DevError::OutOfRange,
            Error::Scsi { .. } | Error::Refused(_) | Error::Full | Error::NoMemory => DevError::Io,
            Error::Hostile(why) => DevError::Broken(self.broken.set(why)),
            Error::Timeout | Error::Hypercall(_) | Error::NoVersion => {
                DevError::Broken(self.broken.set("storvsc: the host stopped answering"))
            }
        })
    }
}

#[cfg(target_os = "none")]
impl<P: Platform + Send> unikit_kernel::dev::BlockDevice for StorVscDisk<P> {
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
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> Result<(), unikit_kernel::dev::DevError> {
        self.run(|d| d.read(block, buf))
    }
    fn write_blocks(&self, block: u64, buf: &[u8]) -> Result<(), unikit_kernel::dev::DevError> {
        self.run(|d| d.write(block, buf))
    }
    fn flush(&self) -> Result<(), unikit_kernel::dev::DevError> {
        self.run(|d| d.flush())
    }
}
