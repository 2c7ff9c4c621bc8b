//! Running a linuxu image: it is a static Linux ELF, run as a process.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::memory::Memory;
use crate::symbols::Annotator;

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

/// Run the image as a process; its stdout (the console) goes to ours with
/// backtraces annotated, its stdin and stderr are ours.
pub fn run(
    image: &Path,
    args: &[String],
    env: &BTreeMap<String, String>,
    memory: Memory,
    kernel_args: &[String],
    dev: &Devices,
    annotator: &mut Annotator,
) -> Result<u8> {
    let mut child = Command::new(image)
        .args(args)
        .envs(environment(env, memory, kernel_args, dev))
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", image.display()))?;
    if let Some(console) = child.stdout.take() {
        super::stream(console, None, annotator);
    }
    let status = child.wait().with_context(|| format!("waiting for {}", image.display()))?;
    if let Some(code) = status.code() {
        return Ok((code & 0xff) as u8);
    }
    let sig = status.signal().unwrap_or(0);
    eprintln!("unikit: guest killed by {}", super::signal_name(sig));
    Ok((128 + sig).clamp(0, 255) as u8)
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
