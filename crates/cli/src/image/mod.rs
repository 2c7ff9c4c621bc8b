//! Disk images for firmware-booted platforms (VMware; Hyper-V next): one
//! GPT disk that boots under BIOS (our boot sector and stage 2, in a BIOS
//! boot partition) and under UEFI (our BOOTX64.EFI on the EFI system
//! partition), both loading the same PVH kernel image the other x86
//! platforms boot. Then the formats each hypervisor takes.
pub mod bios;
pub mod esp;
pub mod gpt;
pub mod loaders;
pub mod vmware;

use anyhow::Result;
use sha2::{Digest, Sha256};

/// The kernel option naming the boot disk (the guest's `dev.rs` withholds
/// that disk from the app).
pub const BOOT_DISK_OPTION: &str = "unikit.bootdisk=";

/// What a firmware disk boots.
pub struct Payload<'a> {
    pub kernel: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
}

/// A raw GPT disk that boots `p` under BIOS and UEFI.
pub fn firmware_disk(loaders: &loaders::Loaders, p: &Payload) -> Result<Vec<u8>> {
    // Same inputs, same disk: the GUIDs come from the contents (a version-4
    // shaped GUID from a hash), so rebuilding changes nothing.
    let mut h = Sha256::new();
    h.update(p.kernel);
    h.update(p.initrd.unwrap_or_default());
    h.update(p.cmdline.as_bytes());
    let digest = h.finalize();
    let mut disk_guid: [u8; 16] = digest[..16].try_into()?;
    disk_guid[7] = disk_guid[7] & 0x0f | 0x40;
    disk_guid[8] = disk_guid[8] & 0x3f | 0x80;
    let part_guid = |n: u8| {
        let mut g = disk_guid;
        g[15] ^= n;
        g
    };
    // Options lead the command line, so the boot disk's name goes first.
    let line = format!("{BOOT_DISK_OPTION}{} {}", gpt::guid_hex(&disk_guid), p.cmdline);
    let area = bios::boot_area(&loaders.bios, p.kernel, p.initrd, &line, gpt::ALIGN)?;
    let mut files: Vec<(&str, &[u8])> =
        vec![("EFI/BOOT/BOOTX64.EFI", &loaders.uefi), ("unikit/kernel", p.kernel), ("unikit/cmdline", line.as_bytes())];
    if let Some(rd) = p.initrd {
        files.push(("unikit/initrd", rd));
    }
    let esp = esp::build(&files)?;
    gpt::write(
        &area.mbr_code,
        disk_guid,
        &[
            gpt::Partition {
                type_guid: gpt::guid(gpt::BIOS_BOOT),
                unique_guid: part_guid(1),
                name: "unikit BIOS boot",
                data: &area.area,
            },
            gpt::Partition {
                type_guid: gpt::guid(gpt::EFI_SYSTEM),
                unique_guid: part_guid(2),
                name: "EFI system",
                data: &esp,
            },
        ],
    )
}
