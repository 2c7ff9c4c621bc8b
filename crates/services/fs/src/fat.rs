//! FAT12/16/32 on a block device, through the `lamfat` engine (rust-fatfs's
//! no_std line). Long file names are supported; names match without
//! regard to ASCII case, as FAT does. There are no symbolic links and no
//! permission bits (the read-only attribute shows as mode 0444).
//!
//! Each operation opens its file by path inside one lock: open handles are
//! paths, so renaming or removing a file that is open elsewhere makes that
//! handle fail with `NotFound` (FAT has no inodes to keep it alive).
//! Writes are written through to the device at once; `sync` (and closing a
//! file opened for writing) flushes the device.
use crate::block::{Disk, DiskStream, Marks, StreamCtl, Volume};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::Lock;
use crate::path::split_last;
use crate::vfs::{Create, DirEntry, FileHandle, FileSystem, FileType, Metadata};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use lamfat as fat;
use lamfat::{Read as _, Seek as _, Write as _};

impl fat::IoError for Error {
    fn is_interrupted(&self) -> bool {
        false
    }
    fn new_unexpected_eof_error() -> Self {
        Error::new(ErrorKind::UnexpectedEof)
    }
    fn new_write_zero_error() -> Self {
        Error::new(ErrorKind::WriteZero)
    }
}

/// The stream the engine runs on.
pub struct Io(DiskStream);

impl fat::IoBase for Io {
    type Error = Error;
}

impl fat::Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.0.read(buf)
    }
}

impl fat::Write for Io {
    fn write(&mut self, buf: &[u8]) -> Result<usize> {
        self.0.write(buf)
    }
    /// The engine flushes on every file close, reads included; writes are
    /// already on the device (write-through), and the device flush is done
    /// by `FatFs::sync`.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

impl fat::Seek for Io {
    fn seek(&mut self, pos: fat::SeekFrom) -> Result<u64> {
        let len = self.0.disk().len();
        let new = match pos {
            fat::SeekFrom::Start(n) => Some(n),
            fat::SeekFrom::End(d) => len.checked_add_signed(d),
            fat::SeekFrom::Current(d) => self.0.position().checked_add_signed(d),
        };
        let new = new.ok_or(Error::with_detail(ErrorKind::InvalidInput, "seek out of range"))?;
        self.0.seek_to(new);
        Ok(new)
    }
}

/// Time stamps for new and modified entries.
#[derive(Clone, Copy)]
pub struct Clock(pub fn() -> u64);

impl core::fmt::Debug for Clock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Clock")
    }
}

/// Days since 1970-01-01 -> (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds -> FAT date and time (clamped to FAT's 1980..=2107).
pub fn fat_date_time(secs: u64) -> fat::DateTime {
    let min = days_from_civil(1980, 1, 1) as u64 * 86_400;
    let max = (days_from_civil(2108, 1, 1) as u64) * 86_400 - 1;
    let s = secs.clamp(min, max);
    let (y, m, d) = civil_from_days((s / 86_400) as i64);
    let t = s % 86_400;
    fat::DateTime::new(
        fat::Date::new(y as u16, m as u16, d as u16),
        fat::Time::new((t / 3600) as u16, (t / 60 % 60) as u16, (t % 60) as u16, 0),
    )
}

fn unix_secs(dt: fat::DateTime) -> u64 {
    let days = days_from_civil(dt.date.year as i64, dt.date.month as u32, dt.date.day as u32);
    (days.max(0) as u64) * 86_400 + dt.time.hour as u64 * 3600 + dt.time.min as u64 * 60 + dt.time.sec as u64
}

impl fat::TimeProvider for Clock {
    fn get_current_date(&self) -> fat::Date {
        fat_date_time((self.0)()).date
    }
    fn get_current_date_time(&self) -> fat::DateTime {
        fat_date_time((self.0)())
    }
}

