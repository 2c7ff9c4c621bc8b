//! An HTTP/1.1 file server: serves the files of its root file system (the
//! initrd), keeps connections alive, answers 404 for missing paths, and
//! serves many clients at once (a thread per connection).
//!
//! `--port N` (default 80), `--root DIR` (default /).
#![no_std]
#![no_main]

use unikit::collections::BTreeMap;
use unikit::net::{TcpListener, TcpStream};
use unikit::prelude::*;
use unikit::sync::{Arc, Mutex};
use unikit::thread;
use unikit::time::Duration;

/// Longest request head (request line + headers) we accept.
const MAX_HEAD: usize = 16 * 1024;
/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// File contents by path, read once from the file system.
type Cache = Arc<Mutex<BTreeMap<String, Option<Arc<Vec<u8>>>>>>;

struct Request {
    method: String,
    path: String,
    keep_alive: bool,
}

enum Parse {
    Incomplete,
    Bad(u16, &'static str),
    Done(Request, usize),
}

fn parse_request(buf: &[u8]) -> Parse {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() >= MAX_HEAD {
            Parse::Bad(431, "Request Header Fields Too Large")
        } else {
            Parse::Incomplete
        };
    };
    let Ok(head) = core::str::from_utf8(&buf[..end]) else { return Parse::Bad(400, "Bad Request") };
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Bad(400, "Bad Request");
    };
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Parse::Bad(505, "HTTP Version Not Supported"),
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { return Parse::Bad(400, "Bad Request") };
        if name.eq_ignore_ascii_case("connection") {
            let v = value.trim();
            if v.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if v.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") && value.trim() != "0" {
            return Parse::Bad(413, "Content Too Large"); // we only serve files
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").into();
    Parse::Done(Request { method: method.into(), path, keep_alive }, end + 4)
}

/// Maps a URL path to a file path under `root`; `None` for anything that
/// tries to leave it.
fn file_path(root: &str, url: &str) -> Option<String> {
    if !url.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for seg in url.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s if s.contains('\0') || s.contains('\\') => return None,
            s => parts.push(s),
        }
    }
    let mut p = String::from(root.trim_end_matches('/'));
    for s in &parts {
        p.push('/');
        p.push_str(s);
    }
    if url.ends_with('/') {
        p.push_str("/index.html");
    }
    if p.is_empty() {
        p.push('/');
    }
    Some(p)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn lookup(cache: &Cache, path: &str) -> Option<Arc<Vec<u8>>> {
    if let Some(hit) = cache.lock().get(path) {
        return hit.clone();
    }
    let data = match unikit::fs::metadata(path) {
        Ok(m) if m.is_dir() => None, // a directory without index.html
        Ok(_) => unikit::fs::read(path).ok().map(Arc::new),
        Err(_) => None,
    };
    cache.lock().insert(path.into(), data.clone());
    data
}

fn respond(
    s: &mut TcpStream,
    status: u16,
    reason: &str,
    ctype: &str,
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) -> bool {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: unikit-httpd\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if s.write_all(head.as_bytes()).is_err() {
        return false;
    }
    head_only || s.write_all(body).is_ok()
}

fn error_page(s: &mut TcpStream, status: u16, reason: &str, keep_alive: bool) -> bool {
    let body = format!("<!doctype html><title>{status} {reason}</title><h1>{status} {reason}</h1>\n");
    respond(s, status, reason, "text/html; charset=utf-8", body.as_bytes(), false, keep_alive)
}

fn serve(mut s: TcpStream, root: Arc<String>, cache: Cache) {
    let _ = s.set_read_timeout(Some(IDLE_TIMEOUT));
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let (req, used) = loop {
            match parse_request(&buf) {
                Parse::Done(r, n) => break (r, n),
                Parse::Bad(code, reason) => {
                    error_page(&mut s, code, reason, false);
                    return;
                }
                Parse::Incomplete => match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return, // closed, reset or idle
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                },
            }
        };
        buf.drain(..used);
        let head_only = req.method == "HEAD";
        let ok = if req.method != "GET" && !head_only {
            error_page(&mut s, 405, "Method Not Allowed", req.keep_alive)
        } else {
            match file_path(&root, &req.path).and_then(|p| lookup(&cache, &p).map(|d| (p, d))) {
                Some((p, data)) => respond(&mut s, 200, "OK", content_type(&p), &data, head_only, req.keep_alive),
                None => error_page(&mut s, 404, "Not Found", req.keep_alive),
            }
        };
        if !ok || !req.keep_alive {
            let _ = s.flush();
            return;
        }
    }
}

#[unikit::main]
fn main() -> i32 {
    let args: Vec<String> = unikit::env::args().collect();
    let opt = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let port: u16 = match opt("--port").unwrap_or_else(|| "80".into()).parse() {
        Ok(p) => p,
        Err(_) => {
            eprintln!("httpd: --port needs a number from 1 to 65535");
            return 2;
        }
    };
    let root = Arc::new(opt("--root").unwrap_or_else(|| "/".into()));
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("httpd: cannot listen on port {port}: {e}");
            return 1;
        }
    };
    println!("httpd: serving {} on port {port}", root);
    let cache: Cache = Arc::new(Mutex::new(BTreeMap::new()));
    loop {
        match listener.accept() {
            Ok((stream, _peer)) => {
                let (root, cache) = (root.clone(), cache.clone());
                if thread::Builder::new().name("http".into()).spawn(move || serve(stream, root, cache)).is_err() {
                    eprintln!("httpd: out of memory for a connection thread");
                }
            }
            Err(e) => {
                eprintln!("httpd: accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
