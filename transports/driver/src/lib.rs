//! # ocireg-driver: what every runtime adapter shares
//!
//! The drive loop ([`drive`]) runs a [`Pull`] over any [`Transport`] and [`Runtime`]: it
//! sends what the core asks, feeds heads, chunks, ends and errors back, sleeps until the
//! core's deadline and hands delivered bytes and events to a [`Sink`]. It is written
//! against `futures` only, so the tokio and async-std adapters provide nothing but an
//! HTTP client and a timer. [`layout`] writes and reads OCI image layouts, and [`hyper`]
//! turns hyper responses into core inputs and registry replies into hyper responses.
//! [`client::Client`] is the few-lines entry point each adapter wraps.
//!
//! A pull into a layout over any transport and runtime (an adapter gives both):
//!
//! ```no_run
//! use ocireg_core::{Config, Pull, Reference};
//! use ocireg_driver::layout::{pull_to_layout, NoObserver};
//! # async fn run(
//! #     transport: &dyn ocireg_driver::Transport,
//! #     runtime: &dyn ocireg_driver::Runtime,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! let reference = Reference::parse("docker.io/library/alpine:3.20")?;
//! let mut pull = Pull::new(Config::default(), reference, runtime.now());
//! let dir = std::path::Path::new("./alpine");
//! let (manifest, _) = pull_to_layout(&mut pull, transport, runtime, dir, &mut NoObserver).await?;
//! println!("{}", manifest.digest);
//! # Ok(()) }
//! ```

pub mod client;
pub mod credentials;
pub mod files;
mod gather;
pub mod hashing;
pub mod hosts;
pub mod hyper;
pub mod layout;
pub mod push;
#[cfg(feature = "server")]
pub mod server;
mod stream;
pub mod tls;
pub mod warm;
mod writer;

pub use stream::{blob_stream, resume_at_checkpoint, Checkpoints};

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures::future::{AbortHandle, Abortable, BoxFuture, FutureExt};
use futures::stream::{BoxStream, SelectAll, Stream, StreamExt};
use http::{Request, Response};
use ocireg_core::{
    Action, BlobId, Descriptor, Event, Input, Machine, Pull, Push, QueuedBlob, RequestId,
    TransportError,
};

/// A response body as a stream of chunks.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// A request body: bytes in hand, or a blob's range streamed from the caller's source.
pub enum Body {
    /// These bytes.
    Full(Bytes),
    /// `len` bytes, as they are read.
    Stream {
        /// The length the request declares.
        len: u64,
        /// The bytes, in chunks.
        chunks: BoxStream<'static, std::io::Result<Bytes>>,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(b) => write!(f, "Full({} bytes)", b.len()),
            Body::Stream { len, .. } => write!(f, "Stream({len} bytes)"),
        }
    }
}

/// Where a push reads its blobs: bytes `offset..offset + len` of a blob of its plan, as
/// chunks (the same range may be asked for again when an upload resumes).
pub trait BlobSource: Send + Sync {
    /// The range, as a stream of chunks.
    fn read(
        &self,
        blob: BlobId,
        offset: u64,
        len: u64,
    ) -> std::io::Result<BoxStream<'static, std::io::Result<Bytes>>>;
}

/// Performs one HTTP exchange. It must not follow redirects or retry: the core does.
pub trait Transport: Send + Sync {
    /// Sends `request`; resolves to the response head with its body as a stream.
    fn send(
        &self,
        request: Request<Body>,
    ) -> BoxFuture<'static, Result<Response<BodyStream>, TransportError>>;

    /// The core's hint ([`Action::Prepare`]): up to `connections` requests to `origin`
    /// will be wanted at once soon. A transport with a connection pool may open
    /// connections now; the future ends when they are open or failed (nothing is
    /// reported). By default, nothing is done.
    fn prepare(&self, origin: &url::Url, connections: usize) -> BoxFuture<'static, ()> {
        let _ = (origin, connections);
        Box::pin(std::future::ready(()))
    }
}

