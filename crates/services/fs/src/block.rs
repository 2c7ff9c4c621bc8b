//! Byte-addressed access to a [`BlockDevice`]: unaligned reads and writes
//! (read-modify-write of the partial blocks at either end), and the
//! seekable stream with a small block cache that the FAT engine runs on.
use crate::error::{Error, ErrorKind, Result};
use crate::kdev::{self as dev, BlockDevice};
use crate::lock::Lock;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

/// Largest single request sent to the device, in bytes.
const MAX_REQUEST: usize = 64 * 1024;

/// A disk, addressed in bytes.
#[derive(Clone)]
pub struct Disk {
    dev: Arc<dyn BlockDevice>,
    bs: usize,
    len: u64,
    /// Serialises read-modify-write of partial blocks through this `Disk`.
    rmw: Arc<Lock<()>>,
}

impl core::fmt::Debug for Disk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Disk").field("name", &self.dev.name()).field("len", &self.len).finish()
    }
}

impl Disk {
    pub fn new(dev: Arc<dyn BlockDevice>) -> Result<Self> {
        let bs = dev.block_size();
        if bs == 0 || !bs.is_power_of_two() || bs > 64 * 1024 {
            return Err(Error::with_detail(
                ErrorKind::Unsupported,
                "device block size is not a power of two up to 64 KiB",
            ));
        }
        let len = dev
            .num_blocks()
            .checked_mul(bs as u64)
            .ok_or(Error::with_detail(ErrorKind::InvalidData, "device size overflows"))?;
        Ok(Self { dev, bs, len, rmw: Arc::new(Lock::new(())) })
    }

    /// The `index`-th block device the platform registered.
    pub fn open(index: usize) -> Result<Self> {
        let devs = dev::block_devices();
        let n = devs.len();
        let d = devs.into_iter().nth(index).ok_or_else(|| {
            Error::with_detail(ErrorKind::NotFound, alloc::format!("no block device {index} ({n} registered)"))
        })?;
        Self::new(d)
    }

    pub fn device(&self) -> &Arc<dyn BlockDevice> {
        &self.dev
    }
    pub fn name(&self) -> &str {
        self.dev.name()
    }
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn block_size(&self) -> usize {
        self.bs
    }
    pub fn read_only(&self) -> bool {
        self.dev.read_only()
    }

    fn span(&self, offset: u64, len: usize) -> usize {
        if offset >= self.len { 0 } else { (len as u64).min(self.len - offset) as usize }
    }

    /// Reads up to `buf.len()` bytes at `offset`; fewer at the end of the
    /// disk, 0 past it.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let n = self.span(offset, buf.len());
        let bs = self.bs as u64;
        let mut done = 0;
        let mut bounce: Vec<u8> = Vec::new();
        while done < n {
            let pos = offset + done as u64;
            let block = pos / bs;
            let within = (pos % bs) as usize;
            let want = n - done;
            if within == 0 && want >= self.bs {
                let chunk = (want - want % self.bs).min(MAX_REQUEST);
                self.dev.read_blocks(block, &mut buf[done..done + chunk])?;
                done += chunk;
            } else {
                if bounce.is_empty() {
                    bounce = vec![0; self.bs];
                }
                self.dev.read_blocks(block, &mut bounce)?;
                let c = (self.bs - within).min(want);
                buf[done..done + c].copy_from_slice(&bounce[within..within + c]);
                done += c;
            }
        }
        Ok(n)
    }

    /// Writes up to `buf.len()` bytes at `offset` (fewer at the end of the
    /// disk, 0 past it). Partial blocks are read, patched and written back.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        if self.dev.read_only() {
            return Err(Error::with_detail(ErrorKind::ReadOnlyFilesystem, "device is read-only"));
        }
        let n = self.span(offset, buf.len());
        let bs = self.bs as u64;
        let mut done = 0;
        let mut bounce: Vec<u8> = Vec::new();
        while done < n {
            let pos = offset + done as u64;
            let block = pos / bs;
            let within = (pos % bs) as usize;
            let want = n - done;
            if within == 0 && want >= self.bs {
                let chunk = (want - want % self.bs).min(MAX_REQUEST);
                self.dev.write_blocks(block, &buf[done..done + chunk])?;
                done += chunk;
            } else {
                if bounce.is_empty() {
                    bounce = vec![0; self.bs];
                }
                let c = (self.bs - within).min(want);
                let _g = self.rmw.lock();
                self.dev.read_blocks(block, &mut bounce)?;
                bounce[within..within + c].copy_from_slice(&buf[done..done + c]);
                self.dev.write_blocks(block, &bounce)?;
                done += c;
            }
        }
        Ok(n)
    }

    /// Makes completed writes durable.
    pub fn flush(&self) -> Result<()> {
        Ok(self.dev.flush()?)
    }
}

