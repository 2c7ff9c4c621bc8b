//! Loading a unikernel and running it (the flow of tenders/hvt/hvt_main.c):
//! read the ELF and its notes, attach the manifest's devices from the
//! command line, map memory and load the segments, set up the vCPU and the
//! boot info, restrict the process with seccomp, run.

use std::os::fd::AsRawFd;
use std::path::Path;

use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use crate::abi::{self, boot_info as bi, x86::BOOT_INFO_BASE};
use crate::args::{self, Args};
use crate::elf::{self, Elf};
use crate::hypercall::{self, Context, Device, Fault, Next};
use crate::mem::GuestMem;
use crate::mft::{Attached, DevType, Manifest};
use crate::{devices, seccomp, x86};

/// Exit status when the tender cannot start the guest (arguments,
/// executable, devices, KVM).
pub const EXIT_SETUP: i32 = 120;
/// The guest passed an invalid pointer, length or hypercall number.
pub const EXIT_INVALID: i32 = 121;
/// The vCPU stopped in a way the hvt ABI does not allow (I/O to another
/// port, memory outside RAM, triple fault, `hlt`, entry failure).
pub const EXIT_VM: i32 = 122;
/// Host I/O for the guest failed (disk or tap error).
pub const EXIT_HOST_IO: i32 = 123;

/// Why the run ended without the guest halting.
#[derive(Debug)]
pub struct Stop {
    pub code: i32,
    pub message: String,
}

fn setup(message: impl Into<String>) -> Stop {
    Stop { code: EXIT_SETUP, message: message.into() }
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Stop {
        match f {
            Fault::Invalid { thing, details } => {
                Stop { code: EXIT_INVALID, message: format!("guest passed an invalid {thing} ({details})") }
            }
            Fault::HostIo(m) => Stop { code: EXIT_HOST_IO, message: m },
        }
    }
}

/// Options of the run that are not on solo5-hvt's command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Skip the seccomp filter (`UNIKIT_HVT_NO_SECCOMP=1`, for debugging).
    pub no_seccomp: bool,
}

/// Everything needed before KVM: the executable checked, the devices attached.
pub struct Prepared {
    pub manifest: Manifest,
    pub devices: Vec<Option<Device>>,
    pub attached: Vec<(usize, Attached)>,
}

/// Check the executable's notes (ABI, manifest) — the same checks as
/// hvt_main.c, one message each.
pub fn check_executable(bytes: &[u8]) -> Result<(Elf<'_>, Manifest), String> {
    let elf = Elf::parse(bytes).map_err(|e| format!("invalid executable: {e}"))?;
    elf::check_abi(&elf).map_err(|e| e.0)?;
    let note = elf
        .solo5_note(abi::MFT1_NOTE_TYPE, abi::MFT1_NOTE_ALIGN, abi::MFT1_NOTE_MAX_SIZE)
        .map_err(|e| format!("invalid executable: {e}"))?
        .ok_or("no Solo5 manifest note (.note.solo5.manifest) in the executable")?;
    let manifest = Manifest::parse(note)?;
    Ok((elf, manifest))
}

