//! A small SCSI layer for disks, over any host adapter that carries one
//! command at a time ([`Transport`]): INQUIRY, TEST UNIT READY, READ
//! CAPACITY (10) and (16), READ/WRITE (10) and (16), SYNCHRONIZE CACHE (10),
//! MODE SENSE (6) for write protection, and REQUEST SENSE when the adapter
//! gave no sense data with a CHECK CONDITION.
//!
//! Facts from T10's SPC-4 (INQUIRY, TEST UNIT READY, REQUEST SENSE, MODE
//! SENSE, sense data formats, status codes) and SBC-3 (READ CAPACITY,
//! READ/WRITE, SYNCHRONIZE CACHE); CDB fields are big-endian.
//!
//! Everything a target answers is checked: response lengths, the block
//! length (a power of two, 512..=4096), the capacity (no overflow), sense
//! data lengths. No unsafe code, and no kernel: host-tested with a fake
//! target that misbehaves (see the tests at the bottom).
#![deny(unsafe_code)]

/// Operation codes.
pub const TEST_UNIT_READY: u8 = 0x00;
pub const REQUEST_SENSE: u8 = 0x03;
pub const INQUIRY: u8 = 0x12;
pub const MODE_SENSE_6: u8 = 0x1a;
pub const READ_CAPACITY_10: u8 = 0x25;
pub const READ_10: u8 = 0x28;
pub const WRITE_10: u8 = 0x2a;
pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
pub const READ_16: u8 = 0x88;
pub const WRITE_16: u8 = 0x8a;
/// SERVICE ACTION IN (16); service action 0x10 is READ CAPACITY (16).
pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
pub const SA_READ_CAPACITY_16: u8 = 0x10;

/// SCSI status codes (SAM).
pub const STATUS_GOOD: u8 = 0x00;
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
pub const STATUS_BUSY: u8 = 0x08;

/// Sense keys (SPC-4 table 27).
pub const KEY_NO_SENSE: u8 = 0x0;
pub const KEY_RECOVERED_ERROR: u8 = 0x1;
pub const KEY_NOT_READY: u8 = 0x2;
pub const KEY_MEDIUM_ERROR: u8 = 0x3;
pub const KEY_HARDWARE_ERROR: u8 = 0x4;
pub const KEY_ILLEGAL_REQUEST: u8 = 0x5;
pub const KEY_UNIT_ATTENTION: u8 = 0x6;
pub const KEY_DATA_PROTECT: u8 = 0x7;
pub const KEY_ABORTED_COMMAND: u8 = 0xb;

/// Largest LBA (+ 1) and block count the 10-byte READ/WRITE can address.
const LBA10_END: u64 = 1 << 32;
const BLOCKS10_MAX: u64 = 0xffff;

/// Sense buffer size asked of adapters (fixed format needs 18 bytes).
pub const SENSE_LEN: usize = 64;

