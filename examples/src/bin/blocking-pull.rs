//! Pulls an image into an OCI layout by driving `ocireg-core` from a plain blocking loop:
//! no async runtime, one HTTP exchange at a time over `ureq`. It doubles as the
//! documentation of the driving contract:
//!
//! 1. poll the machine until it says `Wait` (queue `Send`s, drop `Abort`ed exchanges,
//!    write `Deliver`ed bytes, handle events);
//! 2. then feed it one input (the next head, chunk, end or error of an exchange), or
//!    sleep until the `Wait` deadline when nothing is in flight; go to 1.
//!
//! A `Send` starts its response-head timer when the machine emits it, so a driver that
//! cannot start every exchange at once must say so: this one runs one exchange at a time
//! and sets `max_concurrent = max_concurrent_small = 1`, so no request waits in its queue behind a slow layer
//! while its timer runs.
//!
//! Usage: `blocking-pull [--plain-http] [--head-timeout-ms=N] REFERENCE DIR`

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ocireg_core::{
    Action, Config, Event, Machine, Reference, RequestId, TransportError, TransportErrorKind,
};
use ocireg_driver::layout::LayoutWriter;
use ocireg_driver::Caller;

/// The exchange being read: its id and body.
struct Current {
    id: RequestId,
    body: Box<dyn Read + Send>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plain_http = args.iter().any(|a| a == "--plain-http");
    let head_timeout = args
        .iter()
        .find_map(|a| a.strip_prefix("--head-timeout-ms="))
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [reference, dir] = pos.as_slice() else {
        eprintln!("usage: blocking-pull [--plain-http] [--head-timeout-ms=N] REFERENCE DIR");
        std::process::exit(2);
    };
    match run(reference, dir, plain_http, head_timeout) {
        Ok((digest, retries)) => {
            println!("pulled {reference} ({digest}) into {dir}, {retries} retries")
        }
        Err(e) => {
            eprintln!("blocking-pull: {e}");
            std::process::exit(1);
        }
    }
}

fn run(
    reference: &str,
    dir: &str,
    plain_http: bool,
    head_timeout: Option<Duration>,
) -> Result<(String, usize), String> {
    let reference = Reference::parse(reference).map_err(|e| e.to_string())?;
    let defaults = Config::default();
    let config = Config {
        plain_http,
        // One exchange at a time: see the module documentation.
        max_concurrent: 1,
        max_concurrent_small: 1,
        head_timeout: head_timeout.unwrap_or(defaults.head_timeout),
        ..defaults
    };
    // The client must not follow redirects (the core does) and its reads must give up
    // no later than the core's idle deadline.
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(config.idle_timeout)
        .build();
    let mut writer = LayoutWriter::create(dir, reference.tag().map(str::to_string))
        .map_err(|e| e.to_string())?;
    let mut pull = Machine::pull(config, reference, Instant::now());
    let mut queue: VecDeque<(RequestId, http::Request<Bytes>)> = VecDeque::new();
    let mut aborted: HashSet<RequestId> = HashSet::new();
    let mut current: Option<Current> = None;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        // 1. drain
        let until = match pull.poll_action(Instant::now()) {
            Action::Send { id, request } => {
                queue.push_back((id, request));
                continue;
            }
            // one exchange at a time: no connections to open ahead
            Action::Prepare { .. } => continue,
            Action::Abort { id } => {
                aborted.insert(id);
                if current.as_ref().is_some_and(|c| c.id == id) {
                    current = None;
                }
                continue;
            }
            Action::Deliver {
                blob,
                offset,
                bytes,
            } => {
                writer
                    .deliver(blob, offset, &bytes)
                    .map_err(|e| e.to_string())?;
                continue;
            }
            Action::Event(e) => {
                writer.event(&e).map_err(|e| e.to_string())?;
                if let Event::BlobQueued { blob, descriptor } = &e {
                    if let Some(queued) = pull.queued(*blob) {
                        writer
                            .blob_queued(queued, descriptor)
                            .map_err(|e| e.to_string())?;
                    }
                }
                continue;
            }
            Action::Wait { until } => until,
            Action::Done => break,
            Action::Failed(e) => return Err(e.to_string()),
            other => return Err(format!("internal error: a pull asked for {other:?}")),
        };
        // 2. one input
        let now = Instant::now();
        if let Some(c) = current.as_mut() {
            match c.body.read(&mut buf) {
                Ok(0) => {
                    let id = c.id;
                    current = None;
                    pull.handle_end(id, Instant::now());
                }
                Ok(n) => pull.handle_chunk(c.id, Bytes::copy_from_slice(&buf[..n]), Instant::now()),
                Err(e) => {
                    let id = c.id;
                    current = None;
                    let kind = match e.kind() {
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                            TransportErrorKind::Timeout
                        }
                        _ => TransportErrorKind::Broken,
                    };
                    pull.handle_error(id, TransportError::new(kind, e.to_string()), Instant::now());
                }
            }
        } else if let Some((id, request)) = queue.pop_front() {
            if aborted.remove(&id) {
                continue;
            }
            current = exchange(&agent, &mut pull, id, request);
        } else if let Some(t) = until {
            std::thread::sleep(t.saturating_duration_since(now));
        } else {
            return Err("the machine waits with nothing in flight".into());
        }
    }
    writer.commit().map_err(|e| e.to_string())?;
    let digest = writer
        .resolved()
        .map(|d| d.digest.to_string())
        .unwrap_or_default();
    Ok((digest, writer.stats.retries))
}

/// Sends a request and feeds its head (or the failure) to the machine.
fn exchange(
    agent: &ureq::Agent,
    pull: &mut Machine,
    id: RequestId,
    request: http::Request<Bytes>,
) -> Option<Current> {
    let (parts, body) = request.into_parts();
    let mut req = agent.request(parts.method.as_str(), &parts.uri.to_string());
    for (k, v) in &parts.headers {
        if let Ok(v) = v.to_str() {
            req = req.set(k.as_str(), v);
        }
    }
    let result = if body.is_empty() {
        req.call()
    } else {
        req.send_bytes(&body)
    };
    let resp = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            // the same classification as the async adapters (TLS vs not-TLS, refused, …)
            let connect = matches!(
                t.kind(),
                ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns
            );
            pull.handle_error(
                id,
                ocireg_driver::hyper::classify(&t, connect),
                Instant::now(),
            );
            return None;
        }
    };
    let mut head = http::Response::builder().status(resp.status());
    for name in resp.headers_names() {
        for v in resp.all(&name) {
            head = head.header(name.as_str(), v);
        }
    }
    match head.body(()) {
        Ok(h) => pull.handle_head(id, h, Instant::now()),
        Err(e) => {
            pull.handle_error(
                id,
                TransportError::new(TransportErrorKind::Broken, e.to_string()),
                Instant::now(),
            );
            return None;
        }
    }
    Some(Current {
        id,
        body: Box::new(resp.into_reader()),
    })
}
