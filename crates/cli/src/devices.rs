//! Devices a run attaches: network (`-p`, `--net`, `--ip`), disks
//! (`--disk`) and the root file system (`--rootfs`), checked up front.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The address QEMU's user-mode network gives the guest, and its gateway.
pub const USER_NET_IP: &str = "10.0.2.15/24:10.0.2.2";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Net {
    /// QEMU user-mode networking (slirp), with `-p` forwards on 127.0.0.1.
    User,
    /// An existing tap interface.
    Tap(String),
}

/// The controller `--disk` images hang off (qemu q35 only offers a choice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DiskBus {
    /// One virtio-blk device per disk.
    #[default]
    Virtio,
    /// One VMware PVSCSI adapter, a SCSI disk per `--disk` at targets 0, 1, ...
    Pvscsi,
}

/// The NIC model a q35 guest gets (`--nic`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Nic {
    #[default]
    Virtio,
    /// VMware's paravirtual NIC.
    Vmxnet3,
    /// Intel 82540EM.
    E1000,
    /// Intel 82574L.
    E1000e,
    /// DEC 21143 (QEMU `tulip`), like Hyper-V generation 1's legacy network adapter.
    Tulip,
}

impl Nic {
    /// QEMU's `-device` for it on a PCI machine.
    pub fn qemu_pci_device(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio-net-pci",
            Nic::Vmxnet3 => "vmxnet3",
            Nic::E1000 => "e1000",
            Nic::E1000e => "e1000e",
            Nic::Tulip => "tulip",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Nic::Virtio => "virtio",
            Nic::Vmxnet3 => "vmxnet3",
            Nic::E1000 => "e1000",
            Nic::E1000e => "e1000e",
            Nic::Tulip => "tulip",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    /// TCP forwards from 127.0.0.1:HOST to the guest's GUEST port.
    pub publish: Vec<(u16, u16)>,
    pub net: Option<Net>,
    /// The NIC model (`--nic`; anything but virtio only on qemu q35).
    pub nic: Nic,
    /// Guest address as `ADDR/PREFIX[:GATEWAY]` or `dhcp`.
    pub ip: Option<String>,
    pub disks: Vec<PathBuf>,
    pub disk_bus: DiskBus,
    pub rootfs: Option<PathBuf>,
    /// A file the initrd carries beside the rootfs (`--exec FILE` outside
    /// it): its path in the guest (relative to `/`) and on the host.
    pub initrd_file: Option<(String, PathBuf)>,
}

fn port(s: &str, what: &str, spec: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bail!("-p {spec}: {what} port must be a number from 1 to 65535"),
    }
}

/// `HOST:GUEST` (optionally with a `/tcp` suffix).
pub fn parse_publish(spec: &str) -> Result<(u16, u16)> {
    let s = spec.strip_suffix("/tcp").unwrap_or(spec);
    if s.ends_with("/udp") {
        bail!("-p {spec}: only TCP ports can be forwarded");
    }
    let Some((h, g)) = s.split_once(':') else { bail!("-p {spec}: expected HOSTPORT:GUESTPORT, e.g. -p 8080:80") };
    Ok((port(h, "host", spec)?, port(g, "guest", spec)?))
}

pub fn parse_net(spec: &str) -> Result<Net> {
    match spec.split_once(':') {
        _ if spec == "user" => Ok(Net::User),
        Some(("tap", name)) if !name.is_empty() && name.len() < 16 && !name.contains(['/', ' ', ',', '=']) => {
            Ok(Net::Tap(name.into()))
        }
        Some(("tap", _)) => {
            bail!("--net {spec}: tap interface names are 1 to 15 characters without '/', ',', '=' or spaces")
        }
        _ => bail!("--net {spec}: expected `user` or `tap:NAME`"),
    }
}

