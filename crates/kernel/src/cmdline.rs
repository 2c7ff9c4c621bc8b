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
                if t.starts_with("unikit.") {
                    cl.options.push(t.clone());
                } else if let Some(kv) = env_pair(t) {
                    cl.env.push(kv);
                } else {
                    cl.options.push(t.clone()); // unknown options are kept, and reported by the boot log
                }
            }
            cl.args.extend(tokens[split + 1..].iter().cloned());
        }
        None => {
            for t in tokens {
                if t.starts_with("unikit.") {
                    cl.options.push(t);
                } else {
                    cl.args.push(t);
                }
            }
        }
    }
    cl
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
    fn bad_env_keys_are_options() {
        let cl = parse("1X=2 =3 A-B=4 -- z");
        assert!(cl.env.is_empty());
        assert_eq!(cl.options.len(), 3);
    }
}