/// The data phase of a command.
pub enum Data<'a> {
    None,
    /// From the target into this buffer.
    In(&'a mut [u8]),
    /// From this buffer to the target.
    Out(&'a [u8]),
}

impl Data<'_> {
    pub fn len(&self) -> usize {
        match self {
            Data::None => 0,
            Data::In(b) => b.len(),
            Data::Out(b) => b.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the adapter reports for a command that reached the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// SCSI status byte.
    pub status: u8,
    /// Data bytes moved (<= the data buffer's length; the adapter checks).
    pub transferred: usize,
    /// Autosense data (the first `sense_len` bytes are valid).
    pub sense: [u8; SENSE_LEN],
    pub sense_len: usize,
}

impl Reply {
    pub fn good(transferred: usize) -> Self {
        Self { status: STATUS_GOOD, transferred, sense: [0; SENSE_LEN], sense_len: 0 }
    }
}

/// Decoded sense data (fixed or descriptor format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    /// Decodes sense data; `None` if it is too short or of an unknown format.
    pub fn parse(b: &[u8]) -> Option<Sense> {
        let code = b.first()? & 0x7f;
        match code {
            // Fixed format: key in byte 2, ASC/ASCQ in bytes 12/13 (which a
            // short "additional length" may leave out).
            0x70 | 0x71 => {
                let key = b.get(2)? & 0xf;
                let asc = b.get(12).copied().unwrap_or(0);
                let ascq = b.get(13).copied().unwrap_or(0);
                Some(Sense { key, asc, ascq })
            }
            // Descriptor format: key, ASC, ASCQ in bytes 1..4.
            0x72 | 0x73 => Some(Sense { key: b.get(1)? & 0xf, asc: *b.get(2)?, ascq: *b.get(3)? }),
            _ => None,
        }
    }

    pub fn key_name(&self) -> &'static str {
        match self.key {
            KEY_NO_SENSE => "no sense",
            KEY_RECOVERED_ERROR => "recovered error",
            KEY_NOT_READY => "not ready",
            KEY_MEDIUM_ERROR => "medium error",
            KEY_HARDWARE_ERROR => "hardware error",
            KEY_ILLEGAL_REQUEST => "illegal request",
            KEY_UNIT_ATTENTION => "unit attention",
            KEY_DATA_PROTECT => "data protect",
            0x8 => "blank check",
            0x9 => "vendor specific",
            0xa => "copy aborted",
            KEY_ABORTED_COMMAND => "aborted command",
            0xd => "volume overflow",
            0xe => "miscompare",
            _ => "reserved sense key",
        }
    }

    /// A few additional sense codes worth naming (SPC-4 annex D).
    pub fn asc_name(&self) -> Option<&'static str> {
        Some(match (self.asc, self.ascq) {
            (0x04, _) => "logical unit not ready",
            (0x11, _) => "unrecovered read error",
            (0x0c, _) => "write error",
            (0x20, 0) => "invalid command operation code",
            (0x21, 0) => "logical block address out of range",
            (0x24, 0) => "invalid field in CDB",
            (0x25, 0) => "logical unit not supported",
            (0x27, _) => "write protected",
            (0x28, 0) => "medium may have changed",
            (0x29, _) => "power on, reset or bus device reset occurred",
            (0x2a, _) => "parameters changed",
            (0x3a, _) => "medium not present",
            _ => return None,
        })
    }
}

impl core::fmt::Display for Sense {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.key_name())?;
        if let Some(n) = self.asc_name() {
            write!(f, ": {n}")?;
        }
        write!(f, " (asc {:02x}/{:02x})", self.asc, self.ascq)
    }
}

/// Why a command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScsiError {
    /// No device answers at that target (selection timeout).
    NoTarget,
    /// The host adapter failed the command (its reason).
    Adapter(&'static str),
    /// The adapter broke its protocol; it is no longer used.
    Broken(&'static str),
    /// CHECK CONDITION with this sense data.
    Sense(Sense),
    /// CHECK CONDITION without usable sense data.
    NoSense,
    /// Another status (BUSY, RESERVATION CONFLICT, ...).
    Status(u8),
    /// The target answered something malformed (short or out-of-range data).
    BadResponse(&'static str),
}

impl core::fmt::Display for ScsiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ScsiError::NoTarget => f.write_str("no device at this target"),
            ScsiError::Adapter(why) => write!(f, "host adapter: {why}"),
            ScsiError::Broken(why) => write!(f, "host adapter protocol violation: {why}"),
            ScsiError::Sense(s) => write!(f, "check condition: {s}"),
            ScsiError::NoSense => f.write_str("check condition without sense data"),
            ScsiError::Status(s) => write!(f, "SCSI status {s:#04x}"),
            ScsiError::BadResponse(why) => write!(f, "bad response: {why}"),
        }
    }
}