/// Blocks kept by [`DiskStream`]. Clean blocks are a read cache (the
/// device holds the same bytes); dirty blocks are writes held back to order
/// them (see [`StreamCtl::hold`]) and are never evicted.
const CACHE_BLOCKS: usize = 64;
/// Held-back blocks beyond this are written out at once (in order), so a
/// huge truncate cannot use unbounded memory; ordering is then lost for the
/// rest of that operation, which costs at most lost clusters.
const MAX_HELD: usize = 1024;

/// Where the volume keeps its clean/dirty marks (found at mount).
///
/// The boot sector's bit says "writes since the last sync": set before the
/// first write after a sync, cleared once a sync has made everything
/// durable. It is the bit fsck.fat (and Linux) read, so an image killed
/// between syncs is reported dirty and one killed after a sync is clean.
///
/// FAT[1]'s clean-shutdown bit says "mounted for writing": cleared before
/// the first write of a mount, set again by a clean unmount (Windows reads
/// it). It changes only once per mount and unmount because it lives in
/// every FAT copy: a kill between the copies' writes leaves FATs that
/// differ in that one cell, which fsck.fat reports.
#[derive(Clone, Debug, Default)]
pub struct Marks {
    /// The boot sector's status byte (offset 0x25 on FAT12/16, 0x41 on
    /// FAT32; Microsoft's BS_Reserved1): bit 0 set = dirty.
    pub bpb: u64,
    /// FAT[1] in every FAT copy: `(byte offset, width 2 or 4, clean bit)`;
    /// the bit set = cleanly unmounted (ClnShutBitMask, FAT16 0x8000, FAT32
    /// 0x0800_0000). FAT12 has none.
    pub fat1: Vec<(u64, usize, u32)>,
    /// FAT32: the FSInfo sector's free-cluster count. The engine writes it
    /// only at unmount; the file system writes it at every sync too, so a
    /// volume killed after a sync has no stale count for fsck.fat to report
    /// (fsck.fat 4.2 reports "unknown", 0xFFFFFFFF, as well).
    pub fsinfo_free: Option<u64>,
}

/// The volume's state as far as its marks go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Volume {
    /// Marked clean on the device and nothing written since.
    Clean,
    /// Written since the last sync; marked dirty on the device.
    Dirty,
    /// It was dirty when mounted (a crash or a kill before): it stays
    /// marked dirty, as Linux keeps it, until fsck.fat clears the mark.
    DirtyAtMount,
}

struct StreamState {
    /// `(block, data, dirty)`, oldest first.
    cache: VecDeque<(u64, Vec<u8>, bool)>,
    /// Byte range whose writes are held back while `holding`.
    held_range: (u64, u64),
    holding: bool,
    /// Hold every small write, not only the range's (see [`StreamCtl::hold_all`]).
    hold_all: bool,
    /// Held blocks, in the order first written.
    held_order: Vec<u64>,
    /// The block the last small write went to, not yet written: the next
    /// write to the same block (a long name's entries and its short entry,
    /// one sector) joins it, so the device sees one write. It is written
    /// before any write to another block, so the device's order is the
    /// engine's.
    pending: Option<u64>,
    marks: Option<Marks>,
    volume: Volume,
    /// FAT[1] says "mounted for writing" on the device.
    fat1_mounted: bool,
}