type Fs = fat::FileSystem<Io, Clock, fat::LossyOemCpConverter>;
type FatDir<'a> = fat::Dir<'a, Io, Clock, fat::LossyOemCpConverter>;
type FatEntry<'a> = fat::DirEntry<'a, Io, Clock, fat::LossyOemCpConverter>;
type FatFile<'a> = fat::File<'a, Io, Clock, fat::LossyOemCpConverter>;

fn map(e: fat::Error<Error>) -> Error {
    match e {
        fat::Error::Io(e) => e,
        fat::Error::UnexpectedEof => Error::with_detail(ErrorKind::InvalidData, "FAT: unexpected end of data"),
        fat::Error::WriteZero => Error::new(ErrorKind::WriteZero),
        fat::Error::InvalidInput => Error::new(ErrorKind::InvalidInput),
        fat::Error::NotFound => Error::new(ErrorKind::NotFound),
        fat::Error::AlreadyExists => Error::new(ErrorKind::AlreadyExists),
        fat::Error::DirectoryIsNotEmpty => Error::new(ErrorKind::DirectoryNotEmpty),
        fat::Error::CorruptedFileSystem => Error::with_detail(ErrorKind::InvalidData, "corrupted FAT file system"),
        fat::Error::NotEnoughSpace => Error::new(ErrorKind::StorageFull),
        fat::Error::InvalidFileNameLength => {
            Error::with_detail(ErrorKind::InvalidFilename, "name empty or too long for FAT")
        }
        fat::Error::UnsupportedFileNameCharacter => {
            Error::with_detail(ErrorKind::InvalidFilename, "character not allowed in FAT names")
        }
        _ => Error::with_detail(ErrorKind::Other, "FAT error"),
    }
}

fn entry_meta(e: &FatEntry<'_>, ro: bool) -> Metadata {
    let dir = e.is_dir();
    let attr_ro = e.attributes().contains(fat::FileAttributes::READ_ONLY);
    let mode = match (dir, attr_ro) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    };
    let mut m = Metadata::new(
        if dir { FileType::Dir } else { FileType::File },
        if dir { 0 } else { e.len() },
        mode,
        Some(unix_secs(e.modified())),
    );
    m.readonly = ro;
    m
}

fn root_meta(ro: bool) -> Metadata {
    let mut m = Metadata::new(FileType::Dir, 0, 0o755, None);
    m.readonly = ro;
    m
}

/// What a path names.
enum Found<'a> {
    Root,
    Entry(FatEntry<'a>),
}

fn same_name(e: &FatEntry<'_>, name: &str) -> bool {
    e.file_name().eq_ignore_ascii_case(name) || e.short_file_name().eq_ignore_ascii_case(name)
}

/// Most entries a FAT directory may hold (Microsoft's FAT specification:
/// 65,536 32-byte entries). A hostile image can link a directory's clusters
/// in a loop; the engine would then iterate forever.
const MAX_DIR_ENTRIES: usize = 65_536;

/// A directory's entries, failing instead of looping on a corrupt chain.
fn entries<'a>(dir: &FatDir<'a>) -> impl Iterator<Item = Result<FatEntry<'a>>> {
    dir.iter().enumerate().map(|(i, e)| {
        if i >= MAX_DIR_ENTRIES {
            return Err(Error::with_detail(
                ErrorKind::InvalidData,
                "corrupted FAT file system: a directory longer than FAT allows (its clusters loop)",
            ));
        }
        e.map_err(map)
    })
}

fn lookup_in<'a>(dir: &FatDir<'a>, name: &str) -> Result<FatEntry<'a>> {
    for e in entries(dir) {
        let e = e?;
        if same_name(&e, name) {
            return Ok(e);
        }
    }
    Err(Error::new(ErrorKind::NotFound))
}

