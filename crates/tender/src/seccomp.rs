//! The seccomp allow-list installed after set-up, before the first
//! KVM_RUN (as tenders/hvt/hvt_seccomp_linux.c does; here with argument
//! checks): whatever the guest makes the tender do, the tender can only
//! run the vCPU and do I/O on the descriptors it opened for the guest.
//!
//! | syscall | allowed when |
//! |---|---|
//! | `ioctl` | on the vCPU fd, request `KVM_RUN`, `KVM_GET_REGS` or `KVM_GET_SREGS` (the last two for error reports) |
//! | `write` | fd 1 (console), 2 (messages) or a tap |
//! | `read` | a tap |
//! | `pread64`, `pwrite64` | a block device's fd |
//! | `ppoll` | always (poll hypercall; the fds are the taps) |
//! | `clock_gettime` | always (walltime, poll deadline; normally the vDSO) |
//! | `mmap` | without `PROT_EXEC` (the allocator, for error messages) |
//! | `munmap`, `brk`, `mremap`, `madvise` | always (the allocator) |
//! | `sigaltstack`, `rt_sigreturn`, `rt_sigprocmask` | always (the Rust runtime at exit, signal return) |
//! | `close`, `fcntl(F_GETFD)` | always (descriptors dropped on the way out; std checks them first) |
//! | `exit_group`, `exit` | always |
//!
//! Anything else kills the process (`SIGSYS`).

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch,
};

/// KVM ioctl request numbers (linux/kvm.h).
pub const KVM_RUN: u64 = 0xae80;
pub const KVM_GET_REGS: u64 = 0x8090_ae81;
pub const KVM_GET_SREGS: u64 = 0x8138_ae83;

/// The descriptors the run loop uses.
pub struct Fds {
    pub vcpu: RawFd,
    pub taps: Vec<RawFd>,
    pub blocks: Vec<RawFd>,
}

fn fd_is(fd: RawFd) -> Result<Cond, String> {
    Cond::new(0, Len::Dword, Op::Eq, fd as u64).map_err(|e| e.to_string())
}

fn one_of(fds: &[RawFd]) -> Result<Vec<SeccompRule>, String> {
    fds.iter().map(|&fd| SeccompRule::new(vec![fd_is(fd)?]).map_err(|e| e.to_string())).collect()
}

/// Build the filter for `fds`.
pub fn filter(fds: &Fds) -> Result<BpfProgram, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let e = |e: seccompiler::BackendError| e.to_string();
    let ioctls = [KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS]
        .iter()
        .map(|&req| {
            SeccompRule::new(vec![fd_is(fds.vcpu)?, Cond::new(1, Len::Dword, Op::Eq, req).map_err(e)?]).map_err(e)
        })
        .collect::<Result<Vec<_>, String>>()?;
    rules.insert(libc::SYS_ioctl, ioctls);
    let mut writers = vec![1, 2];
    writers.extend(&fds.taps);
    rules.insert(libc::SYS_write, one_of(&writers)?);
    if !fds.taps.is_empty() {
        rules.insert(libc::SYS_read, one_of(&fds.taps)?);
    }
    if !fds.blocks.is_empty() {
        rules.insert(libc::SYS_pread64, one_of(&fds.blocks)?);
        rules.insert(libc::SYS_pwrite64, one_of(&fds.blocks)?);
    }
    let no_exec = Cond::new(2, Len::Dword, Op::MaskedEq(libc::PROT_EXEC as u64), 0).map_err(e)?;
    rules.insert(libc::SYS_mmap, vec![SeccompRule::new(vec![no_exec]).map_err(e)?]);
    // std checks that a descriptor is open before closing it (`F_GETFD`).
    let getfd = Cond::new(1, Len::Dword, Op::Eq, libc::F_GETFD as u64).map_err(e)?;
    rules.insert(libc::SYS_fcntl, vec![SeccompRule::new(vec![getfd]).map_err(e)?]);
    for sys in [
        libc::SYS_ppoll,
        libc::SYS_clock_gettime,
        libc::SYS_munmap,
        libc::SYS_brk,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_sigaltstack,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_close,
        libc::SYS_exit_group,
        libc::SYS_exit,
    ] {
        rules.insert(sys, vec![]);
    }
    let f = SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(|e| e.to_string())?;
    f.try_into().map_err(|e: seccompiler::BackendError| e.to_string())
}

/// Install the filter on this (the only) thread.
pub fn apply(fds: &Fds) -> Result<(), String> {
    let prog = filter(fds)?;
    seccompiler::apply_filter(&prog).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds() {
        let p = filter(&Fds { vcpu: 5, taps: vec![6], blocks: vec![7, 8] }).unwrap();
        assert!(!p.is_empty());
        let p = filter(&Fds { vcpu: 5, taps: vec![], blocks: vec![] }).unwrap();
        assert!(!p.is_empty());
    }

    #[test]
    fn kvm_request_numbers() {
        // _IO(KVMIO, 0x80), _IOR(KVMIO, 0x81, struct kvm_regs), _IOR(KVMIO, 0x83, struct kvm_sregs)
        assert_eq!(KVM_GET_REGS, (2 << 30) | ((std::mem::size_of::<kvm_bindings::kvm_regs>() as u64) << 16) | 0xae81);
        assert_eq!(KVM_GET_SREGS, (2 << 30) | ((std::mem::size_of::<kvm_bindings::kvm_sregs>() as u64) << 16) | 0xae83);
    }

    /// The filter really stops what it does not list: in a child process,
    /// an `openat` after `apply` is fatal (SIGSYS).
    #[test]
    fn kills_unlisted_syscalls() {
        // SAFETY: fork in a test; the child only calls async-signal-safe
        // functions and raw syscalls before _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = apply(&Fds { vcpu: 1000, taps: vec![], blocks: vec![] }).is_ok();
            if !ok {
                // SAFETY: leaving the child.
                unsafe { libc::_exit(3) };
            }
            // SAFETY: a raw syscall that the filter must refuse.
            unsafe { libc::syscall(libc::SYS_getpid) };
            // SAFETY: leaving the child (not reached if the filter works).
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waiting for our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFSIGNALED(status), "status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
    }
}
