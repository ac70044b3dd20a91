//! A real forward proxy on loopback doing what squid does for a client: `CONNECT
//! host:port` opens a tunnel (how https:// is reached through a proxy) and an
//! absolute-form `GET http://host:port/path` is forwarded (how http:// is). Every
//! request line is logged, so a test can tell what went through it; a refusing
//! proxy answers `403 Forbidden` to everything.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A running proxy; stops accepting when dropped.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy that tunnels and forwards.
    pub fn start() -> Proxy {
        Proxy::launch(false)
    }

    /// A proxy that answers every request with `403 Forbidden` (a corporate proxy
    /// refusing the destination).
    pub fn refusing() -> Proxy {
        Proxy::launch(true)
    }

    fn launch(refuse: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let l = l.clone();
                        thread::spawn(move || {
                            let _ = client.set_nonblocking(false);
                            let _ = serve(client, refuse, &l);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, log, stop }
    }

    /// The proxy's URL, as `HTTPS_PROXY` and `HTTP_PROXY` take it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines received so far (`CONNECT 127.0.0.1:4431 HTTP/1.1`, ...).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("proxy log").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A loopback address where nothing listens: a proxy that is down.
pub fn dead_address() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn serve(client: TcpStream, refuse: bool, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        headers.push(line);
    }
    let request = request.trim_end().to_string();
    log.lock().expect("proxy log").push(request.clone());
    let mut out = client;
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let forward = target.strip_prefix("http://").map(|r| {
        let (authority, path) = r.split_once('/').unwrap_or((r, ""));
        (authority.to_string(), format!("/{path}"))
    });
    let upstream = match (method, &forward) {
        _ if refuse => None,
        ("CONNECT", _) => TcpStream::connect(target).ok(),
        (_, Some((authority, _))) => TcpStream::connect(authority.as_str()).ok(),
        _ => None,
    };
    let Some(mut upstream) = upstream else {
        let status = if refuse {
            "403 Forbidden"
        } else {
            "502 Bad Gateway"
        };
        out.write_all(
            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        return out.shutdown(Shutdown::Both);
    };
    if method == "CONNECT" {
        out.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
        // Bytes the client sent after the request (none: it waits for the 200).
        upstream.write_all(reader.buffer())?;
    } else if let Some((_, path)) = &forward {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for h in &headers {
            let name = h
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "connection" | "proxy-connection" | "proxy-authorization"
            ) {
                head.push_str(h);
            }
        }
        head.push_str("Connection: close\r\n\r\n");
        upstream.write_all(head.as_bytes())?;
    }
    // Both ways until each side is done.
    let (mut up_read, mut out_write) = (upstream.try_clone()?, out.try_clone()?);
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut out_write);
        let _ = out_write.shutdown(Shutdown::Both);
    });
    let mut client_read = reader.into_inner();
    let _ = std::io::copy(&mut client_read, &mut upstream);
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = back.join();
    Ok(())
}
