//! What VMware products take: a VMDK (monolithicSparse, through
//! `qemu-img`), a `.vmx` for Workstation, Fusion and Player, and an OVA
//! (OVF descriptor, streamOptimized VMDK, SHA-256 manifest) for vSphere,
//! ESXi and `ovftool`.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::with_ext;

/// The firmware the VM boots with (`firmware` in the .vmx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Efi,
}

/// The virtual NIC (`ethernetN.virtualDev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nic {
    Vmxnet3,
    E1000,
    E1000e,
}

impl Nic {
    /// The `.vmx` `virtualDev`, which is also QEMU's `-device` name.
    pub fn vmx(self) -> &'static str {
        match self {
            Nic::Vmxnet3 => "vmxnet3",
            Nic::E1000 => "e1000",
            Nic::E1000e => "e1000e",
        }
    }
    fn ovf(self) -> &'static str {
        match self {
            Nic::Vmxnet3 => "VmxNet3",
            Nic::E1000 => "E1000",
            Nic::E1000e => "E1000e",
        }
    }
}

#[derive(Clone, Copy)]
pub struct Vm<'a> {
    pub name: &'a str,
    /// Guest memory in MiB (VMware wants a multiple of 4).
    pub memory_mib: u64,
    pub firmware: Firmware,
    pub nic: Option<Nic>,
    /// The boot disk's file name, beside the .vmx.
    pub disk: &'a str,
}

/// VMware's memory granularity: whole 4 MiB, at least 4.
pub fn vmware_memory(bytes: u64) -> u64 {
    (bytes.div_ceil(1 << 20)).next_multiple_of(4).max(4)
}

/// The file COM1 writes to, beside the .vmx: the console.
pub fn serial_log(name: &str) -> String {
    format!("{name}.serial.log")
}

fn quote_vmx(s: &str) -> String {
    // .vmx values are double-quoted; `|22` is VMware's escape for `"`.
    s.replace('|', "|7C").replace('"', "|22")
}

