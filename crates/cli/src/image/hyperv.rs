//! What Hyper-V and Azure take: a dynamic VHDX (Hyper-V), a fixed VHD
//! whose size is a whole number of MiB (what Azure accepts), both through
//! `qemu-img`, and a PowerShell script that creates and starts the VM.
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::with_ext;

/// Hyper-V's VM generation: 1 (BIOS, IDE, legacy NIC) or 2 (UEFI, SCSI,
/// synthetic NIC; what Azure runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generation {
    One,
    Two,
}

impl Generation {
    pub fn number(self) -> u8 {
        match self {
            Generation::One => 1,
            Generation::Two => 2,
        }
    }
}

#[derive(Clone, Copy)]
pub struct Vm<'a> {
    pub name: &'a str,
    /// Guest memory in MiB (Hyper-V wants an even number of MiB, at least 32).
    pub memory_mib: u64,
    pub generation: Generation,
    /// The VHDX's file name, beside the script.
    pub disk: &'a str,
}

/// Hyper-V's memory rule: a multiple of 2 MiB, and at least 32 MiB.
pub fn hyperv_memory(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20).next_multiple_of(2).max(32)
}

fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The PowerShell script: `New-VM` with the disk, memory and generation,
/// one vCPU, static memory, Secure Boot off (Gen2: our loader is not
/// signed), COM1 on a named pipe (the console and the exit marker), and on
/// Gen1 the legacy network adapter (DEC 21140) instead of the synthetic one.
pub fn script(vm: &Vm) -> String {
    let generation = vm.generation.number();
    format!(
        r#"# Creates and starts the Hyper-V VM "{name}" (written by `unikit build --plat hyperv`).
# Run in an elevated PowerShell on a Hyper-V host, from the folder that holds {disk}:
#   .\{name}.ps1 [-Generation 1|2] [-Switch 'Default Switch'] [-Name {name}]
# The console is COM1 on \\.\pipe\<Name>-com1; read it with e.g. `putty -serial \\.\pipe\<Name>-com1`.
# The VM powers itself off when the app exits; the exit code is in the console's exit marker.
param(
    [ValidateSet(1, 2)][int]$Generation = {generation},
    [string]$Switch = 'Default Switch',
    [string]$Name = {qname}
)
$ErrorActionPreference = 'Stop'
$disk = Join-Path $PSScriptRoot {qdisk}
New-VM -Name $Name -Generation $Generation -MemoryStartupBytes {mem}MB -VHDPath $disk -SwitchName $Switch | Out-Null
Set-VMProcessor -VMName $Name -Count 1
Set-VMMemory -VMName $Name -DynamicMemoryEnabled $false
if ($Generation -eq 2) {{
    # unikit's UEFI loader is not signed for Secure Boot.
    Set-VMFirmware -VMName $Name -EnableSecureBoot Off
}} else {{
    # Generation 1: the legacy network adapter (DEC 21140), which unikit drives.
    Get-VMNetworkAdapter -VMName $Name | Remove-VMNetworkAdapter
    Add-VMNetworkAdapter -VMName $Name -IsLegacy $true -SwitchName $Switch
}}
Set-VMComPort -VMName $Name -Number 1 -Path "\\.\pipe\$Name-com1"
Start-VM -Name $Name
Write-Host "started $Name; console: \\.\pipe\$Name-com1"
"#,
        name = vm.name,
        disk = vm.disk,
        qname = ps_quote(vm.name),
        qdisk = ps_quote(vm.disk),
        mem = vm.memory_mib,
    )
}

/// What `write_set` wrote, beside the kernel image.
pub struct Set {
    pub vhdx: PathBuf,
    pub vhd: Option<PathBuf>,
    pub script: PathBuf,
}

/// Writes `<image>.vhdx` (dynamic), with `with_vhd` `<image>.vhd` (fixed,
/// for Azure), and `<image>.ps1`: the disk boots `image` with `initrd` and
/// `cmdline` under BIOS (Gen1) and UEFI (Gen2).
pub fn write_set(
    image: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    vm: &Vm,
    with_vhd: bool,
    quiet: bool,
) -> Result<Set> {
    let set = Set {
        vhdx: with_ext(image, ".vhdx"),
        vhd: with_vhd.then(|| with_ext(image, ".vhd")),
        script: with_ext(image, ".ps1"),
    };
    super::with_raw_disk(image, initrd, cmdline, quiet, |disk| {
        disk.convert(&set.vhdx, "vhdx", "subformat=dynamic,block_size=1M")?;
        if let Some(vhd) = &set.vhd {
            // `force_size`: the footer says exactly the raw size (a whole
            // number of MiB), not a CHS-rounded one; Azure checks that.
            disk.convert(vhd, "vpc", "subformat=fixed,force_size=on")?;
        }
        let disk_name = set.vhdx.file_name().unwrap_or_default().to_string_lossy().into_owned();
        crate::build::write_atomic(&set.script, script(&Vm { disk: &disk_name, ..*vm }).as_bytes(), &super::readable())
    })?;
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_creates_the_vm_the_image_needs() {
        let s = script(&Vm { name: "web's", memory_mib: 64, generation: Generation::Two, disk: "web.vhdx" });
        for part in [
            "[ValidateSet(1, 2)][int]$Generation = 2",
            "[string]$Name = 'web''s'",
            "$disk = Join-Path $PSScriptRoot 'web.vhdx'",
            "New-VM -Name $Name -Generation $Generation -MemoryStartupBytes 64MB -VHDPath $disk",
            "Set-VMFirmware -VMName $Name -EnableSecureBoot Off",
            "Add-VMNetworkAdapter -VMName $Name -IsLegacy $true",
            "Set-VMComPort -VMName $Name -Number 1 -Path",
            "Start-VM -Name $Name",
        ] {
            assert!(s.contains(part), "{part} in\n{s}");
        }
        assert_eq!((hyperv_memory(1), hyperv_memory(33 << 20), hyperv_memory(64 << 20)), (32, 34, 64));
    }
}
