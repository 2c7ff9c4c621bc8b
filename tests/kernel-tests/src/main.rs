//! Kernel tests that only make sense inside a running unikernel: the
//! allocator, frames, page tables, the scheduler, wait queues and timers.
//! Prints one line per test and `kernel-tests: N passed, M failed`; exits
//! with M. Arguments select a deliberate crash instead (for boot tests).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicUsize, Ordering};
use unikit::prelude::*;
use unikit::sync::{Arc, Mutex, WaitQueue};
use unikit::thread;
use unikit::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use unikit_kernel::{mem, sched};

type TestResult = Result<(), String>;
/// A named test of the table below.
type Test = (&'static str, fn() -> TestResult);

macro_rules! check {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

/// Generous upper bound for timer lateness: boot tests run under TCG and
/// under emulated KVM, where a wake-up can be tens of milliseconds late.
const SLACK: Duration = Duration::from_millis(500);

fn alloc_vec_growth() -> TestResult {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..(1 << 17) {
        v.push(i);
    }
    check!(v.iter().sum::<u64>() == (1u64 << 17) * ((1 << 17) - 1) / 2, "wrong sum");
    Ok(())
}

fn alloc_alignment() -> TestResult {
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let pages: Vec<Box<Page>> = (0..8).map(|_| Box::new(Page([7; 4096]))).collect();
    for p in &pages {
        check!((&**p as *const Page as usize).is_multiple_of(4096), "box not 4 KiB aligned");
        check!(p.0.iter().all(|&b| b == 7), "page contents changed");
    }
    Ok(())
}

fn alloc_reuse_does_not_grow() -> TestResult {
    let churn = || {
        for _ in 0..50 {
            let v = vec![1u8; 256 * 1024];
            core::hint::black_box(&v);
        }
    };
    churn();
    let before = mem::stats().heap_bytes;
    churn();
    let after = mem::stats().heap_bytes;
    check!(after == before, "heap grew from {before} to {after} bytes while freeing everything");
    Ok(())
}

fn alloc_collections() -> TestResult {
    let mut m = unikit::collections::BTreeMap::new();
    for i in 0..5000u32 {
        m.insert(i.wrapping_mul(2654435761), i);
    }
    check!(m.len() == 5000, "lost keys");
    let s: String = (0..1000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    check!(s.len() == 1000 && s.starts_with("abc"), "string building");
    Ok(())
}

fn frames_alloc_free() -> TestResult {
    let free0 = mem::stats().free_bytes;
    let a = mem::alloc_frames(4, 1).ok_or("no frames")?;
    let b = mem::alloc_frames(512, 512).ok_or("no aligned frames")?;
    check!(a % 4096 == 0 && b % (2 << 20) == 0, "misaligned frames {a:#x} {b:#x}");
    check!(b >= a + 4 * 4096 || b + 512 * 4096 <= a, "overlapping frames");
    check!(mem::stats().free_bytes == free0 - 516 * 4096, "free count off");
    mem::free_frames(a, 4);
    mem::free_frames(b, 512);
    check!(mem::stats().free_bytes == free0, "frames not returned");
    Ok(())
}

fn page_tables() -> TestResult {
    if unikit::platform() == "linuxu" {
        return Ok(()); // a process has no page tables of its own
    }
    let heap = Box::new(42u64);
    let va = &*heap as *const u64 as u64;
    check!(mem::virt_to_phys(va) == Some(va), "heap not identity mapped");
    check!(mem::virt_to_phys(0).is_none(), "page 0 is mapped (null would not fault)");
    if unikit::platform() == "kvm" {
        check!(mem::virt_to_phys(0xfee0_0000).is_some(), "local APIC not mapped"); // Solo5 hvt has none
    }
    check!(mem::virt_to_phys(64 << 30).is_none(), "memory beyond RAM is mapped");
    let code = page_tables as *const () as u64;
    check!(mem::virt_to_phys(code) == Some(code), "kernel text not identity mapped");
    Ok(())
}

fn sched_spawn_join_many() -> TestResult {
    let counter = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..16)
        .map(|i| {
            let c = counter.clone();
            thread::spawn(move || {
                c.fetch_add(1, Ordering::SeqCst);
                i * i
            })
        })
        .collect();
    let sum: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    check!(counter.load(Ordering::SeqCst) == 16, "not every thread ran");
    check!(sum == (0..16).map(|i| i * i).sum::<usize>(), "wrong join results");
    check!(sched::thread_count() == 1, "{} threads left after joins", sched::thread_count());
    Ok(())
}

fn sched_yield_interleaves() -> TestResult {
    let log = Arc::new(Mutex::new(Vec::new()));
    let hs: Vec<_> = ['a', 'b']
        .into_iter()
        .map(|c| {
            let log = log.clone();
            thread::spawn(move || {
                for _ in 0..3 {
                    log.lock().push(c);
                    thread::yield_now();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let s: String = log.lock().iter().collect();
    check!(s == "ababab", "yield order was {s}");
    Ok(())
}

fn sched_detached_threads_are_reaped() -> TestResult {
    for _ in 0..20 {
        drop(thread::spawn(|| thread::sleep(Duration::from_millis(1))));
    }
    // Each sleeps 1 ms; on a loaded host (TCG, the Xen test bed) they may
    // take far longer to run at all, so wait for the reaping, up to 5 s,
    // instead of betting on a fixed 20 ms.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sched::thread_count() != 1 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    check!(sched::thread_count() == 1, "{} threads left after 5 s", sched::thread_count());
    Ok(())
}

fn sched_join_errors() -> TestResult {
    check!(sched::join(sched::current()) == Err(sched::Error::JoinSelf), "joining self must fail");
    check!(sched::join(999_999) == Err(sched::Error::NoSuchThread), "joining nothing must fail");
    Ok(())
}

fn waitqueue_producer_consumer() -> TestResult {
    struct Chan {
        items: Mutex<Vec<u32>>,
        wq: WaitQueue,
    }
    let ch = Arc::new(Chan { items: Mutex::new(Vec::new()), wq: WaitQueue::new() });
    let c2 = ch.clone();
    let consumer = thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < 5 {
            c2.wq.wait_until(|| c2.items.try_lock().map(|v| !v.is_empty()).unwrap_or(false));
            got.append(&mut c2.items.lock());
        }
        got
    });
    for i in 0..5 {
        thread::sleep(Duration::from_millis(2));
        ch.items.lock().push(i);
        ch.wq.notify_one();
    }
    let got = consumer.join().unwrap();
    check!(got == [0, 1, 2, 3, 4], "consumer got {got:?}");
    Ok(())
}

fn waitqueue_timeout() -> TestResult {
    let wq = WaitQueue::new();
    let t0 = Instant::now();
    let deadline = unikit_kernel::time::monotonic_ns() + 10_000_000;
    let ok = wq.wait_until_deadline(|| false, Some(deadline));
    let waited = t0.elapsed();
    check!(!ok, "condition reported true");
    check!(waited >= Duration::from_millis(10) && waited < Duration::from_millis(10) + SLACK, "waited {waited:?}");
    Ok(())
}

fn timer_sleep_duration() -> TestResult {
    for ms in [1u64, 5, 20] {
        let t0 = Instant::now();
        thread::sleep(Duration::from_millis(ms));
        let d = t0.elapsed();
        check!(d >= Duration::from_millis(ms), "sleep({ms} ms) returned after {d:?}");
        check!(d < Duration::from_millis(ms) + SLACK, "sleep({ms} ms) took {d:?}");
    }
    Ok(())
}

fn timer_wake_order() -> TestResult {
    struct Gate {
        start: Mutex<Option<Instant>>,
        wq: WaitQueue,
    }
    // The threads park at a gate, then sleep to deadlines counted from one
    // start 20 ms ahead: a loaded host may stall the vCPU while they start,
    // which must not decide the order being tested (a deadline already
    // passed when its thread goes to sleep is no test of wake order).
    let gate = Arc::new(Gate { start: Mutex::new(None), wq: WaitQueue::new() });
    let order = Arc::new(Mutex::new(Vec::new()));
    let hs: Vec<_> = [40u64, 5, 25, 15]
        .into_iter()
        .map(|ms| {
            let (g, o) = (gate.clone(), order.clone());
            thread::spawn(move || {
                g.wq.wait_until(|| g.start.lock().is_some());
                let start = g.start.lock().unwrap();
                thread::sleep((start + Duration::from_millis(ms)).duration_since(Instant::now()));
                o.lock().push(ms);
            })
        })
        .collect();
    thread::yield_now(); // let them all reach the gate
    *gate.start.lock() = Some(Instant::now() + Duration::from_millis(20));
    gate.wq.notify_all();
    for h in hs {
        h.join().unwrap();
    }
    let got = order.lock().clone();
    check!(got == [5, 15, 25, 40], "woke in order {got:?}");
    Ok(())
}

fn clock_monotonic() -> TestResult {
    let mut last = Instant::now();
    for _ in 0..10_000 {
        let now = Instant::now();
        check!(now >= last, "monotonic clock went backwards");
        last = now;
    }
    check!(last.since_boot() > unikit::time::boot_time(), "clock behind boot time");
    Ok(())
}

fn clock_wall() -> TestResult {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| "before 1970")?.as_secs();
    check!(secs > 1_704_067_200, "wall clock says {secs} s since the epoch (before 2024)");
    check!(secs < 4_102_444_800, "wall clock says {secs} s since the epoch (after 2100)");
    Ok(())
}

fn env_from_command_line() -> TestResult {
    // Set by unikit.toml's `env` table, passed on the kernel command line.
    let v = unikit::env::var("KT_GREETING");
    check!(v.as_deref() == Some("hello world"), "KT_GREETING is {v:?}");
    check!(unikit::env::var("KT_MISSING").is_none(), "unset variable found");
    Ok(())
}

const TESTS: &[Test] = &[
    ("env::from_command_line", env_from_command_line),
    ("alloc::vec_growth", alloc_vec_growth),
    ("alloc::alignment", alloc_alignment),
    ("alloc::reuse_does_not_grow", alloc_reuse_does_not_grow),
    ("alloc::collections", alloc_collections),
    ("mem::frames_alloc_free", frames_alloc_free),
    ("mem::page_tables", page_tables),
    ("sched::spawn_join_many", sched_spawn_join_many),
    ("sched::yield_interleaves", sched_yield_interleaves),
    ("sched::detached_threads_are_reaped", sched_detached_threads_are_reaped),
    ("sched::join_errors", sched_join_errors),
    ("sync::waitqueue_producer_consumer", waitqueue_producer_consumer),
    ("sync::waitqueue_timeout", waitqueue_timeout),
    ("time::sleep_duration", timer_sleep_duration),
    ("time::wake_order", timer_wake_order),
    ("time::monotonic", clock_monotonic),
    ("time::wall_clock", clock_wall),
];

#[allow(unsafe_code)]
fn crash(mode: &str) -> i32 {
    match mode {
        "panic" => panic!("deliberate panic from kernel-tests"),
        // SAFETY: not safe at all: this is the point of the test.
        "fault" => unsafe { core::ptr::write_volatile(0x10 as *mut u64, 1) },
        // SAFETY: as above.
        "ud2" => unsafe { core::arch::asm!("ud2") },
        "stack-overflow" => {
            #[allow(unconditional_recursion)]
            fn recurse(depth: u64) -> u64 {
                let buf = core::hint::black_box([depth; 32]);
                buf[0] + recurse(depth + 1) + core::hint::black_box(1)
            }
            let h =
                thread::Builder::new().name("deep".into()).stack_size(16 * 1024).spawn(|| recurse(0)).expect("spawn");
            let _ = h.join();
        }
        // Raw block device, across boots: `disk-write SEED [AT]` then `disk-read SEED [AT]`
        // (unaligned offset and length: read-modify-write inside the disk layer).
        // AT is a byte offset (default 4103), or `end`: the pattern ends 7 bytes before the disk's end.
        "disk-write" | "disk-read" => {
            let seed: u8 = unikit::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(1);
            let pattern: Vec<u8> = (0..70_000u32).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
            let disk = match unikit::fs::Disk::open(0) {
                Ok(d) => d,
                Err(e) => {
                    println!("kernel-tests: no disk: {e}");
                    return 4;
                }
            };
            let at = match unikit::env::args().nth(3).as_deref() {
                Some("end") => disk.len().saturating_sub(pattern.len() as u64 + 7),
                Some(n) => n.parse().unwrap_or(4096 + 7),
                None => 4096 + 7,
            };
            if mode == "disk-write" {
                disk.write_at(at, &pattern).and_then(|_| disk.flush()).expect("disk write");
                println!("kernel-tests: wrote {} bytes at {at}", pattern.len());
            } else {
                let mut back = vec![0u8; pattern.len()];
                disk.read_at(at, &mut back).expect("disk read");
                let ok = back == pattern;
                println!("kernel-tests: read back {} bytes: {}", back.len(), if ok { "match" } else { "MISMATCH" });
                return if ok { 0 } else { 5 };
            }
            return 0;
        }
        // Sequential throughput of the first disk: `disk-bench MIB` writes
        // MIB MiB from offset 0 in 1 MiB requests, syncs, then reads them back.
        "disk-bench" => {
            let mib: usize = unikit::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(16);
            let disk = match unikit::fs::Disk::open(0) {
                Ok(d) => d,
                Err(e) => {
                    println!("kernel-tests: no disk: {e}");
                    return 4;
                }
            };
            let mut buf: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
            let rate = |t: Duration| mib as f64 / t.as_secs_f64().max(1e-9);
            let t0 = Instant::now();
            for i in 0..mib {
                disk.write_at((i << 20) as u64, &buf).expect("disk write");
            }
            disk.flush().expect("disk flush");
            let w = t0.elapsed();
            let t0 = Instant::now();
            for i in 0..mib {
                disk.read_at((i << 20) as u64, &mut buf).expect("disk read");
            }
            let r = t0.elapsed();
            let ok = buf.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8);
            println!(
                "kernel-tests: disk-bench {mib} MiB: write {:.1} MiB/s, read {:.1} MiB/s, {}",
                rate(w),
                rate(r),
                if ok { "data intact" } else { "DATA MISMATCH" }
            );
            return if ok { 0 } else { 5 };
        }
        "deadlock" => {
            let wq = Arc::new(WaitQueue::new());
            let w = wq.clone();
            let h = thread::spawn(move || w.wait_until(|| false));
            let _ = h.join();
        }
        other => {
            println!("kernel-tests: unknown mode '{other}'");
            return 2;
        }
    }
    println!("kernel-tests: crash mode '{mode}' did not crash");
    3
}

#[unikit::main]
fn main() -> i32 {
    if let Some(mode) = unikit::env::args().nth(1) {
        return crash(&mode);
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        match test() {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
    }
    println!("kernel-tests: {passed} passed, {failed} failed");
    failed
}
