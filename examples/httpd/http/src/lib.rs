//! The request-head parser of examples/httpd: `no_std` and free of the
//! unikit API, so that `cargo test -p httpd-http` runs it on the host
//! (unit and property tests: no input makes it panic).
//!
//! Lines end with CRLF or with a bare LF (RFC 9112 section 2.2 lets a
//! server accept a lone LF as a line terminator); the head ends at the
//! first empty line.
#![no_std]

extern crate alloc;

use alloc::string::String;

/// Longest request head (request line + headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path of the target, without query or fragment.
    pub path: String,
    pub keep_alive: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// No complete head yet: read more (fewer than `MAX_HEAD` bytes so far).
    Incomplete,
    /// Answer with this status and reason, then close.
    Bad(u16, &'static str),
    /// A request, and how many bytes of the buffer its head took.
    Done(Request, usize),
}

/// Where the head ends: the index just past the empty line that closes it.
/// Accepts "\r\n\r\n", "\n\n" and the mixed forms.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        if line.is_empty() || line == b"\r" {
            // An empty line before any request line is tolerated by
            // RFC 9112 section 2.2 only as leading noise; keep looking.
            if line_start != 0 {
                return Some(i + 1);
            }
        }
        line_start = i + 1;
    }
    None
}

/// Parses the request head at the start of `buf`.
pub fn parse_request(buf: &[u8]) -> Parse {
    // Leading empty lines (a client's stray CRLF after a previous body).
    let skip = buf.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
    let buf_rest = &buf[skip..];
    let Some(end) = head_end_from_start(buf_rest) else {
        return if buf.len() >= MAX_HEAD {
            Parse::Bad(431, "Request Header Fields Too Large")
        } else {
            Parse::Incomplete
        };
    };
    if end > MAX_HEAD {
        return Parse::Bad(431, "Request Header Fields Too Large");
    }
    let Ok(head) = core::str::from_utf8(&buf_rest[..end]) else { return Parse::Bad(400, "Bad Request") };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Bad(400, "Bad Request");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) || target.is_empty() {
        return Parse::Bad(400, "Bad Request");
    }
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => return Parse::Bad(505, "HTTP Version Not Supported"),
        _ => return Parse::Bad(400, "Bad Request"),
    };
    for line in lines {
        if line.is_empty() {
            break; // the empty line that ends the head
        }
        let Some((name, value)) = line.split_once(':') else { return Parse::Bad(400, "Bad Request") };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Parse::Bad(400, "Bad Request");
        }
        if name.eq_ignore_ascii_case("connection") {
            for v in value.split(',').map(str::trim) {
                if v.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if v.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if (name.eq_ignore_ascii_case("content-length") && value.trim() != "0")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return Parse::Bad(413, "Content Too Large"); // we only serve files
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").into();
    Parse::Done(Request { method: method.into(), path, keep_alive }, skip + end)
}

/// `head_end` for a buffer that starts with the request line.
fn head_end_from_start(buf: &[u8]) -> Option<usize> {
    if buf.is_empty() {
        return None;
    }
    head_end(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(buf: &[u8]) -> (Request, usize) {
        match parse_request(buf) {
            Parse::Done(r, n) => (r, n),
            other => panic!("{other:?} for {:?}", core::str::from_utf8(buf)),
        }
    }

    #[test]
    fn crlf_request() {
        let b = b"GET /a/b?x=1 HTTP/1.1\r\nHost: x\r\n\r\nGET";
        let (r, n) = done(b);
        assert_eq!((r.method.as_str(), r.path.as_str(), r.keep_alive), ("GET", "/a/b", true));
        assert_eq!(n, b.len() - 3);
    }

    #[test]
    fn bare_lf_request() {
        let b = b"GET /index.html HTTP/1.0\nHost: x\nConnection: keep-alive\n\n";
        let (r, n) = done(b);
        assert_eq!((r.path.as_str(), r.keep_alive, n), ("/index.html", true, b.len()));
        let (r, _) = done(b"HEAD / HTTP/1.1\r\nHost: x\n\r\n");
        assert_eq!(r.method, "HEAD");
    }

    #[test]
    fn incomplete_until_the_empty_line() {
        assert_eq!(parse_request(b""), Parse::Incomplete);
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parse::Incomplete);
        assert_eq!(parse_request(b"GET / HTTP/1.1\nHost: x\n"), Parse::Incomplete);
        assert_eq!(parse_request(b"\r\n\r\n"), Parse::Incomplete);
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let b = b"\r\nGET / HTTP/1.1\r\n\r\n";
        let (_, n) = done(b);
        assert_eq!(n, b.len());
    }

    #[test]
    fn errors() {
        assert_eq!(parse_request(b"GET /\r\n\r\n"), Parse::Bad(400, "Bad Request"));
        assert_eq!(parse_request(b"GET / HTTP/2.0\r\n\r\n"), Parse::Bad(505, "HTTP Version Not Supported"));
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"), Parse::Bad(400, "Bad Request"));
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").clone(),
            Parse::Bad(413, "Content Too Large")
        );
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(parse_request(&big), Parse::Bad(431, "Request Header Fields Too Large"));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request(&big), Parse::Bad(431, "Request Header Fields Too Large"));
    }

    extern crate std;

    /// 4,000 cases per property by default (CI); `PROPTEST_CASES=N` for a
    /// longer run.
    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match parse_request(&buf) {
                Parse::Done(_, n) => prop_assert!(n <= buf.len()),
                Parse::Incomplete => prop_assert!(buf.len() < MAX_HEAD),
                Parse::Bad(code, _) => prop_assert!((400..600).contains(&code)),
            }
        }

        #[test]
        fn request_like_bytes_never_panic(
            method in "[A-Z]{0,8}",
            target in "[ -~]{0,40}",
            headers in proptest::collection::vec(("[ -~]{0,20}", "[ -~]{0,20}"), 0..8),
            lf_only in any::<bool>(),
            cut in 0usize..400,
        ) {
            let nl = if lf_only { "\n" } else { "\r\n" };
            let mut s = alloc::format!("{method} {target} HTTP/1.1{nl}");
            for (k, v) in &headers {
                s.push_str(&alloc::format!("{k}: {v}{nl}"));
            }
            s.push_str(nl);
            let b = s.as_bytes();
            let b = &b[..cut.min(b.len())];
            if let Parse::Done(_, n) = parse_request(b) {
                prop_assert!(n <= b.len());
            }
        }
    }
}
