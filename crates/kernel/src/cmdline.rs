//! The kernel command line: `[unikit.OPTION ...] [KEY=VALUE ...] -- [ARGS ...]`.
//!
//! Tokens are separated by whitespace; double quotes group, and inside them
//! a backslash escapes `"` and `\`. Before `--`, `unikit.*` tokens are kernel
//! options and `KEY=VALUE` tokens are environment variables. Without `--`,
//! only `unikit.*` tokens are options and every other token is an argument,
//! so a hand-written `-append "a b"` still reaches the app as its arguments.
use alloc::string::String;
use alloc::vec::Vec;

/// The guest command line, split into kernel options, environment and app arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CommandLine {
    /// Kernel options (`unikit.*` and the drivers' and services' own).
    pub options: Vec<String>,
    /// `KEY=VALUE` environment variables for the app.
    pub env: Vec<(String, String)>,
    /// The app's arguments, `argv[0]` included.
    pub args: Vec<String>,
}

impl CommandLine {
    /// Whether kernel option `name` was given (with or without a value).
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

/// Options a platform takes wherever they are, because its hypervisor adds
/// them to whatever command line it was given (Firecracker inserts `pci=off`
/// and `virtio_mmio.device=...` before the first " -- ", or appends them
/// when there is none): they never reach the app as arguments or
/// environment variables. Each entry is an exact option, or a prefix when it
/// ends in `=` or `.`.
fn matches(pattern: &str, tok: &str) -> bool {
    if pattern.ends_with('=') || pattern.ends_with('.') { tok.starts_with(pattern) } else { tok == pattern }
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

/// Parses a kernel command line; `anywhere` are the platform's options
/// (see [`matches`]), taken before or after `--`.
pub fn parse(s: &str, anywhere: &[&str]) -> CommandLine {
    let tokens = tokenize(s);
    let split = tokens.iter().position(|t| t == "--");
    let mut cl = CommandLine::default();
    for (i, t) in tokens.into_iter().enumerate() {
        // Without `--` everything is "before" for options, "after" for the rest.
        let before = split.is_some_and(|p| i < p);
        if Some(i) == split {
            continue;
        }
        if anywhere.iter().any(|p| matches(p, &t)) || (split.is_none_or(|p| i < p) && t.starts_with("unikit.")) {
            cl.options.push(t);
        } else if before {
            match env_pair(&t) {
                Some(kv) => cl.env.push(kv),
                None => cl.options.push(t), // unknown options are kept, and reported at start-up
            }
        } else {
            cl.args.push(t);
        }
    }
    cl
}

/// The options of `cl` that none of the `known` lists (one per layer: the
/// kernel, the platform, each service) claims. Entries are exact names, or
/// prefixes ending in `=` or `.`.
pub fn unknown_options<'a>(cl: &'a CommandLine, known: &'a [&[&str]]) -> impl Iterator<Item = &'a str> {
    cl.options.iter().map(|o| o.as_str()).filter(move |o| !is_claimed(o, known))
}

/// Whether one of the `known` lists claims option `o`.
pub fn is_claimed(o: &str, known: &[&[&str]]) -> bool {
    known.iter().any(|k| k.iter().any(|p| matches(p, o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_options_env_and_args() {
        let cl = parse("unikit.quiet FOO=bar _X=1 -- --exit 3", FC);
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
        let cl = parse("hello unikit.quiet A=B", FC);
        assert_eq!(cl.options, v(&["unikit.quiet"]));
        assert!(cl.env.is_empty());
        assert_eq!(cl.args, v(&["hello", "A=B"]));
    }

    #[test]
    fn second_separator_is_an_argument() {
        let cl = parse("-- a -- b", FC);
        assert_eq!(cl.args, v(&["a", "--", "b"]));
        assert_eq!(parse("", FC).args.len(), 0);
        assert_eq!(parse("--", FC).args.len(), 0);
    }

    const FC: &[&str] = &["virtio_mmio.device=", "pci="];

    #[test]
    fn platform_options_anywhere() {
        let cl = parse("virtio_mmio.device=512@0xfeb00000:12 virtio_mmio.device=4K@0xd0000000:5:3 -- x", FC);
        assert_eq!(cl.options, v(&["virtio_mmio.device=512@0xfeb00000:12", "virtio_mmio.device=4K@0xd0000000:5:3"]));
        // Firecracker appends them after the user's arguments, without `--`.
        let cl = parse("-- a b virtio_mmio.device=0x1000@4096:7", FC);
        assert_eq!(cl.options, v(&["virtio_mmio.device=0x1000@4096:7"]));
        assert_eq!(cl.args, v(&["a", "b"]), "platform options are not app arguments");
        // Firecracker: `pci=off` before our `--` (not an env var) or after it.
        let cl = parse("pci=off virtio_mmio.device=4K@0xc0001000:5 unikit.quiet -- x", FC);
        assert!(cl.env.is_empty() && cl.args == v(&["x"]));
        let cl = parse("-- x pci=off virtio_mmio.device=4K@0xc0001000:5", FC);
        assert_eq!(cl.args, v(&["x"]));
        assert_eq!(cl.options, v(&["pci=off", "virtio_mmio.device=4K@0xc0001000:5"]));
        // Without the platform's list they are ordinary tokens.
        let cl = parse("-- x pci=off", &[]);
        assert_eq!(cl.args, v(&["x", "pci=off"]));
        // Exact names match exactly.
        assert_eq!(parse("-- pci", &["pci"]).options, v(&["pci"]));
        assert_eq!(parse("-- pcix", &["pci"]).args, v(&["pcix"]));
    }

    #[test]
    fn unknown_options_are_the_unclaimed_ones() {
        let cl = parse("unikit.quiet unikit.nope netdev.ip=dhcp pci=off bogus -- x", FC);
        let kernel: &[&str] = &["unikit.quiet"];
        let all: &[&[&str]] = &[kernel, FC, &["netdev."]];
        assert_eq!(unknown_options(&cl, all).collect::<Vec<_>>(), vec!["unikit.nope", "bogus"]);
        let only_kernel: &[&[&str]] = &[kernel];
        assert_eq!(
            unknown_options(&cl, only_kernel).collect::<Vec<_>>(),
            vec!["unikit.nope", "netdev.ip=dhcp", "pci=off", "bogus"]
        );
    }

    #[test]
    fn bad_env_keys_are_options() {
        let cl = parse("1X=2 =3 A-B=4 -- z", FC);
        assert!(cl.env.is_empty());
        assert_eq!(cl.options.len(), 3);
    }
}