/// Checks `ADDR/PREFIX[:GATEWAY]` or `dhcp` (the guest parses it again).
pub fn parse_ip(spec: &str) -> Result<String> {
    if spec == "dhcp" {
        return Ok(spec.into());
    }
    let ipv4 = |s: &str| s.parse::<std::net::Ipv4Addr>().is_ok();
    let (cidr, gw) = match spec.split_once(':') {
        Some((c, g)) => (c, Some(g)),
        None => (spec, None),
    };
    let ok = match cidr.split_once('/') {
        Some((a, p)) => ipv4(a) && p.parse::<u8>().is_ok_and(|p| p <= 32),
        None => false,
    };
    if !ok || gw.is_some_and(|g| !ipv4(g)) {
        bail!("--ip {spec}: expected ADDR/PREFIX[:GATEWAY], e.g. 10.0.0.2/24:10.0.0.1, or dhcp");
    }
    Ok(spec.into())
}

impl Devices {
    /// Validates the combination and the files; call before building.
    pub fn check(&mut self) -> Result<()> {
        if !self.publish.is_empty() {
            match &self.net {
                None => self.net = Some(Net::User),
                Some(Net::User) => {}
                Some(Net::Tap(_)) => bail!(
                    "-p forwards ports through QEMU's user-mode network; with --net tap:NAME, reach the guest at its own address"
                ),
            }
        }
        if self.net == Some(Net::User) && self.ip.is_none() {
            self.ip = Some(USER_NET_IP.into());
        }
        // What would make the VMM refuse to start, checked here where it is
        // cheap, so that the user reads why (issue 11.4).
        check_publish_once(&self.publish)?;
        check_publish_free(&self.publish)?;
        let mut seen: Vec<(u64, u64, &PathBuf)> = Vec::new();
        for d in &self.disks {
            let m = std::fs::metadata(d).with_context(|| format!("--disk {}", d.display()))?;
            if !m.is_file() {
                bail!("--disk {}: not a regular file (create one with e.g. `truncate -s 64M disk.img`)", d.display());
            }
            if m.len() < 512 {
                bail!("--disk {}: smaller than one 512-byte sector", d.display());
            }
            use std::os::unix::fs::MetadataExt;
            if let Some((_, _, first)) = seen.iter().find(|(dev, ino, _)| (*dev, *ino) == (m.dev(), m.ino())) {
                bail!(
                    "--disk {}: the same disk is already attached (as --disk {}); a disk image can be attached once",
                    d.display(),
                    first.display()
                );
            }
            seen.push((m.dev(), m.ino(), d));
        }
        Ok(())
    }

    /// `--net tap:NAME` names an interface that exists but is no tap (e.g.
    /// `lo`): QEMU would fail to open it and stop before the guest runs.
    pub fn check_tap(&self) -> Result<()> {
        if let Some(Net::Tap(name)) = &self.net {
            let dev = Path::new("/sys/class/net").join(name);
            // A tun/tap device has `tun_flags`; any other interface cannot be opened as a tap.
            if dev.exists() && !dev.join("tun_flags").exists() {
                return Err(crate::error::hinted(
                    format!("--net tap:{name}: '{name}' is a network interface but not a tap device"),
                    "create a tap, e.g. `sudo ip tuntap add dev tap0 mode tap user $USER && sudo ip link set tap0 up`, and pass --net tap:tap0",
                ));
            }
        }
        Ok(())
    }

    /// Kernel options for the guest (network address).
    pub fn kernel_args(&self) -> Vec<String> {
        self.ip.iter().map(|ip| format!("netdev.ip={ip}")).collect()
    }

