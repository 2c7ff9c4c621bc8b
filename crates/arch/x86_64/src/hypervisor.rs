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
