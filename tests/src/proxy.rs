//! A loopback TCP proxy that cuts connections: after the configured numbers of bytes
//! from the server (one cut point per connection, in order), it closes both sides. Once
//! the cut points are used up it passes everything through. It counts the bytes it
//! forwarded from the server, to measure what a pull really transferred.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy.
pub struct CuttingProxy {
    /// Address to connect to instead of the target.
    pub addr: String,
    /// Bytes forwarded from the target to clients.
    pub downstream_bytes: Arc<AtomicU64>,
    /// Connections cut so far.
    pub cuts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    /// Starts a proxy to `target` with these cut points (bytes from the server per
    /// connection, used one per new connection until exhausted).
    pub async fn start(target: String, cut_points: Vec<u64>) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let downstream_bytes = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU64::new(0));
        let points = Arc::new(Mutex::new(cut_points.into_iter()));
        let (db, c) = (downstream_bytes.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let limit = points.lock().unwrap().next();
                let (db, c, target) = (db.clone(), c.clone(), target.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                        let _ = sw.shutdown().await;
                    });
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut sent = 0u64;
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let n = match limit {
                            Some(l) if sent + n as u64 >= l => (l - sent) as usize,
                            _ => n,
                        };
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n as u64;
                        db.fetch_add(n as u64, Ordering::Relaxed);
                        if limit.is_some_and(|l| sent >= l) {
                            c.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                    up.abort();
                    // dropping both halves closes the connection
                });
            }
        });
        CuttingProxy {
            addr,
            downstream_bytes,
            cuts,
            task,
        }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
