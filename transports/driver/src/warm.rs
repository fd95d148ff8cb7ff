//! Connections opened before the requests that use them (the core's
//! [`Action::Prepare`](ocireg_core::Action::Prepare) hint).
//!
//! hyper-util's pool opens a connection when a request finds none idle, so the wave of
//! blob requests that follows a manifest would each wait for a handshake: one round trip
//! (more with TLS) that the manifest's own round trip could have hidden.
//! [`WarmConnector`] wraps the connector the pool calls: [`WarmConnector::warm`] opens
//! connections through it ahead of time and keeps them, and the pool's next calls for
//! that origin take a kept one instead of connecting. A kept connection not taken
//! within [`KEEP`] is closed, and at most [`MOST_KEPT`] are kept per origin.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;
use http::Uri;
use tower_service::Service;

/// How long a connection opened ahead may wait to be taken.
pub const KEEP: Duration = Duration::from_secs(15);

/// Connections kept per origin at most (a hint asks for no more than the pull's
/// concurrency, itself bounded).
pub const MOST_KEPT: usize = 64;

/// Connections kept per origin (`scheme://authority`), with when each was opened.
type Kept<IO> = Arc<Mutex<HashMap<String, Vec<(Instant, IO)>>>>;

/// A connector whose connections can be opened ahead of the requests (see the module).
pub struct WarmConnector<C, IO> {
    inner: C,
    kept: Kept<IO>,
}

impl<C: Clone, IO> Clone for WarmConnector<C, IO> {
    fn clone(&self) -> Self {
        WarmConnector {
            inner: self.inner.clone(),
            kept: self.kept.clone(),
        }
    }
}

/// The pool's key for `uri`: its scheme and authority, lowercased.
fn origin_key(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    )
    .to_ascii_lowercase()
}

impl<C, IO> WarmConnector<C, IO>
where
    C: Service<Uri, Response = IO> + Clone + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Send + 'static,
    IO: Send + 'static,
{
    /// Wraps `inner`.
    pub fn new(inner: C) -> Self {
        WarmConnector {
            inner,
            kept: Arc::default(),
        }
    }

    /// Opens up to `connections` connections to `origin` (a URI with scheme and
    /// authority) and keeps them for the pool's next calls. The future ends when every
    /// attempt has ended; failures are dropped (the request that would have used the
    /// connection connects, and fails, on its own).
    pub fn warm(&self, origin: Uri, connections: usize) -> BoxFuture<'static, ()> {
        let key = origin_key(&origin);
        let room = {
            let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            prune(&mut kept, Instant::now());
            MOST_KEPT.saturating_sub(kept.get(&key).map_or(0, Vec::len))
        };
        let attempts = (0..connections.min(room)).map(|_| {
            let mut connector = self.inner.clone();
            let (origin, key, kept) = (origin.clone(), key.clone(), self.kept.clone());
            async move {
                if futures::future::poll_fn(|cx| connector.poll_ready(cx))
                    .await
                    .is_err()
                {
                    return;
                }
                if let Ok(io) = connector.call(origin).await {
                    let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                    let list = kept.entry(key).or_default();
                    if list.len() < MOST_KEPT {
                        list.push((Instant::now(), io));
                    }
                }
            }
        });
        Box::pin(futures::future::join_all(attempts).map(drop))
    }

    /// A kept connection to `uri`'s origin that is still fresh, if any.
    fn take(&self, uri: &Uri) -> Option<IO> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut kept, Instant::now());
        kept.get_mut(&origin_key(uri))?.pop().map(|(_, io)| io)
    }
}

/// Closes every kept connection older than [`KEEP`], for every origin: one that is
/// never asked for again would otherwise hold its sockets as long as the client lives.
fn prune<IO>(kept: &mut HashMap<String, Vec<(Instant, IO)>>, now: Instant) {
    kept.retain(|_, list| {
        list.retain(|(opened, _)| now.saturating_duration_since(*opened) < KEEP);
        !list.is_empty()
    });
}

impl<C, IO> Service<Uri> for WarmConnector<C, IO>
where
    C: Service<Uri, Response = IO> + Clone + Send + 'static,
    C::Future: Send + 'static,
    C::Error: Send + 'static,
    IO: Send + 'static,
{
    type Response = IO;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<IO, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match self.take(&uri) {
            Some(io) => Box::pin(std::future::ready(Ok(io))),
            None => Box::pin(self.inner.call(uri)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A connector that counts its connections and hands out their numbers.
    #[derive(Clone, Default)]
    struct Counting(Arc<AtomicUsize>);

    impl Service<Uri> for Counting {
        type Response = usize;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<usize, std::io::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Uri) -> Self::Future {
            std::future::ready(Ok(self.0.fetch_add(1, Ordering::SeqCst)))
        }
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn warmed_connections_are_taken_by_the_same_origin_only() {
        let counting = Counting::default();
        let mut warm = WarmConnector::new(counting.clone());
        futures::executor::block_on(warm.warm(uri("http://reg.test:5000/"), 3));
        assert_eq!(counting.0.load(Ordering::SeqCst), 3);
        // another origin (scheme or port) connects anew: connections 3 and 4
        for other in ["https://reg.test:5000/v2/", "http://reg.test:5001/v2/"] {
            let n = futures::executor::block_on(warm.call(uri(other))).unwrap();
            assert!(n >= 3, "{other} took a kept connection");
        }
        // the origin's calls take the three kept ones, then connect (5)
        let mut got: Vec<usize> = (0..4)
            .map(|_| {
                futures::executor::block_on(warm.call(uri("http://REG.test:5000/v2/x"))).unwrap()
            })
            .collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 5]);
        assert_eq!(counting.0.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn stale_connections_are_closed_for_every_origin() {
        let counting = Counting::default();
        let mut warm = WarmConnector::new(counting.clone());
        futures::executor::block_on(warm.warm(uri("http://a.test/"), 2));
        // b's connection was opened longer ago than KEEP
        let long_ago = Instant::now()
            .checked_sub(KEEP)
            .expect("an earlier instant");
        warm.kept
            .lock()
            .unwrap()
            .insert("http://b.test".into(), vec![(long_ago, 99)]);
        // asking for a's connection closes b's, which nobody will ask for
        let got = futures::executor::block_on(warm.call(uri("http://a.test/v2/"))).unwrap();
        assert!(got < 2, "{got}");
        let kept = warm.kept.lock().unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["http://a.test"]);
        assert_eq!(kept["http://a.test"].len(), 1);
    }

    #[test]
    fn no_more_than_the_bound_is_kept() {
        let counting = Counting::default();
        let warm = WarmConnector::new(counting.clone());
        futures::executor::block_on(warm.warm(uri("http://reg.test/"), MOST_KEPT + 10));
        futures::executor::block_on(warm.warm(uri("http://reg.test/"), 5));
        assert_eq!(counting.0.load(Ordering::SeqCst), MOST_KEPT);
    }
}
