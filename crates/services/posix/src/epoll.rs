//! `epoll`: an interest list polled on every wait. Edge-triggered entries
//! report a condition when it newly holds: it was not ready at the last
//! report, or the program has since been told EAGAIN on that file (it
//! drained it; readiness that came back in between is a new edge, even if
//! no wait saw the file unready). Edge-triggered users (Go's netpoller)
//! drain until EAGAIN and rely on exactly that.
use crate::errno::*;
use crate::fd::{self, FileLike, Stat};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use spin::Mutex;

const EPOLLET: u32 = 1 << 31;
const EPOLLONESHOT: u32 = 1 << 30;
const EPOLL_CTL_ADD: u64 = 1;
const EPOLL_CTL_DEL: u64 = 2;
const EPOLL_CTL_MOD: u64 = 3;
/// Conditions always reported, asked for or not.
const ALWAYS: u16 = 0x8 | 0x10; // EPOLLERR | EPOLLHUP

struct Entry {
    events: u32,
    data: u64,
    /// Conditions seen at the last report (edge-triggered entries).
    last: u16,
    /// The file's EAGAIN count at the last report.
    drained: u64,
    disabled: bool,
}

/// An epoll instance.
pub struct Epoll {
    interest: Mutex<BTreeMap<i64, Entry>>,
}

impl Epoll {
    /// An empty instance.
    pub fn new() -> Self {
        Self { interest: Mutex::new(BTreeMap::new()) }
    }

    /// `epoll_ctl`.
    pub fn ctl(&self, op: u64, fd: i64, events: u32, data: u64) -> Result<(), Errno> {
        let file = fd::get(fd)?;
        if file.as_epoll().is_some() {
            return Err(EINVAL); // nesting is not offered
        }
        let mut m = self.interest.lock();
        match op {
            EPOLL_CTL_ADD => {
                if m.contains_key(&fd) {
                    return Err(EEXIST);
                }
                m.insert(fd, Entry { events, data, last: 0, drained: 0, disabled: false });
            }
            EPOLL_CTL_MOD => {
                let e = m.get_mut(&fd).ok_or(ENOENT)?;
                *e = Entry { events, data, last: 0, drained: 0, disabled: false };
            }
            EPOLL_CTL_DEL => {
                m.remove(&fd).ok_or(ENOENT)?;
            }
            _ => return Err(EINVAL),
        }
        Ok(())
    }

    /// The ready entries now, at most `max`, as (events, data).
    pub fn ready(&self, max: usize) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut m = self.interest.lock();
        let mut closed = Vec::new();
        for (&fd, e) in m.iter_mut() {
            if out.len() >= max {
                break;
            }
            if e.disabled {
                continue;
            }
            let Ok(file) = fd::get(fd) else {
                closed.push(fd); // closed without EPOLL_CTL_DEL: Linux forgets it too
                continue;
            };
            let want = (e.events & 0xffff) as u16 | ALWAYS;
            let now = file.poll(want);
            let drained = drained_count(&file);
            if drained != e.drained {
                e.last = 0; // told EAGAIN since: whatever is ready now is news
                e.drained = drained;
            }
            let report = if e.events & EPOLLET != 0 { now & !e.last } else { now };
            e.last = now;
            if report != 0 {
                out.push((report as u32, e.data));
                if e.events & EPOLLONESHOT != 0 {
                    e.disabled = true;
                }
            }
        }
        for fd in closed {
            m.remove(&fd);
        }
        out
    }
}

/// Times each open file has answered EAGAIN, by its address.
static DRAINED: Mutex<BTreeMap<usize, u64>> = Mutex::new(BTreeMap::new());

fn key(file: &alloc::sync::Arc<dyn FileLike>) -> usize {
    alloc::sync::Arc::as_ptr(file) as *const () as usize
}

fn drained_count(file: &alloc::sync::Arc<dyn FileLike>) -> u64 {
    DRAINED.lock().get(&key(file)).copied().unwrap_or(0)
}

/// The program was told EAGAIN on `file`: its next readiness is an edge.
pub fn note_would_block(file: &alloc::sync::Arc<dyn FileLike>) {
    *DRAINED.lock().entry(key(file)).or_insert(0) += 1;
}

/// Forgets a file that is closed for good.
pub fn forget(file: &alloc::sync::Arc<dyn FileLike>) {
    DRAINED.lock().remove(&key(file));
}

impl Default for Epoll {
    fn default() -> Self {
        Self::new()
    }
}

impl FileLike for Epoll {
    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { mode: 0o600, ..Stat::default() })
    }
    fn poll(&self, events: u16) -> u16 {
        // Readable when something inside is ready (without consuming edges).
        let m = self.interest.lock();
        let any = m.iter().any(|(&fd, e)| {
            !e.disabled
                && fd::get(fd).is_ok_and(|f| {
                    f.poll((e.events & 0xffff) as u16 | ALWAYS) & !if e.events & EPOLLET != 0 { e.last } else { 0 } != 0
                })
        });
        if any { events & crate::fd::POLLIN } else { 0 }
    }
    fn as_epoll(&self) -> Option<&Epoll> {
        Some(self)
    }
}
