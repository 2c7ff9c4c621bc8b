//! The xl domain configuration file for one guest (`xl create CFG`).
//!
//! Facts about xl's format this relies on (xen.git tools/libs/util and
//! docs/man/xl.cfg.5.pod.in, xl-disk-configuration.5, xl-network-configuration.5):
//! - Settings are `key = value`; strings are double-quoted, and inside them
//!   `\\` and `\"` stand for a backslash and a quote. Lists are `[ 'a', 'b' ]`.
//!   A newline or other control character cannot appear in a string, so such
//!   values are refused here rather than mangled.
//! - `memory` is in MiB (an integer); `maxmem` defaults to it.
//! - A disk is a comma-separated `key=value` spec whose `target=` must come
//!   last and takes the rest of the string (commas included).
//! - A vif spec is comma-separated `key=value` pairs: no value may contain a
//!   comma or `=`.
//! - `on_poweroff`/`on_reboot`/`on_crash = "destroy"`: the domain is gone
//!   when the guest stops, so `xl create -c` returns (a unikit guest stops by
//!   shutting its domain down; a reboot or crash is also the end of the run).

use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::memory::Memory;

/// Smallest guest memory the config accepts, in MiB. Xen's PV domain
/// builder puts the image, its initial page tables, the P2M list,
/// start_info and the xenstore and console rings into the guest's memory,
/// and maps the initial region in 4 MiB steps: measured on the test bed,
/// hello boots with 4 MiB, while 2 MiB fails in libxc with "count_pgtables:
/// not enough memory for initial mapping".
pub const MIN_MIB: u64 = 4;

/// The guest's virtualization mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestType {
    /// Paravirtualized: runs without hardware virtualization.
    Pv,
    /// PVH: an HVM container with PV interfaces; needs VT-x/AMD-V (in the
    /// test bed, QEMU's TCG emulates AMD-V for Xen).
    Pvh,
}

impl GuestType {
    pub fn name(self) -> &'static str {
        match self {
            GuestType::Pv => "pv",
            GuestType::Pvh => "pvh",
        }
    }
}

/// A network interface: the backend bridge and the hotplug script that
/// attaches the vif to it (None: libxl's default `vif-bridge`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vif {
    pub mac: String,
    pub bridge: String,
    pub script: Option<String>,
}

/// A disk: a dom0 path (block device or file) exposed as xvdX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    pub target: String,
    /// Hotplug script (None: libxl's default `block`).
    pub script: Option<String>,
}

/// Everything the generated file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    pub name: String,
    pub guest_type: GuestType,
    pub kernel: String,
    pub ramdisk: Option<String>,
    pub memory_mib: u64,
    pub cmdline: String,
    pub vifs: Vec<Vif>,
    pub disks: Vec<Disk>,
}

/// Guest memory in whole MiB (xl's unit), rounded up; `true` when rounding
/// changed the size. Refuses less than [`MIN_MIB`].
pub fn memory_mib(memory: Memory) -> Result<(u64, bool)> {
    let mib = memory.bytes().div_ceil(1 << 20);
    if mib < MIN_MIB {
        bail!(
            "-m {memory}: a Xen guest needs at least {MIN_MIB} MiB (Xen's domain builder puts page tables, the P2M list and the console and xenstore rings into guest memory)"
        );
    }
    Ok((mib, !memory.bytes().is_multiple_of(1 << 20)))
}

/// A domain name xl accepts and `xl list` shows readably: the image name
/// with anything but letters, digits, `-`, `_` and `.` replaced by `-`.
pub fn domain_name(image: &str, unique: u32) -> String {
    let clean: String = image
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    format!("unikit-{clean}-{unique}")
}

/// `value` as an xl string literal. `what` names the setting in errors.
pub fn quote(what: &str, value: &str) -> Result<String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!("{what}: the character {c:?} cannot be written into an xl config file");
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// One value inside a comma-separated device spec (vif): no `,` or `=`.
fn spec_value(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.contains([',', '=']) {
        bail!("{what} '{value}': must be non-empty, without ',' or '=' (xl device specs separate keys with them)");
    }
    Ok(())
}