/// A seekable byte stream over a [`Disk`] with a small block cache: the
/// FAT engine reads and writes directory entries and FAT cells a few bytes
/// at a time. Writes go to the device at once, except those into a held
/// range (the FAT), which wait for [`StreamCtl::release`]: that is how the
/// file system orders data, allocation and directory entries.
pub struct DiskStream {
    disk: Disk,
    pos: u64,
    st: Arc<Lock<StreamState>>,
}

/// The file system's handle on the stream it gave the FAT engine.
#[derive(Clone)]
pub struct StreamCtl {
    disk: Disk,
    st: Arc<Lock<StreamState>>,
}

impl DiskStream {
    pub fn new(disk: Disk) -> Self {
        let st = StreamState {
            cache: VecDeque::new(),
            held_range: (0, 0),
            holding: false,
            hold_all: false,
            held_order: Vec::new(),
            pending: None,
            marks: None,
            volume: Volume::Clean,
            fat1_mounted: false,
        };
        Self { disk, pos: 0, st: Arc::new(Lock::new(st)) }
    }

    pub fn ctl(&self) -> StreamCtl {
        StreamCtl { disk: self.disk.clone(), st: self.st.clone() }
    }

    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = self.disk.span(self.pos, buf.len());
        if n == 0 {
            return Ok(0);
        }
        let mut st = self.st.lock();
        let bs = self.disk.bs;
        let block = self.pos / bs as u64;
        let within = (self.pos % bs as u64) as usize;
        let got = if within == 0 && n >= bs && !st.cache.iter().any(|(b, _, _)| *b == block) {
            // Whole blocks not in the cache: straight from the device, then
            // any held (newer) blocks in the range laid over them.
            let chunk = (n - n % bs).min(MAX_REQUEST);
            self.disk.dev.read_blocks(block, &mut buf[..chunk])?;
            let last = block + (chunk / bs) as u64;
            for (b, data, dirty) in st.cache.iter() {
                if *dirty && *b >= block && *b < last {
                    let at = (*b - block) as usize * bs;
                    buf[at..at + bs].copy_from_slice(data);
                }
            }
            chunk
        } else {
            let i = st.cached(&self.disk, block)?;
            let c = (bs - within).min(n);
            buf[..c].copy_from_slice(&st.cache[i].1[within..within + c]);
            c
        };
        self.pos += got as u64;
        Ok(got)
    }

    pub fn write(&mut self, buf: &[u8]) -> Result<usize> {
        if self.disk.read_only() {
            return Err(Error::with_detail(ErrorKind::ReadOnlyFilesystem, "device is read-only"));
        }
        let n = self.disk.span(self.pos, buf.len());
        if n == 0 {
            return Ok(0);
        }
        let mut st = self.st.lock();
        // The status byte belongs to the stream once it knows the marks:
        // the engine's own dirty flag would otherwise fight it.
        if let Some(m) = &st.marks
            && self.pos == m.bpb
            && n == 1
        {
            self.pos += 1;
            return Ok(1);
        }
        st.mark_dirty(&self.disk)?;
        let bs = self.disk.bs;
        let block = self.pos / bs as u64;
        let within = (self.pos % bs as u64) as usize;
        let in_range = st.holding && self.pos < st.held_range.1 && self.pos + n as u64 > st.held_range.0;
        let held = in_range || (st.holding && st.hold_all);
        let put = if within == 0 && n >= bs && !in_range {
            let chunk = (n - n % bs).min(MAX_REQUEST);
            st.write_pending(&self.disk)?;
            self.disk.dev.write_blocks(block, &buf[..chunk])?;
            // The new data supersedes cached copies, held ones included.
            let last = block + (chunk / bs) as u64;
            st.cache.retain(|(b, _, _)| *b < block || *b >= last);
            chunk
        } else {
            let c = (bs - within).min(n);
            st.patch(&self.disk, block, within, &buf[..c], held)?;
            c
        };
        self.pos += put as u64;
        Ok(put)
    }

    pub fn seek_to(&mut self, pos: u64) {
        self.pos = pos;
    }

    pub fn position(&self) -> u64 {
        self.pos
    }
}

