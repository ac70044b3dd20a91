//! A real HTTP/1.1 static file server on loopback that can misbehave on purpose.
//!
//! It serves a folder (one request per connection, `Connection: close`), honours
//! `Range: bytes=N-` and `bytes=N-M`, and logs every request with its time. [`Faults`] make it cut
//! responses short, ignore `Range`, answer 503 or any status (with `Retry-After`),
//! stall, drip, stream for ever, send more bytes than the file has, send a wrong
//! `Content-Range`, or redirect, so the bootstrapper's network code is tested against
//! real sockets. The same server speaks HTTPS when started with a TLS configuration
//! ([`crate::tls`]): accepted sockets are wrapped in rustls, the rest is this file.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the server does wrong. Change it at any time through [`Server::faults`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Close every response after this many body bytes.
    pub cut_after: Option<u64>,
    /// Answer `200` with the whole file even when a range was asked for.
    pub ignore_range: bool,
    /// Answer this many requests with `503` first.
    pub fail_first: u32,
    /// Send this many body bytes, then hold the connection open without sending more.
    pub stall_after: Option<u64>,
    /// Append this many garbage bytes to files under `blobs/` (and announce them).
    pub extra_bytes: u64,
    /// Answer `404` for paths starting with this prefix.
    pub hide_prefix: Option<String>,
    /// Answer these paths (exact, without the leading `/`) with `302 Found` and this
    /// `Location`.
    pub redirects: Vec<(String, String)>,
    /// A `Retry-After: <seconds>` header on the answers of `fail_first` and `status`.
    pub retry_after: Option<u64>,

    /// The faults below apply only to paths starting with this prefix (default: every
    /// path under `blobs/`).
    pub target: Option<String>,
    /// Answer with this status (e.g. 500) and an empty body, every time.
    pub status: Option<u16>,
    /// A damaged copy: the body stops at this byte of the file, although the headers
    /// announce all of it; then the connection is closed.
    pub truncate_at: Option<u64>,
    /// Answer `200` without `Content-Length` and stream the file, then garbage, until
    /// the client hangs up.
    pub endless: bool,
    /// Send the body one byte at a time, this far apart.
    pub drip: Option<Duration>,
    /// Answer a range request with a `206` whose `Content-Range` (and body) starts this
    /// many bytes before the asked start.
    pub range_shift: Option<u64>,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range_start: Option<u64>,
    /// The last byte asked for (`bytes=N-M`), if any.
    pub range_end: Option<u64>,
    pub status: u16,
    pub body_bytes: u64,
    /// When the request arrived, from the server's start.
    pub at: Duration,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    pub port: u16,
    scheme: &'static str,
    faults: Arc<Mutex<Faults>>,
    log: Arc<Mutex<Vec<Logged>>>,
    /// TLS handshakes that failed, as the server saw them (e.g. the client's alert).
    handshake_errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

