//! Small hostile HTTP servers on loopback, for the CLI's trust-boundary tests: one thread,
//! one request per connection, answers chosen by a closure, every request recorded.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Req {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Req {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How to answer one request.
pub enum Answer {
    /// This status, these headers and this body (`Content-Length` is added).
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// This status, headers and body, sent `chunk` bytes at a time with `pause` between.
    Slow(
        u16,
        Vec<(String, String)>,
        Vec<u8>,
        usize,
        std::time::Duration,
    ),
    /// This status and headers, then body bytes without end (chunked) until the client
    /// goes away. The bytes written are added to [`Hostile::streamed`].
    Endless(u16, Vec<(String, String)>),
    /// Pass the request to the server at `to` (`host:port`) and its response back; with
    /// `stall_after`, stop after that many response bytes (head included) and send
    /// nothing more while the client waits (at most a minute).
    Forward {
        /// The real server.
        to: String,
        /// Response bytes passed before the stall.
        stall_after: Option<usize>,
    },
    /// Pass the request to `to` with only the first `after` bytes of its body, then close
    /// both connections: an upload cut on its way in.
    ForwardCut {
        /// The real server.
        to: String,
        /// Body bytes that reach it.
        after: usize,
    },
}

/// A running hostile server.
pub struct Hostile {
    /// `127.0.0.1:port`.
    pub addr: String,
    /// Every request, in order.
    pub requests: Arc<Mutex<Vec<Req>>>,
    /// Body bytes written by [`Answer::Endless`] answers, or passed on by
    /// [`Answer::ForwardCut`].
    pub streamed: Arc<Mutex<u64>>,
}

/// What [`Hostile::upload_cutter`] has seen: upload body bytes forwarded so far, and the
/// cut points still ahead.
pub type CutState = Arc<Mutex<(u64, Vec<u64>)>>;

impl Hostile {
    /// A proxy to `target` that cuts the stream of upload bodies (`PATCH` and `PUT`,
    /// counted as one stream across requests) at each of `cuts` (ascending offsets in
    /// that stream), and forwards everything else as it is.
    pub fn upload_cutter(target: String, cuts: Vec<u64>) -> (Hostile, CutState) {
        let state: CutState = Arc::new(Mutex::new((0, cuts)));
        let seen = state.clone();
        let proxy = Hostile::start(move |req, _| {
            let len: u64 = req
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let upload = req.method == "PATCH" || req.method == "PUT";
            let mut s = seen.lock().unwrap();
            let (moved, cuts) = &mut *s;
            if upload && cuts.first().is_some_and(|&c| c < *moved + len) {
                let at = cuts.remove(0).saturating_sub(*moved);
                *moved += at;
                return Answer::ForwardCut {
                    to: target.clone(),
                    after: at as usize,
                };
            }
            if upload {
                *moved += len;
            }
            Answer::Forward {
                to: target.clone(),
                stall_after: None,
            }
        });
        (proxy, state)
    }

    /// Starts a server whose answers come from `answer(request, its own address)`.
    pub fn start<F>(answer: F) -> Hostile
    where
        F: Fn(&Req, &str) -> Answer + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let streamed = Arc::new(Mutex::new(0u64));
        let (reqs, stream_count, me) = (requests.clone(), streamed.clone(), addr.clone());
        let answer = Arc::new(answer);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (reqs, stream_count, me, answer) = (
                    reqs.clone(),
                    stream_count.clone(),
                    me.clone(),
                    answer.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve_one(conn, &reqs, &stream_count, &me, &*answer);
                });
            }
        });
        Hostile {
            addr,
            requests,
            streamed,
        }
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_one<F>(
    conn: TcpStream,
    reqs: &Mutex<Vec<Req>>,
    streamed: &Mutex<u64>,
    me: &str,
    answer: &F,
) -> std::io::Result<()>
where
    F: Fn(&Req, &str) -> Answer,
{
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    let mut body_len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                body_len = v.parse().unwrap_or(0);
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0u8; body_len];
    std::io::Read::read_exact(&mut reader, &mut body)?;
    let req = Req {
        method,
        path,
        headers,
    };
    reqs.lock().unwrap().push(req.clone());
    let mut conn = conn;
    match answer(&req, me) {
        Answer::Forward { to, stall_after } => return forward(&req, &body, &to, stall_after, conn),
        Answer::ForwardCut { to, after } => {
            *streamed.lock().unwrap() += after.min(body.len()) as u64;
            let mut server = TcpStream::connect(&to)?;
            server.write_all(request_head(&req).as_bytes())?;
            server.write_all(&body[..after.min(body.len())])?;
            server.flush()?;
            // let the server read what arrived before the connection goes
            std::thread::sleep(std::time::Duration::from_millis(50));
            let _ = server.shutdown(std::net::Shutdown::Both);
            let _ = conn.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        Answer::Full(status, hs, body) => {
            write_head(
                &mut conn,
                status,
                &format!("content-length: {}", body.len()),
                hs,
            )?;
            conn.write_all(&body)?;
        }
        Answer::Slow(status, hs, body, chunk, pause) => {
            write_head(
                &mut conn,
                status,
                &format!("content-length: {}", body.len()),
                hs,
            )?;
            for part in body.chunks(chunk.max(1)) {
                conn.write_all(part)?;
                conn.flush()?;
                std::thread::sleep(pause);
            }
        }
        Answer::Endless(status, hs) => {
            write_head(&mut conn, status, "transfer-encoding: chunked", hs)?;
            let chunk = vec![b'x'; 64 * 1024];
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            loop {
                conn.write_all(&framed)?;
                *streamed.lock().unwrap() += chunk.len() as u64;
            }
        }
    }
    conn.flush()
}

/// Passes `req` to `to` with `connection: close`, and its response back to `client`,
/// stalling after `stall_after` bytes if asked.
fn forward(
    req: &Req,
    body: &[u8],
    to: &str,
    stall_after: Option<usize>,
    mut client: TcpStream,
) -> std::io::Result<()> {
    use std::io::Read;
    let mut server = TcpStream::connect(to)?;
    server.write_all(request_head(req).as_bytes())?;
    server.write_all(body)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed = 0usize;
    loop {
        let n = server.read(&mut buf)?;
        if n == 0 {
            return client.flush();
        }
        let n = stall_after.map_or(n, |s| n.min(s - passed));
        client.write_all(&buf[..n])?;
        passed += n;
        if stall_after == Some(passed) {
            client.flush()?;
            // silence: wait for the client to give up (it closes), a minute at most
            client.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
            let _ = client.read(&mut buf);
            return Ok(());
        }
    }
}

/// The head of `req` as sent on to a real server, with `connection: close`.
fn request_head(req: &Req) -> String {
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if k != "connection" {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("connection: close\r\n\r\n");
    head
}

/// Writes a response head: the status, `connection: close`, the framing header, then
/// the answer's own headers.
fn write_head(
    conn: &mut TcpStream,
    status: u16,
    framing: &str,
    headers: Vec<(String, String)>,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} Hostile\r\nconnection: close\r\n{framing}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())
}

/// `Answer::Full` with a JSON body.
pub fn json(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    hs.push(("content-type".into(), "application/json".into()));
    Answer::Full(status, hs, body.as_bytes().to_vec())
}