/// Attach what the command line names to the manifest's devices; every
/// declared device must be attached and every name must be declared.
pub fn attach(manifest: &Manifest, a: &Args) -> Result<Prepared, String> {
    let declared = |kind: DevType| {
        let names: Vec<&str> = manifest.devices.iter().filter(|d| d.kind == kind).map(|d| d.name.as_str()).collect();
        if names.is_empty() {
            format!("it declares no {} devices", kind.name())
        } else {
            format!("it declares: {}", names.join(", "))
        }
    };
    let lookup = |opt: &str, name: &str, kind: DevType| {
        manifest.find(name, kind).map(|d| d.index).ok_or_else(|| {
            format!(
                "{opt}:{name}: the unikernel has no {} device '{name}' in its manifest ({})",
                kind.name(),
                declared(kind)
            )
        })
    };
    let mut devices: Vec<Option<Device>> =
        (0..=manifest.devices.iter().map(|d| d.index).max().unwrap_or(0)).map(|_| None).collect();
    let mut attached = Vec::new();
    for (name, _) in &a.macs {
        lookup("--net-mac", name, DevType::Net)?;
    }
    for (name, _) in &a.sector_sizes {
        lookup("--block-sector-size", name, DevType::Block)?;
    }
    for (name, iface) in &a.nets {
        let i = lookup("--net", name, DevType::Net)?;
        let net = devices::attach_tap(iface).map_err(|e| format!("--net:{name}={iface}: {e}"))?;
        let mac = a.macs.iter().find(|(n, _)| n == name).map_or_else(devices::random_mac, |(_, m)| *m);
        attached.push((i, Attached::Net { mac, mtu: net.mtu as u16 }));
        devices[i] = Some(Device::Net(net));
    }
    for (name, path) in &a.blocks {
        let i = lookup("--block", name, DevType::Block)?;
        let bs = a.sector_sizes.iter().find(|(n, _)| n == name).map_or(512, |(_, s)| *s);
        let b = devices::attach_block(path, bs).map_err(|e| format!("--block:{name}={}: {e}", path.display()))?;
        attached.push((i, Attached::Block { capacity: b.capacity, block_size: bs }));
        devices[i] = Some(Device::Block(b));
    }
    let missing: Vec<String> = manifest
        .devices
        .iter()
        .filter(|d| devices[d.index].is_none())
        .map(|d| match d.kind {
            DevType::Net => format!("--net:{}=TAP", d.name),
            DevType::Block => format!("--block:{}=FILE", d.name),
        })
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the unikernel declares devices that are not attached; all must be: pass {}",
            missing.join(" ")
        ));
    }
    Ok(Prepared { manifest: manifest.clone(), devices, attached })
}

/// Write the boot info, the manifest and the command line at
/// `X86_BOOT_INFO_BASE` (hvt_boot_info.c). Ring I/O is not offered
/// (`host_features` = 0), so guests use the hypercalls.
pub fn write_boot_info(mem: &GuestMem, kernel_end: u64, tsc_hz: u64, mft: &[u8], cmdline: &[u8]) -> Result<(), String> {
    let base = BOOT_INFO_BASE;
    let mft_at = base + bi::SIZE;
    let cmd_at = mft_at + mft.len() as u64;
    let w = || -> Result<(), crate::mem::BadRange> {
        mem.write_u64(base + bi::MEM_SIZE, mem.size())?;
        mem.write_u64(base + bi::KERNEL_END, kernel_end)?;
        mem.write_u64(base + bi::CPU_CYCLE_FREQ, tsc_hz)?;
        mem.write_u64(base + bi::CMDLINE, cmd_at)?;
        mem.write_u64(base + bi::MFT, mft_at)?;
        mem.write_u32(base + bi::HOST_FEATURES, 0)?;
        mem.write_u32(base + bi::GUEST_FEATURES, 0)?;
        mem.write_u64(base + bi::NET_RING, 0)?;
        mem.write_bytes(mft_at, mft)?;
        mem.write_bytes(cmd_at, cmdline)?;
        mem.write_bytes(cmd_at + cmdline.len() as u64, &[0])
    };
    w().map_err(|e| format!("cannot write the boot info: {e}"))?;
    // It all must stay below the guest's lowest load address.
    debug_assert!(cmd_at + abi::CMDLINE_SIZE as u64 <= abi::GUEST_MIN_BASE);
    Ok(())
}

/// The KVM objects of a run.
pub struct Machine {
    _kvm: Kvm,
    _vm: VmFd,
    pub vcpu: VcpuFd,
}

fn kvm_err(what: &str) -> impl FnOnce(kvm_ioctls::Error) -> Stop + '_ {
    move |e| setup(format!("KVM: {what} failed: {e}"))
}

