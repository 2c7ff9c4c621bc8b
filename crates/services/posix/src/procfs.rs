//! The few `/proc` and `/sys` files that language runtimes read, made up
//! on open, and the `/proc/self` links.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use spin::Once;

static EXE: Once<String> = Once::new();

/// Records the program's path (`/proc/self/exe`).
pub fn set_exe(path: &str) {
    EXE.call_once(|| path.into());
}

/// The program's path.
pub fn exe() -> &'static str {
    EXE.get().map(|s| s.as_str()).unwrap_or("/")
}

fn self_path(path: &str) -> Option<&str> {
    let (who, rest) = path.strip_prefix("/proc/")?.split_once('/')?;
    (who == "self" || who == "thread-self" || who.parse::<u64>().ok() == Some(crate::syscall::pid())).then_some(rest)
}

/// Contents of a synthesized file, if `path` is one.
pub fn file(path: &str) -> Option<Vec<u8>> {
    let m = unikit_kernel::mem::stats();
    let s = match path {
        "/proc/cpuinfo" => String::from(
            "processor\t: 0\nvendor_id\t: unikit\nmodel name\t: unikit vCPU\ncpu cores\t: 1\nflags\t\t: fpu sse sse2\n\n",
        ),
        "/proc/meminfo" => format!(
            "MemTotal:       {} kB\nMemFree:        {} kB\nMemAvailable:   {} kB\n",
            m.total_bytes / 1024,
            m.free_bytes / 1024,
            m.free_bytes / 1024
        ),
        "/sys/devices/system/cpu/online" | "/sys/devices/system/cpu/possible" => String::from("0\n"),
        "/proc/sys/kernel/osrelease" => format!("{}\n", crate::syscall::RELEASE),
        "/proc/sys/vm/overcommit_memory" => String::from("1\n"),
        "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size" => String::from("2097152\n"),
        _ => match self_path(path)? {
            "cmdline" => {
                let mut v = Vec::new();
                for a in crate::argv() {
                    v.extend_from_slice(a.as_bytes());
                    v.push(0);
                }
                return Some(v);
            }
            "stat" => format!("{} (prog) R 0 {0} {0} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 0 0 0\n", crate::syscall::pid()),
            "maps" | "mountinfo" | "mounts" => String::new(),
            _ => return None,
        },
    };
    Some(s.into_bytes())
}

/// The target of a `/proc/self` link.
pub fn link(path: &str) -> Option<String> {
    let rest = self_path(path)?;
    match rest {
        "exe" => Some(exe().into()),
        "cwd" => Some(crate::path::cwd()),
        _ => {
            let n: i64 = rest.strip_prefix("fd/")?.parse().ok()?;
            let f = crate::fd::get(n).ok()?;
            Some(f.path().map(String::from).unwrap_or_else(|| format!("anon_inode:[{n}]")))
        }
    }
}