fn find<'a>(fs: &'a Fs, path: &str) -> Result<Found<'a>> {
    if path.is_empty() {
        return Ok(Found::Root);
    }
    let mut dir = fs.root_dir();
    let mut parts = path.split('/').peekable();
    while let Some(name) = parts.next() {
        let e = lookup_in(&dir, name)?;
        if parts.peek().is_none() {
            return Ok(Found::Entry(e));
        }
        if !e.is_dir() {
            return Err(Error::new(ErrorKind::NotADirectory));
        }
        dir = e.to_dir();
    }
    unreachable!()
}

fn open_dir<'a>(fs: &'a Fs, path: &str) -> Result<FatDir<'a>> {
    match find(fs, path)? {
        Found::Root => Ok(fs.root_dir()),
        Found::Entry(e) if e.is_dir() => Ok(e.to_dir()),
        Found::Entry(_) => Err(Error::new(ErrorKind::NotADirectory)),
    }
}

/// The parent directory of `path` and the last name.
fn parent<'a, 'p>(fs: &'a Fs, path: &'p str) -> Result<(FatDir<'a>, &'p str)> {
    let (p, name) = split_last(path).ok_or(Error::new(ErrorKind::InvalidInput))?;
    Ok((open_dir(fs, p)?, name))
}

fn open_file<'a>(fs: &'a Fs, path: &str) -> Result<FatFile<'a>> {
    match find(fs, path)? {
        Found::Root => Err(Error::new(ErrorKind::IsADirectory)),
        Found::Entry(e) if e.is_dir() => Err(Error::new(ErrorKind::IsADirectory)),
        Found::Entry(e) => Ok(e.to_file()),
    }
}

struct Shared {
    fs: Lock<Option<Fs>>,
    ctl: StreamCtl,
    /// Byte range of all FAT copies (None when the boot sector's geometry
    /// did not make sense: writes then go through in the engine's order).
    fat_range: Option<(u64, u64)>,
    ro: bool,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&Fs) -> Result<R>) -> Result<R> {
        let g = self.fs.lock();
        let fs = g.as_ref().ok_or(Error::with_detail(ErrorKind::NotFound, "file system was unmounted"))?;
        f(fs)
    }

    /// Runs `op` with the FAT's writes held back, then writes them. What
    /// `op` wrote elsewhere reaches the device first: the data in newly
    /// allocated clusters before the FAT links them in, and a directory
    /// entry that stops using clusters before the FAT frees them. So a
    /// crash never leaves an entry pointing at a free cluster or at
    /// unwritten data; at worst the FAT has clusters no entry uses (lost
    /// clusters, which fsck.fat reclaims).
    fn fat_last<R>(&self, op: impl FnOnce() -> Result<R>) -> Result<R> {
        if let Some((a, b)) = self.fat_range {
            self.ctl.hold(a, b);
        }
        let r = op();
        let released = self.ctl.release();
        let r = r?;
        released?;
        Ok(r)
    }

    /// `op` creates a directory: the FAT, then the new directory's own
    /// entries, then its entry in the parent.
    fn inside_out<R>(&self, op: impl FnOnce() -> Result<R>) -> Result<R> {
        if let Some((a, b)) = self.fat_range {
            self.ctl.hold_all(a, b);
        }
        let r = op();
        let released = self.ctl.release();
        let r = r?;
        released?;
        Ok(r)
    }

    /// Makes everything durable and the volume clean (see [`StreamCtl::sync`]),
    /// FAT32's free-cluster count in FSInfo included.
    fn sync(&self, fs: &Fs) -> Result<()> {
        if fs.fat_type() == fat::FatType::Fat32
            && let Ok(s) = fs.stats()
        {
            self.ctl.set_free_count(s.free_clusters())?;
        }
        self.ctl.sync()
    }

    fn writable(&self) -> Result<()> {
        if self.ro {
            return Err(Error::new(ErrorKind::ReadOnlyFilesystem));
        }
        Ok(())
    }
}

