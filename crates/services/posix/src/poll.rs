//! `poll` and `select`: readiness of several descriptors, waiting on the
//! I/O event queue until one is ready or the deadline passes.
use crate::errno::*;
use crate::fd::{self, POLLIN, POLLOUT};
use crate::pipe::IO_EVENTS;
use crate::vm;
use alloc::vec::Vec;
use unikit_kernel::time::monotonic_ns;

const POLLNVAL: u16 = 0x20;

/// A deadline from a `struct timespec` timeout (null: none).
pub fn deadline_from_timespec(ts: u64) -> Result<Option<u64>, Errno> {
    if ts == 0 {
        return Ok(None);
    }
    Ok(Some(monotonic_ns().saturating_add(vm::read_timespec(ts)?)))
}

/// Waits until `ready()` finds something or `deadline` passes. What the
/// check inside the wait found is what is returned: `ready` may consume
/// what it reports (edge-triggered epoll entries).
pub fn wait<T>(
    deadline: Option<u64>,
    mut ready: impl FnMut() -> Result<Option<T>, Errno>,
    none: T,
) -> Result<T, Errno> {
    let mut found: Option<Result<T, Errno>> = None;
    loop {
        match ready() {
            Ok(Some(r)) => return Ok(r),
            Err(e) => return Err(e),
            Ok(None) => {}
        }
        if deadline.is_some_and(|d| monotonic_ns() >= d) {
            return Ok(none);
        }
        IO_EVENTS.wait_until_deadline(
            || {
                if found.is_none() {
                    found = match ready() {
                        Ok(Some(r)) => Some(Ok(r)),
                        Err(e) => Some(Err(e)),
                        Ok(None) => None,
                    };
                }
                found.is_some()
            },
            deadline,
        );
        if let Some(r) = found.take() {
            return r;
        }
    }
}

pub fn poll(fds: u64, nfds: u64, deadline: Option<u64>) -> Result<u64, Errno> {
    if nfds > fd::MAX_FDS as u64 {
        return Err(EINVAL);
    }
    let raw = vm::read_vec(fds, nfds as usize * 8)?;
    let entries: Vec<(i32, u16)> = raw
        .chunks_exact(8)
        .map(|c| (i32::from_le_bytes(c[..4].try_into().unwrap()), u16::from_le_bytes([c[4], c[5]])))
        .collect();
    let scan = || -> Vec<u16> {
        entries
            .iter()
            .map(|&(f, ev)| {
                if f < 0 {
                    0
                } else {
                    match fd::get(f as i64) {
                        Ok(file) => file.poll(ev),
                        Err(_) => POLLNVAL,
                    }
                }
            })
            .collect()
    };
    let revents = wait(
        deadline,
        || {
            let r = scan();
            Ok(r.iter().any(|&x| x != 0).then_some(r))
        },
        alloc::vec![0; entries.len()],
    )?;
    let mut out = raw;
    for (i, r) in revents.iter().enumerate() {
        out[i * 8 + 6..i * 8 + 8].copy_from_slice(&r.to_le_bytes());
    }
    vm::write(fds, &out)?;
    Ok(revents.iter().filter(|&&r| r != 0).count() as u64)
}

pub fn select(n: i64, r: u64, w: u64, e: u64, deadline: Option<u64>) -> Result<u64, Errno> {
    if !(0..=fd::MAX_FDS as i64).contains(&n) {
        return Err(EINVAL);
    }
    let bytes = (n as usize).div_ceil(64) * 8;
    let read_set =
        |p: u64| -> Result<Vec<u8>, Errno> { if p == 0 { Ok(alloc::vec![0; bytes]) } else { vm::read_vec(p, bytes) } };
    let (rs, ws, es) = (read_set(r)?, read_set(w)?, read_set(e)?);
    let bit = |s: &[u8], i: usize| s[i / 8] & (1 << (i % 8)) != 0;
    type Sets = (Vec<u8>, Vec<u8>, u64);
    let scan = || -> Result<Option<Sets>, Errno> {
        let (mut ro, mut wo, mut count) = (alloc::vec![0u8; bytes], alloc::vec![0u8; bytes], 0u64);
        for i in 0..n as usize {
            let (want_r, want_w) = (bit(&rs, i), bit(&ws, i));
            if !want_r && !want_w && !bit(&es, i) {
                continue;
            }
            let f = fd::get(i as i64)?;
            let got = f.poll(POLLIN | POLLOUT);
            if want_r && got & (POLLIN | 0x18) != 0 {
                ro[i / 8] |= 1 << (i % 8);
                count += 1;
            }
            if want_w && got & POLLOUT != 0 {
                wo[i / 8] |= 1 << (i % 8);
                count += 1;
            }
        }
        Ok((count > 0).then_some((ro, wo, count)))
    };
    let (ro, wo, count) = wait(deadline, scan, (alloc::vec![0; bytes], alloc::vec![0; bytes], 0))?;
    if r != 0 {
        vm::write(r, &ro)?;
    }
    if w != 0 {
        vm::write(w, &wo)?;
    }
    if e != 0 {
        vm::write(e, &alloc::vec![0; bytes])?;
    }
    Ok(count)
}