/// What the drive loop needs of a runtime: the time, and a timer.
pub trait Runtime: Send + Sync {
    /// The current time on the runtime's monotonic clock.
    fn now(&self) -> Instant;
    /// A future that completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<'static, ()>;
}

/// Receives what a pull produces.
pub trait Sink {
    /// An event.
    fn event(&mut self, event: &Event) -> std::io::Result<()>;
    /// A blob is queued (right after its [`Event::BlobQueued`]): the sink may skip it or
    /// continue it from a prefix it has, through the handle. Dropping the handle lets
    /// the download start from byte 0.
    fn blob_queued(
        &mut self,
        blob: QueuedBlob<'_>,
        descriptor: &Descriptor,
    ) -> std::io::Result<()> {
        let _ = (blob, descriptor);
        Ok(())
    }
    /// Bytes of a blob at `offset` (always its end so far).
    fn deliver(&mut self, blob: BlobId, offset: u64, bytes: &Bytes) -> std::io::Result<()>;
    /// The drive loop has no input ready and is about to wait: bytes the sink holds back
    /// to write in larger pieces should be written now (a stall must not keep received
    /// bytes off the disk). By default, nothing is done.
    fn idle(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Why a driven pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The protocol failed (see the core's error).
    #[error(transparent)]
    Registry(#[from] ocireg_core::Error),
    /// The core waits for nothing while nothing is in flight (a bug in the core).
    #[error("internal error: the pull waits with no request in flight and no deadline")]
    Stuck,
    /// Writing the result failed.
    #[error("writing the image failed: {0}")]
    Io(#[from] std::io::Error),
}

enum ExchangeState {
    Start(BoxFuture<'static, Result<Response<BodyStream>, TransportError>>),
    Body(BodyStream),
    Finished,
}

/// One exchange as a stream of items tagged with its id.
fn exchange(
    id: RequestId,
    fut: BoxFuture<'static, Result<Response<BodyStream>, TransportError>>,
) -> impl Stream<Item = (RequestId, Input)> + Send {
    futures::stream::unfold(ExchangeState::Start(fut), move |state| async move {
        match state {
            ExchangeState::Start(fut) => match fut.await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    Some((
                        (id, Input::Head(Response::from_parts(parts, ()))),
                        ExchangeState::Body(body),
                    ))
                }
                Err(e) => Some(((id, Input::Error(e)), ExchangeState::Finished)),
            },
            ExchangeState::Body(mut body) => match body.next().await {
                Some(Ok(chunk)) => Some(((id, Input::Chunk(chunk)), ExchangeState::Body(body))),
                Some(Err(e)) => Some(((id, Input::Error(e)), ExchangeState::Finished)),
                None => Some(((id, Input::End), ExchangeState::Finished)),
            },
            ExchangeState::Finished => None,
        }
    })
}

/// Runs `pull` to its end. See the core's crate docs for the contract this follows.
pub async fn drive<T: Transport + ?Sized, R: Runtime + ?Sized, S: Sink + ?Sized>(
    pull: &mut Pull,
    transport: &T,
    runtime: &R,
    sink: &mut S,
) -> Result<(), PullError> {
    drive_machine(pull, transport, runtime, &mut PullHands(sink)).await
}

/// Runs `push` to its end: upload bodies are read from `source` by range, events go to
/// `observer`.
pub async fn drive_push<T: Transport + ?Sized, R: Runtime + ?Sized>(
    push: &mut Push,
    transport: &T,
    runtime: &R,
    source: &dyn BlobSource,
    observer: &mut (dyn FnMut(&Event) + Send),
) -> Result<(), PullError> {
    drive_machine(
        push,
        transport,
        runtime,
        &mut PushHands { source, observer },
    )
    .await
}

/// What a machine's caller does besides moving exchanges: events, delivered bytes,
/// upload bodies.
trait Hands<M> {
    fn event(&mut self, machine: &mut M, event: &Event) -> std::io::Result<()>;
    fn deliver(&mut self, blob: BlobId, offset: u64, bytes: &Bytes) -> std::io::Result<()>;
    fn upload_body(&mut self, blob: BlobId, offset: u64, len: u64) -> std::io::Result<Body>;
    /// See [`Sink::idle`].
    fn idle(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct PullHands<'a, S: ?Sized>(&'a mut S);

impl<S: Sink + ?Sized> Hands<Pull> for PullHands<'_, S> {
    fn event(&mut self, pull: &mut Pull, event: &Event) -> std::io::Result<()> {
        self.0.event(event)?;
        if let Event::BlobQueued { blob, descriptor } = event {
            if let Some(queued) = pull.queued(*blob) {
                self.0.blob_queued(queued, descriptor)?;
            }
        }
        Ok(())
    }
    fn deliver(&mut self, blob: BlobId, offset: u64, bytes: &Bytes) -> std::io::Result<()> {
        self.0.deliver(blob, offset, bytes)
    }
    fn idle(&mut self) -> std::io::Result<()> {
        self.0.idle()
    }
    fn upload_body(&mut self, _: BlobId, _: u64, _: u64) -> std::io::Result<Body> {
        // A pull never uploads; a machine that asks is a bug, said as such.
        Err(std::io::Error::other(
            "internal error: a pull asked to upload",
        ))
    }
}

struct PushHands<'a> {
    source: &'a dyn BlobSource,
    observer: &'a mut (dyn FnMut(&Event) + Send),
}

impl Hands<Push> for PushHands<'_> {
    fn event(&mut self, _: &mut Push, event: &Event) -> std::io::Result<()> {
        (self.observer)(event);
        Ok(())
    }
    fn deliver(&mut self, _: BlobId, _: u64, _: &Bytes) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "internal error: a push delivered bytes",
        ))
    }
    fn upload_body(&mut self, blob: BlobId, offset: u64, len: u64) -> std::io::Result<Body> {
        Ok(Body::Stream {
            len,
            chunks: self.source.read(blob, offset, len)?,
        })
    }
}

