//! `--hyperv-only`: the hyperv platform in its QEMU test beds (QEMU shaped
//! like a Hyper-V generation 1 or 2 VM): image sizes, boot time in both
//! shapes, httpd req/s over the generation 1 legacy NIC (DEC 21140, QEMU
//! `tulip`) against virtio-net. TCG only, as for VMware.
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::net;
use crate::vmware::{boot_ms, size};

pub const HEADING: &str = "## Hyper-V (--plat hyperv, in QEMU shaped like Hyper-V)";

pub fn run(repo: &Path, unikit: &Path) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "{HEADING}\n\nNothing here ran on Hyper-V or Azure: QEMU imitates the generations' devices and firmware (VMBus cannot be offered here). TCG; medians of 5 runs.\n"
    );
    let out = std::env::temp_dir().join(format!("unikit-bench-hyperv-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&out);
    let built = Command::new(unikit)
        .args(["build", "-q", "--plat", "hyperv", "-C"])
        .arg(repo.join("examples/hello"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        let _ = writeln!(r, "(not measured: `unikit build --plat hyperv` failed)");
        return r;
    }
    let base = out.join("hello_hyperv-x86_64");
    let with = |ext: &str| format!("{}{ext}", base.display());
    let _ = writeln!(r, "### Images (examples/hello)\n\n| file | size |\n|---|---|");
    let _ = writeln!(
        r,
        "| VHDX, dynamic (file size; blocks not written take no room) | {} |",
        size(Path::new(&with(".vhdx")))
    );
    let _ =
        writeln!(r, "| VHD, fixed, for Azure (the whole disk plus a footer) | {} |\n", size(Path::new(&with(".vhd"))));

    let drive = format!("file={},if=none,id=boot,format=vhdx,snapshot=on", with(".vhdx"));
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
        "-m",
        "64M",
    ];
    let boot = ["-drive", drive.as_str(), "-device", "ide-hd,bus=ide.0,unit=0,drive=boot,bootindex=0"];
    let mut gen1: Vec<&str> = vec!["-M", "pc,vmport=off"];
    gen1.extend(common);
    gen1.extend(boot);
    let mut gen2: Vec<&str> = vec!["-M", "q35,vmport=off", "-bios", "/usr/share/ovmf/OVMF.fd"];
    gen2.extend(common);
    gen2.extend(boot);
    let cell = |v: Option<f64>| v.map_or("failed".to_string(), |ms| format!("{ms:.0}"));
    let _ = writeln!(r, "### Boot: QEMU start to power-off (hello exits at once)\n\n| shape | ms |\n|---|---|");
    let _ = writeln!(r, "| generation 1: pc, SeaBIOS, our BIOS loader from IDE | {} |", cell(boot_ms(&gen1)));
    let _ = writeln!(r, "| generation 2: q35, OVMF, our UEFI loader from SATA | {} |\n", cell(boot_ms(&gen2)));
    let _ = std::fs::remove_dir_all(&out);

    let _ = writeln!(
        r,
        "### httpd over the generation 1 legacy NIC (tulip) against virtio-net (same QEMU, TCG, user net, wrk -t2 -c16)\n"
    );
    let Some(www) = net::bench_www() else {
        let _ = writeln!(r, "(not measured: no page to serve)");
        return r;
    };
    let _ = writeln!(
        r,
        "| server | keep-alive req/s | p50 | p99 | one request per connection, req/s | p50 | p99 |\n|---|---|---|---|---|---|---|"
    );
    let c = |w: Option<net::Wrk>| match w {
        Some(w) => format!("{:.0} | {:.0} us | {:.0} us", w.rps, w.p50_us, w.p99_us),
        None => "- | - | -".into(),
    };
    let port = net::free_port();
    let mut cmd = Command::new(unikit);
    cmd.args(["run", "-q", "-C"])
        .arg(repo.join("examples/httpd"))
        .args([
            "--plat",
            "hyperv",
            "--testbed",
            "--gen",
            "1",
            "--accel",
            "tcg",
            "-p",
            &format!("{port}:80"),
            "--rootfs",
        ])
        .arg(&www);
    let rows = [
        ("unikit httpd, Hyper-V generation 1 shape, tulip", net::server("tulip".into(), &mut cmd, port, 300)),
        ("unikit httpd, QEMU q35, virtio-net", net::unikit_qemu(repo, unikit, &www, "tcg")),
    ];
    for (name, s) in rows {
        match s {
            Some(s) => {
                let (ka, close) = (net::wrk(&s, false), net::wrk(&s, true));
                let _ = writeln!(r, "| {name} | {} | {} |", c(ka), c(close));
            }
            None => {
                let _ = writeln!(r, "| {name} | did not start | | | | | |");
            }
        }
    }
    r
}
