//! Run-time hypervisor detection through the CPUID hypervisor leaves.
use crate::cpu::cpuid;

/// The hypervisor CPUID leaf 0x4000_0000 names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hypervisor {
    /// Linux KVM (`KVMKVMKVM`).
    Kvm,
    /// Xen (`XenVMMXenVMM`).
    Xen,
    /// Microsoft Hyper-V (`Microsoft Hv`).
    HyperV,
    /// VMware (`VMwareVMware`).
    VMware,
    /// QEMU's software emulator (TCG) announces itself as "TCGTCGTCGTCG".
    QemuTcg,
    /// Any other signature, kept as read.
    Other([u8; 12]),
    /// No hypervisor bit in CPUID.1:ECX: bare metal (or a hidden hypervisor).
    None,
}

impl Hypervisor {
    /// Decodes the 12-byte vendor signature from EBX, ECX, EDX.
    pub fn from_signature(sig: &[u8; 12]) -> Self {
        match sig {
            b"KVMKVMKVM\0\0\0" => Self::Kvm,
            b"XenVMMXenVMM" => Self::Xen,
            b"Microsoft Hv" => Self::HyperV,
            b"VMwareVMware" => Self::VMware,
            b"TCGTCGTCGTCG" => Self::QemuTcg,
            other => Self::Other(*other),
        }
    }

    /// A short name for the boot log.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kvm => "KVM",
            Self::Xen => "Xen",
            Self::HyperV => "Hyper-V",
            Self::VMware => "VMware",
            Self::QemuTcg => "QEMU TCG",
            Self::Other(_) => "unknown hypervisor",
            Self::None => "none",
        }
    }
}

/// Returns the hypervisor and its highest CPUID leaf (0 if none).
pub fn detect() -> (Hypervisor, u32) {
    if cpuid(1, 0).ecx & (1 << 31) == 0 {
        return (Hypervisor::None, 0);
    }
    let r = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
    (Hypervisor::from_signature(&sig), r.eax)
}

/// The VMware backdoor's magic (`VMXh`), in `eax` on the way in and in
/// `ebx` on the way back.
const VMWARE_MAGIC: u32 = 0x564d_5868;
/// The backdoor's I/O port (`VX`).
const VMWARE_PORT: u16 = 0x5658;
/// Backdoor command GETVERSION.
const VMWARE_GETVERSION: u32 = 10;

/// The VMware backdoor's version, if one answers (VMware, and QEMU with
/// `vmport=on`). VMware's CPUID leaf can be hidden; the backdoor is how
/// VMware Tools find it. A machine without it returns all ones from the
/// unclaimed port and leaves `ebx` alone.
pub fn vmware_backdoor() -> Option<u32> {
    let eax: u32;
    let mut rbx = u64::from(!VMWARE_MAGIC);
    // SAFETY: a port read; without a backdoor the port is unclaimed and the
    // read has no effect. rbx is swapped by hand: LLVM reserves it.
    unsafe {
        core::arch::asm!(
            "xchg {b}, rbx",
            "in eax, dx",
            "xchg {b}, rbx",
            b = inout(reg) rbx,
            inout("eax") VMWARE_MAGIC => eax,
            inout("ecx") VMWARE_GETVERSION => _,
            inout("edx") u32::from(VMWARE_PORT) => _,
            options(nostack, preserves_flags),
        );
    }
    (rbx as u32 == VMWARE_MAGIC && eax != u32::MAX).then_some(eax)
}
