//! `--vmware-only`: the vmware platform in its QEMU test bed (QEMU shaped
//! like VMware: `-M pc,vmport=on`, PVSCSI, vmxnet3/e1000), side by side with
//! the same kernel on QEMU q35 from `-kernel`: image sizes, boot time under
//! both firmware kinds, and httpd req/s over vmxnet3 and e1000 against
//! virtio-net. TCG only: OVMF cannot run under this host's kvm_pvm, and
//! kvm_pvm timings say nothing about hardware KVM.
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::net;

pub const HEADING: &str = "## VMware (--plat vmware, in QEMU shaped like VMware)";
const ROUNDS: usize = 5;

/// Milliseconds from QEMU's start to its exit (the guest's ACPI power-off
/// or isa-debug-exit), median of `ROUNDS`; None if a run failed.
pub fn boot_ms(args: &[&str]) -> Option<f64> {
    let mut v = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        let o = Command::new("qemu-system-x86_64").args(args).stdin(Stdio::null()).output().ok()?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if !String::from_utf8_lossy(&o.stdout).contains("_unikit:exit=0") {
            return None;
        }
        v.push(ms);
    }
    net::median(&mut v)
}

pub fn size(p: &Path) -> String {
    std::fs::metadata(p).map_or("-".into(), |m| format!("{} KiB ({} bytes)", m.len().div_ceil(1024), m.len()))
}

pub fn run(repo: &Path, unikit: &Path) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "{HEADING}\n\nNothing here ran on VMware: QEMU imitates its devices and firmware. TCG; medians of {ROUNDS} runs.\n"
    );
    let out = std::env::temp_dir().join(format!("unikit-bench-vmware-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&out);
    let built = Command::new(unikit)
        .args(["build", "-q", "--plat", "vmware", "-C"])
        .arg(repo.join("examples/hello"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        let _ = writeln!(r, "(not measured: `unikit build --plat vmware` failed)");
        return r;
    }
    let base = out.join("hello_vmware-x86_64");
    let with = |ext: &str| format!("{}{ext}", base.display());
    let _ = writeln!(r, "### Images (examples/hello)\n\n| file | size |\n|---|---|");
    let _ = writeln!(r, "| kernel image (the PVH ELF every x86 platform boots) | {} |", size(&base));
    let _ = writeln!(
        r,
        "| VMDK, monolithicSparse (both loaders, the kernel, the ESP) | {} |",
        size(Path::new(&with(".vmdk")))
    );
    let _ = writeln!(r, "| OVA (OVF, streamOptimized VMDK, manifest) | {} |\n", size(Path::new(&with(".ova"))));

    let vmdk = with(".vmdk");
    let drive = format!("file={vmdk},if=none,id=boot,format=vmdk,snapshot=on");
    let common = [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        "stdio",
        "-accel",
        "tcg",
        "-cpu",
        "max",
    ];
    let mut bios: Vec<&str> = vec!["-M", "pc,vmport=on", "-m", "64M"];
    bios.extend(common);
    bios.extend([
        "-device",
        "pvscsi,id=scsi0",
        "-drive",
        &drive,
        "-device",
        "scsi-hd,bus=scsi0.0,scsi-id=0,drive=boot,bootindex=0",
    ]);
    let mut efi: Vec<&str> = vec!["-M", "pc,vmport=on", "-m", "64M", "-bios", "/usr/share/ovmf/OVMF.fd"];
    efi.extend(common);
    efi.extend(["-drive", &drive, "-device", "ide-hd,bus=ide.0,drive=boot,bootindex=0"]);
    let kernel = base.display().to_string();
    let mut direct: Vec<&str> =
        vec!["-M", "q35,vmport=off", "-m", "64M", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"];
    direct.extend(common);
    direct.extend(["-bios", "/usr/share/qemu/qboot.rom", "-kernel", &kernel, "-append", "unikit.quiet --"]);
    let _ = writeln!(r, "### Boot: QEMU start to power-off (hello exits at once)\n\n| how | ms |\n|---|---|");
    let cell = |v: Option<f64>| v.map_or("failed".to_string(), |ms| format!("{ms:.0}"));
    let b = boot_ms(&bios);
    let e = boot_ms(&efi);
    let d = boot_ms(&direct);
    let _ = writeln!(r, "| VMware shape, SeaBIOS, our BIOS loader from PVSCSI | {} |", cell(b));
    let _ = writeln!(
        r,
        "| VMware shape, OVMF, our UEFI loader (disk on IDE: Debian's OVMF has no PVSCSI driver) | {} |",
        cell(e)
    );
    let _ = writeln!(r, "| q35, qboot, `-kernel` (no disk, no loader; for scale) | {} |\n", cell(d));
    let _ = std::fs::remove_dir_all(&out);

    let _ = writeln!(r, "### httpd over the VMware NICs against virtio-net (same QEMU, TCG, user net, wrk -t2 -c16)\n");
    let Some(www) = net::bench_www() else {
        let _ = writeln!(r, "(not measured: no page to serve)");
        return r;
    };
    let _ = writeln!(
        r,
        "| server | keep-alive req/s | p50 | p99 | one request per connection, req/s | p50 | p99 |\n|---|---|---|---|---|---|---|"
    );
    let row = |name: String, s: Option<net::Server>, r: &mut String| {
        let Some(s) = s else {
            let _ = writeln!(r, "| {name} | did not start | | | | | |");
            return;
        };
        let c = |w: Option<net::Wrk>| match w {
            Some(w) => format!("{:.0} | {:.0} us | {:.0} us", w.rps, w.p50_us, w.p99_us),
            None => "- | - | -".into(),
        };
        let (ka, close) = (net::wrk(&s, false), net::wrk(&s, true));
        let _ = writeln!(r, "| {name} | {} | {} |", c(ka), c(close));
    };
    for nic in ["vmxnet3", "e1000"] {
        let port = net::free_port();
        let mut cmd = Command::new(unikit);
        cmd.args(["run", "-q", "-C"])
            .arg(repo.join("examples/httpd"))
            .args([
                "--plat",
                "vmware",
                "--testbed",
                "--accel",
                "tcg",
                "--nic",
                nic,
                "-p",
                &format!("{port}:80"),
                "--rootfs",
            ])
            .arg(&www);
        let name = format!("unikit httpd, VMware shape, {nic}");
        row(name.clone(), net::server(name, &mut cmd, port, 300), &mut r);
    }
    row("unikit httpd, QEMU q35, virtio-net".into(), net::unikit_qemu(repo, unikit, &www, "tcg"), &mut r);
    r
}