impl StreamState {
    fn cached(&mut self, disk: &Disk, block: u64) -> Result<usize> {
        if let Some(i) = self.cache.iter().position(|(b, _, _)| *b == block) {
            return Ok(i);
        }
        let mut data = vec![0; disk.bs];
        disk.dev.read_blocks(block, &mut data)?;
        if self.cache.len() >= CACHE_BLOCKS
            && let Some(i) = self.cache.iter().position(|(_, _, dirty)| !dirty)
        {
            self.cache.remove(i);
        }
        self.cache.push_back((block, data, false));
        Ok(self.cache.len() - 1)
    }

    /// Writes `bytes` at `within` of `block` into the cache: held back
    /// when `hold`, otherwise as the pending block.
    fn patch(&mut self, disk: &Disk, block: u64, within: usize, bytes: &[u8], hold: bool) -> Result<()> {
        // A held write to the pending block writes that block out first,
        // so it cannot carry the held change along early.
        if (!hold && self.pending != Some(block)) || (hold && self.pending == Some(block)) {
            self.write_pending(disk)?;
        }
        let i = self.cached(disk, block)?;
        let end = within + bytes.len();
        let e = &mut self.cache[i];
        e.1[within..end].copy_from_slice(bytes);
        e.2 = true;
        if hold {
            if !self.held_order.contains(&block) {
                self.held_order.push(block);
            }
            if self.cache.iter().filter(|e| e.2).count() > MAX_HELD {
                self.write_held(disk)?;
            }
        } else {
            self.pending = Some(block);
        }
        Ok(())
    }

    fn write_pending(&mut self, disk: &Disk) -> Result<()> {
        let Some(b) = self.pending.take() else { return Ok(()) };
        if let Some(e) = self.cache.iter_mut().find(|e| e.0 == b && e.2) {
            disk.dev.write_blocks(b, &e.1)?;
            e.2 = false;
        }
        Ok(())
    }

    /// Writes the pending block, then the held blocks of the range in the
    /// order they were first written (a new cluster's end-of-chain mark
    /// before the link to it, FAT 1 before its copy), then other held
    /// blocks, last written first.
    fn write_held(&mut self, disk: &Disk) -> Result<()> {
        self.write_pending(disk)?;
        let order = core::mem::take(&mut self.held_order);
        let bs = disk.bs as u64;
        let (range, others): (Vec<u64>, Vec<u64>) =
            order.into_iter().partition(|b| (self.held_range.0..self.held_range.1).contains(&(b * bs)));
        for b in range.into_iter().chain(others.into_iter().rev()) {
            if let Some(e) = self.cache.iter_mut().find(|e| e.0 == b && e.2) {
                disk.dev.write_blocks(b, &e.1)?;
                e.2 = false;
            }
        }
        Ok(())
    }

    /// Reads, changes and writes back `width` little-endian bytes at `off`.
    fn update(&mut self, disk: &Disk, off: u64, width: usize, f: impl FnOnce(u32) -> u32) -> Result<()> {
        let bs = disk.bs as u64;
        let (block, within) = (off / bs, (off % bs) as usize);
        if within + width > disk.bs {
            return Err(Error::with_detail(ErrorKind::InvalidData, "FAT mark straddles a block"));
        }
        let i = self.cached(disk, block)?;
        let mut v = [0u8; 4];
        v[..width].copy_from_slice(&self.cache[i].1[within..within + width]);
        let new = f(u32::from_le_bytes(v)).to_le_bytes();
        if new[..width] == v[..width] {
            return Ok(());
        }
        self.patch(disk, block, within, &new[..width], false)
    }