/// Create the VM and its vCPU, register memory, set CPUID and registers.
/// Returns the machine and the TSC frequency in Hz.
pub fn create_machine(mem: &GuestMem, entry: u64) -> Result<(Machine, u64), Stop> {
    let kvm = Kvm::new().map_err(|e| {
        setup(match e.errno() {
            libc::ENOENT => "cannot open /dev/kvm: it does not exist (no KVM on this host)".to_string(),
            libc::EACCES => "cannot open /dev/kvm: permission denied (add yourself to the 'kvm' group)".to_string(),
            _ => format!("cannot open /dev/kvm: {e}"),
        })
    })?;
    let v = kvm.get_api_version();
    if v != 12 {
        return Err(setup(format!("KVM: API version is {v}, this tender requires version 12")));
    }
    let vm = kvm.create_vm().map_err(kvm_err("creating the VM"))?;
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: mem.size(),
        userspace_addr: mem.host_base(),
    };
    // SAFETY: the region is our live anonymous mapping of exactly `size`
    // bytes, which outlives the VM (it is dropped after `Machine`).
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("registering guest memory"))?;
    let vcpu = vm.create_vcpu(0).map_err(kvm_err("creating the vCPU"))?;
    let cpuid =
        kvm.get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES).map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
    vcpu.set_cpuid2(&cpuid).map_err(kvm_err("KVM_SET_CPUID2"))?;
    let sregs = vcpu.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?;
    vcpu.set_sregs(&x86::sregs(sregs)).map_err(kvm_err("KVM_SET_SREGS"))?;
    vcpu.set_regs(&x86::regs(entry, mem.size())).map_err(kvm_err("KVM_SET_REGS"))?;
    let khz = vcpu.get_tsc_khz().map_err(|e| {
        if e.errno() == libc::EIO {
            setup("KVM: the host TSC is unstable; the guest's clock would be wrong")
        } else {
            setup(format!("KVM: KVM_GET_TSC_KHZ failed: {e} (the guest needs the TSC frequency)"))
        }
    })?;
    Ok((Machine { _kvm: kvm, _vm: vm, vcpu }, khz as u64 * 1000))
}

/// What `run` reports: the guest's halt status.
pub fn run(a: &Args, opts: Options) -> Result<i32, Stop> {
    let bytes = std::fs::read(&a.kernel).map_err(|e| setup(format!("{}: cannot read: {e}", a.kernel.display())))?;
    let name = a.kernel.display();
    let (elf, manifest) = check_executable(&bytes).map_err(|m| setup(format!("{name}: {m}")))?;
    let prepared = attach(&manifest, a).map_err(setup)?;
    let cmdline = args::cmdline(&a.guest_args).map_err(setup)?;
    let (mem_size, adjusted) = args::mem_size(a.mem_mib).map_err(setup)?;
    if adjusted {
        eprintln!("unikit-hvt: adjusting memory to {mem_size} bytes (a multiple of 2 MiB)");
    }
    let plan =
        elf.load_plan(mem_size, abi::GUEST_MIN_BASE).map_err(|e| setup(format!("{name}: invalid executable: {e}")))?;

    let mut mem =
        GuestMem::new(mem_size).map_err(|e| setup(format!("cannot map {mem_size} bytes of guest memory: {e}")))?;
    for s in &plan.segments {
        mem.write_bytes(s.vaddr, elf.file_image(s)).map_err(|e| setup(format!("loading a segment: {e}")))?;
        // The rest up to p_memsz is zero already (fresh anonymous memory).
    }
    for s in plan.segments.iter().filter(|s| !s.writable) {
        mem.protect_read_only(s.prot_start, s.prot_end).map_err(|e| setup(format!("mprotect of guest text: {e}")))?;
    }
    x86::write_gdt(&mem).map_err(|e| setup(format!("writing the GDT: {e}")))?;
    x86::write_page_tables(&mem, mem_size).map_err(|e| setup(format!("writing page tables: {e}")))?;
    let (mut machine, tsc_hz) = create_machine(&mem, plan.entry)?;
    let mft = prepared.manifest.for_guest(&prepared.attached);
    write_boot_info(&mem, plan.end, tsc_hz, &mft, &cmdline).map_err(setup)?;
    drop(bytes);

    let ctx = Context { devices: prepared.devices, console: libc::STDOUT_FILENO };
    if !opts.no_seccomp {
        let mut fds = seccomp::Fds { vcpu: machine.vcpu.as_raw_fd(), taps: vec![], blocks: vec![] };
        for d in ctx.devices.iter().flatten() {
            match d {
                Device::Net(n) => fds.taps.push(n.fd.as_raw_fd()),
                Device::Block(b) => fds.blocks.push(devices::fd_of(&b.file)),
            }
        }
        seccomp::apply(&fds).map_err(|e| setup(format!("cannot install the seccomp filter: {e}")))?;
    }
    vcpu_loop(&mut machine.vcpu, &mem, &ctx)
}