impl DomainConfig {
    /// The text of the xl config file.
    pub fn render(&self) -> Result<String> {
        let mut s = String::new();
        let mut line = |k: &str, v: String| {
            let _ = writeln!(s, "{k} = {v}");
        };
        if self.name.is_empty() {
            bail!("the domain name is empty");
        }
        line("name", quote("domain name", &self.name)?);
        line("type", quote("type", self.guest_type.name())?);
        line("kernel", quote("kernel path", &self.kernel)?);
        if let Some(rd) = &self.ramdisk {
            line("ramdisk", quote("ramdisk path", rd)?);
        }
        if self.memory_mib < MIN_MIB {
            bail!("memory = {} MiB: a Xen guest needs at least {MIN_MIB} MiB", self.memory_mib);
        }
        line("memory", self.memory_mib.to_string());
        line("vcpus", "1".into());
        line("cmdline", quote("kernel command line", &self.cmdline)?);
        for k in ["on_poweroff", "on_reboot", "on_crash"] {
            line(k, "\"destroy\"".into());
        }
        if !self.vifs.is_empty() {
            let mut specs = Vec::new();
            for v in &self.vifs {
                spec_value("vif mac", &v.mac)?;
                spec_value("vif bridge", &v.bridge)?;
                let mut spec = format!("mac={},bridge={}", v.mac, v.bridge);
                if let Some(script) = &v.script {
                    spec_value("vif script", script)?;
                    spec.push_str(&format!(",script={script}"));
                }
                specs.push(quote("vif", &spec)?);
            }
            line("vif", format!("[ {} ]", specs.join(", ")));
        }
        if !self.disks.is_empty() {
            let mut specs = Vec::new();
            for (i, d) in self.disks.iter().enumerate() {
                let Some(vdev) = xvd_name(i) else {
                    bail!("too many disks ({}): xl names them xvda..xvdz here", self.disks.len());
                };
                if d.target.is_empty() {
                    bail!("disk {i}: empty target path");
                }
                let mut spec = format!("format=raw,vdev={vdev},access=rw");
                if let Some(script) = &d.script {
                    spec_value("disk script", script)?;
                    spec.push_str(&format!(",script={script}"));
                }
                // target= last: it takes the rest of the spec, commas included.
                spec.push_str(&format!(",target={}", d.target));
                specs.push(quote("disk", &spec)?);
            }
            line("disk", format!("[ {} ]", specs.join(", ")));
        }
        Ok(s)
    }
}