/// Where the FATs are, from the boot sector (the engine keeps its own copy
/// private). Every field is checked; `None` if anything is out of range.
struct Geometry {
    /// FAT32's FSInfo sector, when it lies among the reserved sectors.
    fsinfo: Option<u64>,
    fat_start: u64,
    fat_bytes: u64,
    fats: u8,
    bytes_per_sector: u64,
}

fn fat_geometry(boot: &[u8; 512], fat32: bool) -> Option<Geometry> {
    let u16_at = |o: usize| u16::from_le_bytes([boot[o], boot[o + 1]]) as u64;
    let bps = u16_at(0x0b);
    let reserved = u16_at(0x0e);
    let fats = boot[0x10];
    let per_fat =
        if fat32 { u32::from_le_bytes([boot[0x24], boot[0x25], boot[0x26], boot[0x27]]) as u64 } else { u16_at(0x16) };
    if !(512..=4096).contains(&bps) || !bps.is_power_of_two() || reserved == 0 || fats == 0 || per_fat == 0 {
        return None;
    }
    let fsinfo = Some(u16_at(0x30)).filter(|&s| fat32 && s >= 1 && s < reserved);
    Some(Geometry { fsinfo, fat_start: reserved * bps, fat_bytes: per_fat * bps, fats, bytes_per_sector: bps })
}

/// The clean/dirty marks: the boot sector's status byte and FAT[1]'s
/// clean-shutdown bit in each FAT copy (Microsoft's FAT specification,
/// "FAT Volume Initialization" and the BPB's BS_Reserved1 / BS_NTRes).
fn marks(g: &Geometry, t: fat::FatType) -> Marks {
    let (bpb, fat1) = match t {
        fat::FatType::Fat12 => (0x25, None),
        fat::FatType::Fat16 => (0x25, Some((2usize, 2usize, 0x8000u32))),
        fat::FatType::Fat32 => (0x41, Some((4, 4, 0x0800_0000))),
    };
    let fat1 = match fat1 {
        Some((at, width, bit)) if g.bytes_per_sector >= 8 => {
            (0..g.fats as u64).map(|i| (g.fat_start + i * g.fat_bytes + at as u64, width, bit)).collect()
        }
        _ => Vec::new(),
    };
    // FSI_Free_Count is at byte 488 of the FSInfo sector.
    Marks { bpb, fat1, fsinfo_free: g.fsinfo.map(|s| s * g.bytes_per_sector + 488) }
}

/// A FAT file system on a disk.
pub struct FatFs {
    shared: Arc<Shared>,
}

/// Options for [`FatFs::format`].
#[derive(Clone, Debug, Default)]
pub struct FormatOptions {
    /// Up to 11 characters, padded with spaces.
    pub label: Option<String>,
    /// Force FAT12, FAT16 or FAT32 (12/16/32); `None` picks by size.
    pub fat_bits: Option<u8>,
}

impl FatFs {
    /// Mounts the FAT file system on `disk` (a whole-disk volume, no
    /// partition table). `clock` gives seconds since the epoch for time
    /// stamps.
    pub fn mount(disk: Disk, clock: fn() -> u64) -> Result<Self> {
        let ro = disk.read_only();
        let mut boot = [0u8; 512];
        if disk.read_at(0, &mut boot)? != boot.len() {
            return Err(Error::with_detail(ErrorKind::InvalidData, "disk smaller than a boot sector"));
        }
        let stream = DiskStream::new(disk.clone());
        let ctl = stream.ctl();
        let opts = fat::FsOptions::new().time_provider(Clock(clock));
        let fs = fat::FileSystem::new(Io(stream), opts).map_err(map)?;
        let kind = match fs.fat_type() {
            fat::FatType::Fat12 => crate::fatcheck::Kind::Fat12,
            fat::FatType::Fat16 => crate::fatcheck::Kind::Fat16,
            fat::FatType::Fat32 => crate::fatcheck::Kind::Fat32,
        };
        crate::fatcheck::check(&disk, &boot, kind)?;
        let fat32 = fs.fat_type() == fat::FatType::Fat32;
        let geometry = fat_geometry(&boot, fat32);
        // The boot sector's bit only: FAT[1] stays "mounted" after any
        // kill, and fsck.fat, which clears the boot sector's bit, leaves it.
        let dirty = boot[if fat32 { 0x41 } else { 0x25 }] & 1 != 0;
        if let Some(g) = &geometry
            && !ro
        {
            ctl.set_marks(marks(g, fs.fat_type()), dirty);
        }
        if dirty {
            crate::warn(format_args!(
                "unikit: fat: {} was not cleanly unmounted (a crash or a kill); it stays marked dirty until `fsck.fat -a` runs on it\n",
                disk.name()
            ));
        }
        let fat_range = geometry.map(|g| (g.fat_start, g.fat_start + g.fat_bytes * g.fats as u64));
        Ok(Self { shared: Arc::new(Shared { fs: Lock::new(Some(fs)), ctl, fat_range, ro }) })
    }