/// The `.vmx`: hardware version 14 (Workstation 14, ESXi 6.7 and later,
/// the first with PVSCSI and vmxnet3 under EFI everywhere), "other 64-bit",
/// PVSCSI boot disk, the console on COM1 to `<name>.serial.log`.
pub fn vmx(vm: &Vm) -> String {
    let mut keys: Vec<(&str, String)> = vec![
        (".encoding", "UTF-8".into()),
        ("config.version", "8".into()),
        ("virtualHW.version", "14".into()),
        ("displayName", vm.name.into()),
        ("guestOS", "other-64".into()),
        ("firmware", if vm.firmware == Firmware::Efi { "efi" } else { "bios" }.into()),
        ("memsize", vm.memory_mib.to_string()),
        ("numvcpus", "1".into()),
        ("pciBridge0.present", "TRUE".into()),
        ("pciBridge4.present", "TRUE".into()),
        ("pciBridge4.virtualDev", "pcieRootPort".into()),
        ("pciBridge4.functions", "8".into()),
        ("scsi0.present", "TRUE".into()),
        ("scsi0.virtualDev", "pvscsi".into()),
        ("scsi0:0.present", "TRUE".into()),
        ("scsi0:0.fileName", vm.disk.into()),
        ("serial0.present", "TRUE".into()),
        ("serial0.fileType", "file".into()),
        ("serial0.fileName", serial_log(vm.name)),
        ("serial0.yieldOnMsrRead", "TRUE".into()),
        ("floppy0.present", "FALSE".into()),
        ("tools.syncTime", "FALSE".into()),
    ];
    if let Some(nic) = vm.nic {
        keys.extend([
            ("ethernet0.present", "TRUE".into()),
            ("ethernet0.virtualDev", nic.vmx().into()),
            ("ethernet0.connectionType", "nat".into()),
            ("ethernet0.addressType", "generated".into()),
        ]);
    }
    keys.iter().map(|(k, v)| format!("{k} = \"{}\"\n", quote_vmx(v))).collect()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The OVF 1.0 descriptor of a one-disk VM (the dialect ovftool and
/// vSphere export: CIM resource types 3 CPU, 4 memory, 6 SCSI HBA with
/// subtype VirtualSCSI = PVSCSI, 17 disk, 10 Ethernet).
pub fn ovf(vm: &Vm, disk_file: &str, disk_file_size: u64, capacity: u64) -> String {
    let name = xml(vm.name);
    let firmware = if vm.firmware == Firmware::Efi { "efi" } else { "bios" };
    let network = match vm.nic {
        Some(_) => "  <NetworkSection>\n    <Info>The logical networks</Info>\n    <Network ovf:name=\"VM Network\">\n      <Description>The VM Network network</Description>\n    </Network>\n  </NetworkSection>\n".to_string(),
        None => String::new(),
    };
    let nic = match vm.nic {
        Some(n) => format!(
            "      <Item>\n        <rasd:AddressOnParent>7</rasd:AddressOnParent>\n        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n        <rasd:Connection>VM Network</rasd:Connection>\n        <rasd:ElementName>Network adapter 1</rasd:ElementName>\n        <rasd:InstanceID>5</rasd:InstanceID>\n        <rasd:ResourceSubType>{}</rasd:ResourceSubType>\n        <rasd:ResourceType>10</rasd:ResourceType>\n      </Item>\n",
            n.ovf()
        ),
        None => String::new(),
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:id="file1" ovf:href="{disk_file}" ovf:size="{disk_file_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
{network}  <VirtualSystem ovf:id="{name}">
    <Info>A unikit unikernel</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="102" vmw:osType="otherGuest64">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>1 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>{mem}MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>{mem}</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
{nic}      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="{firmware}"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#,
        mem = vm.memory_mib,
    )
}

/// What `write_set` wrote, beside the kernel image.
pub struct Set {
    pub vmdk: PathBuf,
    pub vmx: PathBuf,
    pub ova: Option<PathBuf>,
}

/// Writes `<image>.vmdk` (monolithicSparse, for Workstation, Fusion and the
/// test bed), `<image>.vmx` and, with `with_ova`, `<image>.ova`: the disk
/// boots `image` with `initrd` and `cmdline` under BIOS and EFI.
pub fn write_set(
    image: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    vm: &Vm,
    with_ova: bool,
    quiet: bool,
) -> Result<Set> {
    let set = Set {
        vmdk: with_ext(image, ".vmdk"),
        vmx: with_ext(image, ".vmx"),
        ova: with_ova.then(|| with_ext(image, ".ova")),
    };
    super::with_raw_disk(image, initrd, cmdline, quiet, |disk| {
        // The adapter type in the descriptor: VMware's PVSCSI disks say lsilogic.
        disk.convert(&set.vmdk, "vmdk", "subformat=monolithicSparse,adapter_type=lsilogic")?;
        let disk_name = set.vmdk.file_name().unwrap_or_default().to_string_lossy().into_owned();
        crate::build::write_atomic(&set.vmx, vmx(&Vm { disk: &disk_name, ..*vm }).as_bytes(), &super::readable())?;
        if let Some(ova_path) = &set.ova {
            let stream = disk.convert_to_bytes("vmdk", "subformat=streamOptimized,adapter_type=lsilogic")?;
            ova(vm, &stream, disk.size, ova_path)?;
        }
        Ok(())
    })?;
    Ok(set)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The OVA: a tar of the descriptor, the manifest and the disk, in the
/// order OVF requires (descriptor first, manifest next).
pub fn ova(vm: &Vm, stream_vmdk: &[u8], capacity: u64, out: &Path) -> Result<()> {
    let disk = format!("{}-disk1.vmdk", vm.name);
    let ovf_name = format!("{}.ovf", vm.name);
    let descriptor = ovf(vm, &disk, stream_vmdk.len() as u64, capacity);
    let mf = format!(
        "SHA256({ovf_name})= {}\nSHA256({disk})= {}\n",
        sha256_hex(descriptor.as_bytes()),
        sha256_hex(stream_vmdk)
    );
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in
        [(ovf_name.as_str(), descriptor.as_bytes()), (&format!("{}.mf", vm.name), mf.as_bytes()), (&disk, stream_vmdk)]
    {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, data).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let bytes = tar.into_inner().with_context(|| format!("cannot write {}", out.display()))?;
    crate::build::write_atomic(
        out,
        &bytes,
        &<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(nic: Option<Nic>) -> Vm<'static> {
        Vm { name: "hello", memory_mib: 16, firmware: Firmware::Efi, nic, disk: "hello.vmdk" }
    }

    #[test]
    fn vmx_has_the_keys_vmware_documents() {
        let text = vmx(&vm(Some(Nic::Vmxnet3)));
        let keys: std::collections::BTreeMap<&str, &str> = text
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(" = ").unwrap();
                (k, v.strip_prefix('"').unwrap().strip_suffix('"').unwrap())
            })
            .collect();
        for (k, v) in [
            ("guestOS", "other-64"),
            ("firmware", "efi"),
            ("memsize", "16"),
            ("scsi0.virtualDev", "pvscsi"),
            ("scsi0:0.fileName", "hello.vmdk"),
            ("ethernet0.virtualDev", "vmxnet3"),
            ("serial0.fileType", "file"),
            ("serial0.fileName", "hello.serial.log"),
        ] {
            assert_eq!(keys.get(k), Some(&v), "{k}");
        }
        assert!(!vmx(&vm(None)).contains("ethernet0"));
        assert_eq!(quote_vmx("a\"b|c"), "a|22b|7Cc");
        assert_eq!((vmware_memory(1), vmware_memory(16 << 20), vmware_memory(17 << 20)), (4, 16, 20));
    }

    #[test]
    fn ova_holds_descriptor_manifest_and_disk_with_matching_sums() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hello.ova");
        let disk = b"KDMV fake stream".repeat(100);
        ova(&vm(Some(Nic::E1000)), &disk, 1 << 20, &out).unwrap();
        let mut a = tar::Archive::new(std::fs::File::open(&out).unwrap());
        let mut files = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            files.push((e.path().unwrap().to_string_lossy().into_owned(), data));
        }
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, ["hello.ovf", "hello.mf", "hello-disk1.vmdk"]);
        let mf = String::from_utf8(files[1].1.clone()).unwrap();
        for (name, data) in [&files[0], &files[2]] {
            assert!(mf.contains(&format!("SHA256({name})= {}", sha256_hex(data))), "{mf}");
        }
        let ovf = String::from_utf8(files[0].1.clone()).unwrap();
        assert!(ovf.contains(&format!("ovf:size=\"{}\"", disk.len())));
        assert!(ovf.contains("<rasd:ResourceSubType>E1000</rasd:ResourceSubType>"));
        assert!(ovf.contains("ovf:capacity=\"1048576\""));
    }
}
