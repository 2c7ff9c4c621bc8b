//! unikit file systems: a VFS with a mount table, an in-memory `ramfs`,
//! the cpio "newc" initrd loader and FAT on a block device.
//!
//! The global VFS ([`vfs`]) is set up on first use: `/` is the initrd's
//! ramfs when the platform passed one (or what [`mount_root_from_cpio`]
//! mounted), an empty ramfs otherwise. Apps use it through `unikit::fs`,
//! which mirrors `std::fs`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod cpio;
pub mod error;
pub mod fat;
mod fatcheck;
pub mod kdev;
mod lock;
pub mod path;
pub mod ramfs;
pub mod vfs;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_hostile;

pub use block::Disk;
pub use error::{Error, ErrorKind, Result};
pub use fat::{FatFs, FormatOptions};
pub use ramfs::Ramfs;
pub use vfs::{
    Create, DirEntry, File, FileHandle, FileSystem, FileType, Metadata, OpenOptions, Permissions, ReadDir, SeekFrom,
    Vfs,
};

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

static VFS: spin::Once<Vfs> = spin::Once::new();

/// The initrd the platform loaded, if any.
fn platform_initrd() -> Option<&'static [u8]> {
    #[cfg(target_os = "none")]
    return unikit_kernel::boot::initrd();
    #[cfg(not(target_os = "none"))]
    None
}

/// Seconds since the Unix epoch, for file time stamps.
pub fn clock() -> u64 {
    #[cfg(target_os = "none")]
    {
        unikit_kernel::time::wall_clock_ns() / 1_000_000_000
    }
    #[cfg(not(target_os = "none"))]
    {
        1_700_000_000
    }
}

fn warn(args: core::fmt::Arguments<'_>) {
    #[cfg(target_os = "none")]
    unikit_kernel::console::_print(args);
    #[cfg(not(target_os = "none"))]
    let _ = args;
}

/// The global VFS, mounting `/` on first use.
pub fn vfs() -> &'static Vfs {
    VFS.call_once(|| {
        let root = match platform_initrd() {
            Some(data) => match cpio::load(data) {
                Ok(fs) => fs,
                Err(e) => {
                    warn(format_args!("unikit: initrd: {e}; / is an empty ramfs\n"));
                    Ramfs::new()
                }
            },
            None => Ramfs::new(),
        };
        root.set_clock(clock);
        Vfs::new(Arc::new(root))
    })
}

/// Unpacks a cpio (newc) archive into a new ramfs and mounts it at `/`
/// (replacing what was there; file systems mounted below stay). File
/// contents are not copied until written.
pub fn mount_root_from_cpio(data: &'static [u8]) -> Result<()> {
    let fs = cpio::load(data).map_err(|e| Error::from(e).at("initrd"))?;
    fs.set_clock(clock);
    vfs().mount("/", Arc::new(fs))
}

/// Mounts the FAT file system on the `index`-th block device at `at`.
pub fn mount_disk(index: usize, at: &str) -> Result<()> {
    let disk = Disk::open(index).map_err(|e| e.at(at))?;
    let fs = FatFs::mount(disk, clock).map_err(|e| e.at(at))?;
    vfs().mount(at, Arc::new(fs))
}

/// Writes an empty FAT file system over the `index`-th block device
/// (which must not be mounted).
pub fn format_disk(index: usize, opts: &FormatOptions) -> Result<()> {
    let disk = Disk::open(index)?;
    FatFs::format(&disk, opts)
}

/// Unmounts what is mounted at `at`, writing it back.
pub fn unmount(at: &str) -> Result<()> {
    vfs().unmount(at).map(|_| ())
}

/// Writes back every mounted file system.
pub fn sync() -> Result<()> {
    vfs().sync()
}

pub fn read(path: &str) -> Result<Vec<u8>> {
    vfs().read(path)
}
pub fn read_to_string(path: &str) -> Result<String> {
    vfs().read_to_string(path)
}
pub fn write(path: &str, data: impl AsRef<[u8]>) -> Result<()> {
    vfs().write(path, data.as_ref())
}
pub fn read_dir(path: &str) -> Result<ReadDir> {
    vfs().read_dir(path)
}
pub fn metadata(path: &str) -> Result<Metadata> {
    vfs().metadata(path)
}
pub fn symlink_metadata(path: &str) -> Result<Metadata> {
    vfs().symlink_metadata(path)
}
pub fn exists(path: &str) -> bool {
    vfs().exists(path)
}
pub fn create_dir(path: &str) -> Result<()> {
    vfs().create_dir(path)
}
pub fn create_dir_all(path: &str) -> Result<()> {
    vfs().create_dir_all(path)
}
pub fn remove_file(path: &str) -> Result<()> {
    vfs().remove_file(path)
}
pub fn remove_dir(path: &str) -> Result<()> {
    vfs().remove_dir(path)
}
pub fn remove_dir_all(path: &str) -> Result<()> {
    vfs().remove_dir_all(path)
}
pub fn rename(from: &str, to: &str) -> Result<()> {
    vfs().rename(from, to)
}
pub fn copy(from: &str, to: &str) -> Result<u64> {
    vfs().copy(from, to)
}
pub fn read_link(path: &str) -> Result<String> {
    vfs().read_link(path)
}
pub fn symlink(target: &str, link: &str) -> Result<()> {
    vfs().symlink(target, link)
}
pub fn canonicalize(path: &str) -> Result<String> {
    vfs().canonicalize(path)
}
/// `(mount point, file-system type)` for every mount.
pub fn mounts() -> Vec<(String, &'static str)> {
    vfs().mounts()
}
