//! Manifests and blobs as values and streams: [`Client::manifest`] (verified bytes,
//! digest, media type, parsed), [`Client::blob`] (a stream that moves the download only
//! as fast as it is read, resumes with `Range` after a cut exactly as a pull does, never
//! yields a byte past the descriptor's size, and ends with an error instead of a clean
//! end when the digest does not match), [`Client::read_range`] (one part, one request)
//! and [`Client::blob_descriptor`] (a blob's size, for a digest alone).
//!
//! Through mirrors, a host that fails before yielding a byte gives way to the next.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt};
use ocireg_core::{Descriptor, Event, Machine};

use super::hosts::{Read, Step, Walk};
use super::pull::at_digest;
use super::{parse, Client, Inspected};
use crate::{registry_error, registry_error_of, Error};

/// A manifest read with [`Client::manifest`]: the same value as [`Client::inspect`]'s.
pub type ManifestRead = Inspected;

/// The bytes of one blob, as they arrive ([`Client::blob`]). A `Stream` of chunks; each
/// runtime's adapter turns it into its own reader (`futures::io::AsyncRead` with
/// [`BlobStream::into_async_read`], `std::io::Read` with [`BlobStream::into_blocking_read`]
/// where the runtime runs its own reactor, `tokio::io::AsyncRead` in `ocireg-tokio`).
/// A failure is an `io::Error` whose inner error is the core's
/// ([`registry_error_of`]); `InvalidData` when the bytes were not the blob's.
pub struct BlobStream {
    descriptor: Descriptor,
    inner: BoxStream<'static, std::io::Result<Bytes>>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("descriptor", &self.descriptor)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    /// The blob's descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The stream as a `futures::io::AsyncRead` (async-std, smol).
    pub fn into_async_read(self) -> futures::stream::IntoAsyncRead<BlobStream> {
        futures::TryStreamExt::into_async_read(self)
    }

    /// The stream as a blocking `std::io::Read`, each read waiting on the current
    /// thread. For transports whose runtime runs its reactor on threads of its own
    /// (smol, async-std); with tokio, use `ocireg_tokio`'s reader inside the runtime.
    pub fn into_blocking_read(self) -> BlockingRead {
        BlockingRead {
            inner: futures::executor::block_on_stream(self),
            chunk: Bytes::new(),
        }
    }
}

impl Stream for BlobStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// A blob read as a blocking `std::io::Read` ([`BlobStream::into_blocking_read`]).
pub struct BlockingRead {
    inner: futures::executor::BlockingStream<BlobStream>,
    chunk: Bytes,
}

impl std::fmt::Debug for BlockingRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRead").finish_non_exhaustive()
    }
}

impl std::io::Read for BlockingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.inner.next() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl Client {
    /// The manifest (or index) `reference` names: its verified bytes, digest, media type
    /// and parsed form. By tag or digest; with both, asked by tag and verified against
    /// the digest.
    pub async fn manifest(&self, reference: &str) -> Result<ManifestRead, Error> {
        self.inspect(reference).await
    }

    /// The descriptor of the blob `reference` names by digest (`repo@sha256:…`): its
    /// size, from a `HEAD`.
    pub async fn blob_descriptor(&self, reference: &str) -> Result<Descriptor, Error> {
        let reference = parse(reference)?;
        let events = self
            .events_through(&reference, Read::Content, Machine::stat_blob)
            .await?;
        events
            .into_iter()
            .find_map(|e| match e {
                Event::BlobFound { digest, size } => {
                    Some(Descriptor::new("application/octet-stream", digest, size))
                }
                _ => None,
            })
            .ok_or(Error::Internal("a blob's HEAD ended with no size"))
    }

    /// The blob `descriptor` of `repository` (`[host/]repository`, any tag ignored), as a
    /// stream. Nothing is asked of the registry until the stream is polled; embedded
    /// `data` is returned without a request.
    pub fn blob(&self, repository: &str, descriptor: Descriptor) -> Result<BlobStream, Error> {
        let reference = at_digest(&parse(repository)?, &descriptor.digest)?;
        let walk = self.walk(&reference, Read::Content)?;
        let state = Reading {
            client: self.clone(),
            walk,
            descriptor: descriptor.clone(),
            current: None,
            yielded: false,
        };
        let inner = futures::stream::unfold(Some(state), |state| async move {
            let mut st = state?;
            loop {
                if st.current.is_none() {
                    match st.walk.next(&st.client).await {
                        Ok(step) => st.open(step),
                        Err(e) => return Some((Err(io_error(e)), None)),
                    }
                }
                let (stream, host) = st.current.as_mut().expect("opened above");
                match stream.next().await {
                    Some(Ok(bytes)) => {
                        st.yielded = true;
                        return Some((Ok(bytes), Some(st)));
                    }
                    None => {
                        st.walk.done();
                        return None;
                    }
                    Some(Err(e)) => {
                        let host = host.clone();
                        st.current = None;
                        // bytes already given cannot be taken back; a failure before
                        // the first byte gives way to the next host
                        let fall_back = !st.yielded
                            && registry_error_of(&e).is_some_and(|core| {
                                st.walk.failed(Error::Registry(core.clone()), &host).is_ok()
                            });
                        if !fall_back {
                            return Some((Err(e), None));
                        }
                    }
                }
            }
        });
        Ok(BlobStream {
            descriptor,
            inner: inner.boxed(),
        })
    }

    /// Bytes `offset..offset + len` of the blob `descriptor` of `repository`, in one
    /// request where the registry honours `Range`. A part is checked to be the range
    /// asked and that many bytes, not against the digest (which covers the whole blob; a
    /// part that is the whole blob is verified). At most
    /// [`MAX_RANGE`](ocireg_core::MAX_RANGE) bytes.
    pub async fn read_range(
        &self,
        repository: &str,
        descriptor: &Descriptor,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, Error> {
        let reference = at_digest(&parse(repository)?, &descriptor.digest)?;
        let part = |config, at, now| {
            Machine::fetch_blob_range(config, at, descriptor.clone(), offset, len, now)
        };
        let events = self.events_through(&reference, Read::Content, part).await?;
        events
            .into_iter()
            .find_map(|e| match e {
                Event::BlobPart { bytes, .. } => Some(bytes),
                _ => None,
            })
            .ok_or(Error::Internal("a ranged read ended with no part"))
    }
}

/// Where a blob stream stands: the hosts, and the download in progress.
struct Reading {
    client: Client,
    walk: Walk,
    descriptor: Descriptor,
    current: Option<(BoxStream<'static, std::io::Result<Bytes>>, url::Url)>,
    yielded: bool,
}

impl Reading {
    fn open(&mut self, step: Step) {
        let size = self.descriptor.len();
        let pull = Machine::fetch_blob(
            step.config,
            step.reference,
            self.descriptor.clone(),
            self.client.runtime.now(),
        );
        let stream = crate::blob_stream(
            pull,
            step.transport,
            self.client.runtime.clone(),
            size,
            0..size,
            None,
        );
        self.current = Some((stream, step.host));
    }
}

fn io_error(e: Error) -> std::io::Error {
    match e {
        Error::Registry(core) => registry_error(core),
        other => std::io::Error::other(other),
    }
}
