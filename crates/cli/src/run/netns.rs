//! `-p HOST:GUEST` on Firecracker and Solo5 (hvt), which have no user-mode
//! network: the run
//! owns a network namespace `unikit-fc-<pid>` holding a tap (`tap0`,
//! 172.16.0.1/30; the guest is 172.16.0.2). Firecracker (or the tender) runs inside it
//! (`ip netns exec`), and a relay thread accepts on 127.0.0.1:HOST on the
//! host and connects to the guest from inside the namespace (`setns` on that
//! thread only), so the host's routes and firewall are never touched.
//! Dropping the [`Netns`] deletes the namespace and the tap with it; if
//! the run is killed outright (SIGKILL), a small reaper process
//! (`unikit __reap-netns`, started with the namespace) deletes it, and the
//! VMM has already gone with the run (see supervisor.rs).

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::devices::{Devices, Net};
use crate::error::hinted;

pub const TAP: &str = "tap0";
pub const HOST_CIDR: &str = "172.16.0.1/30";
pub const GUEST: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);
/// The guest's `--ip` in the namespace.
pub const GUEST_IP: &str = "172.16.0.2/30:172.16.0.1";
const PREFIX: &str = "unikit-fc-";
const NETNS_DIR: &str = "/run/netns";

/// How to make a tap by hand (for the hints).
pub fn manual_tap(plat: &str) -> String {
    format!(
        "or make a tap yourself and pass it: `sudo ip tuntap add dev fc0 mode tap user $USER && \
sudo ip addr add 172.16.0.1/30 dev fc0 && sudo ip link set fc0 up`, then \
`unikit run --plat {plat} --net tap:fc0 --ip 172.16.0.2/30:172.16.0.1` and reach the guest at 172.16.0.2"
    )
}

/// iproute2's `ip` (also where PATH lacks /usr/sbin).
fn ip_command_for(plat: &str) -> Result<PathBuf> {
    crate::platform::which("ip")
        .or_else(|| ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].iter().map(PathBuf::from).find(|p| p.is_file()))
        .ok_or_else(|| {
            hinted(
                format!("-p on {plat} needs iproute2's `ip` to create a network namespace and a tap, and it is not installed"),
                format!("apt-get install iproute2; {}", manual_tap(plat)),
            )
        })
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Everything `-p` on `plat` (fc, solo5) needs from the host, checked before building.
pub fn check_host(plat: &str) -> Result<PathBuf> {
    if effective_uid() != Some(0) {
        return Err(hinted(
            format!(
                "-p on {plat} creates a tap in a private network namespace, which needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
            ),
            format!("run unikit as root, {}", manual_tap(plat)),
        ));
    }
    if !Path::new("/dev/net/tun").exists() {
        return Err(hinted(
            format!("-p on {plat} needs a tap device, and /dev/net/tun does not exist on this host"),
            "load the tun module (modprobe tun), or in a container pass the device through (--device /dev/net/tun)",
        ));
    }
    ip_command_for(plat)
}

/// The network rules of the tap-only platforms (fc, solo5): no user-mode
/// network; `-p` makes the run's own namespace and tap (the guest is
/// [`GUEST_IP`]), and is taken out of `devices` (returned); `--net tap:NAME`
/// must exist.
pub fn tap_only(plat: &str, devices: &mut Devices) -> Result<Vec<(u16, u16)>> {
    if devices.net == Some(Net::User) {
        let who = if plat == "fc" { "Firecracker" } else { "Solo5 (hvt)" };
        return Err(hinted(
            format!("--net user is QEMU's user-mode network; {who} has none"),
            "use -p HOST:GUEST (unikit then makes a tap in a private network namespace) or --net tap:NAME",
        ));
    }
    let mut publish = Vec::new();
    crate::devices::check_publish_once(&devices.publish)?;
    crate::devices::check_publish_free(&devices.publish)?;
    if !devices.publish.is_empty() {
        if let Some(Net::Tap(_)) = devices.net {
            bail!(
                "-p on {plat} makes its own tap in a private network namespace; with --net tap:NAME, reach the guest at its own address"
            );
        }
        match devices.ip.as_deref() {
            None => devices.ip = Some(GUEST_IP.into()),
            Some(GUEST_IP) => {}
            Some(other) => bail!("--ip {other}: with -p on {plat} the guest is {GUEST_IP} (leave --ip out)"),
        }
        publish = std::mem::take(&mut devices.publish);
    }
    if let Some(Net::Tap(name)) = &devices.net
        && !Path::new("/sys/class/net").join(name).exists()
    {
        return Err(hinted(
            format!("--net tap:{name}: there is no network interface '{name}' on this host"),
            format!(
                "create it first, e.g. `sudo ip tuntap add dev {name} mode tap user $USER && sudo ip link set {name} up`, or use -p HOST:GUEST as root"
            ),
        ));
    }
    Ok(publish)
}