/// `xvda`..`xvdz` for disk 0..25.
pub fn xvd_name(i: usize) -> Option<String> {
    let c = u8::try_from(i).ok().filter(|&i| i < 26)?;
    Some(format!("xvd{}", (b'a' + c) as char))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> DomainConfig {
        DomainConfig {
            name: "unikit-hello-42".into(),
            guest_type: GuestType::Pv,
            kernel: "/p/build/hello_xen-x86_64".into(),
            ramdisk: None,
            memory_mib: 16,
            cmdline: "unikit.quiet -- --exit 3".into(),
            vifs: vec![],
            disks: vec![],
        }
    }

    #[test]
    fn minimal_file() {
        assert_eq!(
            basic().render().unwrap(),
            "name = \"unikit-hello-42\"\n\
             type = \"pv\"\n\
             kernel = \"/p/build/hello_xen-x86_64\"\n\
             memory = 16\n\
             vcpus = 1\n\
             cmdline = \"unikit.quiet -- --exit 3\"\n\
             on_poweroff = \"destroy\"\n\
             on_reboot = \"destroy\"\n\
             on_crash = \"destroy\"\n"
        );
    }

    #[test]
    fn pvh_ramdisk_network_and_disks() {
        let mut c = basic();
        c.guest_type = GuestType::Pvh;
        c.ramdisk = Some("/unikit/rootfs.cpio".into());
        c.vifs = vec![Vif {
            mac: "06:00:00:00:00:2a".into(),
            bridge: "xenbr0".into(),
            script: Some("/etc/xen/scripts/unikit-vif".into()),
        }];
        c.disks = vec![
            Disk { target: "/dev/vda".into(), script: Some("/etc/xen/scripts/unikit-block".into()) },
            Disk { target: "/srv/a,b.img".into(), script: None },
        ];
        let text = c.render().unwrap();
        assert!(text.contains("type = \"pvh\"\n"), "{text}");
        assert!(text.contains("ramdisk = \"/unikit/rootfs.cpio\"\n"), "{text}");
        assert!(
            text.contains("vif = [ \"mac=06:00:00:00:00:2a,bridge=xenbr0,script=/etc/xen/scripts/unikit-vif\" ]\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "disk = [ \"format=raw,vdev=xvda,access=rw,script=/etc/xen/scripts/unikit-block,target=/dev/vda\", \
                 \"format=raw,vdev=xvdb,access=rw,target=/srv/a,b.img\" ]\n"
            ),
            "{text}"
        );
        let mut c = basic();
        c.vifs = vec![Vif { mac: "06:00:00:00:00:01".into(), bridge: "xenbr0".into(), script: None }];
        assert!(c.render().unwrap().contains("vif = [ \"mac=06:00:00:00:00:01,bridge=xenbr0\" ]\n"));
    }

    #[test]
    fn strings_are_escaped() {
        let mut c = basic();
        c.cmdline = r#"A="x y" -- "two words" c:\dir"#.into();
        let text = c.render().unwrap();
        assert!(text.contains(r#"cmdline = "A=\"x y\" -- \"two words\" c:\\dir""#), "{text}");
        assert_eq!(quote("x", "é").unwrap(), "\"é\"");
        assert_eq!(quote("x", "").unwrap(), "\"\"");
    }

    #[test]
    fn inexpressible_values_are_refused() {
        let mut c = basic();
        c.cmdline = "a\nb".into();
        let e = c.render().unwrap_err().to_string();
        assert!(e.contains("kernel command line") && e.contains("'\\n'"), "{e}");
        let mut c = basic();
        c.kernel = "/tmp/x\u{7f}".into();
        assert!(c.render().is_err());
        let mut c = basic();
        c.vifs = vec![Vif { mac: "06:00:00:00:00:01".into(), bridge: "br,0".into(), script: None }];
        assert!(c.render().unwrap_err().to_string().contains("vif bridge 'br,0'"));
        let mut c = basic();
        c.disks = vec![Disk { target: "/d".into(), script: Some("a=b".into()) }];
        assert!(c.render().is_err());
        let mut c = basic();
        c.disks = (0..27).map(|i| Disk { target: format!("/d{i}"), script: None }).collect();
        assert!(c.render().unwrap_err().to_string().contains("too many disks"));
        let mut c = basic();
        c.memory_mib = 3;
        assert!(c.render().is_err());
        let mut c = basic();
        c.name = String::new();
        assert!(c.render().is_err());
    }

    #[test]
    fn memory_rounding_and_floor() {
        let m = |s| memory_mib(Memory::parse(s).unwrap());
        assert_eq!(m("16M").unwrap(), (16, false));
        assert_eq!(m("4M").unwrap(), (4, false));
        assert_eq!(m("4100K").unwrap(), (5, true));
        assert_eq!(m("1G").unwrap(), (1024, false));
        let e = m("3M").unwrap_err().to_string();
        assert!(e.starts_with("-m 3M: a Xen guest needs at least 4 MiB"), "{e}");
        assert!(m("1536K").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(domain_name("hello", 7), "unikit-hello-7");
        assert_eq!(domain_name("my app/x", 1), "unikit-my-app-x-1");
        assert_eq!(xvd_name(0).as_deref(), Some("xvda"));
        assert_eq!(xvd_name(25).as_deref(), Some("xvdz"));
        assert_eq!(xvd_name(26), None);
    }
}
