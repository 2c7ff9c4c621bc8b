//! Host tests: cpio, path resolution, ramfs semantics through the VFS, the
//! byte-addressed disk and FAT on an in-memory block device.
extern crate std;

use crate::cpio::{self, S_IFDIR, S_IFLNK, S_IFREG};
use crate::kdev::{BlockDevice, DevError, check_block_request};
use crate::*;
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::process::Command;

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn kinds<T>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

fn cpio_err(data: Vec<u8>) -> cpio::CpioError {
    match cpio::load(leak(data)) {
        Ok(_) => panic!("malformed archive accepted"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- cpio

fn sample_archive() -> Vec<u8> {
    cpio::build(&[
        (".", S_IFDIR | 0o700, b""),
        ("./etc", S_IFDIR | 0o755, b""),
        ("./etc/hostname", S_IFREG | 0o644, b"unikit\n"),
        ("etc/motd", S_IFREG | 0o600, b"hello there"),
        ("/bin/deep/tool", S_IFREG | 0o755, b"#!tool"),
        ("etc/link", S_IFLNK | 0o777, b"hostname"),
        ("abs", S_IFLNK | 0o777, b"/etc/motd"),
        ("dev/null", 0o020000 | 0o666, b""),
        ("empty", S_IFREG | 0o644, b""),
    ])
}

#[test]
fn cpio_parses_built_archive() {
    let a = sample_archive();
    let names: Vec<String> = cpio::read(&a).map(|e| e.unwrap().name.to_string()).collect();
    assert_eq!(names.len(), 9);
    assert_eq!(names[2], "./etc/hostname");

    let fs = cpio::load(leak(a)).unwrap();
    let v = Vfs::new(Arc::new(fs));
    assert_eq!(v.read_to_string("/etc/hostname").unwrap(), "unikit\n");
    assert_eq!(v.read_to_string("/etc/motd").unwrap(), "hello there");
    assert_eq!(v.read_to_string("/bin/deep/tool").unwrap(), "#!tool");
    assert_eq!(v.metadata("/bin/deep/tool").unwrap().permissions().mode(), 0o755);
    assert_eq!(v.metadata("/bin").unwrap().permissions().mode(), 0o755);
    assert_eq!(v.metadata("/").unwrap().permissions().mode(), 0o700);
    assert_eq!(v.metadata("/etc/motd").unwrap().permissions().mode(), 0o600);
    // symlinks: relative, absolute; metadata follows, symlink_metadata does not
    assert_eq!(v.read_to_string("/etc/link").unwrap(), "unikit\n");
    assert_eq!(v.read_to_string("/abs").unwrap(), "hello there");
    assert!(v.symlink_metadata("/abs").unwrap().is_symlink());
    assert!(v.metadata("/abs").unwrap().is_file());
    assert_eq!(v.read_link("/etc/link").unwrap(), "hostname");
    // device nodes are skipped, their directory exists
    assert_eq!(kinds(v.metadata("/dev/null")), ErrorKind::NotFound);
    assert!(v.metadata("/dev").unwrap().is_dir());
    assert_eq!(v.read("/empty").unwrap(), b"");
    let names: Vec<String> = v.read_dir("/").unwrap().map(|e| e.unwrap().file_name().to_string()).collect();
    assert_eq!(names, ["abs", "bin", "dev", "empty", "etc"]);
}

#[test]
fn cpio_files_are_copy_on_write() {
    let a = leak(cpio::build(&[("f", S_IFREG | 0o644, b"0123456789")]));
    let v = Vfs::new(Arc::new(cpio::load(a).unwrap()));
    let mut f = v.open("/f", OpenOptions::new().read(true).write(true)).unwrap();
    f.seek(SeekFrom::Start(3)).unwrap();
    f.write_all(b"xy").unwrap();
    drop(f);
    assert_eq!(v.read("/f").unwrap(), b"012xy56789");
    // the archive itself is untouched
    assert!(a.windows(10).any(|w| w == b"0123456789"));
    // truncating a borrowed file keeps borrowing
    let f = v.open("/f", OpenOptions::new().write(true)).unwrap();
    f.set_len(4).unwrap();
    assert_eq!(v.read("/f").unwrap(), b"012x");
}

#[test]
fn cpio_truncated_anywhere_is_an_error_never_a_panic() {
    let a = sample_archive();
    for cut in 1..a.len() {
        // Cutting only trailing padding of the trailer still leaves a whole archive.
        let r = cpio::load(leak(a[..cut].to_vec()));
        // The trailer's name ends with "!!!" and its NUL; only padding follows.
        let trailer_end = a.len() - a.iter().rev().take_while(|&&b| b == 0).count() + 1;
        if cut >= trailer_end {
            assert!(r.is_ok(), "cut at {cut}");
        } else {
            let Err(e) = r else { panic!("cut at {cut} accepted") };
            assert!(e.offset <= cut, "offset {} past cut {cut}", e.offset);
        }
    }
    // Empty input: no archive at all, an empty root.
    assert!(cpio::load(leak(Vec::new())).is_ok());
}

#[test]
fn cpio_malformed_headers() {
    let good = cpio::build(&[("a", S_IFREG | 0o644, b"data")]);
    // bad magic
    let mut a = good.clone();
    a[5] = b'7';
    let e = cpio_err(a);
    assert!(e.reason.contains("bad magic"), "{e}");
    assert_eq!(e.offset, 0);
    // bad hex digit in the mode field
    let mut a = good.clone();
    a[6 + 8] = b'z';
    let e = cpio_err(a);
    assert!(e.reason.contains("hex"), "{e}");
    assert_eq!(e.offset, 14);
    // oversized file size
    let mut a = good.clone();
    a[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"7fffffff");
    let e = cpio_err(a);
    assert!(e.reason.contains("runs past the end"), "{e}");
    let mut a = good.clone();
    a[6 + 6 * 8..6 + 7 * 8].copy_from_slice(b"ffffffff");
    assert!(cpio::load(leak(a)).is_err());
    // oversized name size
    let mut a = good.clone();
    a[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"ffffffff");
    let e = cpio_err(a);
    assert!(e.reason.contains("name too long"), "{e}");
    let mut a = good.clone();
    a[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000fff");
    let e = cpio_err(a);
    assert!(e.reason.contains("runs past the end"), "{e}");
    // name without NUL: namesize 1 short (the name's last byte where the NUL should be)
    let mut a = good.clone();
    a[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000001");
    let e = cpio_err(a);
    assert!(e.reason.contains("NUL-terminated"), "{e}");
    // namesize 0
    let mut a = good.clone();
    a[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00000000");
    assert!(cpio_err(a).reason.contains("empty name"));
    // non-UTF-8 name
    let mut a = good.clone();
    a[110] = 0xff;
    assert!(cpio_err(a).reason.contains("UTF-8"));
    // garbage after the trailer
    let mut a = good.clone();
    a.extend_from_slice(b"junk");
    let e = cpio_err(a);
    assert_eq!(e.offset, good.len());
    // Display names the offset
    assert!(e.to_string().contains(&alloc::format!("{:#x}", good.len())));
    let fe: Error = e.into();
    assert_eq!(fe.kind(), ErrorKind::InvalidData);
    // a file where a directory is needed
    let a = cpio::build(&[("a", S_IFREG | 0o644, b"x"), ("a/b", S_IFREG | 0o644, b"y")]);
    assert!(cpio_err(a).reason.contains("not a directory"));
}

#[test]
fn cpio_concatenated_archives_and_hard_links() {
    let mut a = cpio::build(&[("one", S_IFREG | 0o644, b"1"), ("same", S_IFREG | 0o644, b"first")]);
    a.extend_from_slice(&[0; 512]);
    a.extend_from_slice(&cpio::build(&[("two", S_IFREG | 0o644, b"2"), ("same", S_IFREG | 0o644, b"second")]));
    let v = Vfs::new(Arc::new(cpio::load(leak(a)).unwrap()));
    assert_eq!(v.read("/one").unwrap(), b"1");
    assert_eq!(v.read("/two").unwrap(), b"2");
    assert_eq!(v.read("/same").unwrap(), b"second");
}

/// An archive made by the host's `cpio -o -H newc`.
#[test]
fn cpio_from_host_tool() {
    if Command::new("cpio").arg("--version").output().is_err() {
        std::eprintln!("SKIPPED cpio_from_host_tool: no `cpio` on this host");
        return;
    }
    let dir = std::env::temp_dir().join(alloc::format!("unikit-fs-cpio-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello from the host\n").unwrap();
    std::fs::write(dir.join("sub/deeper/big.bin"), vec![0xa5u8; 70_001]).unwrap();
    std::fs::hard_link(dir.join("hello.txt"), dir.join("sub/hard.txt")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", dir.join("sub/sym")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . | LC_ALL=C sort | cpio -o -H newc --quiet")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    let v = Vfs::new(Arc::new(cpio::load(leak(out.stdout)).unwrap()));
    assert_eq!(v.read_to_string("/hello.txt").unwrap(), "hello from the host\n");
    assert_eq!(v.read_to_string("/sub/hard.txt").unwrap(), "hello from the host\n");
    assert_eq!(v.read_to_string("/sub/sym").unwrap(), "hello from the host\n");
    let big = v.read("/sub/deeper/big.bin").unwrap();
    assert_eq!(big.len(), 70_001);
    assert!(big.iter().all(|&b| b == 0xa5));
    // hard links share the node
    let mut f = v.open("/hello.txt", OpenOptions::new().append(true)).unwrap();
    f.write_all(b"more").unwrap();
    drop(f);
    assert!(v.read_to_string("/sub/hard.txt").unwrap().ends_with("more"));
}

// ---------------------------------------------------------------- ramfs + VFS

fn ram() -> Vfs {
    Vfs::new(Arc::new(Ramfs::new()))
}

#[test]
fn ramfs_create_read_write_seek() {
    let v = ram();
    let mut f = v.open("/a.txt", OpenOptions::new().write(true).create(true)).unwrap();
    f.write_all(b"hello world").unwrap();
    assert_eq!(f.stream_position(), 11);
    assert_eq!(f.seek(SeekFrom::Current(-5)).unwrap(), 6);
    f.write_all(b"WORLD!").unwrap();
    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), 12);
    assert_eq!(kinds(f.seek(SeekFrom::Current(-13))), ErrorKind::InvalidInput);
    // writing past the end leaves a zero-filled hole
    f.seek(SeekFrom::Start(14)).unwrap();
    f.write_all(b"!").unwrap();
    // not opened for reading
    let mut b = [0u8; 4];
    assert_eq!(kinds(f.read(&mut b)), ErrorKind::PermissionDenied);
    drop(f);
    assert_eq!(v.read("/a.txt").unwrap(), b"hello WORLD!\0\0!");

    let mut f = v.open("/a.txt", OpenOptions::new().read(true)).unwrap();
    let mut b = [0u8; 5];
    f.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"hello");
    f.seek(SeekFrom::End(-3)).unwrap();
    let mut rest = Vec::new();
    assert_eq!(f.read_to_end(&mut rest).unwrap(), 3);
    assert_eq!(rest, b"\0\0!");
    assert_eq!(f.read(&mut b).unwrap(), 0);
    assert_eq!(kinds(f.read_exact(&mut b)), ErrorKind::UnexpectedEof);
    assert_eq!(kinds(f.write(b"x")), ErrorKind::PermissionDenied);
    assert_eq!(f.metadata().unwrap().len(), 15);
}

#[test]
fn ramfs_open_options() {
    let v = ram();
    let o = |f: fn(&mut OpenOptions) -> &mut OpenOptions| {
        let mut x = OpenOptions::new();
        f(&mut x);
        x
    };
    // missing file without create
    assert_eq!(kinds(v.open("/x", &o(|x| x.read(true)))), ErrorKind::NotFound);
    assert_eq!(kinds(v.open("/x", &o(|x| x.write(true)))), ErrorKind::NotFound);
    // nothing requested / create without write
    assert_eq!(kinds(v.open("/x", &o(|x| x))), ErrorKind::InvalidInput);
    assert_eq!(kinds(v.open("/x", &o(|x| x.read(true).create(true)))), ErrorKind::InvalidInput);
    assert_eq!(kinds(v.open("/x", &o(|x| x.write(true).append(true).truncate(true)))), ErrorKind::InvalidInput);
    v.write("/x", b"12345").unwrap();
    // create_new on an existing file
    assert_eq!(kinds(v.open("/x", &o(|x| x.write(true).create_new(true)))), ErrorKind::AlreadyExists);
    // append
    let mut f = v.open("/x", &o(|x| x.append(true))).unwrap();
    f.write_all(b"67").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"8").unwrap(); // still goes to the end
    drop(f);
    assert_eq!(v.read("/x").unwrap(), b"12345678");
    // truncate
    drop(v.open("/x", &o(|x| x.write(true).truncate(true))).unwrap());
    assert_eq!(v.read("/x").unwrap(), b"");
    // set_len grows with zeros and shrinks
    let f = v.open("/x", &o(|x| x.write(true))).unwrap();
    f.set_len(3).unwrap();
    assert_eq!(v.read("/x").unwrap(), b"\0\0\0");
    f.set_len(1).unwrap();
    assert_eq!(v.metadata("/x").unwrap().len(), 1);
    // directories are not files
    v.create_dir("/d").unwrap();
    assert_eq!(kinds(v.open("/d", &o(|x| x.read(true)))), ErrorKind::IsADirectory);
    assert_eq!(kinds(v.open("/", &o(|x| x.read(true)))), ErrorKind::IsADirectory);
    assert_eq!(kinds(v.open("/x/y", &o(|x| x.write(true).create(true)))), ErrorKind::NotADirectory);
    assert_eq!(kinds(v.open("/nodir/y", &o(|x| x.write(true).create(true)))), ErrorKind::NotFound);
    // huge offsets are refused, not allocated
    let mut f = v.open("/x", &o(|x| x.write(true))).unwrap();
    f.seek(SeekFrom::Start(u64::MAX - 1)).unwrap();
    assert_eq!(kinds(f.write(b"ab")), ErrorKind::FileTooLarge);
    assert_eq!(kinds(f.set_len(1 << 50)), ErrorKind::FileTooLarge);
}

#[test]
fn ramfs_directories_remove_rename() {
    let v = ram();
    v.create_dir_all("/a/b/c").unwrap();
    v.create_dir_all("/a/b/c").unwrap();
    assert_eq!(kinds(v.create_dir("/a/b")), ErrorKind::AlreadyExists);
    assert_eq!(kinds(v.create_dir("/")), ErrorKind::AlreadyExists);
    assert_eq!(kinds(v.create_dir("/missing/x")), ErrorKind::NotFound);
    v.write("/a/b/f1", b"one").unwrap();
    v.write("/a/b/f2", b"twotwo").unwrap();
    let entries: Vec<DirEntry> = v.read_dir("/a/b").unwrap().map(|e| e.unwrap()).collect();
    let summary: Vec<(String, FileType, u64, String)> =
        entries.iter().map(|e| (e.file_name().into(), e.file_type(), e.len(), e.path())).collect();
    assert_eq!(
        summary,
        [
            ("c".into(), FileType::Dir, 0, "/a/b/c".into()),
            ("f1".into(), FileType::File, 3, "/a/b/f1".into()),
            ("f2".into(), FileType::File, 6, "/a/b/f2".into()),
        ]
    );
    assert_eq!(kinds(v.read_dir("/a/b/f1")), ErrorKind::NotADirectory);
    assert_eq!(kinds(v.read_dir("/nope")), ErrorKind::NotFound);
    // remove
    assert_eq!(kinds(v.remove_file("/a/b/c")), ErrorKind::IsADirectory);
    assert_eq!(kinds(v.remove_dir("/a/b")), ErrorKind::DirectoryNotEmpty);
    assert_eq!(kinds(v.remove_dir("/a/b/f1")), ErrorKind::NotADirectory);
    assert_eq!(kinds(v.remove_file("/a/b/zz")), ErrorKind::NotFound);
    v.remove_file("/a/b/f1").unwrap();
    assert!(!v.exists("/a/b/f1"));
    // rename: move a file, replace a file, directory rules
    v.rename("/a/b/f2", "/a/moved").unwrap();
    assert_eq!(v.read("/a/moved").unwrap(), b"twotwo");
    v.write("/a/other", b"x").unwrap();
    v.rename("/a/other", "/a/moved").unwrap();
    assert_eq!(v.read("/a/moved").unwrap(), b"x");
    assert_eq!(kinds(v.rename("/a/moved", "/a/b")), ErrorKind::IsADirectory);
    assert_eq!(kinds(v.rename("/a/b", "/a/moved")), ErrorKind::NotADirectory);
    assert_eq!(kinds(v.rename("/a", "/a/b/c/inside")), ErrorKind::InvalidInput);
    assert_eq!(kinds(v.rename("/nope", "/x")), ErrorKind::NotFound);
    v.create_dir("/empty").unwrap();
    v.rename("/a/b", "/empty").unwrap(); // replaces an empty directory
    assert!(v.metadata("/empty/c").unwrap().is_dir());
    v.rename("/empty", "/a/again").unwrap();
    v.rename("/a/again", "/a/again").unwrap();
    assert!(v.exists("/a/again/c"));
    // remove_dir_all
    v.write("/a/again/c/f", b"f").unwrap();
    v.remove_dir_all("/a").unwrap();
    assert!(!v.exists("/a"));
    assert_eq!(v.read_dir("/").unwrap().count(), 0);
}

#[test]
fn ramfs_unlinked_open_file_lives_on() {
    let v = ram();
    v.write("/f", b"data").unwrap();
    let mut f = v.open("/f", OpenOptions::new().read(true).write(true)).unwrap();
    v.remove_file("/f").unwrap();
    assert!(!v.exists("/f"));
    f.write_all(b"++").unwrap();
    f.rewind().unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "++ta");
    // a new file by the same name is a different file
    v.write("/f", b"new").unwrap();
    drop(f);
    assert_eq!(v.read("/f").unwrap(), b"new");
}

#[test]
fn vfs_paths_and_symlinks() {
    let v = ram();
    v.create_dir_all("/usr/lib").unwrap();
    v.write("/usr/lib/libc", b"c").unwrap();
    v.symlink("usr/lib", "/lib").unwrap();
    v.symlink("/lib/libc", "/usr/libc-abs").unwrap();
    v.symlink("loop2", "/loop1").unwrap();
    v.symlink("loop1", "/loop2").unwrap();
    v.symlink("nowhere", "/dangling").unwrap();
    assert_eq!(v.read("/lib/libc").unwrap(), b"c");
    assert_eq!(v.read("/usr/libc-abs").unwrap(), b"c");
    assert_eq!(v.read("//usr/./lib/../lib/libc").unwrap(), b"c");
    assert_eq!(v.read("usr/lib/libc").unwrap(), b"c"); // relative to /
    assert_eq!(v.read("/../../usr/lib/libc").unwrap(), b"c");
    assert_eq!(v.canonicalize("/lib/./libc").unwrap(), "/usr/lib/libc");
    assert_eq!(kinds(v.read("/loop1")), ErrorKind::FilesystemLoop);
    assert_eq!(kinds(v.read("/dangling")), ErrorKind::NotFound);
    // writing through a dangling link creates its target, as on Linux
    v.write("/dangling", b"made").unwrap();
    assert_eq!(v.read("/nowhere").unwrap(), b"made");
    // remove_file removes the link, not the target
    v.remove_file("/lib").unwrap();
    assert!(v.exists("/usr/lib/libc"));
    assert_eq!(kinds(v.read("")), ErrorKind::NotFound);
    let e = v.read("/no/such").unwrap_err();
    assert_eq!(e.to_string(), "/no/such: no such file or directory");
    assert_eq!(kinds(v.read_link("/usr")), ErrorKind::InvalidInput);
}

#[test]
fn vfs_mounts() {
    let v = ram();
    v.write("/top", b"t").unwrap();
    v.mount("/mnt/inner", Arc::new(Ramfs::new())).unwrap(); // mount point created
    assert!(v.metadata("/mnt/inner").unwrap().is_dir());
    v.write("/mnt/inner/f", b"in").unwrap();
    assert_eq!(v.read("/mnt/inner/f").unwrap(), b"in");
    assert_eq!(v.read("/mnt/inner/../../top").unwrap(), b"t");
    assert_eq!(kinds(v.rename("/top", "/mnt/inner/top")), ErrorKind::CrossesDevices);
    assert_eq!(kinds(v.remove_dir("/mnt/inner")), ErrorKind::PermissionDenied);
    assert_eq!(kinds(v.mount("/top", Arc::new(Ramfs::new()))), ErrorKind::NotADirectory);
    assert_eq!(v.mounts(), [("/".to_string(), "ramfs"), ("/mnt/inner".to_string(), "ramfs")]);
    // a symlink into a mount
    v.symlink("/mnt/inner/f", "/via").unwrap();
    assert_eq!(v.read("/via").unwrap(), b"in");
    assert_eq!(kinds(v.unmount("/")), ErrorKind::InvalidInput);
    assert_eq!(kinds(v.unmount("/mnt")), ErrorKind::InvalidInput);
    v.unmount("/mnt/inner").unwrap();
    assert_eq!(kinds(v.read("/mnt/inner/f")), ErrorKind::NotFound);
}

#[test]
fn global_root_from_cpio() {
    // The only test that touches the global VFS.
    write("/before", b"x").unwrap();
    let a = leak(cpio::build(&[("etc/hostname", S_IFREG | 0o644, b"uk")]));
    mount_root_from_cpio(a).unwrap();
    assert_eq!(read_to_string("/etc/hostname").unwrap(), "uk");
    assert_eq!(kinds(metadata("/before")), ErrorKind::NotFound);
    let bad = leak(b"070701zz".to_vec());
    let e = mount_root_from_cpio(bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(e.to_string().starts_with("initrd: invalid data (cpio: "), "{e}");
    assert_eq!(read_to_string("/etc/hostname").unwrap(), "uk");
    assert_eq!(kinds(mount_disk(7, "/disk")), ErrorKind::NotFound);
}

// ---------------------------------------------------------------- block devices

struct MemDisk {
    data: spin::Mutex<Vec<u8>>,
    ro: bool,
    flushes: AtomicUsize,
    writes: AtomicUsize,
}

impl MemDisk {
    fn new(bytes: Vec<u8>) -> Arc<Self> {
        Arc::new(Self {
            data: spin::Mutex::new(bytes),
            ro: false,
            flushes: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        })
    }
    fn bytes(&self) -> Vec<u8> {
        self.data.lock().clone()
    }
}

impl BlockDevice for MemDisk {
    fn name(&self) -> &str {
        "mem"
    }
    fn block_size(&self) -> usize {
        512
    }
    fn num_blocks(&self) -> u64 {
        self.data.lock().len() as u64 / 512
    }
    fn read_only(&self) -> bool {
        self.ro
    }
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> core::result::Result<(), DevError> {
        check_block_request(self, block, buf.len())?;
        let d = self.data.lock();
        let at = block as usize * 512;
        buf.copy_from_slice(&d[at..at + buf.len()]);
        Ok(())
    }
    fn write_blocks(&self, block: u64, buf: &[u8]) -> core::result::Result<(), DevError> {
        if self.ro {
            return Err(DevError::ReadOnly);
        }
        check_block_request(self, block, buf.len())?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut d = self.data.lock();
        let at = block as usize * 512;
        d[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> core::result::Result<(), DevError> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn disk_unaligned_read_modify_write() {
    let mem = MemDisk::new((0..4096u32).map(|i| i as u8).collect());
    let d = Disk::new(mem.clone()).unwrap();
    assert_eq!(d.len(), 4096);
    let mut b = [0u8; 5];
    assert_eq!(d.read_at(510, &mut b).unwrap(), 5);
    assert_eq!(b, [254, 255, 0, 1, 2]);
    assert_eq!(d.write_at(510, b"ABCDE").unwrap(), 5);
    let all = mem.bytes();
    assert_eq!(&all[508..517], &[252, 253, b'A', b'B', b'C', b'D', b'E', 3, 4]);
    // a span with a head, whole blocks and a tail
    let big: Vec<u8> = (0..1500).map(|i| (i % 7) as u8).collect();
    assert_eq!(d.write_at(100, &big).unwrap(), 1500);
    let mut back = vec![0u8; 1500];
    d.read_at(100, &mut back).unwrap();
    assert_eq!(back, big);
    assert_eq!(mem.bytes()[99], 99);
    assert_eq!(mem.bytes()[1600], (1600 % 256) as u8);
    // the end of the disk
    assert_eq!(d.read_at(4090, &mut back).unwrap(), 6);
    assert_eq!(d.read_at(5000, &mut back).unwrap(), 0);
    assert_eq!(d.write_at(4094, b"xyz").unwrap(), 2);
    d.flush().unwrap();
    assert_eq!(mem.flushes.load(Ordering::Relaxed), 1);
    let ro = Arc::new(MemDisk { ro: true, ..Arc::into_inner(MemDisk::new(vec![0; 1024])).unwrap() });
    let d = Disk::new(ro).unwrap();
    assert_eq!(kinds(d.write_at(0, b"x")), ErrorKind::ReadOnlyFilesystem);
}

fn fat_vfs(mem: &Arc<MemDisk>) -> (Vfs, Arc<FatFs>) {
    let fs = Arc::new(FatFs::mount(Disk::new(mem.clone()).unwrap(), clock).unwrap());
    let v = Vfs::new(Arc::new(Ramfs::new()));
    v.mount("/disk", fs.clone()).unwrap();
    (v, fs)
}

#[test]
fn fat_format_write_remount_read() {
    for (size_mib, bits) in [(2usize, None), (40, Some(32u8))] {
        let mem = MemDisk::new(vec![0; size_mib << 20]);
        FatFs::format(
            &Disk::new(mem.clone()).unwrap(),
            &FormatOptions { label: Some("unikit".into()), fat_bits: bits },
        )
        .unwrap();
        let (v, fs) = fat_vfs(&mem);
        if bits == Some(32) {
            assert_eq!(fs.fat_type(), "FAT32");
        }
        let (total, free) = fs.space().unwrap();
        assert!(total > 0 && free > 0 && free <= total);
        v.create_dir("/disk/Logs").unwrap();
        let long_name = "/disk/Logs/a rather long file name.txt";
        let mut f = v.open(long_name, OpenOptions::new().read(true).write(true).create(true)).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        f.write_all(&data).unwrap();
        f.seek(SeekFrom::Start(4095)).unwrap();
        f.write_all(b"XY").unwrap();
        f.sync_all().unwrap();
        drop(f);
        let flushes = mem.flushes.load(Ordering::Relaxed);
        assert!(flushes >= 1);
        // a hole past the end, then shrink and grow
        let mut g = v.open("/disk/hole.bin", OpenOptions::new().write(true).create(true)).unwrap();
        g.seek(SeekFrom::Start(3000)).unwrap();
        g.write_all(b"end").unwrap();
        g.set_len(3001).unwrap();
        g.set_len(3002).unwrap();
        drop(g);
        v.write("/disk/Logs/tmp", b"gone soon").unwrap();
        v.rename("/disk/Logs/tmp", "/disk/renamed.txt").unwrap();
        v.write("/disk/delete.me", b"x").unwrap();
        v.remove_file("/disk/delete.me").unwrap();
        v.unmount("/disk").unwrap();
        assert_eq!(kinds(v.read("/disk/renamed.txt")), ErrorKind::NotFound);

        // Mount the same bytes again.
        let (v, _) = fat_vfs(&mem);
        let mut expect = data.clone();
        expect[4095] = b'X';
        expect[4096] = b'Y';
        assert_eq!(v.read(long_name).unwrap(), expect);
        // names match without regard to case
        assert_eq!(v.read("/disk/logs/A RATHER LONG FILE NAME.TXT").unwrap().len(), 100_000);
        let hole = v.read("/disk/hole.bin").unwrap();
        assert_eq!(hole.len(), 3002);
        assert!(hole[..3000].iter().all(|&b| b == 0));
        assert_eq!(&hole[3000..], b"e\0");
        assert_eq!(v.read_to_string("/disk/renamed.txt").unwrap(), "gone soon");
        assert_eq!(kinds(v.metadata("/disk/delete.me")), ErrorKind::NotFound);
        let names: Vec<(String, FileType, u64)> = v
            .read_dir("/disk")
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string(), e.file_type(), e.len()))
            .collect();
        assert_eq!(
            names,
            [
                ("Logs".to_string(), FileType::Dir, 0),
                ("hole.bin".to_string(), FileType::File, 3002),
                ("renamed.txt".to_string(), FileType::File, 9)
            ]
        );
        // errors
        assert_eq!(kinds(v.create_dir("/disk/Logs")), ErrorKind::AlreadyExists);
        assert_eq!(kinds(v.remove_dir("/disk/Logs")), ErrorKind::DirectoryNotEmpty);
        assert_eq!(kinds(v.remove_file("/disk/Logs")), ErrorKind::IsADirectory);
        assert_eq!(kinds(v.open("/disk/Logs", OpenOptions::new().read(true))), ErrorKind::IsADirectory);
        assert_eq!(kinds(v.read("/disk/renamed.txt/x")), ErrorKind::NotADirectory);
        assert_eq!(kinds(v.write("/disk/bad:name", b"")), ErrorKind::InvalidFilename);
        assert_eq!(kinds(v.symlink("x", "/disk/link")), ErrorKind::Unsupported);
        assert_eq!(
            kinds(v.open("/disk/renamed.txt", OpenOptions::new().write(true).create_new(true))),
            ErrorKind::AlreadyExists
        );
        // rename replaces a file
        v.rename("/disk/hole.bin", "/disk/renamed.txt").unwrap();
        assert_eq!(v.metadata("/disk/renamed.txt").unwrap().len(), 3002);
        v.remove_dir_all("/disk/Logs").unwrap();
        assert_eq!(v.read_dir("/disk").unwrap().count(), 1);
    }
}

#[test]
fn fat_disk_full_and_read_only() {
    let mem = MemDisk::new(vec![0; 1 << 20]);
    FatFs::format(&Disk::new(mem.clone()).unwrap(), &FormatOptions::default()).unwrap();
    let (v, _) = fat_vfs(&mem);
    let mut f = v.open("/disk/big", OpenOptions::new().write(true).create(true)).unwrap();
    let chunk = vec![1u8; 64 * 1024];
    let mut err = None;
    for _ in 0..32 {
        if let Err(e) = f.write_all(&chunk) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err.expect("a 1 MiB disk filled up").kind(), ErrorKind::StorageFull);
    drop(f);
    v.unmount("/disk").unwrap();

    let ro = Arc::new(MemDisk { ro: true, ..Arc::into_inner(MemDisk::new(mem.bytes())).unwrap() });
    let fs = FatFs::mount(Disk::new(ro).unwrap(), clock).unwrap();
    let v = Vfs::new(Arc::new(Ramfs::new()));
    v.mount("/ro", Arc::new(fs)).unwrap();
    assert!(v.metadata("/ro/big").unwrap().len() > 512 * 1024);
    assert!(v.metadata("/ro/big").unwrap().permissions().readonly());
    assert_eq!(kinds(v.write("/ro/new", b"x")), ErrorKind::ReadOnlyFilesystem);
    assert_eq!(kinds(v.remove_file("/ro/big")), ErrorKind::ReadOnlyFilesystem);
    // not a FAT volume at all
    let blank = MemDisk::new(vec![0; 1 << 20]);
    assert!(FatFs::mount(Disk::new(blank).unwrap(), clock).is_err());
}

/// Cross-check with the host's dosfstools and mtools: an image made by
/// `mkfs.vfat`, written here, must pass `fsck.vfat -n` and read back with
/// `mtype`.
#[test]
fn fat_host_mkfs_image_and_fsck() {
    let tools = ["mkfs.vfat", "fsck.vfat", "mtype"];
    for t in tools {
        let found =
            Command::new("sh").arg("-c").arg(alloc::format!("command -v {t}")).output().map(|o| o.status.success());
        if !matches!(found, Ok(true)) {
            std::eprintln!(
                "SKIPPED fat_host_mkfs_image_and_fsck: `{t}` not installed (apt-get install dosfstools mtools)"
            );
            return;
        }
    }
    let img = std::env::temp_dir().join(alloc::format!("unikit-fs-fat-{}.img", std::process::id()));
    let _ = std::fs::remove_file(&img);
    let st = Command::new("mkfs.vfat").args(["-C", "-n", "HOSTFAT"]).arg(&img).arg("8192").output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let mem = MemDisk::new(std::fs::read(&img).unwrap());
    let (v, fs) = fat_vfs(&mem);
    assert_eq!(fs.fat_type(), "FAT12");
    v.create_dir("/disk/dir").unwrap();
    v.write("/disk/dir/from-unikit.txt", b"written by unikit-fs\n").unwrap();
    v.write("/disk/x.bin", &vec![7u8; 20_000]).unwrap();
    v.unmount("/disk").unwrap();
    std::fs::write(&img, mem.bytes()).unwrap();
    let fsck = Command::new("fsck.vfat").arg("-n").arg(&img).output().unwrap();
    let out = String::from_utf8_lossy(&fsck.stdout).to_string() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(fsck.status.success(), "fsck.vfat failed:\n{out}");
    let m = Command::new("mtype")
        .arg("-i")
        .arg(&img)
        .arg("::/dir/from-unikit.txt")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&m.stdout), "written by unikit-fs\n");
    let _ = std::fs::remove_file(&img);
}

#[test]
fn fat_dates_round_trip() {
    use crate::fat::fat_date_time;
    let dt = fat_date_time(1_700_000_000); // 2023-11-14 22:13:20 UTC
    assert_eq!((dt.date.year, dt.date.month, dt.date.day), (2023, 11, 14));
    assert_eq!((dt.time.hour, dt.time.min, dt.time.sec), (22, 13, 20));
    let early = fat_date_time(0);
    assert_eq!((early.date.year, early.date.month, early.date.day), (1980, 1, 1));
    let late = fat_date_time(u64::MAX);
    assert_eq!(late.date.year, 2107);
}
