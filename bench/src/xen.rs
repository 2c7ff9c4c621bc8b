//! Xen: guest boot time and HTTP throughput in the Xen test bed (`unikit
//! run --xen-testbed`: Xen 4.17 and a Debian dom0 under QEMU TCG). Every
//! figure here includes TCG emulating the whole host, so it compares
//! guests in the same bed, not Xen with other hypervisors.
use crate::net::{self, Server};
use crate::{boot_ns, fmt_us, median};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const BOOT_RUNS: usize = 5;
/// wrk duration and per-request timeout in the bed: a Linux PV guest forks
/// per request, and fork (page-table hypercalls) is slow under TCG.
const WRK_SECONDS: u32 = 10;
const WRK_TIMEOUT: u32 = 30;

/// Boots `image` in the bed (guest type `ty`) with `cmdline`; returns the
/// console and the host wall time of the whole bed (Xen, dom0, guest).
fn boot(unikit: &Path, image: &Path, ty: &str, cmdline: &str) -> (String, u64) {
    let t0 = Instant::now();
    let out = Command::new(unikit)
        .args(["xen-testbed", "-m", "16M", "--xen-type", ty])
        .arg(image)
        .arg("--")
        .args(cmdline.split_whitespace())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let wall = t0.elapsed().as_nanos() as u64;
    (out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default(), wall)
}

pub fn run(repo: &Path, unikit: &Path, with_net: bool) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "\n## Xen (test bed: real Xen 4.17 + Debian dom0 under QEMU TCG)\n");
    let st =
        Command::new(unikit).args(["build", "-q", "--plat", "xen", "-C"]).arg(repo.join("examples/hello")).status();
    if !st.is_ok_and(|s| s.success()) {
        let _ = writeln!(r, "Skipped: building hello for xen failed.");
        return r;
    }
    let image = repo.join("examples/hello/build/hello_xen-x86_64");
    let _ = writeln!(
        r,
        "Guest boot = first instruction of the Xen entry (PV: `xen_pv_start`; PVH: the PVH entry) -> first line of `main`, TSC converted with Xen's pvclock, from `unikit.bootstats`; medians of {BOOT_RUNS} runs, 16 MiB guest. \"bed wall\" is the host time of one whole `unikit xen-testbed` run (QEMU, Xen and dom0 boot, `xl create`, the guest, power-off).\n"
    );
    let _ = writeln!(
        r,
        "| guest | guest boot (median) | min .. max | bed wall (median) | failed runs |\n|---|---|---|---|---|"
    );
    for ty in ["pv", "pvh"] {
        eprintln!("bench: xen {ty} boots ...");
        let (mut boots, mut walls, mut failed) = (vec![], vec![], 0);
        for _ in 0..BOOT_RUNS {
            let (out, wall) = boot(unikit, &image, ty, "unikit.quiet unikit.bootstats --");
            walls.push(wall);
            match boot_ns(&out) {
                Some(b) => boots.push(b),
                None => failed += 1,
            }
        }
        let (lo, hi) = (boots.iter().min().copied(), boots.iter().max().copied());
        let _ = writeln!(
            r,
            "| unikit hello, Xen {} | {} | {} .. {} | {} | {failed} |",
            ty.to_uppercase(),
            fmt_us(median(&boots)),
            fmt_us(lo),
            fmt_us(hi),
            fmt_us(median(&walls))
        );
    }
    if !with_net {
        return r;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        let _ = writeln!(r, "\nHTTP on Xen skipped: `wrk` is not installed.");
        return r;
    }
    // One bed at a time: each is a whole emulated machine on this host's cores.
    eprintln!("bench: xen httpd ...");
    let mut rows = vec![];
    let port = net::free_port();
    let unikit_srv = net::server(
        "unikit httpd, Xen PV".into(),
        Command::new(unikit)
            .args(["run", "-q", "-C"])
            .arg(repo.join("examples/httpd"))
            .args(["--xen-testbed", "-p", &format!("{port}:80"), "--rootfs"])
            .arg(repo.join("examples/httpd/www")),
        port,
        300,
    );
    rows.push(measure("unikit httpd, Xen PV", unikit_srv));
    let linux = net::linux_guest_files(repo).and_then(|(kernel, initrd)| {
        let port = net::free_port();
        net::server(
            "Linux PV guest (Debian 6.1 kernel, busybox httpd)".into(),
            Command::new(unikit)
                .args(["xen-testbed", "-m", "256M", "--ramdisk", &initrd, "-p", &format!("{port}:80"), &kernel, "--"])
                .args(["console=hvc0", "quiet", "guest_ip=10.0.0.2/24", "guest_gw=10.0.0.1"]),
            port,
            300,
        )
    });
    rows.push(measure("Linux PV guest (Debian 6.1 kernel, busybox httpd), same bed", linux));
    let _ = writeln!(
        r,
        "\n`wrk -t2 -c16 -d{WRK_SECONDS}s --timeout={WRK_TIMEOUT}s` from the host through the bed's port forward: QEMU user networking to dom0, a busybox `nc -ll -e nc` relay in dom0 (a process per connection), the bridge, netback, and the guest's netfront. Median of {} rounds; requests/s. busybox httpd closes every connection, so for it both columns are one request per connection.\n",
        net::ROUNDS
    );
    let _ = writeln!(r, "| server | keep-alive req/s | close req/s |\n|---|---|---|");
    let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "failed".into());
    for (name, k, c) in &rows {
        let _ = writeln!(r, "| {name} | {} | {} |", f(*k), f(*c));
    }
    if let (Some((_, _, Some(uc))), Some((_, _, Some(lc)))) = (rows.first(), rows.get(1)) {
        if *lc > 0.0 {
            let _ = writeln!(
                r,
                "\nSame bed, same path, one request per connection: unikit serves **{:.1}x** the Linux PV guest's requests/s.",
                uc / lc
            );
        } else {
            let _ = writeln!(
                r,
                "\nThe Linux PV guest completed no request within {WRK_TIMEOUT} s in the one-request-per-connection run."
            );
        }
    }
    let _ = writeln!(
        r,
        "The dom0 relay forks a process per connection under TCG, which bounds every column here; these numbers compare guests in this bed and say nothing about Xen on hardware."
    );
    r
}

fn measure(name: &str, server: Option<Server>) -> (String, Option<f64>, Option<f64>) {
    let Some(s) = server else {
        return (name.to_string(), None, None);
    };
    let (mut keep, mut close) = (vec![], vec![]);
    for _ in 0..net::ROUNDS {
        keep.extend(net::wrk_with(&s, false, WRK_SECONDS, WRK_TIMEOUT));
        close.extend(net::wrk_with(&s, true, WRK_SECONDS, WRK_TIMEOUT));
    }
    (name.to_string(), net::median(&mut keep), net::median(&mut close))
}