fn rip(vcpu: &VcpuFd) -> String {
    vcpu.get_regs().map_or_else(|_| "rip unknown".into(), |r| format!("rip {:#x}", r.rip))
}

fn vm_stop(vcpu: &VcpuFd, what: String) -> Stop {
    Stop { code: EXIT_VM, message: format!("{what} at {}", rip(vcpu)) }
}

/// Run the vCPU until the guest halts (Ok: its status) or something stops it.
pub fn vcpu_loop(vcpu: &mut VcpuFd, mem: &GuestMem, ctx: &Context) -> Result<i32, Stop> {
    let base = abi::HYPERCALL_PIO_BASE;
    loop {
        // Decode the exit while `vcpu` is borrowed by it, act after.
        let exit = match vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                if (base..base + abi::hc::MAX).contains(&port) && data.len() == 4 {
                    Ok((port - base, u32::from_le_bytes([data[0], data[1], data[2], data[3]])))
                } else {
                    Err(format!(
                        "guest wrote {} byte(s) to I/O port {port:#x}, which is not an hvt hypercall port",
                        data.len()
                    ))
                }
            }
            Ok(VcpuExit::IoIn(port, data)) => Err(format!(
                "guest read {} byte(s) from I/O port {port:#x}; hvt guests may only write hypercall ports",
                data.len()
            )),
            Ok(VcpuExit::MmioRead(addr, _)) => {
                Err(format!("guest read memory at {addr:#x}, outside its {:#x} bytes of RAM", mem.size()))
            }
            Ok(VcpuExit::MmioWrite(addr, _)) if mem.is_read_only(addr) => {
                Err(format!("guest wrote to its read-only memory (text or rodata) at {addr:#x}"))
            }
            Ok(VcpuExit::MmioWrite(addr, _)) => {
                Err(format!("guest wrote memory at {addr:#x}, outside its {:#x} bytes of RAM", mem.size()))
            }
            Ok(VcpuExit::Shutdown) => {
                Err("guest shut the CPU down (triple fault: an exception it could not handle)".into())
            }
            Ok(VcpuExit::Hlt) => Err("guest executed hlt (hvt guests stop with the halt hypercall)".into()),
            Ok(VcpuExit::FailEntry(reason, _)) => {
                Err(format!("KVM could not enter the guest (hardware entry failure reason {reason:#x})"))
            }
            Ok(VcpuExit::InternalError) => {
                Err("KVM internal error while running the guest (an instruction KVM cannot emulate?)".into())
            }
            Ok(VcpuExit::Intr) => continue,
            Ok(other) => Err(format!("unexpected VM exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) if e.errno() == libc::EFAULT => {
                Err("host/guest translation fault (did the guest write to its read-only text?)".to_string())
            }
            Err(e) => return Err(Stop { code: EXIT_VM, message: format!("KVM_RUN failed: {e}") }),
        };
        let (nr, gpa) = exit.map_err(|m| vm_stop(vcpu, m))?;
        match hypercall::dispatch(mem, ctx, nr, gpa as u64)? {
            Next::Continue => {}
            Next::Halt(status) => return Ok(status),
        }
    }
}

/// Print a stop reason the way every tender message looks.
pub fn report(s: &Stop) {
    eprintln!("unikit-hvt: {}", s.message);
}

