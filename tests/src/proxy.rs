//! A loopback TCP proxy that cuts connections: after the configured numbers of bytes
//! from the server (one cut point per connection, in order), it closes both sides. Once
//! the cut points are used up it passes everything through. It counts the bytes it
//! forwarded from the server, to measure what a pull really transferred. Plain threads:
//! it works under any runtime.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A running proxy.
pub struct CuttingProxy {
    /// Address to connect to instead of the target.
    pub addr: String,
    /// Bytes forwarded from the target to clients.
    pub downstream_bytes: Arc<AtomicU64>,
    /// Connections cut so far.
    pub cuts: Arc<AtomicU64>,
    _acceptor: Acceptor,
}

impl CuttingProxy {
    /// Starts a proxy to `target` with these cut points (bytes from the server per
    /// connection, used one per new connection until exhausted).
    pub fn start(target: String, cut_points: Vec<u64>) -> CuttingProxy {
        let downstream_bytes = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let points = Arc::new(Mutex::new(cut_points.into_iter()));
        let (db, c) = (downstream_bytes.clone(), cuts.clone());
        let acceptor = Acceptor::start(move |client| {
            let limit = points.lock().unwrap().next();
            let (db, c, target) = (db.clone(), c.clone(), target.clone());
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(&target) else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut sw) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut cr, &mut sw);
                    let _ = sw.shutdown(Shutdown::Write);
                });
                let (mut sr, mut cw) = (server, client);
                let mut buf = vec![0u8; 256 * 1024];
                let mut sent = 0u64;
                loop {
                    let n = match sr.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let n = match limit {
                        Some(l) if sent + n as u64 >= l => (l - sent) as usize,
                        _ => n,
                    };
                    if cw.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n as u64;
                    db.fetch_add(n as u64, Ordering::Relaxed);
                    if limit.is_some_and(|l| sent >= l) {
                        c.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                let _ = cw.shutdown(Shutdown::Both);
                let _ = sr.shutdown(Shutdown::Both);
            });
        });
        CuttingProxy {
            addr: acceptor.addr.clone(),
            downstream_bytes,
            cuts,
            _acceptor: acceptor,
        }
    }
}

/// A loopback listener whose accept loop runs on a thread of its own and hands each
/// connection to `on_client`, until dropped. Shared by the test proxies.
pub(crate) struct Acceptor {
    /// `127.0.0.1:PORT`.
    pub(crate) addr: String,
    stop: Arc<AtomicBool>,
}

impl Acceptor {
    /// Binds a free loopback port and starts accepting.
    pub(crate) fn start(mut on_client: impl FnMut(TcpStream) + Send + 'static) -> Acceptor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(client) = client {
                    on_client(client);
                }
            }
        });
        Acceptor { addr, stop }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the accept loop so it sees the flag
        let _ = TcpStream::connect(&self.addr);
    }
}
