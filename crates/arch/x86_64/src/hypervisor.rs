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

/// The registers of one VMware backdoor call, going in and coming back.
/// `ecx` holds the command (low half) and its subcommand (high half),
/// `edx` the port (low half) and, for messages, the channel id (high half).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackdoorRegs {
    /// The magic going in; a command's result coming back.
    pub eax: u32,
    /// The argument.
    pub ebx: u32,
    /// Subcommand << 16 | command; status << 16 coming back (messages).
    pub ecx: u32,
    /// Channel id << 16 | port.
    pub edx: u32,
    /// Message channels: the cookie's high word.
    pub esi: u32,
    /// Message channels: the cookie's low word.
    pub edi: u32,
}

/// Something that answers VMware backdoor calls: [`PortBackdoor`] in the
/// guest, a fake VMware in host tests.
pub trait Backdoor {
    /// One call: the registers in, the registers the host left.
    fn call(&self, regs: BackdoorRegs) -> BackdoorRegs;
}

/// The backdoor's I/O port (`in eax, dx` at 0x5658). Without a backdoor
/// the port is unclaimed: `eax` comes back all ones and the rest as sent.
pub struct PortBackdoor;

impl Backdoor for PortBackdoor {
    fn call(&self, r: BackdoorRegs) -> BackdoorRegs {
        // The magic and the port are forced: this function reads port
        // 0x5658 and no other, whatever the caller put in `edx`.
        let mut out = BackdoorRegs { eax: VMWARE_MAGIC, edx: r.edx & 0xffff_0000 | u32::from(VMWARE_PORT), ..r };
        let mut rbx = u64::from(r.ebx);
        // SAFETY: a 32-bit read of the backdoor port; without a backdoor
        // it is unclaimed and the read has no effect. VMware changes only
        // the six registers named here. rbx is swapped by hand: LLVM
        // reserves it.
        unsafe {
            core::arch::asm!(
                "xchg {b}, rbx",
                "in eax, dx",
                "xchg {b}, rbx",
                b = inout(reg) rbx,
                inout("eax") out.eax,
                inout("ecx") out.ecx,
                inout("edx") out.edx,
                inout("esi") out.esi,
                inout("edi") out.edi,
                options(nostack, preserves_flags),
            );
        }
        out.ebx = rbx as u32;
        out
    }
}

/// The VMware backdoor's version, if one answers (VMware, and QEMU with
/// `vmport=on`). VMware's CPUID leaf can be hidden; the backdoor is how
/// VMware Tools find it. A machine without it returns all ones from the
/// unclaimed port and leaves `ebx` alone.
pub fn vmware_backdoor() -> Option<u32> {
    let r = PortBackdoor.call(BackdoorRegs {
        ebx: !VMWARE_MAGIC,
        ecx: VMWARE_GETVERSION,
        edx: u32::from(VMWARE_PORT),
        ..Default::default()
    });
    (r.ebx == VMWARE_MAGIC && r.eax != u32::MAX).then_some(r.eax)
}
