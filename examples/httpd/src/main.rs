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
use unikit::time::{Duration, Instant};

use httpd_http::{MAX_HEAD, Parse, parse_request};

/// A connection idle this long between requests is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request head must arrive whole within this long of its first byte:
/// a client trickling a byte at a time (slowloris) is closed after it.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Stack of a connection thread: what one (idle) client costs is mostly
/// this plus its socket buffers, so it is kept small; `serve` keeps its
/// buffers on the heap.
const CONN_STACK: usize = 16 * 1024;

/// File contents by path, read once from the file system.
type Cache = Arc<Mutex<BTreeMap<String, Option<Arc<Vec<u8>>>>>>;

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
    // Grows with the request; nothing is allocated while the client is idle.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // A head already begun (pipelined bytes) is on the clock at once.
        let mut head_deadline = (!buf.is_empty()).then(|| Instant::now() + HEAD_TIMEOUT);
        let (req, used) = loop {
            match parse_request(&buf) {
                Parse::Done(r, n) => break (r, n),
                Parse::Bad(code, reason) => {
                    error_page(&mut s, code, reason, false);
                    return;
                }
                Parse::Incomplete => {}
            }
            // Idle between requests: IDLE_TIMEOUT; inside a head: what is
            // left of HEAD_TIMEOUT since its first byte.
            let timeout = match head_deadline {
                None => IDLE_TIMEOUT,
                Some(d) => match d.duration_since(Instant::now()) {
                    left if left.is_zero() => {
                        error_page(&mut s, 408, "Request Timeout", false);
                        return;
                    }
                    left => left,
                },
            };
            let _ = s.set_read_timeout(Some(timeout));
            let old = buf.len();
            let want = (MAX_HEAD + 1 - old.min(MAX_HEAD)).min(2048);
            if buf.try_reserve(want).is_err() {
                return; // out of memory: this connection goes, the server stays
            }
            buf.resize(old + want, 0);
            match s.read(&mut buf[old..]) {
                Ok(0) | Err(_) => return, // closed, reset, idle or too slow
                Ok(n) => buf.truncate(old + n),
            }
            if head_deadline.is_none() && !buf.is_empty() {
                head_deadline = Some(Instant::now() + HEAD_TIMEOUT);
            }
        };
        buf.drain(..used);
        if buf.is_empty() {
            buf = Vec::new(); // give the memory back while idle
        }
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
            // No flush: dropping the stream closes it gracefully, and the FIN
            // leaves with the response. Waiting for the client's ACK first
            // let the client close first and pile up TIME-WAIT ports on its
            // side until connecting collapsed (issue 17).
            return;
        }
    }
}

static OOM_SAID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

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
                let t = thread::Builder::new().name("http".into()).stack_size(CONN_STACK);
                if t.spawn(move || serve(stream, root, cache)).is_err() {
                    // The stream was dropped with the closure: that client
                    // is reset, the others go on. Said once per burst.
                    if !OOM_SAID.swap(true, core::sync::atomic::Ordering::Relaxed) {
                        eprintln!("httpd: out of memory for a connection thread; refusing connections");
                    }
                } else {
                    OOM_SAID.store(false, core::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(e) => {
                eprintln!("httpd: accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