/// For tests and the CLI: does the file look like a Solo5 hvt unikernel?
pub fn check_file(path: &Path) -> Result<Manifest, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    check_executable(&bytes).map(|(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testguest::*;

    #[test]
    fn executable_checks_give_one_clear_line() {
        let ok = exe(&[0xf4], &[abi_note(1, 2), mft_note(&mft(&[("storage", 1)]))]);
        let (_, m) = check_executable(&ok).unwrap();
        assert_eq!(m.devices.len(), 1);
        let no_mft = exe(&[0xf4], &[abi_note(1, 2)]);
        assert_eq!(
            check_executable(&no_mft).unwrap_err(),
            "no Solo5 manifest note (.note.solo5.manifest) in the executable"
        );
        let no_abi = exe(&[0xf4], &[mft_note(&mft(&[]))]);
        assert!(check_executable(&no_abi).unwrap_err().starts_with("no Solo5 ABI note"));
        assert!(check_executable(b"#!/bin/sh\n").unwrap_err().starts_with("invalid executable: "));
    }

    fn args(v: &[&str]) -> Args {
        match args::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap() {
            args::Command::Run(a) => a,
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn devices_must_match_the_manifest() {
        let m = Manifest::parse(&mft(&[("storage", 1), ("service", 2)])).unwrap();
        let disk = tempfile::NamedTempFile::new().unwrap();
        disk.as_file().set_len(4096).unwrap();
        let d = disk.path().display().to_string();
        let e = attach(&m, &args(&["k"])).err().unwrap();
        assert_eq!(
            e,
            "the unikernel declares devices that are not attached; all must be: pass --block:storage=FILE --net:service=TAP"
        );
        let e = attach(&m, &args(&[&format!("--block:disk={d}"), "k"])).err().unwrap();
        assert_eq!(e, "--block:disk: the unikernel has no block device 'disk' in its manifest (it declares: storage)");
        let e = attach(&m, &args(&["--net:storage=tap0", "k"])).err().unwrap();
        assert_eq!(
            e,
            "--net:storage: the unikernel has no net device 'storage' in its manifest (it declares: service)"
        );
        let e = attach(&m, &args(&["--net-mac:x=02:00:00:00:00:01", "k"])).err().unwrap();
        assert!(e.starts_with("--net-mac:x: the unikernel has no net device 'x'"), "{e}");
        let e = attach(&m, &args(&[&format!("--block:storage={d}"), "k"])).err().unwrap();
        assert_eq!(e, "the unikernel declares devices that are not attached; all must be: pass --net:service=TAP");
        // Only a block device: attaches and fills the guest's manifest entry.
        let m = Manifest::parse(&mft(&[("storage", 1)])).unwrap();
        let p = attach(&m, &args(&[&format!("--block:storage={d}"), "--block-sector-size:storage=4096", "k"])).unwrap();
        assert_eq!(p.attached, [(1, Attached::Block { capacity: 4096, block_size: 4096 })]);
        let e = attach(&Manifest::parse(&mft(&[])).unwrap(), &args(&["--net:service=tap0", "k"])).err().unwrap();
        assert_eq!(
            e,
            "--net:service: the unikernel has no net device 'service' in its manifest (it declares no net devices)"
        );
    }

    #[test]
    fn boot_info_layout() {
        let mem = GuestMem::new(2 << 20).unwrap();
        let m = mft(&[]);
        write_boot_info(&mem, 0x12_3000, 2_500_000_000, &m, b"--exit 3").unwrap();
        let b = BOOT_INFO_BASE;
        assert_eq!(mem.read_u64(b), Ok(2 << 20));
        assert_eq!(mem.read_u64(b + 8), Ok(0x12_3000));
        assert_eq!(mem.read_u64(b + 16), Ok(2_500_000_000));
        assert_eq!(mem.read_u64(b + 32), Ok(b + 56));
        let cmd = mem.read_u64(b + 24).unwrap();
        assert_eq!(cmd, b + 56 + m.len() as u64);
        let mut s = [0u8; 9];
        mem.read_bytes(cmd, &mut s).unwrap();
        assert_eq!(&s, b"--exit 3\0");
        assert_eq!(mem.read_u32(b + 40), Ok(0));
    }
}
