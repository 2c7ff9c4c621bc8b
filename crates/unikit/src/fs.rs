//! Files, shaped like `std::fs`, over unikit's VFS.
//!
//! `/` is set up on first use: the platform's initrd (a cpio "newc"
//! archive unpacked into a ramfs) when there is one, an empty ramfs
//! otherwise; [`mount_root_from_cpio`] mounts an archive the app carries.
//! More file systems hang off the tree with [`mount_disk`] (FAT on a block
//! device). Paths are absolute (relative ones start at `/`); `.` and `..`
//! are resolved lexically.
//!
//! ```ignore
//! use unikit::fs::{self, File, OpenOptions, SeekFrom};
//! fs::write("/tmp.txt", "hello")?;
//! let mut f = OpenOptions::new().read(true).append(true).open("/tmp.txt")?;
//! f.write_all(b", world")?;
//! f.seek(SeekFrom::Start(0))?;
//! let mut s = String::new();
//! f.read_to_string(&mut s)?;
//! for e in fs::read_dir("/")? {
//!     let e = e?;
//!     println!("{} {:?} {}", e.file_name(), e.file_type(), e.len());
//! }
//! fs::mount_disk(0, "/disk")?;               // FAT on the first block device
//! fs::write("/disk/log.txt", b"persisted")?;  // durable when it returns
//! ```
use alloc::sync::Arc;

pub use unikit_fs::{
    DirEntry, Disk, Error, ErrorKind, File, FileType, FormatOptions, Metadata, OpenOptions, Permissions, ReadDir,
    Result, SeekFrom,
};
pub use unikit_fs::{
    canonicalize, copy, create_dir, create_dir_all, exists, metadata, mount_root_from_cpio, read, read_dir, read_link,
    read_to_string, remove_dir, remove_dir_all, remove_file, rename, symlink, symlink_metadata, write,
};
/// For apps and drivers that bring their own disk.
pub use unikit_kernel::dev::{BlockDevice, DevError};

/// Lower-level pieces: the VFS, its file-system trait, ramfs, FAT, cpio.
pub mod vfs {
    pub use unikit_fs::cpio;
    pub use unikit_fs::{Create, FatFs, FileHandle, FileSystem, Ramfs, Vfs, vfs};
}

/// Mounts the FAT file system of the `index`-th block device at `at`
/// (e.g. `"/disk"`; the mount point is created if missing).
pub fn mount_disk(index: usize, at: &str) -> Result<()> {
    unikit_fs::mount_disk(index, at)
}

/// Writes an empty FAT file system over the `index`-th block device.
/// Everything on it is lost; it must not be mounted.
pub fn format_disk(index: usize, opts: &FormatOptions) -> Result<()> {
    unikit_fs::format_disk(index, opts)
}

/// Unmounts `at`: writes everything back and marks a FAT volume clean.
pub fn unmount(at: &str) -> Result<()> {
    unikit_fs::unmount(at)
}

/// Makes every mounted file system durable.
pub fn sync() -> Result<()> {
    unikit_fs::sync()
}

/// `(mount point, file-system type)` of every mount.
pub fn mounts() -> alloc::vec::Vec<(alloc::string::String, &'static str)> {
    unikit_fs::mounts()
}

/// Block devices the platform found (and apps registered).
pub fn block_device_count() -> usize {
    unikit_kernel::dev::block_devices().len()
}

/// Adds a block device (for example one the app implements itself); it
/// gets the next index.
pub fn register_block_device(dev: Arc<dyn BlockDevice>) -> usize {
    unikit_kernel::dev::register_block(dev);
    block_device_count() - 1
}