/// A connection the server answers on: a plain socket, or TLS over one.
pub(crate) trait Conn: Read + Write {
    fn tcp(&self) -> &TcpStream;
    /// Ends the connection (TLS says close_notify first).
    fn close(&mut self) {
        let _ = self.flush();
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Server {
    /// Serves `root` over plain HTTP on a free loopback port.
    pub fn start(root: &Path) -> Server {
        Server::launch(root, None)
    }

    /// Serves `root` over plain HTTP on loopback port `port` (a server that comes
    /// back where one was refused).
    pub fn start_on(root: &Path, port: u16) -> Server {
        Server::launch_on(root, None, port)
    }

    /// Serves `root`, over TLS with `tls` when given.
    pub(crate) fn launch(root: &Path, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        Server::launch_on(root, tls, 0)
    }

    fn launch_on(root: &Path, tls: Option<Arc<rustls::ServerConfig>>, port: u16) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let faults = Arc::new(Mutex::new(Faults::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handshake_errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (f, l, h, s, root) = (
            faults.clone(),
            log.clone(),
            handshake_errors.clone(),
            stop.clone(),
            root.to_path_buf(),
        );
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (f, l, h, s) = (f.clone(), l.clone(), h.clone(), s.clone());
                        let (root, tls) = (root.clone(), tls.clone());
                        thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            let _ = match tls {
                                None => handle(stream, &root, &f, &l, &s, started),
                                Some(cfg) => match crate::tls::accept(cfg, stream) {
                                    Ok(conn) => handle(conn, &root, &f, &l, &s, started),
                                    Err(e) => {
                                        h.lock().expect("handshake log").push(e.to_string());
                                        Ok(())
                                    }
                                },
                            };
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            scheme,
            faults,
            log,
            handshake_errors,
            stop,
        }
    }

    /// The repository root URL.
    pub fn url(&self) -> String {
        self.url_at("127.0.0.1")
    }

    /// The repository root URL with another name for this host (`localhost`).
    pub fn url_at(&self, host: &str) -> String {
        format!("{}://{host}:{}/", self.scheme, self.port)
    }

    /// The TLS handshakes that failed so far, in the server's words.
    pub fn handshake_errors(&self) -> Vec<String> {
        self.handshake_errors.lock().expect("handshake log").clone()
    }

    /// The failed handshakes once the server has seen at least one (waiting up to
    /// 10 s: the server thread may note a refused handshake after the client has
    /// exited), and half a second more for any that follow.
    pub fn settled_handshake_errors(&self) -> Vec<String> {
        let start = Instant::now();
        while self.handshake_errors().is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(500));
        self.handshake_errors()
    }

    /// Changes the faults.
    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.faults.lock().expect("faults lock"));
    }

    /// The requests so far.
    pub fn log(&self) -> Vec<Logged> {
        self.log.lock().expect("log lock").clone()
    }

    /// Body bytes sent for paths under `blobs/`.
    pub fn blob_bytes(&self) -> u64 {
        self.log()
            .iter()
            .filter(|l| l.path.starts_with("blobs/"))
            .map(|l| l.body_bytes)
            .sum()
    }

    /// The requests for exactly `path`.
    pub fn requests(&self, path: &str) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.path == path).collect()
    }

    /// Waits until `path` has been asked for (panics after `within`).
    pub fn await_request(&self, path: &str, within: Duration) {
        let start = Instant::now();
        while self.requests(path).is_empty() {
            assert!(start.elapsed() < within, "{path} was never asked for");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn handle<S: Conn>(
    mut stream: S,
    root: &Path,
    faults: &Mutex<Faults>,
    log: &Mutex<Vec<Logged>>,
    stop: &AtomicBool,
    started: Instant,
) -> std::io::Result<()> {
    // One request per connection, and a GET has no body: what the reader buffers
    // past the headers is never needed.
    let mut reader = BufReader::new(&mut stream);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let (mut range_start, mut range_end) = (None, None);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range:") {
            let mut ends = v.trim().strip_prefix("bytes=").unwrap_or("").split('-');
            range_start = ends.next().and_then(|n| n.trim().parse::<u64>().ok());
            range_end = ends.next().and_then(|n| n.trim().parse::<u64>().ok());
        }
    }
    drop(reader);
    let path = request
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let f = {
        let mut g = faults.lock().expect("faults lock");
        let snapshot = g.clone();
        if g.fail_first > 0 {
            g.fail_first -= 1;
        }
        snapshot
    };
    // Logged on arrival; status and bytes are filled in as the answer goes out.
    let idx = {
        let mut l = log.lock().expect("log lock");
        l.push(Logged {
            path: path.clone(),
            range_start,
            range_end,
            status: 200,
            body_bytes: 0,
            at: started.elapsed(),
        });
        l.len() - 1
    };
    let set = |status: u16, bytes: u64| {
        let mut l = log.lock().expect("log lock");
        l[idx].status = status;
        l[idx].body_bytes = bytes;
    };
    let range = range_start.map(|s| (s, range_end));
    let result = answer(&mut stream, root, &f, &path, range, stop, &set);
    stream.close();
    result
}

