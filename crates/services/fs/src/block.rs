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

/// Blocks kept by [`DiskStream`] (write-through, so the device is always
/// current and dropping the cache loses nothing).
const CACHE_BLOCKS: usize = 64;

/// A seekable byte stream over a [`Disk`] with a write-through block
/// cache: the FAT engine reads and writes directory entries and FAT cells
/// a few bytes at a time.
pub struct DiskStream {
    disk: Disk,
    pos: u64,
    cache: VecDeque<(u64, Vec<u8>)>,
}

impl DiskStream {
    pub fn new(disk: Disk) -> Self {
        Self { disk, pos: 0, cache: VecDeque::new() }
    }

    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    fn cached(&mut self, block: u64) -> Result<usize> {
        if let Some(i) = self.cache.iter().position(|(b, _)| *b == block) {
            return Ok(i);
        }
        let mut data = vec![0; self.disk.bs];
        self.disk.dev.read_blocks(block, &mut data)?;
        if self.cache.len() >= CACHE_BLOCKS {
            self.cache.pop_front();
        }
        self.cache.push_back((block, data));
        Ok(self.cache.len() - 1)
    }

    fn forget(&mut self, first: u64, count: u64) {
        self.cache.retain(|(b, _)| *b < first || *b >= first + count);
    }

    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = self.disk.span(self.pos, buf.len());
        if n == 0 {
            return Ok(0);
        }
        let bs = self.disk.bs;
        let block = self.pos / bs as u64;
        let within = (self.pos % bs as u64) as usize;
        let got = if within == 0 && n >= bs && !self.cache.iter().any(|(b, _)| *b == block) {
            // Whole blocks not in the cache: straight from the device.
            let chunk = (n - n % bs).min(MAX_REQUEST);
            // Cached blocks in the range are current (write-through), so
            // the device's copy is the same.
            self.disk.dev.read_blocks(block, &mut buf[..chunk])?;
            chunk
        } else {
            let i = self.cached(block)?;
            let c = (bs - within).min(n);
            buf[..c].copy_from_slice(&self.cache[i].1[within..within + c]);
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
        let bs = self.disk.bs;
        let block = self.pos / bs as u64;
        let within = (self.pos % bs as u64) as usize;
        let put = if within == 0 && n >= bs {
            let chunk = (n - n % bs).min(MAX_REQUEST);
            self.disk.dev.write_blocks(block, &buf[..chunk])?;
            self.forget(block, (chunk / bs) as u64);
            chunk
        } else {
            let i = self.cached(block)?;
            let c = (bs - within).min(n);
            let entry = &mut self.cache[i].1;
            let old: Vec<u8> = entry[within..within + c].to_vec();
            entry[within..within + c].copy_from_slice(&buf[..c]);
            if let Err(e) = self.disk.dev.write_blocks(block, &self.cache[i].1) {
                self.cache[i].1[within..within + c].copy_from_slice(&old);
                return Err(e.into());
            }
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

    pub fn flush(&mut self) -> Result<()> {
        self.disk.flush()
    }
}
