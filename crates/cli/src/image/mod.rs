//! Disk images for firmware-booted platforms (VMware, Hyper-V): one
//! GPT disk that boots under BIOS (our boot sector and stage 2, in a BIOS
//! boot partition) and under UEFI (our BOOTX64.EFI on the EFI system
//! partition), both loading the same PVH kernel image the other x86
//! platforms boot. Then the formats each hypervisor takes.
pub mod bios;
pub mod esp;
pub mod gpt;
pub mod hyperv;
pub mod loaders;
pub mod vmware;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::error::hinted;

/// Mode of the files written beside an image.
pub fn readable() -> std::fs::Permissions {
    <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644)
}

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

/// `<image><ext>`.
pub fn with_ext(image: &Path, ext: &str) -> PathBuf {
    let mut s = image.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// `qemu-img`, or how to get it.
pub fn qemu_img() -> Result<PathBuf> {
    crate::tools::which("qemu-img").ok_or_else(|| {
        hinted("qemu-img not found (it writes the VM disk formats)", "install it with: apt-get install qemu-utils")
    })
}

/// The raw firmware disk of one build, as a file `qemu-img` converts.
pub struct RawDisk {
    qemu_img: PathBuf,
    path: PathBuf,
    pub size: u64,
}

impl RawDisk {
    /// Converts to `out` (through a temporary file and a rename, so that a
    /// running VM's disk is never rewritten in place).
    pub fn convert(&self, out: &Path, format: &str, options: &str) -> Result<()> {
        let tmp = with_ext(out, &format!(".{}.tmp", std::process::id()));
        let r = self
            .qemu_img_convert(&tmp, format, options)
            .and_then(|()| std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display())));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }

    /// Converts and returns the bytes (for an archive).
    pub fn convert_to_bytes(&self, format: &str, options: &str) -> Result<Vec<u8>> {
        let tmp = with_ext(&self.path, &format!(".{format}"));
        let r = self
            .qemu_img_convert(&tmp, format, options)
            .and_then(|()| std::fs::read(&tmp).with_context(|| format!("cannot read {}", tmp.display())));
        let _ = std::fs::remove_file(&tmp);
        r
    }

    fn qemu_img_convert(&self, out: &Path, format: &str, options: &str) -> Result<()> {
        let o = Command::new(&self.qemu_img)
            .args(["convert", "-q", "-f", "raw", "-O", format, "-o", options])
            .arg(&self.path)
            .arg(out)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.qemu_img.display()))?;
        if !o.status.success() {
            bail!("qemu-img could not write {}: {}", out.display(), String::from_utf8_lossy(&o.stderr).trim());
        }
        Ok(())
    }
}

/// Builds the firmware disk that boots `image` (with `initrd` and
/// `cmdline`) and hands it to `f` as a raw file, removed afterwards.
pub fn with_raw_disk<T>(
    image: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    quiet: bool,
    f: impl FnOnce(&RawDisk) -> Result<T>,
) -> Result<T> {
    let qemu_img = qemu_img()?;
    let loaders = loaders::build(quiet)?;
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let kernel = read(image)?;
    let initrd = initrd.map(read).transpose()?;
    let raw = firmware_disk(&loaders, &Payload { kernel: &kernel, initrd: initrd.as_deref(), cmdline })?;
    let disk = RawDisk {
        qemu_img,
        path: with_ext(image, &format!(".{}.raw.tmp", std::process::id())),
        size: raw.len() as u64,
    };
    let r = std::fs::write(&disk.path, &raw)
        .with_context(|| format!("cannot write {}", disk.path.display()))
        .and_then(|()| f(&disk));
    let _ = std::fs::remove_file(&disk.path);
    r
}