/// An empty answer with `status` and extra header lines.
fn empty(stream: &mut dyn Conn, status: u16, extra: &str) -> std::io::Result<()> {
    let reason = match status {
        302 => "Found",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    stream.write_all(
        format!(
            "HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

fn answer(
    stream: &mut dyn Conn,
    root: &Path,
    f: &Faults,
    path: &str,
    range: Option<(u64, Option<u64>)>,
    stop: &AtomicBool,
    set: &dyn Fn(u16, u64),
) -> std::io::Result<()> {
    let targeted = match &f.target {
        Some(t) => path.starts_with(t.as_str()),
        None => path.starts_with("blobs/"),
    };
    let retry_after = f
        .retry_after
        .map(|s| format!("Retry-After: {s}\r\n"))
        .unwrap_or_default();
    let file: Option<PathBuf> = (!path.contains(".."))
        .then(|| root.join(path))
        .filter(|p| p.is_file());
    let hidden = f
        .hide_prefix
        .as_ref()
        .is_some_and(|p| path.starts_with(p.as_str()));
    if let Some((_, to)) = f.redirects.iter().find(|(from, _)| from == path) {
        set(302, 0);
        return empty(stream, 302, &format!("Location: {to}\r\n"));
    }
    if f.fail_first > 0 {
        set(503, 0);
        return empty(stream, 503, &retry_after);
    }
    if let Some(status) = f.status.filter(|_| targeted) {
        set(status, 0);
        return empty(stream, status, &retry_after);
    }
    let Some(file) = file.filter(|_| !hidden) else {
        set(404, 0);
        return empty(stream, 404, "");
    };
    let mut body = fs_err::read(file)?;
    if path.starts_with("blobs/") {
        body.extend(std::iter::repeat_n(0xAAu8, f.extra_bytes as usize));
    }
    let len = body.len() as u64;
    let ranged = range.is_some() && !f.ignore_range;
    let mut start = match range {
        Some((s, _)) if ranged => s,
        _ => 0,
    };
    // One past the last byte sent: the asked end, or the whole file.
    let stop_at = match range {
        Some((_, Some(e))) if ranged => (e + 1).min(len),
        _ => len,
    };
    if start > len {
        set(416, 0);
        return empty(stream, 416, &format!("Content-Range: bytes */{len}\r\n"));
    }
    if let Some(shift) = f.range_shift.filter(|_| targeted && ranged) {
        start = start.saturating_sub(shift);
    }
    let endless = f.endless && targeted;
    let status = if ranged && !endless { 206 } else { 200 };
    let head = if endless {
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string()
    } else if status == 206 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\nConnection: close\r\n\r\n",
            stop_at.saturating_sub(start),
            stop_at.saturating_sub(1)
        )
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
        )
    };
    stream.write_all(head.as_bytes())?;
    set(status, 0);
    if endless {
        let garbage = vec![0xAAu8; 64 << 10];
        let mut sent = 0u64;
        for chunk in body.chunks(64 << 10).chain(std::iter::repeat(&garbage[..])) {
            if stop.load(Ordering::SeqCst) || stream.write_all(chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
            set(status, sent);
        }
        return Ok(());
    }
    let mut limit = stop_at.saturating_sub(start);
    if let Some(c) = f.cut_after {
        limit = limit.min(c);
    }
    if let Some(s) = f.stall_after {
        limit = limit.min(s);
    }
    if let Some(t) = f.truncate_at.filter(|_| targeted) {
        limit = limit.min(t.saturating_sub(start));
    }
    let step = match f.drip.filter(|_| targeted) {
        Some(_) => 1,
        None => 64 << 10,
    };
    let mut sent = 0u64;
    let mut rest = &body[start as usize..(start + limit) as usize];
    while !rest.is_empty() && !stop.load(Ordering::SeqCst) {
        let n = rest.len().min(step);
        if stream.write_all(&rest[..n]).is_err() {
            break;
        }
        sent += n as u64;
        rest = &rest[n..];
        if let Some(d) = f.drip.filter(|_| targeted) {
            set(status, sent);
            thread::sleep(d);
        }
    }
    set(status, sent);
    if f.stall_after.is_some() {
        stream
            .tcp()
            .set_read_timeout(Some(Duration::from_millis(50)))?;
        while !stop.load(Ordering::SeqCst) {
            let mut probe = [0u8; 1];
            match stream.read(&mut probe) {
                // The client hung up (over TLS, perhaps without close_notify).
                Ok(0) => break,
                Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break;
                }
                _ => {}
            }
        }
    }
    Ok(())
}
