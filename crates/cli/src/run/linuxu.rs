//! Running a linuxu image: it is a static Linux ELF, run as a process.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::memory::Memory;

use super::supervisor::{End, Outcome, Runner, Verdict};

/// What the platform attaches, passed through `UNIKIT_*` variables.
pub struct Devices<'a> {
    pub devices: &'a crate::devices::Devices,
    pub initrd: Option<&'a Path>,
}

/// Variables added to the app's environment.
pub fn environment(
    env: &BTreeMap<String, String>,
    memory: Memory,
    kernel_args: &[String],
    dev: &Devices,
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    vars.push(("UNIKIT_MEMORY".into(), memory.bytes().to_string()));
    if let Some(crate::devices::Net::Tap(name)) = &dev.devices.net {
        vars.push(("UNIKIT_NET".into(), format!("tap:{name}")));
    }
    if let Some(disk) = dev.devices.disks.first() {
        vars.push(("UNIKIT_DISK".into(), disk.display().to_string()));
    }
    if let Some(rd) = dev.initrd {
        vars.push(("UNIKIT_INITRD".into(), rd.display().to_string()));
    }
    if !kernel_args.is_empty() {
        vars.push(("UNIKIT_OPTS".into(), kernel_args.join(" ")));
    }
    vars
}

/// The linuxu platform's side of `unikit run`.
pub struct Plan;

impl Plan {
    pub fn new(devices: &mut crate::devices::Devices, memory: Memory) -> Result<Plan> {
        use crate::devices::Net;
        if !devices.publish.is_empty() || devices.net == Some(Net::User) {
            anyhow::bail!("linuxu has no user-mode network to forward ports through; use --net tap:NAME (and --ip)");
        }
        if devices.disks.len() > 1 {
            anyhow::bail!("linuxu attaches one --disk (got {})", devices.disks.len());
        }
        // (A --net tap: that is no tap is reported by the guest itself, which
        // runs on without a network device.)
        devices.check()?;
        crate::platform::host_can_run(crate::platform::Platform::Linuxu)?;
        super::check_host_memory(memory, super::host_memory())?;
        Ok(Plan)
    }
}

impl super::Plan for Plan {
    fn boot(self: Box<Self>, run: &super::Boot, annotator: &mut crate::symbols::Annotator) -> Result<u8> {
        let mut r = Linuxu {
            image: run.image,
            args: run.args,
            env: run.env,
            memory: run.memory,
            kernel_args: run.kernel_args,
            dev: Devices { devices: run.devices, initrd: run.initrd },
        };
        super::supervisor::run(&mut r, annotator)
    }
}

/// The linuxu runner: the image is the process. Its stdout (the console)
/// goes to ours with backtraces annotated; its stdin and stderr are ours.
pub struct Linuxu<'a> {
    pub image: &'a Path,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub memory: Memory,
    pub kernel_args: &'a [String],
    pub dev: Devices<'a>,
}

impl Runner for Linuxu<'_> {
    fn vmm(&self) -> String {
        self.image.display().to_string()
    }

    fn command(&mut self) -> Result<Command> {
        let mut c = Command::new(self.image);
        c.args(self.args).envs(environment(self.env, self.memory, self.kernel_args, &self.dev));
        Ok(c)
    }

    fn marker(&self) -> bool {
        false
    }

    fn capture_stderr(&self) -> bool {
        false
    }

    fn killed(&mut self, sig: i32) -> Verdict {
        Verdict {
            code: (128 + sig).clamp(0, 255) as u8,
            lines: vec![format!("unikit: guest killed by {}", super::signal_name(sig))],
        }
    }

    fn unmarked(&mut self, o: &Outcome) -> Verdict {
        match o.end {
            End::Exited(code) => Verdict { code: (code & 0xff) as u8, lines: vec![] },
            End::Signaled(sig) => self.killed(sig),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars() {
        let mut env = BTreeMap::new();
        env.insert("GREETING".to_string(), "hi".to_string());
        let v = environment(
            &env,
            Memory::parse("2M").unwrap(),
            &["unikit.quiet".into(), "a=b".into()],
            &Devices { devices: &Default::default(), initrd: None },
        );
        assert_eq!(
            v,
            [
                ("GREETING".into(), "hi".into()),
                ("UNIKIT_MEMORY".into(), "2097152".into()),
                ("UNIKIT_OPTS".into(), "unikit.quiet a=b".into())
            ]
        );
        let devices = crate::devices::Devices {
            net: Some(crate::devices::Net::Tap("tap0".into())),
            disks: vec!["d.img".into()],
            ..Default::default()
        };
        let v = environment(
            &BTreeMap::new(),
            Memory::DEFAULT,
            &[],
            &Devices { devices: &devices, initrd: Some(Path::new("r.cpio")) },
        );
        assert_eq!(
            v,
            [
                ("UNIKIT_MEMORY".to_string(), (64u64 << 20).to_string()),
                ("UNIKIT_NET".into(), "tap:tap0".into()),
                ("UNIKIT_DISK".into(), "d.img".into()),
                ("UNIKIT_INITRD".into(), "r.cpio".into())
            ]
        );
    }
}