/// The exchanges in flight and the armed timer: what every drive loop keeps.
#[derive(Default)]
struct Exchanges {
    streams: SelectAll<BoxStream<'static, (RequestId, Input)>>,
    aborts: HashMap<RequestId, AbortHandle>,
    /// The armed timer: re-armed only when the core wants an earlier wake-up.
    timer: Option<(Instant, BoxFuture<'static, ()>)>,
}

impl Exchanges {
    fn start<T: Transport + ?Sized>(
        &mut self,
        transport: &T,
        id: RequestId,
        request: Request<Body>,
    ) {
        tracing::debug!(?id, method = %request.method(), url = %redacted(request.uri()), "send");
        let (handle, registration) = AbortHandle::new_pair();
        let s = Abortable::new(exchange(id, transport.send(request)), registration);
        self.aborts.insert(id, handle);
        self.streams.push(s.boxed());
    }

    /// Lets the transport open connections ahead (its future runs beside the
    /// exchanges and yields no input).
    fn prepare<T: Transport + ?Sized>(&mut self, transport: &T, origin: &url::Url, n: usize) {
        tracing::debug!(%origin, connections = n, "prepare");
        let warm = transport.prepare(origin, n);
        self.streams.push(
            futures::stream::once(warm)
                .filter_map(|()| async { None })
                .boxed(),
        );
    }

    fn abort(&mut self, id: RequestId) {
        if let Some(h) = self.aborts.remove(&id) {
            h.abort();
        }
    }

    fn abort_all(&mut self) {
        for (_, h) in self.aborts.drain() {
            h.abort();
        }
    }

