//! How a machine behaves: retries, concurrency, limits, platform choice, credentials,
//! timeouts, the upload chunk size, and a mirror's API root, headers and query.

use std::time::{Duration, Instant};

use crate::auth::Credentials;
use crate::manifest::Platform;
use crate::retry::RetryPolicy;

/// Which manifest(s) of an index to pull.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The platform this program runs on.
    #[default]
    Host,
    /// A given platform.
    Exactly(Platform),
    /// Every child of the index.
    All,
}

/// How a machine behaves (a pull, a push, a listing). `Default` gives what a user would
/// pick.
#[derive(Clone, Debug)]
pub struct Config {
    /// Retry policy for every request.
    pub retry: RetryPolicy,
    /// Blob downloads in flight at once.
    pub max_concurrent: usize,
    /// Blob downloads in flight at once while the blobs are small (at most
    /// [`Config::small_blob`] bytes each): many small layers cost round trips, not
    /// bandwidth, so more of them overlap. A large blob still starts only while fewer
    /// than `max_concurrent` downloads run; this never lowers that. A driver that runs
    /// one exchange at a time sets both to 1.
    pub max_concurrent_small: usize,
    /// The size up to which a blob counts as small (default 1 MiB).
    pub small_blob: u64,
    /// Hashes blobs larger than [`Config::small_blob`] on other threads (see
    /// [`offload`](crate::offload)); `None` (the default) hashes them as they arrive.
    pub hashing: Option<std::sync::Arc<dyn crate::offload::HashOffload>>,
    /// Largest manifest body accepted (default 4 MiB).
    pub manifest_limit: u64,
    /// Largest page of a tag list, catalog or referrers list accepted (default 4 MiB).
    pub list_page_limit: u64,
    /// Largest token response accepted (default 1 MiB).
    pub token_limit: u64,
    /// Platform selection for indexes.
    pub platform: PlatformChoice,
    /// Credentials for the registry.
    pub credentials: Credentials,
    /// Talk plain http to this registry (otherwise only loopback may fall back to it).
    pub plain_http: bool,
    /// Seed for backoff jitter.
    pub seed: u64,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Longest wait for a response head.
    pub head_timeout: Duration,
    /// Longest silence within a response body before it counts as stalled.
    pub idle_timeout: Duration,
    /// Give up when the pull is not done by then.
    pub deadline: Option<Instant>,
    /// Redirect hops per request.
    pub max_redirects: u8,
    /// Bytes a download may discard in total because ranges were ignored, as a percentage
    /// of its size.
    pub skip_budget_percent: u64,
    /// Pages of a tag list or catalog followed at most
    /// ([`Machine::list_tags`](crate::Machine::list_tags), [`Machine::catalog`](crate::Machine::catalog));
    /// one more is an error.
    pub max_tag_pages: u32,
    /// Names asked for per page of a tag list or catalog (`?n=`); `None` lets the
    /// registry choose.
    pub tag_page_size: Option<u32>,
    /// Manifests fetched at most in one pull (indexes, their children, nested indexes).
    pub max_manifests: u32,
    /// Levels of indexes within indexes followed at most (the top manifest is level 0).
    pub max_index_depth: u8,
    /// Push: blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks of this
    /// size (or the registry's `OCI-Chunk-Min-Length`, if larger), then a `PUT`.
    pub upload_chunk_size: u64,
    /// The path that stands for `/v2` on this registry: a mirror whose API lives
    /// elsewhere (containerd's `override_path`). `/v2` by default.
    pub api_root: String,
    /// Extra headers on every request to the registry's own origin (a mirror's `header`
    /// table), never to a token service or a redirect target.
    pub headers: Vec<(String, String)>,
    /// Query parameters added to every request under the API root: a mirror is asked
    /// with `ns=<upstream registry>`, as containerd does, so that one mirror can serve
    /// several upstreams. Never added to a URL the registry gave (an upload location, a
    /// redirect) nor to a token request.
    pub api_query: Vec<(String, String)>,
    /// How long after writing a referrers tag it is read back, to find an entry that a
    /// concurrent writer's older copy overwrote (half as much again at random is added).
    pub referrers_tag_settle: Duration,
    /// How many times a referrers tag is written before the machine gives up on writers
    /// that keep replacing it (`412` answers and read-backs that lost the entry).
    pub referrers_tag_rounds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            retry: RetryPolicy::default(),
            max_concurrent: 8,
            max_concurrent_small: 32,
            small_blob: 1 << 20,
            hashing: None,
            manifest_limit: 4 << 20,
            list_page_limit: 4 << 20,
            token_limit: 1 << 20,
            platform: PlatformChoice::Host,
            credentials: Credentials::Anonymous,
            plain_http: false,
            seed: 0,
            user_agent: concat!("ocireg/", env!("CARGO_PKG_VERSION")).to_string(),
            head_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            deadline: None,
            max_redirects: 10,
            skip_budget_percent: 100,
            max_tag_pages: 10_000,
            tag_page_size: None,
            max_manifests: 10_000,
            max_index_depth: 8,
            upload_chunk_size: 32 << 20,
            api_root: "/v2".to_string(),
            headers: Vec::new(),
            api_query: Vec::new(),
            referrers_tag_settle: Duration::from_millis(300),
            referrers_tag_rounds: 16,
        }
    }
}
