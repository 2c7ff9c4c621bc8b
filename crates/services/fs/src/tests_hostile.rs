//! Hostile input: property tests that arbitrary and mutated FAT images and
//! cpio archives never panic the file systems (a panic in the guest stops
//! the VM). `UNIKIT_FUZZ_CASES` sets the case count (default: 10,000 per
//! cpio property, 300 per FAT property, whose cases mount, walk and write a
//! whole volume: about 0.2 s each in a debug build).
extern crate std;

use crate::cpio::{self, S_IFDIR, S_IFLNK, S_IFREG};
use crate::kdev::{BlockDevice, DevError, check_block_request};
use crate::*;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("UNIKIT_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Mem(spin::Mutex<Vec<u8>>);

impl BlockDevice for Mem {
    fn name(&self) -> &str {
        "mem"
    }
    fn block_size(&self) -> usize {
        512
    }
    fn num_blocks(&self) -> u64 {
        self.0.lock().len() as u64 / 512
    }
    fn read_only(&self) -> bool {
        false
    }
    fn read_blocks(&self, block: u64, buf: &mut [u8]) -> core::result::Result<(), DevError> {
        check_block_request(self, block, buf.len())?;
        let at = block as usize * 512;
        buf.copy_from_slice(&self.0.lock()[at..at + buf.len()]);
        Ok(())
    }
    fn write_blocks(&self, block: u64, buf: &[u8]) -> core::result::Result<(), DevError> {
        check_block_request(self, block, buf.len())?;
        let at = block as usize * 512;
        self.0.lock()[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> core::result::Result<(), DevError> {
        Ok(())
    }
}

fn clock() -> u64 {
    1_700_000_000
}

/// A small volume with something in it: files of one and several clusters,
/// long and short names, a subdirectory two deep.
fn populated(size: usize, bits: u8) -> Vec<u8> {
    let mem = Arc::new(Mem(spin::Mutex::new(vec![0; size])));
    FatFs::format(
        &Disk::new(mem.clone()).unwrap(),
        &FormatOptions { label: Some("FUZZ".into()), fat_bits: Some(bits) },
    )
    .unwrap();
    let fs = Arc::new(FatFs::mount(Disk::new(mem.clone()).unwrap(), clock).unwrap());
    let v = Vfs::new(Arc::new(Ramfs::new()));
    v.mount("/d", fs).unwrap();
    v.write("/d/A.TXT", b"short").unwrap();
    v.write("/d/a rather long name.data", &[7u8; 5000]).unwrap();
    v.create_dir_all("/d/sub/deeper").unwrap();
    v.write("/d/sub/deeper/f", b"deep").unwrap();
    for i in 0..20 {
        v.write(&format!("/d/sub/n{i}"), format!("{i}").as_bytes()).unwrap();
    }
    v.unmount("/d").unwrap();
    mem.0.lock().clone()
}

fn fat12() -> &'static [u8] {
    static IMG: spin::Once<Vec<u8>> = spin::Once::new();
    IMG.call_once(|| populated(1 << 20, 12))
}
fn fat16() -> &'static [u8] {
    static IMG: spin::Once<Vec<u8>> = spin::Once::new();
    IMG.call_once(|| populated(8 << 20, 16))
}

/// Walks, reads and changes whatever mounts; errors are fine, panics and
/// hangs are not.
fn exercise(img: Vec<u8>) {
    let mem = Arc::new(Mem(spin::Mutex::new(img)));
    let Ok(disk) = Disk::new(mem) else { return };
    let Ok(fs) = FatFs::mount(disk, clock) else { return };
    let _ = (fs.fat_type(), fs.space());
    let v = Vfs::new(Arc::new(Ramfs::new()));
    v.mount("/d", Arc::new(fs)).unwrap();
    // Breadth-first, bounded: a hostile image may loop its directories.
    let mut todo = vec![String::from("/d")];
    let mut seen = 0;
    while let Some(dir) = todo.pop() {
        let Ok(rd) = v.read_dir(&dir) else { continue };
        for e in rd.flatten() {
            seen += 1;
            if seen > 200 {
                break;
            }
            let p = format!("{dir}/{}", e.file_name());
            if e.file_type().is_dir() {
                if todo.len() < 50 && p.matches('/').count() < 8 {
                    todo.push(p);
                }
            } else {
                let _ = v.read(&p);
                let _ = v.metadata(&p);
            }
        }
    }
    let _ = v.write("/d/new.txt", &[1u8; 3000]);
    let _ = v.write("/d/A.TXT", b"rewritten, longer than before");
    if let Ok(mut f) = v.open("/d/a rather long name.data", OpenOptions::new().read(true).write(true)) {
        let _ = f.seek(SeekFrom::Start(4000));
        let _ = f.write_all(&[9u8; 3000]);
        let _ = f.set_len(100);
        let _ = f.sync_all();
    }
    let _ = v.create_dir("/d/sub/made");
    let _ = v.rename("/d/sub/deeper/f", "/d/moved");
    let _ = v.remove_file("/d/sub/n3");
    let _ = v.remove_dir_all("/d/sub");
    let _ = v.sync();
    let _ = v.unmount("/d");
}

/// Mutations: `(offset, byte)` pairs applied within the first `span` bytes
/// (boot sector, FATs, root directory and the first clusters).
fn mutations(span: usize) -> impl Strategy<Value = Vec<(usize, u8)>> {
    let byte = prop_oneof![any::<u8>(), Just(0u8), Just(0xff), Just(0x0f), Just(0xe5), Just(0x10), Just(0xf8)];
    proptest::collection::vec((0..span, byte), 1..24)
}

fn apply(base: &[u8], m: &[(usize, u8)]) -> Vec<u8> {
    let mut img = base.to_vec();
    for &(at, b) in m {
        img[at] = b;
    }
    img
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_fat12_mutated_never_panics(m in mutations(64 * 1024)) {
        exercise(apply(fat12(), &m));
    }

    #[test]
    fn fuzz_fat16_mutated_never_panics(m in mutations(96 * 1024)) {
        exercise(apply(fat16(), &m));
    }

    /// Whole random boot sectors (most do not mount; some get far).
    #[test]
    fn fuzz_fat_random_boot_sector_never_panics(boot in proptest::collection::vec(any::<u8>(), 512)) {
        let mut img = fat12().to_vec();
        img[..512].copy_from_slice(&boot);
        img[510] = 0x55;
        img[511] = 0xaa;
        exercise(img);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(10000), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_cpio_arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let data: &'static [u8] = Box::leak(data.into_boxed_slice());
        let _ = cpio::read(data).count();
        let _ = cpio::load(data);
    }

    #[test]
    fn fuzz_cpio_mutated_never_panics(
        m in proptest::collection::vec((0..4096usize, any::<u8>()), 1..16),
        cut in 0..4096usize,
    ) {
        let base = sample_archive();
        let mut a = base.clone();
        for (at, b) in m {
            let at = at % a.len();
            a[at] = b;
        }
        a.truncate(cut.max(1).min(a.len()));
        let data: &'static [u8] = Box::leak(a.into_boxed_slice());
        let _ = cpio::read(data).count();
        if let Ok(fs) = cpio::load(data) {
            let v = Vfs::new(Arc::new(fs));
            let _ = v.read_dir("/");
            let _ = v.read("/etc/passwd");
            let _ = v.read_link("/link");
        }
    }
}

fn sample_archive() -> Vec<u8> {
    let mut a = cpio::build(&[
        ("etc", S_IFDIR | 0o755, b""),
        ("etc/passwd", S_IFREG | 0o644, b"root:x:0:0::/:/bin/sh\n"),
        ("link", S_IFLNK | 0o777, b"etc/passwd"),
        ("./a/../b", S_IFREG | 0o600, &[5u8; 700]),
    ]);
    // A second archive after NUL padding, as concatenated initrds are.
    a.extend_from_slice(&[0u8; 8]);
    a.extend(cpio::build(&[("late", S_IFREG | 0o644, b"late")]));
    a
}

/// Issue 11.8: a regular file named `TRAILER!!!` (which the host's rootfs
/// can hold) vanished: it was taken for the end of the archive. Only an
/// entry with that name and no file type is the trailer.
#[test]
fn cpio_file_named_trailer_is_kept() {
    let a = cpio::build(&[
        ("a", S_IFREG | 0o644, b"a"),
        ("TRAILER!!!", S_IFREG | 0o644, b"not the end"),
        ("sub", S_IFDIR | 0o755, b""),
        ("sub/TRAILER!!!", S_IFREG | 0o644, b"nor this"),
        ("z", S_IFREG | 0o644, b"z"),
    ]);
    let fs = cpio::load(Box::leak(a.into_boxed_slice())).unwrap();
    let v = Vfs::new(Arc::new(fs));
    assert_eq!(v.read("/TRAILER!!!").unwrap(), b"not the end");
    assert_eq!(v.read("/sub/TRAILER!!!").unwrap(), b"nor this");
    assert_eq!(v.read("/a").unwrap(), b"a");
    assert_eq!(v.read("/z").unwrap(), b"z");
}

/// A real trailer (no file type) that is not the last entry ends one
/// archive; what follows is read as the next one, not dropped.
#[test]
fn cpio_trailer_in_the_middle_starts_the_next_archive() {
    let mut a = cpio::build(&[("first", S_IFREG | 0o644, b"1")]);
    a.extend(cpio::build(&[("second", S_IFREG | 0o644, b"2")]));
    let fs = cpio::load(Box::leak(a.into_boxed_slice())).unwrap();
    let v = Vfs::new(Arc::new(fs));
    assert_eq!(v.read("/first").unwrap(), b"1");
    assert_eq!(v.read("/second").unwrap(), b"2");
}

/// A directory whose cluster chain loops back on itself (every slot used,
/// so no end marker stops the walk): listing it, looking a name up in it
/// and creating a file in it hung the guest; such a volume is now refused
/// at mount.
#[test]
fn fat_directory_cluster_loop_is_an_error() {
    let mem = Arc::new(Mem(spin::Mutex::new(vec![0; 1 << 20])));
    FatFs::format(&Disk::new(mem.clone()).unwrap(), &FormatOptions { label: None, fat_bits: Some(12) }).unwrap();
    let v = Vfs::new(Arc::new(Ramfs::new()));
    v.mount("/d", Arc::new(FatFs::mount(Disk::new(mem.clone()).unwrap(), clock).unwrap())).unwrap();
    v.create_dir("/d/LOOP").unwrap();
    // Short upper-case names: one 32-byte entry each, filling clusters.
    for i in 0..200 {
        v.write(&format!("/d/LOOP/F{i:03}"), b"").unwrap();
    }
    v.unmount("/d").unwrap();
    let mut img = mem.0.lock().clone();
    let u16_at = |img: &[u8], o: usize| u16::from_le_bytes([img[o], img[o + 1]]) as usize;
    let (bps, reserved, fats, per_fat) = (u16_at(&img, 11), u16_at(&img, 14), img[16] as usize, u16_at(&img, 22));
    let root = (reserved + fats * per_fat) * bps;
    let e = (0..u16_at(&img, 17)).map(|i| root + i * 32).find(|&o| &img[o..o + 11] == b"LOOP       ").unwrap();
    let fat = reserved * bps;
    let get = |img: &[u8], n: usize| {
        let v = u16_at(img, fat + n * 3 / 2);
        if n.is_multiple_of(2) { v & 0xfff } else { v >> 4 }
    };
    // Walk to the last full cluster and point it back at the first.
    let first = u16_at(&img, e + 26);
    let mut chain = vec![first];
    while get(&img, *chain.last().unwrap()) < 0xff8 {
        chain.push(get(&img, *chain.last().unwrap()));
    }
    assert!(chain.len() >= 3, "LOOP spans {} clusters", chain.len());
    let last_full = chain[chain.len() - 2];
    for copy in 0..fats {
        let at = fat + copy * per_fat * bps + last_full * 3 / 2;
        let old = u16_at(&img, at);
        let new = if last_full % 2 == 0 { (old & 0xf000) | first as u16 as usize } else { (old & 0xf) | (first << 4) };
        img[at..at + 2].copy_from_slice(&(new as u16).to_le_bytes());
    }
    let mem = Arc::new(Mem(spin::Mutex::new(img)));
    // Refused at mount (fatcheck.rs); were it mounted, every walk of the
    // directory would stop at 65,536 entries (fat.rs).
    let e = FatFs::mount(Disk::new(mem).unwrap(), clock).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(e.to_string().contains("in two chains, or twice in one"), "{e}");
}

/// Directory entries with hostile cluster numbers and sizes (free, reserved,
/// bad, end-of-chain, past the volume; sizes up to 4 GiB) on a file and on
/// a directory: everything done to them is an error at worst.
#[test]
fn fat_hostile_directory_entries_never_panic() {
    let base = fat12();
    let u16_at = |img: &[u8], o: usize| u16::from_le_bytes([img[o], img[o + 1]]) as usize;
    let (bps, reserved, fats, per_fat) = (u16_at(base, 11), u16_at(base, 14), base[16] as usize, u16_at(base, 22));
    let root = (reserved + fats * per_fat) * bps;
    let find = |name: &[u8; 11]| (0..u16_at(base, 17)).map(|i| root + i * 32).find(|&o| &base[o..o + 11] == name);
    let file = find(b"A       TXT").expect("A.TXT in the root directory");
    let dir = find(b"SUB        ").expect("SUB in the root directory");
    let clusters = [0u16, 1, 2, 3, 0xff0, 0xff7, 0xff8, 0xfff, 0x7ff, 0xffff];
    let sizes = [0u32, 1, 511, 4096, 0x7fff_ffff, u32::MAX];
    let mut n = 0;
    for entry in [file, dir] {
        for &c in &clusters {
            for &size in &sizes {
                for attr in [None, Some(0x10u8), Some(0x00), Some(0x0f)] {
                    let mut img = base.to_vec();
                    img[entry + 26..entry + 28].copy_from_slice(&c.to_le_bytes());
                    img[entry + 28..entry + 32].copy_from_slice(&size.to_le_bytes());
                    if let Some(a) = attr {
                        img[entry + 11] = a;
                    }
                    exercise(img);
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 480);
}

/// A subdirectory's ".." renamed ".A": a directory entry pointing at the
/// root from inside it, so a recursive walk would never end. The mount
/// check skipped every name starting with a dot and accepted it; it now
/// refuses it.
#[test]
fn fat_dot_named_entry_pointing_up_is_refused() {
    let mut img = fat12().to_vec();
    let u16_at = |img: &[u8], o: usize| u16::from_le_bytes([img[o], img[o + 1]]) as usize;
    let (bps, spc, reserved, fats, per_fat, roots) =
        (u16_at(&img, 11), img[13] as usize, u16_at(&img, 14), img[16] as usize, u16_at(&img, 22), u16_at(&img, 17));
    let root = (reserved + fats * per_fat) * bps;
    let sub = (0..roots).map(|i| root + i * 32).find(|&o| &img[o..o + 11] == b"SUB        ").unwrap();
    let data = root + roots * 32;
    let at = data + (u16_at(&img, sub + 26) - 2) * spc * bps;
    assert_eq!(&img[at + 32..at + 43], b"..         ");
    img[at + 33] = b'A';
    let e = FatFs::mount(Disk::new(Arc::new(Mem(spin::Mutex::new(img)))).unwrap(), clock).map(|_| ()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
}
