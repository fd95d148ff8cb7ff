//! A loopback TCP proxy that makes a near server far: every new connection costs one
//! round trip before its first byte is forwarded (the TCP handshake of a real path), and
//! every byte is held for half a round trip in each direction. Bytes are delayed, not
//! throttled: each direction is a reader that stamps what it reads with the time it may
//! leave and a writer that waits for that time, so a large body streams at full speed
//! one round trip late, as over a long fat pipe with windows large enough.
//!
//! Plain threads: it works under any runtime. Used by the benchmark's latency rows.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proxy::Acceptor;

/// A running proxy.
pub struct DelayProxy {
    /// Address to connect to instead of the target.
    pub addr: String,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
    /// The added round trip in microseconds, read by each new connection.
    rtt_micros: Arc<AtomicU64>,
    _acceptor: Acceptor,
}

impl DelayProxy {
    /// Starts a proxy to `target` that adds `rtt` to every round trip.
    pub fn start(target: String, rtt: Duration) -> DelayProxy {
        let connections = Arc::new(AtomicU64::new(0));
        let rtt_micros = Arc::new(AtomicU64::new(rtt.as_micros() as u64));
        let (count, micros) = (connections.clone(), rtt_micros.clone());
        let acceptor = Acceptor::start(move |client| {
            count.fetch_add(1, Ordering::Relaxed);
            let target = target.clone();
            let rtt = Duration::from_micros(micros.load(Ordering::Relaxed));
            std::thread::spawn(move || connect_late(client, &target, rtt));
        });
        DelayProxy {
            addr: acceptor.addr.clone(),
            connections,
            rtt_micros,
            _acceptor: acceptor,
        }
    }

    /// Changes the added round trip for connections accepted from now on (zero: a
    /// plain pass-through).
    pub fn set_rtt(&self, rtt: Duration) {
        self.rtt_micros
            .store(rtt.as_micros() as u64, Ordering::Relaxed);
    }
}

/// The handshake's round trip, then both directions, each half a round trip late.
fn connect_late(client: TcpStream, target: &str, rtt: Duration) {
    std::thread::sleep(rtt);
    let Ok(server) = TcpStream::connect(target) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let half = rtt / 2;
    std::thread::spawn(move || pump(client, server, half));
    pump(server2, client2, half);
}

/// Copies `from` to `to`, each read leaving `delay` after it arrived; the end (or an
/// error) is passed on as a write shutdown, just as late.
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>();
    let writer = std::thread::spawn(move || {
        while let Ok((due, bytes)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            match bytes {
                Some(b) if to.write_all(&b).is_ok() => {}
                _ => break,
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).unwrap_or(0);
        let due = Instant::now() + delay;
        let bytes = (n > 0).then(|| buf[..n].to_vec());
        if tx.send((due, bytes)).is_err() || n == 0 {
            break;
        }
    }
    drop(tx);
    let _ = writer.join();
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A request on a new connection costs two round trips (handshake, exchange); a
    /// second one on the same connection costs one. (Lower bounds only: a busy machine
    /// makes anything slower, never faster.)
    #[test]
    fn a_new_connection_costs_a_round_trip_and_each_exchange_one() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = echo.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut b = [0u8; 1];
            while s.read_exact(&mut b).is_ok() {
                s.write_all(&b).unwrap();
            }
        });
        let rtt = Duration::from_millis(60);
        let proxy = DelayProxy::start(target, rtt);
        let started = Instant::now();
        let mut s = TcpStream::connect(&proxy.addr).unwrap();
        let mut b = [7u8];
        s.write_all(&b).unwrap();
        s.read_exact(&mut b).unwrap();
        let first = started.elapsed();
        let again = Instant::now();
        s.write_all(&b).unwrap();
        s.read_exact(&mut b).unwrap();
        let second = again.elapsed();
        assert!(first >= rtt * 2, "first exchange took {first:?}");
        assert!(second >= rtt, "second took {second:?}");
        assert_eq!(proxy.connections.load(Ordering::Relaxed), 1);
    }
}
