//! Pipes and eventfds: in-kernel byte queues between the program's threads.
use crate::errno::*;
use crate::fd::{FileLike, POLLERR, POLLHUP, POLLIN, POLLOUT, S_IFIFO, Stat};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use unikit_kernel::sync::WaitQueue;

/// Bytes a pipe holds before writers wait (Linux's default).
const CAPACITY: usize = 64 * 1024;

/// Woken on every change of any pipe, eventfd or socket: `poll` and the
/// blocked readers and writers re-check their condition.
pub static IO_EVENTS: WaitQueue = WaitQueue::new();

struct Shared {
    buf: Mutex<VecDeque<u8>>,
    readers: AtomicBool,
    writers: AtomicBool,
}

/// One end of a pipe.
pub struct End {
    shared: Arc<Shared>,
    write: bool,
    nonblock: AtomicBool,
}

/// A new pipe: (read end, write end).
pub fn pair() -> (Arc<dyn FileLike>, Arc<dyn FileLike>) {
    let shared = Arc::new(Shared {
        buf: Mutex::new(VecDeque::new()),
        readers: AtomicBool::new(true),
        writers: AtomicBool::new(true),
    });
    (
        Arc::new(End { shared: shared.clone(), write: false, nonblock: AtomicBool::new(false) }),
        Arc::new(End { shared, write: true, nonblock: AtomicBool::new(false) }),
    )
}

impl Drop for End {
    fn drop(&mut self) {
        if self.write {
            self.shared.writers.store(false, Ordering::Relaxed);
        } else {
            self.shared.readers.store(false, Ordering::Relaxed);
        }
        IO_EVENTS.notify_all();
    }
}

impl FileLike for End {
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        if self.write {
            return Err(EBADF);
        }
        loop {
            {
                let mut q = self.shared.buf.lock();
                if !q.is_empty() || buf.is_empty() {
                    let n = q.len().min(buf.len());
                    for (d, s) in buf.iter_mut().zip(q.drain(..n)) {
                        *d = s;
                    }
                    drop(q);
                    IO_EVENTS.notify_all();
                    return Ok(n);
                }
            }
            if !self.shared.writers.load(Ordering::Relaxed) {
                return Ok(0);
            }
            if self.nonblock.load(Ordering::Relaxed) {
                return Err(EAGAIN);
            }
            IO_EVENTS.wait_until(|| !self.shared.buf.lock().is_empty() || !self.shared.writers.load(Ordering::Relaxed));
        }
    }

    fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        if !self.write {
            return Err(EBADF);
        }
        let mut done = 0;
        while done < buf.len() {
            if !self.shared.readers.load(Ordering::Relaxed) {
                return if done > 0 { Ok(done) } else { Err(EPIPE) };
            }
            {
                let mut q = self.shared.buf.lock();
                let room = CAPACITY - q.len();
                if room > 0 {
                    let n = room.min(buf.len() - done);
                    q.extend(&buf[done..done + n]);
                    done += n;
                    drop(q);
                    IO_EVENTS.notify_all();
                    continue;
                }
            }
            if self.nonblock.load(Ordering::Relaxed) {
                return if done > 0 { Ok(done) } else { Err(EAGAIN) };
            }
            IO_EVENTS
                .wait_until(|| self.shared.buf.lock().len() < CAPACITY || !self.shared.readers.load(Ordering::Relaxed));
        }
        Ok(done)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { mode: S_IFIFO | 0o600, ino: Arc::as_ptr(&self.shared) as u64, ..Stat::default() })
    }

    fn poll(&self, events: u16) -> u16 {
        let q = self.shared.buf.lock();
        let mut r = 0;
        if self.write {
            if !self.shared.readers.load(Ordering::Relaxed) {
                r |= POLLERR;
            } else if q.len() < CAPACITY {
                r |= POLLOUT;
            }
        } else {
            if !q.is_empty() {
                r |= POLLIN;
            }
            if !self.shared.writers.load(Ordering::Relaxed) {
                r |= POLLHUP;
            }
        }
        r & (events | POLLERR | POLLHUP)
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblock.store(on, Ordering::Relaxed);
    }
}

/// One end of a `socketpair`: reads one pipe, writes the other.
pub struct PairEnd {
    rx: End,
    tx: End,
}

/// Two connected stream ends.
pub fn socket_pair(nonblocking: bool) -> (Arc<dyn FileLike>, Arc<dyn FileLike>) {
    let new = || {
        Arc::new(Shared {
            buf: Mutex::new(VecDeque::new()),
            readers: AtomicBool::new(true),
            writers: AtomicBool::new(true),
        })
    };
    let (ab, ba) = (new(), new());
    let end = |s: &Arc<Shared>, write| End { shared: s.clone(), write, nonblock: AtomicBool::new(nonblocking) };
    (
        Arc::new(PairEnd { rx: end(&ba, false), tx: end(&ab, true) }),
        Arc::new(PairEnd { rx: end(&ab, false), tx: end(&ba, true) }),
    )
}

impl FileLike for PairEnd {
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        self.rx.read(buf)
    }
    fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        self.tx.write(buf)
    }
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { mode: crate::fd::S_IFSOCK | 0o777, ino: Arc::as_ptr(&self.rx.shared) as u64, ..Stat::default() })
    }
    fn poll(&self, events: u16) -> u16 {
        (self.rx.poll(events & !POLLOUT) | self.tx.poll(events & !POLLIN)) & (events | POLLERR | POLLHUP)
    }
    fn set_nonblocking(&self, on: bool) {
        self.rx.set_nonblocking(on);
        self.tx.set_nonblocking(on);
    }
    fn is_socket(&self) -> bool {
        true
    }
}

/// An eventfd: a 64-bit counter.
pub struct EventFd {
    count: Mutex<u64>,
    nonblock: AtomicBool,
}

/// A new eventfd starting at `init`.
pub fn eventfd(init: u64, nonblock: bool) -> Arc<dyn FileLike> {
    Arc::new(EventFd { count: Mutex::new(init), nonblock: AtomicBool::new(nonblock) })
}

impl FileLike for EventFd {
    fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        if buf.len() < 8 {
            return Err(EINVAL);
        }
        loop {
            {
                let mut c = self.count.lock();
                if *c > 0 {
                    buf[..8].copy_from_slice(&c.to_le_bytes());
                    *c = 0;
                    drop(c);
                    IO_EVENTS.notify_all();
                    return Ok(8);
                }
            }
            if self.nonblock.load(Ordering::Relaxed) {
                return Err(EAGAIN);
            }
            IO_EVENTS.wait_until(|| *self.count.lock() > 0);
        }
    }

    fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        let v = u64::from_le_bytes(buf.get(..8).ok_or(EINVAL)?.try_into().map_err(|_| EINVAL)?);
        if v == u64::MAX {
            return Err(EINVAL);
        }
        let mut c = self.count.lock();
        *c = c.checked_add(v).filter(|&n| n < u64::MAX).ok_or(EAGAIN)?;
        drop(c);
        IO_EVENTS.notify_all();
        Ok(8)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { mode: 0o600, ..Stat::default() })
    }

    fn poll(&self, events: u16) -> u16 {
        (if *self.count.lock() > 0 { POLLIN } else { 0 } | POLLOUT) & events
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblock.store(on, Ordering::Relaxed);
    }
}