    /// Before the first write after a sync, the boot sector's dirty bit;
    /// before the first write of the mount, FAT[1]'s "mounted" state.
    fn mark_dirty(&mut self, disk: &Disk) -> Result<()> {
        let Some(m) = &self.marks else { return Ok(()) };
        let m = m.clone();
        if self.volume == Volume::Clean {
            self.volume = Volume::Dirty;
            self.update(disk, m.bpb, 1, |v| v | 1)?;
        }
        if !self.fat1_mounted {
            self.fat1_mounted = true;
            for (off, width, bit) in &m.fat1 {
                self.update(disk, *off, *width, |v| v & !bit)?;
            }
        }
        Ok(())
    }
}

impl StreamCtl {
    /// From now on, writes into `[start, end)` wait for [`Self::release`].
    pub fn hold(&self, start: u64, end: u64) {
        let mut st = self.st.lock();
        st.held_range = (start, end);
        st.holding = true;
        st.hold_all = false;
    }

    /// As [`Self::hold`], and every other small write is held too, to be
    /// written after the range's, last written first. For an operation
    /// the engine does outside-in (a new directory: its entry in the parent
    /// first, then its own `.` and `..`), so that the device gets it
    /// inside-out. Whole-block writes (zeroing new clusters) still go
    /// through at once: they only touch clusters the FAT does not use yet.
    pub fn hold_all(&self, start: u64, end: u64) {
        self.hold(start, end);
        self.st.lock().hold_all = true;
    }

    /// Writes what was held (see [`StreamState::write_held`]) and stops holding.
    pub fn release(&self) -> Result<()> {
        let mut st = self.st.lock();
        st.holding = false;
        st.hold_all = false;
        st.write_held(&self.disk)
    }

    /// Gives the stream the volume's marks and its state at mount.
    pub fn set_marks(&self, marks: Marks, dirty_at_mount: bool) {
        let mut st = self.st.lock();
        st.marks = Some(marks);
        st.volume = if dirty_at_mount { Volume::DirtyAtMount } else { Volume::Clean };
    }

    /// FAT32: records the free-cluster count in FSInfo (before a sync).
    pub fn set_free_count(&self, free: u32) -> Result<()> {
        let mut st = self.st.lock();
        match st.marks.as_ref().and_then(|m| m.fsinfo_free) {
            Some(off) if st.volume == Volume::Dirty => st.update(&self.disk, off, 4, |_| free),
            _ => Ok(()),
        }
    }

    pub fn volume(&self) -> Volume {
        self.st.lock().volume
    }

    /// Makes everything written so far durable, then marks the volume
    /// clean (unless it was dirty at mount) and makes that durable too: a
    /// crash after `sync` returns leaves a clean volume.
    pub fn sync(&self) -> Result<()> {
        let mut st = self.st.lock();
        st.holding = false;
        st.write_held(&self.disk)?;
        self.disk.flush()?;
        if st.volume == Volume::Dirty
            && let Some(m) = st.marks.clone()
        {
            st.update(&self.disk, m.bpb, 1, |v| v & !1)?;
            st.write_pending(&self.disk)?;
            self.disk.flush()?;
            st.volume = Volume::Clean;
        }
        Ok(())
    }

    /// A clean unmount: [`Self::sync`], then FAT[1] says "not mounted".
    pub fn unmount(&self) -> Result<()> {
        self.sync()?;
        let mut st = self.st.lock();
        if st.fat1_mounted
            && let Some(m) = st.marks.clone()
        {
            for (off, width, bit) in &m.fat1 {
                st.update(&self.disk, *off, *width, |v| v | bit)?;
            }
            st.write_pending(&self.disk)?;
            self.disk.flush()?;
            st.fat1_mounted = false;
        }
        Ok(())
    }
}