    /// The initrd (`--rootfs` and the `--exec` program), streamed into
    /// `dest`, at most `limit` bytes (the guest's memory: a larger one
    /// cannot be loaded); `None` when there is nothing to carry.
    pub fn initrd(&self, dest: &Path, limit: u64) -> Result<Option<PathBuf>> {
        if self.rootfs.is_none() && self.initrd_file.is_none() {
            return Ok(None);
        }
        let out_dir = dest.parent().unwrap_or(Path::new("."));
        let out_dir = if out_dir.as_os_str().is_empty() { Path::new(".") } else { out_dir };
        std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let tmp = out_dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        let extra = self.initrd_file.as_ref().map(|(rel, host)| (rel.as_str(), host.as_path()));
        let packed = crate::cpio::pack_with(self.rootfs.as_deref(), extra, &mut w, limit)
            .and_then(|r| std::io::Write::flush(&mut w).map(|()| r).context("cannot write the rootfs archive"));
        let skipped = match packed {
            Ok((_, skipped)) => skipped,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let (false, Some(dir)) = (skipped.is_empty(), &self.rootfs) {
            crate::error::warn(format!(
                "--rootfs {}: left out {} special file(s) an initrd cannot carry (FIFOs, sockets, device nodes): {}",
                dir.display(),
                skipped.len(),
                skipped.join(", ")
            ));
        }
        std::fs::rename(&tmp, dest).with_context(|| format!("cannot write {}", dest.display()))?;
        Ok(Some(dest.to_path_buf()))
    }
}

/// Each host port of `-p` free now (checked before the build; the VMM or
/// our relay binds it later).
pub fn check_publish_free(publish: &[(u16, u16)]) -> Result<()> {
    for &(host, guest) in publish {
        if let Err(e) = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, host)) {
            return Err(crate::error::hinted(
                format!("-p {host}:{guest}: cannot listen on 127.0.0.1:{host}: {e}"),
                "another program (or another unikit run) holds that port: pick another host port",
            ));
        }
    }
    Ok(())
}

/// Each host port of `-p` once (the VMM, or our relay, could bind it only once).
pub fn check_publish_once(publish: &[(u16, u16)]) -> Result<()> {
    for (i, &(host, guest)) in publish.iter().enumerate() {
        if let Some(&(_, other)) = publish[..i].iter().find(|&&(h, _)| h == host) {
            bail!(
                "-p {host}:{guest}: host port {host} is already published (as -p {host}:{other}); give each host port once"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_port_is_published_once() {
        check_publish_once(&[(8080, 80), (8081, 80)]).unwrap();
        let e = check_publish_once(&[(8080, 80), (9000, 1), (8080, 81)]).unwrap_err().to_string();
        assert_eq!(e, "-p 8080:81: host port 8080 is already published (as -p 8080:80); give each host port once");
    }

    #[test]
    fn publish_specs() {
        assert_eq!(parse_publish("8080:80").unwrap(), (8080, 80));
        assert_eq!(parse_publish("8080:80/tcp").unwrap(), (8080, 80));
        for bad in ["80", "0:80", "8080:0", "x:80", "8080:99999", "8080:80/udp", ":"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn net_and_ip_specs() {
        assert_eq!(parse_net("tap:tap0").unwrap(), Net::Tap("tap0".into()));
        assert_eq!(parse_net("user").unwrap(), Net::User);
        for bad in ["tap:", "tap:a/b", "tap:0123456789abcdef", "bridge:br0", "tap"] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
        assert!(parse_ip("10.0.0.2/24:10.0.0.1").is_ok());
        assert!(parse_ip("10.0.0.2/24").is_ok());
        assert!(parse_ip("dhcp").is_ok());
        for bad in ["10.0.0.2", "10.0.0.2/33", "10.0.0/24", "10.0.0.2/24:gw", "x"] {
            assert!(parse_ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn publish_implies_user_network_and_its_address() {
        let mut d = Devices { publish: vec![(8080, 80)], ..Default::default() };
        d.check().unwrap();
        assert_eq!(d.net, Some(Net::User));
        assert_eq!(d.kernel_args(), ["netdev.ip=10.0.2.15/24:10.0.2.2"]);
        let mut d = Devices { publish: vec![(1, 2)], net: Some(Net::Tap("t".into())), ..Default::default() };
        assert!(d.check().is_err());
    }

    #[test]
    fn disks_must_be_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Devices { disks: vec![dir.path().into()], ..Default::default() };
        assert!(d.check().unwrap_err().to_string().contains("not a regular file"));
        let mut d = Devices { disks: vec![dir.path().join("missing.img")], ..Default::default() };
        assert!(d.check().is_err());
        let f = dir.path().join("d.img");
        std::fs::write(&f, vec![0u8; 1024]).unwrap();
        let mut d = Devices { disks: vec![f], ..Default::default() };
        d.check().unwrap();
    }
}