fn ip(ip: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(ip)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", ip.display()))?;
    if !out.status.success() {
        bail!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A network namespace owned by this run, with the tap inside.
pub struct Netns {
    name: String,
    ip: PathBuf,
    /// The reaper's stdin: closing it (our exit, however it comes) makes
    /// the reaper delete the namespace.
    reaper: Option<super::reaper::Reaper>,
}

impl Netns {
    pub fn create(ip_path: PathBuf) -> Result<Netns> {
        remove_stale(&ip_path);
        let name = format!("{PREFIX}{}", std::process::id());
        let _ = ip(&ip_path, &["netns", "del", &name]);
        ip(&ip_path, &["netns", "add", &name])?;
        let mut ns = Netns { name, ip: ip_path, reaper: None };
        ns.reaper = spawn_reaper(&ns.name, &ns.ip);
        let n = ns.name.as_str();
        for args in [
            &["-n", n, "link", "set", "lo", "up"][..],
            &["-n", n, "tuntap", "add", "dev", TAP, "mode", "tap"],
            &["-n", n, "addr", "add", HOST_CIDR, "dev", TAP],
            &["-n", n, "link", "set", TAP, "up"],
        ] {
            ip(&ns.ip, args).context("cannot set up the network namespace for -p")?;
        }
        Ok(ns)
    }

    /// `program` run inside the namespace: `ip netns exec NAME program`
    /// (which also mounts the namespace's own /sys, where a tender looks
    /// for its tap, and execs `program` without forking).
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(&self.ip);
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Forward 127.0.0.1:`host` to the guest's `guest` port, for the rest of
    /// this process's life.
    pub fn forward(&self, host: u16, guest: u16) -> Result<()> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, host)).map_err(|e| {
            hinted(format!("-p {host}:{guest}: cannot listen on 127.0.0.1:{host}: {e}"), "pick another host port")
        })?;
        let ns_path = Path::new(NETNS_DIR).join(&self.name);
        std::thread::Builder::new()
            .name(format!("fwd-{host}"))
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let ns_path = ns_path.clone();
                    let _ = std::thread::Builder::new().spawn(move || relay(conn, &ns_path, guest));
                }
            })
            .context("cannot start the port-forwarding thread")?;
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys the tap in it.
        if let Err(e) = ip(&self.ip, &["netns", "del", &self.name]) {
            crate::error::warn(format!("cannot remove network namespace {}: {e:#}", self.name));
        }
        // Disarmed: the namespace is gone already.
        self.reaper = None;
    }
}

/// A reaper (see reaper.rs) that deletes the namespace if the run is killed.
fn spawn_reaper(name: &str, ip: &Path) -> Option<super::reaper::Reaper> {
    super::reaper::Reaper::spawn(&["__reap-netns".as_ref(), name.as_ref(), ip.as_os_str()])
}

/// The reaper's side (`unikit __reap-netns NAME IP`): if the run dies,
/// delete its namespace (if it is still there).
pub fn reap(name: &str, ip_path: &Path) -> Result<()> {
    if !name.starts_with(PREFIX) || name.contains('/') {
        bail!("__reap-netns: {name} is not a unikit run's namespace");
    }
    if super::reaper::run_died() && Path::new(NETNS_DIR).join(name).exists() {
        ip(ip_path, &["netns", "del", name])?;
    }
    Ok(())
}

/// Namespaces left behind by runs that were killed (their pid is gone).
fn remove_stale(ip_path: &Path) {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(ip_path, &["netns", "del", &name]);
        }
    }
}

/// Move the calling thread (only) into the network namespace at `path`.
#[allow(unsafe_code)]
fn enter(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path)?;
    // SAFETY: setns(2) with a valid namespace fd that `f` keeps open for the
    // call; CLONE_NEWNET changes the network namespace of this thread only
    // and touches no memory of ours.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// One forwarded connection: connect from inside the namespace (retrying
/// while the guest is still booting), then copy both ways.
fn relay(client: TcpStream, ns_path: &Path, guest: u16) {
    if let Err(e) = enter(ns_path) {
        crate::error::warn(format!("port forward: cannot enter {}: {e}", ns_path.display()));
        return;
    }
    let addr = SocketAddrV4::new(GUEST, guest);
    let mut server = None;
    for _ in 0..50 {
        match TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)) {
            Ok(s) => {
                server = Some(s);
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::TimedOut | ErrorKind::HostUnreachable
                ) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(_) => break,
        }
    }
    let Some(server) = server else { return };
    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else { return };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let (mut s, mut c) = (server, client);
    let _ = std::io::copy(&mut s, &mut c);
    let _ = c.shutdown(Shutdown::Write);
    let _ = up.join();
}