    /// Whether the volume is marked as needing fsck: written to and not
    /// synced, or found dirty at mount.
    pub fn dirty(&self) -> bool {
        self.shared.ctl.volume() != Volume::Clean
    }

    /// Writes a new, empty FAT file system over the whole of `disk`.
    pub fn format(disk: &Disk, opts: &FormatOptions) -> Result<()> {
        let stream = DiskStream::new(disk.clone());
        let ctl = stream.ctl();
        let mut io = Io(stream);
        let mut o = fat::FormatVolumeOptions::new();
        if let Some(l) = &opts.label {
            let mut b = [b' '; 11];
            for (d, s) in b.iter_mut().zip(l.bytes()) {
                *d = s.to_ascii_uppercase();
            }
            o = o.volume_label(b);
        }
        if let Some(bits) = opts.fat_bits {
            o = o.fat_type(match bits {
                12 => fat::FatType::Fat12,
                16 => fat::FatType::Fat16,
                32 => fat::FatType::Fat32,
                _ => {
                    return Err(Error::with_detail(ErrorKind::InvalidInput, "FAT type must be 12, 16 or 32"));
                }
            });
        }
        let sectors = disk.len() / disk.block_size() as u64;
        let sectors =
            u32::try_from(sectors).map_err(|_| Error::with_detail(ErrorKind::Unsupported, "disk too large for FAT"))?;
        o = o.bytes_per_sector(disk.block_size() as u16).total_sectors(sectors);
        fat::format_volume(&mut io, o).map_err(map)?;
        ctl.sync()
    }

    /// "FAT12", "FAT16" or "FAT32".
    pub fn fat_type(&self) -> &'static str {
        self.shared
            .with(|fs| {
                Ok(match fs.fat_type() {
                    fat::FatType::Fat12 => "FAT12",
                    fat::FatType::Fat16 => "FAT16",
                    fat::FatType::Fat32 => "FAT32",
                })
            })
            .unwrap_or("unmounted")
    }

    /// (total, free) bytes.
    pub fn space(&self) -> Result<(u64, u64)> {
        self.shared.with(|fs| {
            let s = fs.stats().map_err(map)?;
            let cs = s.cluster_size() as u64;
            Ok((s.total_clusters() as u64 * cs, s.free_clusters() as u64 * cs))
        })
    }
}