/// A host adapter: runs one command on `target` (LUN 0) and waits for it.
/// The adapter checks what the device reports (transferred <= the buffer,
/// sense length <= [`SENSE_LEN`]) before returning a [`Reply`].
pub trait Transport {
    fn execute(&self, target: u8, cdb: &[u8], data: Data<'_>) -> Result<Reply, ScsiError>;
    /// Waits a moment before asking a target that is becoming ready again.
    fn pause(&self) {}
}

/// Runs `cdb`; CHECK CONDITION becomes [`ScsiError::Sense`] (asking with
/// REQUEST SENSE when the adapter had no autosense data). Returns the bytes
/// transferred.
pub fn command(t: &dyn Transport, target: u8, cdb: &[u8], data: Data<'_>) -> Result<usize, ScsiError> {
    let r = t.execute(target, cdb, data)?;
    match r.status {
        STATUS_GOOD => Ok(r.transferred),
        STATUS_CHECK_CONDITION => {
            let n = r.sense_len.min(SENSE_LEN);
            match Sense::parse(&r.sense[..n]) {
                // RECOVERED ERROR: the command completed (SPC-4 4.5.6).
                Some(s) if s.key == KEY_RECOVERED_ERROR => return Ok(r.transferred),
                Some(s) => return Err(ScsiError::Sense(s)),
                None => {}
            }
            let mut buf = [0u8; 18];
            let cdb = [REQUEST_SENSE, 0, 0, 0, buf.len() as u8, 0];
            let r = t.execute(target, &cdb, Data::In(&mut buf))?;
            if r.status != STATUS_GOOD {
                return Err(ScsiError::NoSense);
            }
            match Sense::parse(&buf[..r.transferred.min(buf.len())]) {
                Some(s) => Err(ScsiError::Sense(s)),
                None => Err(ScsiError::NoSense),
            }
        }
        s => Err(ScsiError::Status(s)),
    }
}

/// What INQUIRY, READ CAPACITY and MODE SENSE said about a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    /// "vendor product" from INQUIRY (printable ASCII, trimmed).
    pub model: alloc::string::String,
    pub block_size: u32,
    pub blocks: u64,
    pub read_only: bool,
    /// Whether READ CAPACITY (16) was needed, hence READ/WRITE (16) too.
    pub long_lba: bool,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Times TEST UNIT READY is retried through unit attentions (a reset or a
/// power-on is reported once per initiator) and "becoming ready".
const TUR_TRIES: usize = 8;

/// Probes `target`: `Ok(None)` when nothing is there or it is not a disk
/// (peripheral device type 0, qualifier 0).
pub fn identify(t: &dyn Transport, target: u8) -> Result<Option<DiskInfo>, ScsiError> {
    let mut inq = [0u8; 36];
    let n = match command(t, target, &[INQUIRY, 0, 0, 0, inq.len() as u8, 0], Data::In(&mut inq)) {
        Ok(n) => n,
        Err(ScsiError::NoTarget) => return Ok(None),
        Err(e) => return Err(e),
    };
    if n < 5 {
        return Err(ScsiError::BadResponse("INQUIRY data shorter than its header"));
    }
    if inq[0] != 0 {
        return Ok(None);
    }
    let text = |b: &[u8]| -> alloc::string::String {
        let s: alloc::string::String =
            b.iter().map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { '?' }).collect();
        alloc::string::String::from(s.trim())
    };
    let model = if n >= 32 {
        alloc::format!("{} {}", text(&inq[8..16]), text(&inq[16..32]))
    } else {
        alloc::string::String::from("(no identification)")
    };

    let mut last = None;
    for _ in 0..TUR_TRIES {
        match command(t, target, &[TEST_UNIT_READY, 0, 0, 0, 0, 0], Data::None) {
            Ok(_) => {
                last = None;
                break;
            }
            Err(ScsiError::Sense(s)) if s.key == KEY_UNIT_ATTENTION => last = Some(s),
            Err(ScsiError::Sense(s)) if s.key == KEY_NOT_READY => {
                last = Some(s);
                t.pause();
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(s) = last {
        return Err(ScsiError::Sense(s));
    }

    let mut cap = [0u8; 8];
    let n = command(t, target, &[READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0], Data::In(&mut cap))?;
    if n < 8 {
        return Err(ScsiError::BadResponse("READ CAPACITY (10) data shorter than 8 bytes"));
    }
    let (mut last_lba, mut block_size, mut long_lba) = (be32(&cap[0..4]) as u64, be32(&cap[4..8]), false);
    if last_lba == 0xffff_ffff {
        let mut cap = [0u8; 32];
        let mut cdb = [0u8; 16];
        cdb[0] = SERVICE_ACTION_IN_16;
        cdb[1] = SA_READ_CAPACITY_16;
        cdb[10..14].copy_from_slice(&(cap.len() as u32).to_be_bytes());
        let n = command(t, target, &cdb, Data::In(&mut cap))?;
        if n < 12 {
            return Err(ScsiError::BadResponse("READ CAPACITY (16) data shorter than 12 bytes"));
        }
        last_lba = be64(&cap[0..8]);
        block_size = be32(&cap[8..12]);
        long_lba = true;
    }
    if !block_size.is_power_of_two() || !(512..=4096).contains(&block_size) {
        return Err(ScsiError::BadResponse("block length not a power of two in 512..=4096"));
    }
    let blocks = last_lba.checked_add(1).ok_or(ScsiError::BadResponse("capacity out of range"))?;
    if blocks.checked_mul(block_size as u64).is_none() {
        return Err(ScsiError::BadResponse("capacity out of range"));
    }

    // Write protection: the WP bit of MODE SENSE (6)'s device-specific
    // parameter. A target without MODE SENSE is taken as writable (its
    // writes would fail with DATA PROTECT anyway).
    let mut ms = [0u8; 4];
    let read_only = match command(t, target, &[MODE_SENSE_6, 0, 0x3f, 0, ms.len() as u8, 0], Data::In(&mut ms)) {
        Ok(n) if n >= 3 => ms[2] & 0x80 != 0,
        Ok(_) | Err(ScsiError::Sense(_) | ScsiError::NoSense | ScsiError::Status(_)) => false,
        Err(e) => return Err(e),
    };
    Ok(Some(DiskInfo { model, block_size, blocks, read_only, long_lba }))
}

/// A READ or WRITE CDB for `blocks` blocks at `lba`: the 10-byte form
/// where it reaches, the 16-byte form past 2^32 blocks or 65535 per command.
pub fn rw_cdb(write: bool, lba: u64, blocks: u32) -> ([u8; 16], usize) {
    let mut cdb = [0u8; 16];
    if lba + blocks as u64 <= LBA10_END && blocks as u64 <= BLOCKS10_MAX {
        cdb[0] = if write { WRITE_10 } else { READ_10 };
        cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
        cdb[7..9].copy_from_slice(&(blocks as u16).to_be_bytes());
        (cdb, 10)
    } else {
        cdb[0] = if write { WRITE_16 } else { READ_16 };
        cdb[2..10].copy_from_slice(&lba.to_be_bytes());
        cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
        (cdb, 16)
    }
}

/// Reads `buf.len()` bytes (whole blocks of `bs`) from `lba`, in commands
/// of at most `chunk` bytes. A short transfer is an error.
pub fn read(t: &dyn Transport, target: u8, bs: usize, chunk: usize, lba: u64, buf: &mut [u8]) -> Result<(), ScsiError> {
    for (i, part) in buf.chunks_mut(chunk).enumerate() {
        let at = lba + (i * chunk / bs) as u64;
        let (cdb, n) = rw_cdb(false, at, (part.len() / bs) as u32);
        let len = part.len();
        if command(t, target, &cdb[..n], Data::In(part))? != len {
            return Err(ScsiError::BadResponse("short read"));
        }
    }
    Ok(())
}

/// Writes `buf` (whole blocks of `bs`) at `lba`, like [`read`].
pub fn write(t: &dyn Transport, target: u8, bs: usize, chunk: usize, lba: u64, buf: &[u8]) -> Result<(), ScsiError> {
    for (i, part) in buf.chunks(chunk).enumerate() {
        let at = lba + (i * chunk / bs) as u64;
        let (cdb, n) = rw_cdb(true, at, (part.len() / bs) as u32);
        if command(t, target, &cdb[..n], Data::Out(part))? != part.len() {
            return Err(ScsiError::BadResponse("short write"));
        }
    }
    Ok(())
}

/// SYNCHRONIZE CACHE (10) of the whole disk. ILLEGAL REQUEST (a target
/// without a write cache to flush) counts as done.
pub fn sync_cache(t: &dyn Transport, target: u8) -> Result<(), ScsiError> {
    match command(t, target, &[SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0], Data::None) {
        Ok(_) => Ok(()),
        Err(ScsiError::Sense(s)) if s.key == KEY_ILLEGAL_REQUEST && s.asc == 0x20 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "scsi_tests.rs"]
mod tests;
