//! Threads, sleep and clocks: workers sleep for different times and report
//! back through a shared, mutex-protected log; main joins them and checks
//! that they woke in deadline order.
#![no_std]
#![no_main]

use unikit::prelude::*;
use unikit::sync::{Arc, Mutex};
use unikit::thread;
use unikit::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[unikit::main]
fn main() -> i32 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    println!(
        "threads: wall clock {since_epoch} s since the epoch; booted in {} us",
        unikit::time::boot_time().as_micros()
    );

    let start = Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = [30u64, 10, 20]
        .into_iter()
        .enumerate()
        .map(|(i, ms)| {
            let log = log.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(ms));
                let woke = start.elapsed();
                log.lock().push(i);
                println!("  worker {i}: slept {ms} ms, woke after {} us", woke.as_micros());
                ms * 2
            })
        })
        .collect();

    let results: Vec<u64> = handles.into_iter().map(|h| h.join().expect("join")).collect();
    let order = log.lock().clone();
    let total = start.elapsed();
    println!("threads: results {results:?}, wake order {order:?}, total {} ms", total.as_millis());
    if order != [1, 2, 0] || results != [60, 20, 40] || total < Duration::from_millis(30) {
        println!("threads: FAILED");
        return 1;
    }
    println!("threads: ok");
    0
}
