//! # ocireg-driver: what every runtime adapter shares
//!
//! The drive loop ([`drive`]) runs any [`Machine`] (a pull, a push, a listing) over any
//! [`Transport`] and [`Runtime`]: it sends what the core asks, feeds heads, chunks, ends
//! and errors back, sleeps until the core's deadline, and hands events, delivered bytes
//! and upload requests to a [`Caller`], whose every role has a default. It is written
//! against `futures` only, so the tokio and async-std adapters provide nothing but an
//! HTTP client and a timer. [`layout`] writes and reads OCI image layouts, and [`hyper`]
//! turns hyper responses into core inputs and registry replies into hyper responses.
//! [`client::Client`] is the few-lines entry point each adapter wraps.
//!
//! A pull into a layout over any transport and runtime (an adapter gives both):
//!
//! ```no_run
//! use ocireg_core::{Config, Machine, Reference};
//! use ocireg_driver::layout::pull_to_layout;
//! # async fn run(
//! #     transport: &dyn ocireg_driver::Transport,
//! #     runtime: &dyn ocireg_driver::Runtime,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! let reference = Reference::parse("docker.io/library/alpine:3.20")?;
//! let mut pull = Machine::pull(Config::default(), reference, runtime.now());
//! let dir = std::path::Path::new("./alpine");
//! // `&mut ()`: no observer (a closure over events would show progress)
//! let (manifest, _) = pull_to_layout(&mut pull, transport, runtime, dir, &mut ()).await?;
//! println!("{}", manifest.digest);
//! # Ok(()) }
//! ```

pub mod client;
pub mod credentials;
pub mod files;
pub mod futures_io;
mod gather;
pub mod hashing;
pub mod hosts;
pub mod hyper;
pub mod layout;
pub mod proxy;
pub mod push;
#[cfg(feature = "server")]
pub mod server;
mod stream;
pub mod tls;
pub mod warm;
mod writer;

pub use stream::{
    blob_stream, registry_error, registry_error_of, resume_at_checkpoint, Checkpoints,
};

/// What every adapter re-exports for its users (through
/// [`adapter_client!`](crate::adapter_client)): the client's types, the core's vocabulary,
/// and the one error type ([`Error`], with the core's as `RegistryError`).
pub mod adapter_prelude {
    pub use crate::client::{BlobStream, Copied, Inspected, Pulled};
    pub use crate::proxy::Proxies;
    pub use crate::tls::load_certs;
    pub use crate::{Caller, Error};
    pub use ocireg_core::Error as RegistryError;
    pub use ocireg_core::{
        Config, Credentials, Descriptor, Digest, ErrorKind, Event, Machine, Manifest, Platform,
        PlatformChoice, Reference,
    };
}

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use futures::future::{AbortHandle, Abortable, BoxFuture, FutureExt};
use futures::stream::{BoxStream, SelectAll, Stream, StreamExt};
use http::{Request, Response};
use ocireg_core::{
    Action, BlobId, Descriptor, Event, Input, Machine, QueuedBlob, RequestId, TransportError,
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
/// chunks (the same range may be asked for again when an upload resumes). [`Upload`]
/// makes one the [`Caller`] of a push.
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

/// What the caller of a [`Machine`] does besides moving exchanges: it observes events,
/// takes the bytes of a pull, and supplies the bodies of a push. Every method has a
/// default, so a caller writes only the roles it plays: a listing observes events, a
/// pull into a file also takes bytes, a push supplies bodies.
pub trait Caller {
    /// An event. By default, ignored.
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        let _ = event;
        Ok(())
    }
    /// A blob is queued (right after its [`Event::BlobQueued`]): the caller may skip it
    /// or continue it from a prefix it has, through the handle. Dropping the handle (the
    /// default) lets the download start from byte 0.
    fn blob_queued(
        &mut self,
        blob: QueuedBlob<'_>,
        descriptor: &Descriptor,
    ) -> std::io::Result<()> {
        let _ = (blob, descriptor);
        Ok(())
    }
    /// Bytes of a blob at `offset` (always its end so far), verified as they go: the
    /// blob's [`Event::BlobFetched`] confirms the whole. By default, dropped (a caller
    /// that lists or inspects is delivered none).
    fn deliver(&mut self, blob: BlobId, offset: u64, bytes: &Bytes) -> std::io::Result<()> {
        let _ = (blob, offset, bytes);
        Ok(())
    }
    /// The body of an upload ([`Action::Upload`]): bytes `offset..offset + len` of the
    /// plan's blob `blob`. By default, refused: only a push asks, and its caller supplies
    /// them ([`Upload`]).
    fn upload_body(&mut self, blob: BlobId, offset: u64, len: u64) -> std::io::Result<Body> {
        let _ = (offset, len);
        Err(std::io::Error::other(format!(
            "internal error: an upload of {blob:?} was asked of a caller that supplies none"
        )))
    }
    /// An upload body read from a push's source is about to be sent: the caller may
    /// watch its chunks (progress bars) and hands it back. By default, as it is.
    fn sending(&mut self, blob: BlobId, offset: u64, body: Body) -> std::io::Result<Body> {
        let _ = (blob, offset);
        Ok(body)
    }
    /// The drive loop has no input ready and is about to wait: bytes the caller holds
    /// back to write in larger pieces should be written now (a stall must not keep
    /// received bytes off the disk). By default, nothing is done.
    fn idle(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The caller of a push: upload bodies read from a [`BlobSource`], events shown to
/// `observer` (a closure, or `|_| {}`).
pub struct Upload<'a, F: FnMut(&Event)> {
    /// Where the blobs are read.
    pub source: &'a dyn BlobSource,
    /// Sees every event.
    pub observer: F,
}

/// A closure over events is a caller that only observes (progress, logs).
impl<F: FnMut(&Event)> Caller for F {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        self(event);
        Ok(())
    }
}

