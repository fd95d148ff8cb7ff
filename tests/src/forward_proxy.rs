//! A forward HTTP proxy on loopback, as a corporate proxy behaves: `CONNECT host:port`
//! opens a tunnel (bytes piped both ways), and a request in absolute form
//! (`GET http://host:port/path`) is passed to its origin. It may ask for credentials
//! (`407` without the right `Proxy-Authorization`). It only ever connects to loopback
//! addresses, and it records what it saw: each connection's first request, and whether
//! a tunnel's first byte from the client was a TLS handshake and a secret ever crossed it
//! in the clear. Plain threads: it works under any runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;

/// The first request of one client connection, as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `CONNECT`, `GET`, …
    pub method: String,
    /// The request target: `host:port` for `CONNECT`, an absolute URL otherwise.
    pub target: String,
    /// The `Proxy-Authorization` value sent, if any.
    pub proxy_authorization: Option<String>,
    /// The status the proxy answered (`200` for an open tunnel, `407`, …; `0` for a
    /// request passed on).
    pub status: u16,
    /// For a tunnel: the first byte the client sent through it (`0x16`: TLS).
    pub first_tunnel_byte: Option<u8>,
}

/// A running proxy.
pub struct ForwardProxy {
    /// `127.0.0.1:port`.
    pub addr: String,
    /// The first request of every connection, in order.
    pub log: Arc<Mutex<Vec<Seen>>>,
    /// Whether any of the secrets crossed the proxy in the clear (in a request head, or
    /// in a tunnel's or a forwarded connection's bytes from the client).
    pub saw_secret: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl ForwardProxy {
    /// Starts a proxy that wants `credentials` (user, password) when given, and watches
    /// for `secrets` in what clients send.
    pub fn start(credentials: Option<(&str, &str)>, secrets: Vec<String>) -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let want = credentials.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let saw_secret = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Shared {
            want,
            secrets: Arc::new(secrets),
            log: log.clone(),
            saw_secret: saw_secret.clone(),
        };
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(client));
            }
        });
        ForwardProxy {
            addr,
            log,
            saw_secret,
            stop,
        }
    }

    /// The proxy's URL, with `user:password@` when given.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("http://{u}:{p}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// What the proxy saw so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the acceptor so it sees the flag
        let _ = TcpStream::connect(&self.addr);
    }
}

#[derive(Clone)]
struct Shared {
    want: Option<String>,
    secrets: Arc<Vec<String>>,
    log: Arc<Mutex<Vec<Seen>>>,
    saw_secret: Arc<AtomicBool>,
}

impl Shared {
    fn serve(&self, mut client: TcpStream) {
        let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
        let Some((head, rest)) = read_head(&mut client) else {
            return;
        };
        let text = String::from_utf8_lossy(&head).into_owned();
        self.watch(head.as_slice());
        let mut lines = text.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let (method, target) = (
            first.next().unwrap_or("").to_string(),
            first.next().unwrap_or("").to_string(),
        );
        let proxy_authorization = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
            .map(|(_, v)| v.trim().to_string());
        let mut seen = Seen {
            method: method.clone(),
            target: target.clone(),
            proxy_authorization: proxy_authorization.clone(),
            status: 0,
            first_tunnel_byte: None,
        };
        if self.want.is_some() && proxy_authorization != self.want {
            seen.status = 407;
            self.log.lock().unwrap().push(seen);
            let _ = client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test proxy\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        let authority = if method == "CONNECT" {
            target.clone()
        } else {
            target
                .strip_prefix("http://")
                .and_then(|t| t.split('/').next())
                .unwrap_or("")
                .to_string()
        };
        // loopback only, whatever a client asks for
        let loopback = authority.starts_with("127.0.0.1:") || authority.starts_with("[::1]:");
        let upstream = match loopback.then(|| TcpStream::connect(&authority)) {
            Some(Ok(s)) => s,
            _ => {
                seen.status = 502;
                self.log.lock().unwrap().push(seen);
                let _ = client.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
        };
        if method == "CONNECT" {
            seen.status = 200;
            let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n");
            let mut first = [0u8; 1];
            if client.read_exact(&mut first).is_ok() {
                seen.first_tunnel_byte = Some(first[0]);
            }
            self.log.lock().unwrap().push(seen);
            let mut up = upstream;
            let _ = up.write_all(&first);
            self.pipe(client, up, Vec::new());
        } else {
            self.log.lock().unwrap().push(seen);
            // the request goes on in absolute form (servers must take it), and so does
            // what follows on this connection
            let mut up = upstream;
            if up.write_all(&head).is_err() {
                return;
            }
            self.pipe(client, up, rest);
        }
    }

    /// Pipes both ways until either side closes, watching the client's bytes.
    fn pipe(&self, client: TcpStream, up: TcpStream, already: Vec<u8>) {
        let (mut c_read, mut u_write) = (client.try_clone().unwrap(), up.try_clone().unwrap());
        let watcher = self.clone();
        let upward = std::thread::spawn(move || {
            if !already.is_empty() {
                watcher.watch(&already);
                if u_write.write_all(&already).is_err() {
                    return;
                }
            }
            let mut buf = vec![0u8; 64 << 10];
            // the end of the previous read, so a secret split across reads is found
            let mut tail: Vec<u8> = Vec::new();
            loop {
                match c_read.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut window = std::mem::take(&mut tail);
                        window.extend_from_slice(&buf[..n]);
                        watcher.watch(&window);
                        tail = window[window.len().saturating_sub(256)..].to_vec();
                        if u_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = u_write.shutdown(Shutdown::Write);
        });
        let (mut u_read, mut c_write) = (up, client);
        let _ = std::io::copy(&mut u_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Both);
        let _ = upward.join();
    }

    fn watch(&self, bytes: &[u8]) {
        if self
            .secrets
            .iter()
            .any(|s| !s.is_empty() && bytes.windows(s.len()).any(|w| w == s.as_bytes()))
        {
            self.saw_secret.store(true, Ordering::Relaxed);
        }
    }
}

/// Reads a request head (up to 64 KiB): the head, and the bytes read past it.
fn read_head(s: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        if buf.len() > 64 << 10 {
            return None;
        }
    }
}
