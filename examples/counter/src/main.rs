//! Counts its boots in `/disk/boots.txt` on a FAT file system on the first
//! block device: the data survives reboots. `-- --format` formats the disk
//! first (everything on it is lost).
#![no_std]
#![no_main]

use unikit::fs::{self, FormatOptions};
use unikit::prelude::*;

fn run() -> Result<u64, String> {
    if fs::block_device_count() == 0 {
        return Err("no block device: attach one with --disk FILE".into());
    }
    if unikit::env::args().any(|a| a == "--format") {
        fs::format_disk(0, &FormatOptions::default()).map_err(|e| format!("formatting: {e}"))?;
    }
    fs::mount_disk(0, "/disk").map_err(|e| format!("mounting: {e} (format it once with -- --format)"))?;
    let count = match fs::read_to_string("/disk/boots.txt") {
        Ok(s) => s.trim().parse::<u64>().map_err(|_| format!("boots.txt holds {s:?}"))?,
        Err(e) if e.kind() == fs::ErrorKind::NotFound => 0,
        Err(e) => return Err(format!("reading boots.txt: {e}")),
    } + 1;
    fs::write("/disk/boots.txt", format!("{count}\n")).map_err(|e| format!("writing boots.txt: {e}"))?;
    fs::unmount("/disk").map_err(|e| format!("unmount: {e}"))?;
    Ok(count)
}

#[unikit::main]
fn main() -> i32 {
    match run() {
        Ok(n) => {
            println!("counter: boot {n}");
            0
        }
        Err(e) => {
            println!("counter: {e}");
            1
        }
    }
}