impl FileSystem for FatFs {
    fn fs_type(&self) -> &'static str {
        "fat"
    }

    fn metadata(&self, path: &str) -> Result<Metadata> {
        let ro = self.shared.ro;
        self.shared.with(|fs| match find(fs, path)? {
            Found::Root => Ok(root_meta(ro)),
            Found::Entry(e) => Ok(entry_meta(&e, ro)),
        })
    }

    fn open(&self, path: &str, create: Create) -> Result<Box<dyn FileHandle>> {
        let sh = &self.shared;
        sh.with(|fs| {
            match find(fs, path) {
                Ok(Found::Root) => return Err(Error::new(ErrorKind::IsADirectory)),
                Ok(Found::Entry(e)) => {
                    if create == Create::New {
                        return Err(Error::new(ErrorKind::AlreadyExists));
                    }
                    if e.is_dir() {
                        return Err(Error::new(ErrorKind::IsADirectory));
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound && create != Create::No => {
                    sh.writable()?;
                    let (dir, name) = parent(fs, path)?;
                    // A directory that grows gets its new cluster zeroed and
                    // the entry written there before the FAT links it.
                    sh.fat_last(|| dir.create_file(name).map(drop).map_err(map))?;
                }
                Err(e) => return Err(e),
            }
            Ok(())
        })?;
        Ok(Box::new(FatHandle { shared: self.shared.clone(), path: path.into() }))
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>> {
        let ro = self.shared.ro;
        self.shared.with(|fs| {
            let dir = open_dir(fs, path)?;
            let mut v = Vec::new();
            for e in entries(&dir) {
                let e = e?;
                let name = e.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                v.push(DirEntry::new(name, entry_meta(&e, ro)));
            }
            Ok(v)
        })
    }

    fn create_dir(&self, path: &str) -> Result<()> {
        self.shared.writable()?;
        self.shared.with(|fs| {
            if find(fs, path).is_ok() {
                return Err(Error::new(ErrorKind::AlreadyExists));
            }
            let (dir, name) = parent(fs, path)?;
            self.shared.inside_out(|| dir.create_dir(name).map(drop).map_err(map))?;
            Ok(())
        })
    }

    fn remove_file(&self, path: &str) -> Result<()> {
        self.shared.writable()?;
        self.shared.with(|fs| {
            match find(fs, path)? {
                Found::Root => return Err(Error::new(ErrorKind::IsADirectory)),
                Found::Entry(e) if e.is_dir() => return Err(Error::new(ErrorKind::IsADirectory)),
                Found::Entry(_) => {}
            }
            let (dir, name) = parent(fs, path)?;
            // The entry is marked deleted before the FAT frees its clusters.
            self.shared.fat_last(|| dir.remove(name).map_err(map))
        })
    }

    fn remove_dir(&self, path: &str) -> Result<()> {
        self.shared.writable()?;
        self.shared.with(|fs| {
            match find(fs, path)? {
                Found::Root => return Err(Error::new(ErrorKind::PermissionDenied)),
                Found::Entry(e) if !e.is_dir() => return Err(Error::new(ErrorKind::NotADirectory)),
                Found::Entry(_) => {}
            }
            let (dir, name) = parent(fs, path)?;
            self.shared.fat_last(|| dir.remove(name).map_err(map))
        })
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.shared.writable()?;
        self.shared.with(|fs| {
            let src = match find(fs, from)? {
                Found::Root => return Err(Error::new(ErrorKind::InvalidInput)),
                Found::Entry(e) => e,
            };
            if src.is_dir()
                && to.len() > from.len()
                && to.as_bytes()[from.len()] == b'/'
                && to[..from.len()].eq_ignore_ascii_case(from)
            {
                return Err(Error::with_detail(ErrorKind::InvalidInput, "cannot move a directory into itself"));
            }
            if from == to {
                return Ok(());
            }
            let (sdir, sname) = parent(fs, from)?;
            let (ddir, dname) = parent(fs, to)?;
            match lookup_in(&ddir, dname) {
                // A case-only rename: the "destination" is the source itself.
                Ok(_) if from.eq_ignore_ascii_case(to) => {}
                Ok(dst) => {
                    match (dst.is_dir(), src.is_dir()) {
                        (true, true) => {} // remove fails unless it is empty
                        (true, false) => return Err(Error::new(ErrorKind::IsADirectory)),
                        (false, true) => return Err(Error::new(ErrorKind::NotADirectory)),
                        (false, false) => {}
                    }
                    self.shared.fat_last(|| ddir.remove(dname).map_err(map))?;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.shared.fat_last(|| sdir.rename(sname, &ddir, dname).map_err(map))
        })
    }

    fn sync(&self) -> Result<()> {
        self.shared.with(|fs| self.shared.sync(fs))
    }

    fn unmount(&self) -> Result<()> {
        let mut g = self.shared.fs.lock();
        if let Some(fs) = g.take() {
            fs.unmount().map_err(map)?;
        }
        self.shared.ctl.unmount()
    }
}

/// An open FAT file: its path (see the module notes).
struct FatHandle {
    shared: Arc<Shared>,
    path: String,
}

/// FAT files hold at most 4 GiB - 1 bytes.
const FAT_MAX: u64 = u32::MAX as u64;

/// Appends zeros to `f` (positioned at its end) up to `target`.
fn fill_zeros(f: &mut FatFile<'_>, mut cur: u64, target: u64) -> Result<()> {
    let zeros = [0u8; 512];
    while cur < target {
        let n = ((target - cur) as usize).min(zeros.len());
        f.write_all(&zeros[..n]).map_err(map)?;
        cur += n as u64;
    }
    Ok(())
}

impl FileHandle for FatHandle {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.shared.with(|fs| {
            let mut f = open_file(fs, &self.path)?;
            let size = f.seek(fat::SeekFrom::End(0)).map_err(map)?;
            if offset >= size {
                return Ok(0);
            }
            f.seek(fat::SeekFrom::Start(offset)).map_err(map)?;
            let want = buf.len().min((size - offset) as usize);
            let mut done = 0;
            while done < want {
                let n = f.read(&mut buf[done..want]).map_err(map)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            Ok(done)
        })
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        self.shared.writable()?;
        if buf.is_empty() {
            return Ok(0);
        }
        let end = offset.checked_add(buf.len() as u64).ok_or(Error::new(ErrorKind::FileTooLarge))?;
        if end > FAT_MAX {
            return Err(Error::with_detail(ErrorKind::FileTooLarge, "FAT files end at 4 GiB"));
        }
        self.shared.with(|fs| {
            let mut f = open_file(fs, &self.path)?;
            // Data, then the FAT, then the directory entry (size).
            self.shared.fat_last(|| {
                let size = f.seek(fat::SeekFrom::End(0)).map_err(map)?;
                if offset > size {
                    fill_zeros(&mut f, size, offset)?;
                } else {
                    f.seek(fat::SeekFrom::Start(offset)).map_err(map)?;
                }
                f.write_all(buf).map_err(map)
            })?;
            f.flush().map_err(map)?;
            Ok(buf.len())
        })
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.shared.writable()?;
        if len > FAT_MAX {
            return Err(Error::with_detail(ErrorKind::FileTooLarge, "FAT files end at 4 GiB"));
        }
        self.shared.with(|fs| {
            let mut f = open_file(fs, &self.path)?;
            let size = f.seek(fat::SeekFrom::End(0)).map_err(map)?;
            if len < size {
                // The entry stops using the clusters before the FAT frees them.
                self.shared.fat_last(|| {
                    f.seek(fat::SeekFrom::Start(len)).map_err(map)?;
                    f.truncate().map_err(map)?;
                    f.flush().map_err(map)
                })
            } else if len > size {
                self.shared.fat_last(|| fill_zeros(&mut f, size, len))?;
                f.flush().map_err(map)
            } else {
                Ok(())
            }
        })
    }

    fn metadata(&self) -> Result<Metadata> {
        let ro = self.shared.ro;
        self.shared.with(|fs| match find(fs, &self.path)? {
            Found::Root => Ok(root_meta(ro)),
            Found::Entry(e) => Ok(entry_meta(&e, ro)),
        })
    }

    fn sync(&self) -> Result<()> {
        self.shared.with(|fs| self.shared.sync(fs))
    }
}
