//! Counts its boots in `/disk/boots.txt` on a FAT file system on the first
//! block device: the data survives reboots. `-- --format` formats the disk
//! first (everything on it is lost). `-- --loop N` then adds 1 to the count
//! N more times, syncing each and printing `counter: synced K` once K is
//! durable (the crash-kill test kills the VMM in the middle of this).
#![no_std]
#![no_main]

use unikit::fs::{self, FormatOptions};
use unikit::prelude::*;

const FILE: &str = "/disk/boots.txt";
/// The file holds two records, one per 512-byte sector, written in turn:
/// while one is being overwritten the other still holds the count before
/// it, so a crash in the middle of a write cannot lose a synced count, and
/// a checksum tells a torn record from a whole one. The file keeps its
/// size and clusters after the first write, so updating it only rewrites
/// sectors in place (no cluster allocation a crash could interrupt).
const RECORD: usize = 512;

/// FNV-1a, enough to tell a torn or stale sector from a record.
fn check(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

fn parse_record(r: &[u8]) -> Option<u64> {
    let line = core::str::from_utf8(r).ok()?.split('\n').next()?;
    let (n, sum) = line.trim().split_once(' ')?;
    (u32::from_str_radix(sum, 16).ok()? == check(n)).then_some(n.parse().ok()?)
}

fn load() -> Result<u64, String> {
    let data = match fs::read(FILE) {
        Ok(d) => d,
        Err(e) if e.kind() == fs::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("reading boots.txt: {e}")),
    };
    if data.len() < RECORD {
        // The one-line format of earlier versions (or a file never written).
        let s = String::from_utf8_lossy(&data);
        return if s.trim().is_empty() {
            Ok(0)
        } else {
            s.trim().parse().map_err(|_| format!("boots.txt holds {s:?}"))
        };
    }
    data.chunks(RECORD).filter_map(parse_record).max().ok_or_else(|| "boots.txt holds no intact record".into())
}

/// Replaces the count; durable when it returns.
fn store(count: u64) -> Result<(), String> {
    let n = format!("{count}");
    let mut rec = format!("{n} {:08x}", check(&n)).into_bytes();
    rec.resize(RECORD - 1, b' ');
    rec.push(b'\n');
    let mut f =
        fs::OpenOptions::new().write(true).create(true).open(FILE).map_err(|e| format!("opening boots.txt: {e}"))?;
    f.seek(fs::SeekFrom::Start((count % 2) * RECORD as u64)).map_err(|e| format!("boots.txt: {e}"))?;
    f.write_all(&rec).map_err(|e| format!("writing boots.txt: {e}"))?;
    f.sync_all().map_err(|e| format!("syncing boots.txt: {e}"))
}

fn run(args: &[String]) -> Result<u64, String> {
    if fs::block_device_count() == 0 {
        return Err("no block device: attach one with --disk FILE".into());
    }
    if args.iter().any(|a| a == "--format") {
        fs::format_disk(0, &FormatOptions::default()).map_err(|e| format!("formatting: {e}"))?;
    }
    let loops = match args.iter().position(|a| a == "--loop") {
        Some(i) => args.get(i + 1).and_then(|n| n.parse::<u64>().ok()).ok_or("--loop needs a count")?,
        None => 0,
    };
    fs::mount_disk(0, "/disk").map_err(|e| format!("mounting: {e} (format it once with -- --format)"))?;
    let mut count = load()? + 1;
    store(count)?;
    for _ in 0..loops {
        println!("counter: synced {count}");
        count += 1;
        store(count)?;
    }
    fs::unmount("/disk").map_err(|e| format!("unmount: {e}"))?;
    Ok(count)
}

#[unikit::main]
fn main() -> i32 {
    let args: Vec<String> = unikit::env::args().collect();
    match run(&args) {
        Ok(n) => {
            println!("counter: synced {n}");
            println!("counter: boot {n}");
            0
        }
        Err(e) => {
            println!("counter: {e}");
            1
        }
    }
}
