//! The kernel command line: `[unikit.OPTION ...] [KEY=VALUE ...] -- [ARGS ...]`.
//!
//! Tokens are separated by whitespace; double quotes group, and inside them
//! a backslash escapes `"` and `\`. Before `--`, `unikit.*` tokens are kernel
//! options and `KEY=VALUE` tokens are environment variables. Without `--`,
//! only `unikit.*` tokens are options and every other token is an argument,
//! so a hand-written `-append "a b"` still reaches the app as its arguments.
use alloc::string::String;
use alloc::vec::Vec;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct CommandLine {
    pub options: Vec<String>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl CommandLine {
    pub fn has_option(&self, name: &str) -> bool {
        self.options.iter().any(|o| o == name)
    }
}

/// Splits into tokens; a quote left open runs to the end of the line.
pub fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_token = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_token {
                    out.push(core::mem::take(&mut cur));
                    in_token = false;
                }
            }
            c => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    out
}

/// Options a hypervisor adds to whatever command line it was given
/// (Firecracker inserts `pci=off` and `virtio_mmio.device=...` before the
/// first " -- ", or appends them when there is none): the kernel takes
/// them wherever they are, so they never reach the app as arguments or
/// environment variables.
fn is_hypervisor_option(tok: &str) -> bool {
    tok.starts_with("virtio_mmio.device=") || tok.starts_with("pci=")
}

fn env_pair(tok: &str) -> Option<(String, String)> {
    let (k, v) = tok.split_once('=')?;
    let mut chars = k.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_') || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((k.into(), v.into()))
}

pub fn parse(s: &str) -> CommandLine {
    let tokens = tokenize(s);
    let mut cl = CommandLine::default();
    match tokens.iter().position(|t| t == "--") {
        Some(split) => {
            for t in &tokens[..split] {
                if t.starts_with("unikit.") || is_hypervisor_option(t) {
                    cl.options.push(t.clone());
                } else if let Some(kv) = env_pair(t) {
                    cl.env.push(kv);
                } else {
                    cl.options.push(t.clone()); // unknown options are kept, and reported by the boot log
                }
            }
            for t in &tokens[split + 1..] {
                if is_hypervisor_option(t) {
                    cl.options.push(t.clone());
                } else {
                    cl.args.push(t.clone());
                }
            }
        }
        None => {
            for t in tokens {
                if t.starts_with("unikit.") || is_hypervisor_option(&t) {
                    cl.options.push(t);
                } else {
                    cl.args.push(t);
                }
            }
        }
    }
    cl
}

/// A virtio-mmio device as Linux, QEMU microvm and Firecracker describe it
/// on the command line: `virtio_mmio.device=<size>@<base>:<irq>` (size and
/// base in decimal or 0x-hex, size with an optional K/M suffix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmio {
    pub base: u64,
    pub size: u64,
    pub irq: u32,
}

fn parse_num(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    let v = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    v.checked_mul(mult)
}

/// Every well-formed `virtio_mmio.device=` option (malformed ones are skipped).
pub fn virtio_mmio_devices(cl: &CommandLine) -> Vec<VirtioMmio> {
    cl.options
        .iter()
        .filter_map(|o| o.strip_prefix("virtio_mmio.device="))
        .filter_map(|v| {
            let (size, rest) = v.split_once('@')?;
            let (base, irq) = rest.split_once(':')?;
            let irq = irq.split(':').next()?; // Linux allows a trailing :<id>
            let d = VirtioMmio { base: parse_num(base)?, size: parse_num(size)?, irq: irq.parse().ok()? };
            (d.size > 0 && d.base.checked_add(d.size).is_some()).then_some(d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_options_env_and_args() {
        let cl = parse("unikit.quiet FOO=bar _X=1 -- --exit 3");
        assert_eq!(cl.options, v(&["unikit.quiet"]));
        assert_eq!(cl.env, vec![("FOO".into(), "bar".into()), ("_X".into(), "1".into())]);
        assert_eq!(cl.args, v(&["--exit", "3"]));
        assert!(cl.has_option("unikit.quiet"));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(tokenize(r#"a "b c" "" "d\"e" "f\\g""#), v(&["a", "b c", "", "d\"e", "f\\g"]));
        assert_eq!(tokenize("  \t "), Vec::<String>::new());
        assert_eq!(tokenize(r#"x"y z"w"#), v(&["xy zw"]));
        assert_eq!(tokenize(r#""open quote"#), v(&["open quote"]));
        assert_eq!(tokenize(r#"trailing\"#), v(&["trailing\\"]));
    }

    #[test]
    fn without_separator_everything_else_is_args() {
        let cl = parse("hello unikit.quiet A=B");
        assert_eq!(cl.options, v(&["unikit.quiet"]));
        assert!(cl.env.is_empty());
        assert_eq!(cl.args, v(&["hello", "A=B"]));
    }

    #[test]
    fn second_separator_is_an_argument() {
        let cl = parse("-- a -- b");
        assert_eq!(cl.args, v(&["a", "--", "b"]));
        assert_eq!(parse("").args.len(), 0);
        assert_eq!(parse("--").args.len(), 0);
    }

    #[test]
    fn virtio_mmio_entries() {
        let cl = parse("virtio_mmio.device=512@0xfeb00000:12 virtio_mmio.device=4K@0xd0000000:5:3 -- x");
        assert_eq!(
            virtio_mmio_devices(&cl),
            vec![
                VirtioMmio { base: 0xfeb0_0000, size: 512, irq: 12 },
                VirtioMmio { base: 0xd000_0000, size: 4096, irq: 5 }
            ]
        );
        // Firecracker appends them after the user's arguments, without `--`.
        let cl = parse("-- a b virtio_mmio.device=0x1000@4096:7");
        assert_eq!(virtio_mmio_devices(&cl), vec![VirtioMmio { base: 4096, size: 4096, irq: 7 }]);
        assert_eq!(cl.args, v(&["a", "b"]), "hypervisor options are not app arguments");
        // Firecracker: `pci=off` before our `--` (not an env var) or after it.
        let cl = parse("pci=off virtio_mmio.device=4K@0xc0001000:5 unikit.quiet -- x");
        assert!(cl.env.is_empty() && cl.args == v(&["x"]));
        let cl = parse("-- x pci=off virtio_mmio.device=4K@0xc0001000:5");
        assert_eq!(cl.args, v(&["x"]));
        assert_eq!(virtio_mmio_devices(&cl), vec![VirtioMmio { base: 0xc000_1000, size: 4096, irq: 5 }]);
        for bad in [
            "virtio_mmio.device=",
            "virtio_mmio.device=512",
            "virtio_mmio.device=512@zz:1",
            "virtio_mmio.device=0@0x1000:1",
            "virtio_mmio.device=1@0xffffffffffffffff:1",
            "virtio_mmio.device=512@0x1000:x",
        ] {
            assert!(virtio_mmio_devices(&parse(bad)).is_empty(), "{bad}");
        }
    }

    #[test]
    fn bad_env_keys_are_options() {
        let cl = parse("1X=2 =3 A-B=4 -- z");
        assert!(cl.env.is_empty());
        assert_eq!(cl.options.len(), 3);
    }
}