    /// The next input, or `None` when the timer (set for `until`) fired first.
    async fn next<R: Runtime + ?Sized>(
        &mut self,
        runtime: &R,
        until: Option<Instant>,
    ) -> Result<Option<(RequestId, Input)>, PullError> {
        if let Some(u) = until {
            if self.timer.as_ref().is_none_or(|(at, _)| u < *at) {
                self.timer = Some((u, runtime.sleep_until(u)));
            }
        }
        let next = match (self.streams.is_empty(), self.timer.as_mut()) {
            (true, None) => return Err(PullError::Stuck),
            (true, Some((_, sleep))) => {
                sleep.await;
                None
            }
            (false, None) => self.streams.next().await,
            (false, Some((_, sleep))) => futures::select_biased! {
                item = self.streams.next().fuse() => item,
                () = sleep.fuse() => None,
            },
        };
        match &next {
            Some((id, input)) => match input {
                Input::Head(h) => {
                    tracing::debug!(?id, status = h.status().as_u16(), version = ?h.version(), "response");
                }
                // the exchange is over: nothing left to abort
                Input::End | Input::Error(_) => {
                    self.aborts.remove(id);
                }
                Input::Chunk(_) => {}
            },
            None => {
                // The timer fired (or no stream is open): the next poll fires the core's timers.
                if self
                    .timer
                    .as_ref()
                    .is_some_and(|(at, _)| *at <= runtime.now())
                {
                    self.timer = None;
                }
            }
        }
        Ok(next)
    }
}

async fn drive_machine<M, T, R, H>(
    machine: &mut M,
    transport: &T,
    runtime: &R,
    hands: &mut H,
) -> Result<(), PullError>
where
    M: Machine,
    T: Transport + ?Sized,
    R: Runtime + ?Sized,
    H: Hands<M>,
{
    let mut ex = Exchanges::default();
    let fail = |ex: &mut Exchanges, machine: &mut M, e: std::io::Error| {
        ex.abort_all();
        machine.cancel(runtime.now());
        Err(PullError::Io(e))
    };
    loop {
        let until = loop {
            match machine.poll_action(runtime.now()) {
                Action::Send { id, request } => ex.start(transport, id, request.map(Body::Full)),
                Action::Upload {
                    id,
                    request,
                    blob,
                    offset,
                    len,
                } => match hands.upload_body(blob, offset, len) {
                    Ok(body) => ex.start(transport, id, request.map(|_| body)),
                    Err(e) => return fail(&mut ex, machine, e),
                },
                Action::Abort { id } => ex.abort(id),
                Action::Prepare {
                    origin,
                    connections,
                } => ex.prepare(transport, &origin, connections),
                Action::Deliver {
                    blob,
                    offset,
                    bytes,
                } => {
                    if let Err(e) = hands.deliver(blob, offset, &bytes) {
                        return fail(&mut ex, machine, e);
                    }
                }
                Action::Event(e) => {
                    if let Err(err) = hands.event(machine, &e) {
                        return fail(&mut ex, machine, err);
                    }
                }
                Action::Wait { until } => break until,
                Action::Done => return Ok(()),
                Action::Failed(e) => return Err(e.into()),
            }
        };
        // An input that is ready is taken at once; only before a real wait does the
        // sink get its idle call (a stream's next item survives the dropped poll).
        let next = match ex.next(runtime, until).now_or_never() {
            Some(next) => next?,
            None => {
                if let Err(e) = hands.idle() {
                    return fail(&mut ex, machine, e);
                }
                ex.next(runtime, until).await?
            }
        };
        if let Some((id, input)) = next {
            machine.handle_input(id, input, runtime.now());
        }
    }
}

/// A URI for logs, redacted by the core's one redactor (query values that may be
/// signatures, user info).
fn redacted(uri: &http::Uri) -> String {
    url::Url::parse(&uri.to_string())
        .map(|u| ocireg_core::error::redact_url(&u))
        .unwrap_or_default()
}
