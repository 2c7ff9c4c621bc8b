//! The guest kernel command line:
//! `<kernel_args...> <KEY=VALUE...> -- <app args...>`.
//!
//! A token is wrapped in double quotes when it is empty or contains
//! whitespace, `"` or `\`; inside quotes, `"` and `\` are escaped with `\`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

/// Kernel option that turns off the boot log.
pub const QUIET: &str = "unikit.quiet";

/// `[A-Za-z_][A-Za-z0-9_]*`
pub fn valid_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Refuses a kernel option that would not reach the kernel as one option:
/// `--` (it would end the options and shift the app's arguments), a
/// `KEY=VALUE` whose key is an environment variable's (the guest takes it as
/// one), and tokens the line's grammar cannot carry unchanged (empty, or
/// with whitespace, quotes, backslashes or control characters).
pub fn check_kernel_arg(arg: &str) -> Result<(), String> {
    if arg.is_empty() {
        return Err("kernel_args: an empty option".into());
    }
    if arg == "--" {
        return Err(format!(
            "kernel_args: '{arg}' is not a kernel option ('--' ends the kernel options; put app arguments in args)"
        ));
    }
    if arg.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\' || c == '\'') {
        return Err(format!(
            "kernel_args: {arg:?} holds whitespace, a quote, a backslash or a control character, which the kernel command line cannot carry in an option"
        ));
    }
    // `pci=` is the one hypervisor option without a dot (the kernel takes it as such).
    if let Some((k, _)) = arg.split_once('=')
        && valid_env_key(k)
        && k != "pci"
    {
        return Err(format!(
            "kernel_args: '{arg}' looks like an environment variable (KEY=VALUE) and would become one; put it in env, or use a dotted option name (e.g. unikit.NAME=VALUE)"
        ));
    }
    Ok(())
}

/// `-e KEY=VALUE`: an environment variable for the app.
pub fn parse_env_flag(spec: &str) -> Result<(String, String)> {
    let Some((k, v)) = spec.split_once('=') else {
        bail!("expected KEY=VALUE, e.g. -e GREETING=hello");
    };
    if !valid_env_key(k) {
        bail!("invalid env variable name '{k}' (must match [A-Za-z_][A-Za-z0-9_]*)");
    }
    if v.contains('\0') {
        bail!("a value cannot hold a NUL byte");
    }
    Ok((k.to_string(), v.to_string()))
}

/// Quote one token if needed.
pub fn quote(token: &str) -> String {
    let needs = token.is_empty() || token.chars().any(|c| c.is_whitespace() || c == '"' || c == '\\');
    if !needs {
        return token.to_string();
    }
    let mut out = String::with_capacity(token.len() + 2);
    out.push('"');
    for c in token.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Build the whole command line.
pub fn build(kernel_args: &[String], env: &BTreeMap<String, String>, app_args: &[String]) -> Result<String> {
    let mut tokens: Vec<String> = kernel_args.iter().map(|a| quote(a)).collect();
    for (k, v) in env {
        if !valid_env_key(k) {
            bail!("invalid env variable name '{k}' (must match [A-Za-z_][A-Za-z0-9_]*)");
        }
        tokens.push(quote(&format!("{k}={v}")));
    }
    tokens.push("--".to_string());
    tokens.extend(app_args.iter().map(|a| quote(a)));
    Ok(tokens.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_flags() {
        assert_eq!(parse_env_flag("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env_flag("_X=").unwrap(), ("_X".into(), "".into()));
        assert_eq!(parse_env_flag("AB").unwrap_err().to_string(), "expected KEY=VALUE, e.g. -e GREETING=hello");
        assert!(parse_env_flag("1A=b").unwrap_err().to_string().starts_with("invalid env variable name '1A'"));
        assert!(parse_env_flag("=b").is_err());
        assert!(parse_env_flag("A=\0").is_err());
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn kernel_args_that_break_the_grammar_are_refused() {
        for ok in ["unikit.quiet", "netdev.ip=10.0.0.2/24", "virtio_mmio.device=4K@0xd0000000:5", "pci=off", "--x"] {
            check_kernel_arg(ok).unwrap();
        }
        for bad in ["", "--", "A=1", "_x=y", "a b", "tab\there", "q\"", "q'", "back\\slash", "nl\n"] {
            assert!(check_kernel_arg(bad).is_err(), "{bad:?}");
        }
        assert!(check_kernel_arg("--").unwrap_err().contains("args"));
        assert!(check_kernel_arg("A=1").unwrap_err().contains("env"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a=b,c"), "a=b,c");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("tab\there"), "\"tab\there\"");
        assert_eq!(quote("say \"hi\""), r#""say \"hi\"""#);
        assert_eq!(quote(r"c:\dir"), r#""c:\\dir""#);
        assert_eq!(quote("é"), "é");
    }

    #[test]
    fn env_keys() {
        for ok in ["A", "_", "GREETING", "a_1", "_X9"] {
            assert!(valid_env_key(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "é"] {
            assert!(!valid_env_key(bad), "{bad}");
        }
    }

    #[test]
    fn whole_line() {
        let mut env = BTreeMap::new();
        env.insert("GREETING".to_string(), "hello world".to_string());
        env.insert("A".to_string(), "1".to_string());
        let line = build(&s(&["unikit.quiet"]), &env, &s(&["--greeting", "hi there", ""])).unwrap();
        assert_eq!(line, r#"unikit.quiet A=1 "GREETING=hello world" -- --greeting "hi there" """#);
    }

    #[test]
    fn always_has_separator() {
        assert_eq!(build(&[], &BTreeMap::new(), &[]).unwrap(), "--");
        assert_eq!(build(&[], &BTreeMap::new(), &s(&["--"])).unwrap(), "-- --");
    }

    #[test]
    fn rejects_bad_env_key() {
        let mut env = BTreeMap::new();
        env.insert("BAD-KEY".to_string(), "v".to_string());
        assert!(build(&[], &env, &[]).is_err());
    }
}
