//! Serving (feature `server`): the test registry as a hyper service with its faults
//! acted out on the wire, and OCI layouts loaded into it (`ocireg serve`). A client needs
//! none of this, so it is off by default.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use ocireg_core::manifest::{Descriptor, Manifest};
use ocireg_core::Digest;
use ocireg_registry::{Registry, Reply};

use crate::layout::{read_blob, read_index};
use crate::Runtime;

/// A boxed response body for the server side.
pub type ServerBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// Frames a body is split into when served.
const SERVE_CHUNK: usize = 256 * 1024;

/// Turns a registry reply into a hyper response, acting out its faults: a cut body ends
/// with an error (hyper then drops the connection), a stalled body stops sending.
pub fn reply_to_response(reply: Reply, runtime: Arc<dyn Runtime>) -> Response<ServerBody> {
    let Reply {
        head,
        body,
        cut_after,
        stall_after,
        // Only a request body can be cut on its way in, and this service does not take
        // request bodies (it serves pulls).
        reset: _,
    } = reply;
    let len = body.len();
    let limit = cut_after
        .into_iter()
        .chain(stall_after)
        .min()
        .unwrap_or(len)
        .min(len);
    let chunks: Vec<Bytes> = (0..limit)
        .step_by(SERVE_CHUNK)
        .map(|i| body.slice(i..(i + SERVE_CHUNK).min(limit)))
        .collect();
    let data = stream::iter(chunks.into_iter().map(|c| Ok(hyper::body::Frame::data(c))));
    let cut = cut_after.is_some_and(|c| c < len);
    let stall = !cut && stall_after.is_some_and(|s| s < len);
    let tail = stream::once(async move {
        if stall {
            runtime
                .sleep_until(runtime.now() + ocireg_registry::faults::STALL_LIMIT)
                .await;
        } else if cut {
            // Pending once lets hyper flush what it buffered; an error right away would
            // drop the connection before the bytes before the cut were written.
            runtime
                .sleep_until(runtime.now() + Duration::from_millis(2))
                .await;
        }
        if cut || stall {
            Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "fault injection: body cut",
            )))
        } else {
            None
        }
    })
    .filter_map(|x| async move { x });
    let body = StreamBody::new(data.chain(tail));
    let (parts, ()) = head.into_parts();
    Response::from_parts(parts, BodyExt::boxed_unsync(body))
}

/// Request bodies the service reads at most (a push's chunk or whole blob; the test
/// registry holds everything in memory).
pub const MAX_REQUEST_BODY: usize = 1 << 30;

/// The registry as a hyper service: each request (with its body, for pushes) answered by
/// the (fault-injecting) registry, faults acted out on the wire. A body that cannot be
/// read (the client went away mid-upload) is offered to the registry as far as it came,
/// as a real registry keeps what it received.
pub fn registry_service(
    registry: Arc<std::sync::Mutex<ocireg_registry::FaultyRegistry>>,
    runtime: Arc<dyn Runtime>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<ServerBody>,
    Error = std::convert::Infallible,
    Future = futures::future::BoxFuture<
        'static,
        Result<Response<ServerBody>, std::convert::Infallible>,
    >,
> + Clone {
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let (registry, runtime) = (registry.clone(), runtime.clone());
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let mut received = Vec::new();
            let mut body = std::pin::pin!(http_body_util::Limited::new(body, MAX_REQUEST_BODY));
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            received.extend_from_slice(d);
                        }
                    }
                    Err(_) => break,
                }
            }
            let req = Request::from_parts(parts, ());
            let reply = registry
                .lock()
                .expect("registry lock")
                .handle_with_body(&req, &Bytes::from(received));
            // what was asked and answered (the path only: a query may carry state)
            tracing::info!(
                "{} {} {} {} bytes",
                req.method(),
                req.uri().path(),
                reply.status().as_u16(),
                reply.body.len()
            );
            Ok(reply_to_response(reply, runtime))
        }) as futures::future::BoxFuture<'static, _>
    })
}

/// Indexes within indexes that [`load_into`] follows at most.
pub const MAX_SERVE_DEPTH: usize = 8;

/// Loads every image of a layout into `registry` under `repository`. An image whose
/// `ref.name` is a valid tag is tagged with it; one whose `ref.name` is a full reference
/// (`host/repo:tag`) goes to that repository. Returns the (repository, tag) pairs added.
///
/// Each manifest is read once however many indexes list it, and indexes nested deeper
/// than [`MAX_SERVE_DEPTH`] are an error: a hostile layout can neither make this loop
/// nor exhaust the stack.
pub fn load_into(
    root: &Path,
    registry: &mut Registry,
    repository: &str,
) -> io::Result<Vec<(String, Option<String>)>> {
    if ocireg_core::reference::validate_repository(repository).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid repository name {repository:?}"),
        ));
    }
    let mut added = Vec::new();
    let mut loaded = HashSet::new();
    for img in read_index(root)? {
        let (repo, tag) = match &img.name {
            Some(n) if ocireg_core::reference::validate_tag(n).is_ok() => {
                (repository.to_string(), Some(n.clone()))
            }
            Some(n) => match ocireg_core::Reference::parse(n) {
                Ok(r) => (r.repository().to_string(), r.tag().map(str::to_string)),
                Err(_) => (repository.to_string(), None),
            },
            None => (repository.to_string(), None),
        };
        let mut loader = Loader {
            root,
            registry: &mut *registry,
            repo: &repo,
            loaded: &mut loaded,
        };
        loader.manifest(&img.descriptor, tag.as_deref(), 0)?;
        added.push((repo, tag));
    }
    Ok(added)
}

/// Loads manifests and their blobs of one repository.
struct Loader<'a> {
    root: &'a Path,
    registry: &'a mut Registry,
    repo: &'a str,
    /// (repository, digest) pairs already loaded.
    loaded: &'a mut HashSet<(String, Digest)>,
}

impl Loader<'_> {
    fn manifest(&mut self, d: &Descriptor, tag: Option<&str>, depth: usize) -> io::Result<()> {
        let first = self
            .loaded
            .insert((self.repo.to_string(), d.digest.clone()));
        if !first {
            if let Some(t) = tag {
                // already loaded through another entry: only the tag is new
                let bytes = read_blob(self.root, &d.digest)?;
                self.registry.add_manifest_with_digest(
                    self.repo,
                    &d.media_type,
                    bytes,
                    d.digest.clone(),
                    Some(t),
                );
            }
            return Ok(());
        }
        let bytes = read_blob(self.root, &d.digest)?;
        let (manifest, media_type) = Manifest::parse(&d.media_type, &bytes).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", d.digest))
        })?;
        // `depth` indexes hold this one: an index is the (depth + 1)th of its chain
        if matches!(manifest, Manifest::Index(_)) && depth >= MAX_SERVE_DEPTH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: indexes nested more than {MAX_SERVE_DEPTH} deep",
                    d.digest
                ),
            ));
        }
        match manifest {
            Manifest::Image(m) => {
                for b in m.blobs() {
                    match read_blob(self.root, &b.digest) {
                        Ok(data) => {
                            self.registry
                                .add_blob_with_digest(self.repo, b.digest.clone(), data)
                        }
                        // Blobs of other platforms or foreign layers may be absent.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Manifest::Index(i) => {
                for child in &i.manifests {
                    match self.manifest(child, None, depth + 1) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        r => r?,
                    }
                }
            }
        }
        self.registry.add_manifest_with_digest(
            self.repo,
            &media_type,
            bytes,
            d.digest.clone(),
            tag,
        );
        Ok(())
    }
}
