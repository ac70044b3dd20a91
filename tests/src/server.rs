//! A real HTTP/1.1 static file server on loopback that can misbehave on purpose.
//!
//! It serves a folder (one request per connection, `Connection: close`), honours
//! `Range: bytes=N-`, and logs every request. [`Faults`] make it cut responses
//! short, ignore `Range`, answer 503, stall, or send more bytes than the file has,
//! so the bootstrapper's network code is tested against real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

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
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range_start: Option<u64>,
    pub status: u16,
    pub body_bytes: u64,
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    pub port: u16,
    faults: Arc<Mutex<Faults>>,
    log: Arc<Mutex<Vec<Logged>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves `root` on a free loopback port.
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let faults = Arc::new(Mutex::new(Faults::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, l, s, root) = (
            faults.clone(),
            log.clone(),
            stop.clone(),
            root.to_path_buf(),
        );
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (f, l, s, root) = (f.clone(), l.clone(), s.clone(), root.clone());
                        thread::spawn(move || {
                            let _ = handle(stream, &root, &f, &l, &s);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            faults,
            log,
            stop,
        }
    }

    /// The repository root URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
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
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn handle(
    mut stream: TcpStream,
    root: &Path,
    faults: &Mutex<Faults>,
    log: &Mutex<Vec<Logged>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut range_start = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range:") {
            range_start = v
                .trim()
                .strip_prefix("bytes=")
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse::<u64>().ok());
        }
    }
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
    let mut entry = Logged {
        path: path.clone(),
        range_start,
        status: 200,
        body_bytes: 0,
    };
    let file: Option<PathBuf> = (!path.contains(".."))
        .then(|| root.join(&path))
        .filter(|p| p.is_file());
    let hidden = f
        .hide_prefix
        .as_ref()
        .is_some_and(|p| path.starts_with(p.as_str()));
    let result = if f.fail_first > 0 {
        entry.status = 503;
        stream.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
    } else if hidden || file.is_none() {
        entry.status = 404;
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    } else {
        let mut body = fs_err::read(file.as_deref().unwrap_or(root))?;
        if path.starts_with("blobs/") {
            body.extend(std::iter::repeat_n(0xAAu8, f.extra_bytes as usize));
        }
        let len = body.len() as u64;
        let start = match range_start {
            Some(s) if !f.ignore_range => s,
            _ => 0,
        };
        if start > len {
            entry.status = 416;
            stream.write_all(format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
        } else {
            let head = if range_start.is_some() && !f.ignore_range {
                entry.status = 206;
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\nConnection: close\r\n\r\n",
                    len - start,
                    len.saturating_sub(1)
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
                )
            };
            stream.write_all(head.as_bytes())?;
            let mut limit = len - start;
            if let Some(c) = f.cut_after {
                limit = limit.min(c);
            }
            if let Some(s) = f.stall_after {
                limit = limit.min(s);
            }
            let mut sent = 0u64;
            let mut rest = &body[start as usize..(start + limit) as usize];
            while !rest.is_empty() {
                let n = rest.len().min(64 << 10);
                if stream.write_all(&rest[..n]).is_err() {
                    break;
                }
                sent += n as u64;
                rest = &rest[n..];
            }
            entry.body_bytes = sent;
            if f.stall_after.is_some() {
                log.lock().expect("log lock").push(entry.clone());
                while !stop.load(Ordering::SeqCst) {
                    let mut probe = [0u8; 1];
                    stream.set_read_timeout(Some(Duration::from_millis(50)))?;
                    if let Ok(0) = stream.read(&mut probe) {
                        break;
                    }
                }
                return Ok(());
            }
            Ok(())
        }
    };
    log.lock().expect("log lock").push(entry);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
    result
}
