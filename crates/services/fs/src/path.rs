//! Path normalisation. There is one working directory, `/`: relative paths
//! are taken from there. `.` and empty components vanish, `..` removes the
//! previous component and stops at the root (lexically, before symbolic
//! links are followed, as Plan 9 and Go's `path.Clean` do).
use crate::error::{Error, ErrorKind, Result};
use alloc::string::String;
use alloc::vec::Vec;

/// Longest path accepted, in bytes.
pub const PATH_MAX: usize = 4096;
/// Longest path component, in bytes.
pub const NAME_MAX: usize = 255;

/// Appends the components of `path` to `out` (which holds an already
/// normalised prefix); an absolute `path` starts again from the root.
pub fn push_components(out: &mut Vec<String>, path: &str) -> Result<()> {
    if path.len() > PATH_MAX {
        return Err(Error::with_detail(ErrorKind::InvalidFilename, "path too long"));
    }
    if path.as_bytes().contains(&0) {
        return Err(Error::with_detail(ErrorKind::InvalidInput, "path contains a NUL byte"));
    }
    if path.starts_with('/') {
        out.clear();
    }
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            name => {
                if name.len() > NAME_MAX {
                    return Err(Error::with_detail(ErrorKind::InvalidFilename, "file name too long"));
                }
                out.push(String::from(name));
            }
        }
    }
    Ok(())
}

/// The components of `path`, normalised. An empty path is an error (as
/// `std::fs` gives for `""`).
pub fn components(path: &str) -> Result<Vec<String>> {
    if path.is_empty() {
        return Err(Error::with_detail(ErrorKind::NotFound, "empty path"));
    }
    let mut v = Vec::new();
    push_components(&mut v, path)?;
    Ok(v)
}

/// `path` as a normalised absolute path: `/`, `/a/b`.
pub fn normalize(path: &str) -> Result<String> {
    Ok(join_abs(&components(path)?))
}

pub fn join_abs(comps: &[String]) -> String {
    if comps.is_empty() {
        return String::from("/");
    }
    let mut s = String::new();
    for c in comps {
        s.push('/');
        s.push_str(c);
    }
    s
}

/// The components joined with `/` and no leading slash (a path inside a
/// mounted file system; `""` is its root).
pub fn join_rel(comps: &[String]) -> String {
    let mut s = String::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            s.push('/');
        }
        s.push_str(c);
    }
    s
}

/// Splits a relative path into (parent, last name). `None` for the root.
pub fn split_last(rel: &str) -> Option<(&str, &str)> {
    if rel.is_empty() {
        return None;
    }
    Some(match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("a/b", "/a/b"),
            ("//a///b/", "/a/b"),
            ("/a/./b/.", "/a/b"),
            ("/a/../b", "/b"),
            ("/../../x", "/x"),
            ("..", "/"),
            ("/a/b/../../..", "/"),
            ("./a/../b/./c/..", "/b"),
            (".", "/"),
        ];
        for (i, o) in cases {
            assert_eq!(normalize(i).unwrap(), o, "{i}");
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(normalize("").unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(normalize("/a\0b").unwrap_err().kind(), ErrorKind::InvalidInput);
        let long = "x".repeat(256);
        assert_eq!(normalize(&long).unwrap_err().kind(), ErrorKind::InvalidFilename);
        let very_long = "/a".repeat(3000);
        assert_eq!(normalize(&very_long).unwrap_err().kind(), ErrorKind::InvalidFilename);
    }

    #[test]
    fn relative_join_and_split() {
        let c = components("/x/y/z").unwrap();
        assert_eq!(join_rel(&c), "x/y/z");
        assert_eq!(join_rel(&[]), "");
        assert_eq!(split_last("x/y/z"), Some(("x/y", "z")));
        assert_eq!(split_last("z"), Some(("", "z")));
        assert_eq!(split_last(""), None);
        let mut v = components("/a/b").unwrap();
        push_components(&mut v, "../c").unwrap();
        assert_eq!(join_abs(&v), "/a/c");
        push_components(&mut v, "/abs").unwrap();
        assert_eq!(join_abs(&v), "/abs");
    }
}
