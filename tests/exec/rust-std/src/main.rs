//! What a Rust `std` program does first: threads and channels, files and
//! folders, arguments and environment, the monotonic clock. One line per
//! check, then `rust: ok` (exit 0) or `rust: FAIL` (exit 1).
//!
//! With the arguments `serve N` it then also serves N HTTP requests on
//! 0.0.0.0:8080 with `TcpListener`, each answered on its own thread.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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

    if args.get(1).map(String::as_str) == Some("serve") {
        let n: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
        match serve(n) {
            Ok(()) => check(true, "TcpListener serve", &mut failed),
            Err(e) => {
                println!("serve: {e}");
                check(false, "TcpListener serve", &mut failed)
            }
        }
    }

    println!("rust: {}", if failed == 0 { "ok" } else { "FAIL" });
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// Answers `n` HTTP requests, each on its own thread, then returns.
fn serve(n: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind("0.0.0.0:8080")?;
    println!("rust: serving on {}", listener.local_addr()?);
    let mut workers = Vec::new();
    for (i, conn) in listener.incoming().take(n).enumerate() {
        let conn = conn?;
        workers.push(std::thread::spawn(move || answer(conn, i)));
    }
    for w in workers {
        w.join().map_err(|_| std::io::Error::other("a worker panicked"))??;
    }
    println!("rust: served {n}");
    Ok(())
}

fn answer(mut conn: TcpStream, i: usize) -> std::io::Result<()> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let got = conn.read(&mut buf)?;
        if got == 0 {
            return Err(std::io::Error::other("the client closed before a whole request"));
        }
        req.extend_from_slice(&buf[..got]);
    }
    let line = String::from_utf8_lossy(&req).lines().next().unwrap_or("").to_string();
    let body = format!("hello from rust std, request {i}: {line}\n");
    write!(conn, "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    conn.flush()
}
