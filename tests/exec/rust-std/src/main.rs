//! What a Rust `std` program does first: threads and channels, files and
//! folders, arguments and environment, the monotonic clock. One line per
//! check, then `rust: ok` (exit 0) or `rust: FAIL` (exit 1).
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn check(ok: bool, what: &str, failed: &mut u32) {
    if ok {
        println!("{what} ok");
    } else {
        println!("{what} FAIL");
        *failed += 1;
    }
}

fn main() {
    let mut failed = 0;

    // Four threads, each sending its sum down a channel.
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..4u64)
        .map(|i| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let sum: u64 = (0..10_000).map(|n| n * (i + 1)).sum();
                tx.send((i, sum)).unwrap();
                i
            })
        })
        .collect();
    drop(tx);
    let mut sums: Vec<(u64, u64)> = rx.iter().collect();
    sums.sort();
    let joined: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap_or(99)).collect();
    let want: Vec<(u64, u64)> = (0..4).map(|i| (i, 49_995_000 * (i + 1))).collect();
    check(sums == want && joined == [0, 1, 2, 3], "threads and channels", &mut failed);

    // Files and folders.
    let dir = std::env::temp_dir().join(format!("rust-std-{}", std::process::id()));
    let fs_ok = (|| -> std::io::Result<bool> {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("a.txt"), b"alpha")?;
        std::fs::write(dir.join("b.txt"), b"beta")?;
        let a = std::fs::read_to_string(dir.join("a.txt"))?;
        let mut names: Vec<String> = std::fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.sort();
        std::fs::remove_dir_all(&dir)?;
        Ok(a == "alpha" && names == ["a.txt", "b.txt"] && !dir.exists())
    })();
    match fs_ok {
        Ok(ok) => check(ok, "fs write/read/read_dir", &mut failed),
        Err(e) => {
            println!("fs: {e}");
            check(false, "fs write/read/read_dir", &mut failed)
        }
    }

    // Arguments and environment.
    let args: Vec<String> = std::env::args().collect();
    println!("args={args:?}");
    let greeting = std::env::var("GREETING");
    println!("GREETING={greeting:?}");
    check(!args.is_empty() && args.iter().skip(1).all(|a| !a.is_empty()), "env::args", &mut failed);
    check(greeting.is_ok(), "env::var", &mut failed);

    // The monotonic clock across a sleep.
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    let slept = t0.elapsed();
    check(slept >= Duration::from_millis(20), "Instant and sleep", &mut failed);

    println!("rust: {}", if failed == 0 { "ok" } else { "FAIL" });
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