/// The caller that plays no role: every event and byte ignored.
impl Caller for () {}

impl<F: FnMut(&Event)> Caller for Upload<'_, F> {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        (self.observer)(event);
        Ok(())
    }
    fn upload_body(&mut self, blob: BlobId, offset: u64, len: u64) -> std::io::Result<Body> {
        Ok(Body::Stream {
            len,
            chunks: self.source.read(blob, offset, len)?,
        })
    }
}

/// Why a driven operation failed: the registry (the protocol, with its kind), or a part
/// on this side, named.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry exchange failed (see the core's error and its [`kind`](Error::kind)).
    #[error(transparent)]
    Registry(#[from] ocireg_core::Error),
    /// Docker's `config.json` or a credential helper could not be read.
    #[error("reading credentials failed: {0}")]
    Credentials(String),
    /// What a push reads (a layout's files, another registry's blob) failed.
    #[error("reading what is pushed failed: {0}")]
    Source(std::io::Error),
    /// Where a pull writes (a layout, the caller's sink) failed.
    #[error("writing what was pulled failed: {0}")]
    Sink(std::io::Error),
    /// What was asked to be pushed cannot be: no such image in the layout, a blob
    /// missing, nothing to push.
    #[error("{0}")]
    Plan(std::io::Error),
    /// The machine and the drive loop disagree (a bug, said as such).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    /// What kind of failure this is: the registry's kind, or
    /// [`ErrorKind::Local`](ocireg_core::ErrorKind::Local) for a part on this side
    /// (files, credentials, the plan).
    pub fn kind(&self) -> ocireg_core::ErrorKind {
        match self {
            Error::Registry(e) => e.kind(),
            Error::Plan(_) => ocireg_core::ErrorKind::InvalidInput,
            _ => ocireg_core::ErrorKind::Local,
        }
    }

    /// The registry's error, when the registry exchange is what failed.
    pub fn registry(&self) -> Option<&ocireg_core::Error> {
        match self {
            Error::Registry(e) => Some(e),
            _ => None,
        }
    }
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
    ) -> Result<Option<(RequestId, Input)>, Error> {
        if let Some(u) = until {
            if self.timer.as_ref().is_none_or(|(at, _)| u < *at) {
                self.timer = Some((u, runtime.sleep_until(u)));
            }
        }
        let next = match (self.streams.is_empty(), self.timer.as_mut()) {
            (true, None) => {
                return Err(Error::Internal(
                    "the machine waits with no request in flight and no deadline",
                ))
            }
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

/// Runs `machine` (any operation) to its end over `transport` and `runtime`: sends
/// what it asks, feeds heads, chunks, ends and errors back, sleeps until its deadline,
/// and hands events, delivered bytes and upload requests to `caller`. See the core's
/// crate docs for the contract this follows.
pub async fn drive<T, R, C>(
    machine: &mut Machine,
    transport: &T,
    runtime: &R,
    caller: &mut C,
) -> Result<(), Error>
where
    T: Transport + ?Sized,
    R: Runtime + ?Sized,
    C: Caller + ?Sized,
{
    let mut ex = Exchanges::default();
    let fail = |ex: &mut Exchanges, machine: &mut Machine, e: Error| {
        ex.abort_all();
        machine.cancel(runtime.now());
        Err(e)
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
                } => match caller.upload_body(blob, offset, len) {
                    Ok(body) => ex.start(transport, id, request.map(|_| body)),
                    Err(e) => return fail(&mut ex, machine, Error::Source(e)),
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
                    if let Err(e) = caller.deliver(blob, offset, &bytes) {
                        return fail(&mut ex, machine, Error::Sink(e));
                    }
                }
                Action::Event(e) => {
                    if let Event::RateLimit { reference, limit } = &e {
                        // whatever the caller does with events, `-v` shows what is left
                        tracing::info!("{reference}: rate limit {limit}");
                    }
                    let mut told = caller.event(&e);
                    if let (Ok(()), Event::BlobQueued { blob, descriptor }) = (&told, &e) {
                        if let Some(queued) = machine.queued(*blob) {
                            told = caller.blob_queued(queued, descriptor);
                        }
                    }
                    if let Err(err) = told {
                        return fail(&mut ex, machine, Error::Sink(err));
                    }
                }
                Action::Wait { until } => break until,
                Action::Done => return Ok(()),
                Action::Failed(e) => return Err(e.into()),
                other => {
                    tracing::warn!(?other, "an action this driver does not know");
                    return fail(&mut ex, machine, Error::Internal("an unknown action"));
                }
            }
        };
        // An input that is ready is taken at once; only before a real wait does the
        // caller get its idle call (a stream's next item survives the dropped poll).
        let next = match ex.next(runtime, until).now_or_never() {
            Some(next) => next?,
            None => {
                if let Err(e) = caller.idle() {
                    return fail(&mut ex, machine, Error::Sink(e));
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
