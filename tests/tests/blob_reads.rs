//! Blobs and manifests read through the library's `Client`, on every runtime, over real
//! loopback sockets: a large blob as a stream through cuts and a stall (exact bytes,
//! memory that does not grow with the blob), wrong bytes ending in an integrity error,
//! parts of a blob in one request each, and mirrors serving every read with the upstream
//! down, never given the upstream's credentials.

#![allow(clippy::await_holding_lock)] // each test holds the lock on a thread of its own, for its whole run

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncReadExt, StreamExt};
use ocireg_core::{Config, Credentials, Descriptor, Digest, Platform, RetryPolicy, Secret};
use ocireg_driver::client::Client;
use ocireg_driver::Error as DriveError;
use ocireg_registry::images::image;
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::kit::Kit;
use ocireg_tests::on_every_runtime;
use sha2::Digest as _;

/// Counts the bytes this process holds allocated, and the most it held since a reset:
/// how the stream's memory is measured.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The counters are the whole process's: every test of this file holds this lock, so
/// none runs beside the one measuring.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deterministic bytes that do not compress to a pattern.
fn noise(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

fn config() -> Config {
    Config {
        retry: RetryPolicy {
            initial_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        // a stall is noticed after this much silence (a margin for loaded machines)
        idle_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

fn client<K: Kit>() -> Client {
    Client::from_parts(Arc::from(K::transport(&[])), Arc::from(K::runtime()))
        .config(config())
        .docker_config(None)
}

fn sha256(b: &[u8]) -> Digest {
    Digest::sha256(b)
}

/// Serves `reg` on a tokio runtime of its own thread (it lives as long as the test
/// process); its address.
fn serve_on_tokio_thread(reg: Arc<Mutex<FaultyRegistry>>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let addr = ocireg_tests::kit::TokioKit::serve(reg).await;
            tx.send(addr).unwrap();
            futures::future::pending::<()>().await;
        })
    });
    rx.recv().unwrap()
}

/// GET requests for `digest`'s blob in a registry's log: (range, body bytes sent).
fn blob_gets(reg: &Mutex<FaultyRegistry>, digest: &Digest) -> Vec<(Option<String>, usize)> {
    let path = format!("/blobs/{digest}");
    reg.lock()
        .unwrap()
        .log
        .iter()
        .filter(|s| s.method == "GET" && s.path.contains(&path))
        .map(|s| (s.range.clone(), s.body_bytes))
        .collect()
}

async fn a_large_blob_streams_through_cuts_and_a_stall<K: Kit>() {
    let _one = one_at_a_time();
    const SIZE: usize = 256 << 20;
    let data = noise(SIZE, 11);
    let digest = sha256(&data);
    let mut r = Registry::new();
    r.add_blob_with_digest("big/blob", digest.clone(), data.clone());
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(r, vec![])));
    // The memory measured is this whole process's: the registry is served by tokio on a
    // runtime of its own for every client runtime (its hyper server queues the body's
    // frames without copying them), so what grows is the client's.
    let addr = serve_on_tokio_thread(reg.clone());
    // three cuts at offsets from a seed, then a stall: each resumed with a range
    reg.lock().unwrap().set_rules(vec![
        Rule::blobs(Fault::CutBody {
            after: 61_234_567,
            times: 3,
        }),
        Rule::blobs(Fault::StallBody {
            after: 7_654_321,
            times: 1,
        }),
    ]);
    let client = client::<K>();
    let descriptor = Descriptor::new("application/octet-stream", digest.clone(), SIZE as u64);
    drop(data);
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut stream = client
        .blob(&format!("{addr}/big/blob"), descriptor)
        .unwrap();
    let mut hasher = sha2::Sha256::new();
    let mut got = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        got += chunk.len();
        hasher.update(&chunk);
    }
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert_eq!(got, SIZE);
    assert_eq!(
        format!("sha256:{:x}", hasher.finalize()),
        digest.to_string(),
        "the bytes arrived exactly"
    );
    // the first answer stalled, then cuts: each interruption resumed with a range from
    // where the bytes received end (past the last start, not past what was sent: bytes
    // still in flight when a connection breaks are lost)
    let gets = blob_gets(&reg, &digest);
    assert!(gets.len() >= 4, "a stall and cuts, each resumed: {gets:?}");
    assert_eq!(gets[0].0, None, "{gets:?}");
    let (mut start, mut sent) = (0usize, gets[0].1);
    for (range, body) in &gets[1..] {
        let from: usize = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix(&format!("-{}", SIZE - 1)))
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("a resume without a closed range: {gets:?}"));
        assert!(from > start && from <= start + sent, "{gets:?}");
        (start, sent) = (from, *body);
    }
    // memory: the whole process (this test and the registry serving it) held at most a
    // few MiB more while a 256 MiB blob went through
    assert!(
        peak < 48 << 20,
        "{} MiB held at the peak for a 256 MiB blob",
        peak >> 20
    );
}

async fn wrong_bytes_end_in_an_integrity_error<K: Kit>() {
    let _one = one_at_a_time();
    const SIZE: usize = 3 << 20;
    let served = noise(SIZE, 12);
    let claimed = sha256(&noise(SIZE, 14));
    let mut r = Registry::new();
    r.add_blob_with_digest("bad/blob", claimed.clone(), served);
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(r, vec![])));
    let addr = K::serve(reg.clone()).await;
    let client = client::<K>();
    let descriptor = Descriptor::new("application/octet-stream", claimed, SIZE as u64);
    let mut reader = client
        .blob(&format!("{addr}/bad/blob"), descriptor)
        .unwrap()
        .into_async_read();
    let mut given = Vec::new();
    let err = reader.read_to_end(&mut given).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let core = ocireg_driver::registry_error_of(&err).expect("the core's error inside");
    assert_eq!(core.kind(), ocireg_core::ErrorKind::Integrity, "{core}");
    assert!(given.len() <= SIZE, "{} bytes given", given.len());
}

async fn three_ranges_cost_three_requests<K: Kit>() {
    let _one = one_at_a_time();
    const SIZE: usize = 64 << 20;
    let data = noise(SIZE, 16);
    let digest = sha256(&data);
    let mut r = Registry::new();
    r.add_blob_with_digest("parts/blob", digest.clone(), data.clone());
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(r, vec![])));
    let addr = K::serve(reg.clone()).await;
    let client = client::<K>();
    let descriptor = Descriptor::new("application/octet-stream", digest.clone(), SIZE as u64);
    let repo = format!("{addr}/parts/blob");
    let ranges = [
        (0u64, 1u64),
        (33_554_431, 4096),
        (67_108_864 - 77_777, 77_777),
    ];
    for (offset, len) in ranges {
        let part = client
            .read_range(&repo, &descriptor, offset, len)
            .await
            .unwrap();
        assert_eq!(part, data.slice(offset as usize..(offset + len) as usize));
    }
    let gets = blob_gets(&reg, &digest);
    assert_eq!(gets.len(), 3, "{gets:?}");
    // past the end: refused before any request
    let e = client
        .read_range(&repo, &descriptor, SIZE as u64 - 1, 2)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ocireg_core::ErrorKind::InvalidInput, "{e}");
    assert_eq!(blob_gets(&reg, &digest).len(), 3);
    // a registry that ignores Range: refused with a message that says so
    reg.lock()
        .unwrap()
        .set_rules(vec![Rule::blobs(Fault::IgnoreRange)]);
    let e = client
        .read_range(&repo, &descriptor, 5, 10)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ocireg_core::ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("ignores range requests"), "{e}");
}

async fn mirrors_serve_every_read_and_never_get_the_upstreams_credentials<K: Kit>() {
    let _one = one_at_a_time();
    let img = image(91, &[5000, 70_000], &Platform::host(), false);
    let mut r = Registry::new();
    img.add_to(&mut r, "team/app", Some("v1"));
    // the mirror wants credentials of its own
    let mirror = Arc::new(Mutex::new(FaultyRegistry::new(
        r,
        vec![Rule::all(Fault::Basic {
            username: "mirror-user".into(),
            password: "mirror-pass".into(),
        })],
    )));
    let mirror_addr = K::serve(mirror.clone()).await;
    let upstream = format!("127.0.0.1:{}", ocireg_tests::real::free_port());
    let hosts = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(hosts.path().join(&upstream)).unwrap();
    std::fs::write(
        hosts.path().join(&upstream).join("hosts.toml"),
        format!("[host.\"http://{mirror_addr}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
    )
    .unwrap();
    let upstream_credentials = Credentials::Basic {
        username: "upstream-user".into(),
        password: Secret::new("upstream-pass".to_string()),
    };
    let reference = format!("{upstream}/team/app:v1");
    let layer = Descriptor::new(
        "application/octet-stream",
        sha256(&img.layers[1]),
        img.layers[1].len() as u64,
    );
    // with the upstream's credentials only, the mirror is never sent them: it refuses,
    // the read falls back to the upstream, which is down
    let only_upstream = client::<K>()
        .hosts_dir(hosts.path())
        .credentials(&upstream, upstream_credentials.clone());
    let e = only_upstream.manifest(&reference).await.unwrap_err();
    assert!(matches!(e, DriveError::Registry(_)), "{e}");
    let sent_basic = mirror
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|s| s.auth_scheme.is_some())
        .count();
    assert_eq!(
        sent_basic, 0,
        "the upstream's credentials went to the mirror"
    );
    // with the mirror's own, every read is served by the mirror, the upstream down
    let both = only_upstream.credentials(
        &mirror_addr,
        Credentials::Basic {
            username: "mirror-user".into(),
            password: Secret::new("mirror-pass".to_string()),
        },
    );
    let m = both.manifest(&reference).await.unwrap();
    assert_eq!(m.digest, img.digest());
    let inspected = both.inspect(&reference).await.unwrap();
    assert_eq!(inspected.bytes, img.manifest);
    let tags: Vec<String> = both
        .tags(&format!("{upstream}/team/app"))
        .map(|t| t.unwrap())
        .collect()
        .await;
    assert_eq!(tags, ["v1"]);
    let mut blob = Vec::new();
    both.blob(&format!("{upstream}/team/app"), layer.clone())
        .unwrap()
        .into_async_read()
        .read_to_end(&mut blob)
        .await
        .unwrap();
    assert_eq!(blob, img.layers[1]);
    let part = both
        .read_range(&format!("{upstream}/team/app"), &layer, 10, 100)
        .await
        .unwrap();
    assert_eq!(part, img.layers[1].slice(10..110));
    let dir = tempfile::tempdir().unwrap();
    let pulled = both.pull(&reference).to_layout(dir.path()).await.unwrap();
    assert_eq!(pulled.descriptor.digest, img.digest());
    // every request the mirror saw said which upstream it serves
    let log = mirror.lock().unwrap().log.clone();
    let untold: Vec<_> = log
        .iter()
        .filter(|s| {
            !s.path
                .contains(&format!("ns={}", upstream.replace(':', "%3A")))
        })
        .map(|s| s.path.clone())
        .collect();
    assert!(untold.is_empty(), "{untold:?}");
}

on_every_runtime!(
    a_large_blob_streams_through_cuts_and_a_stall,
    wrong_bytes_end_in_an_integrity_error,
    three_ranges_cost_three_requests,
    mirrors_serve_every_read_and_never_get_the_upstreams_credentials,
);

/// The blocking reader over the smol transport (whose reactor runs on its own thread).
#[test]
fn a_blob_reads_as_std_io_read_on_smol() {
    let _one = one_at_a_time();
    use ocireg_tests::kit::SmolKit;
    let data = noise(5 << 20, 18);
    let digest = sha256(&data);
    let mut r = Registry::new();
    r.add_blob_with_digest("sync/blob", digest.clone(), data.clone());
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(r, vec![])));
    let addr = SmolKit::block_on(SmolKit::serve(reg));
    let client = client::<SmolKit>();
    let descriptor = Descriptor::new("application/octet-stream", digest, data.len() as u64);
    let mut reader = client
        .blob(&format!("{addr}/sync/blob"), descriptor)
        .unwrap()
        .into_blocking_read();
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut got).unwrap();
    assert_eq!(got, data);
}

/// The tokio adapter's reader: `tokio::io::AsyncRead` over the same stream.
#[test]
fn a_blob_reads_as_tokio_async_read() {
    let _one = one_at_a_time();
    use ocireg_tests::kit::TokioKit;
    use tokio::io::AsyncReadExt as _;
    TokioKit::block_on(async {
        let data = noise(3 << 20, 20);
        let digest = sha256(&data);
        let mut r = Registry::new();
        r.add_blob_with_digest("tokio/blob", digest.clone(), data.clone());
        let reg = Arc::new(Mutex::new(FaultyRegistry::new(r, vec![])));
        let addr = TokioKit::serve(reg).await;
        let client = client::<TokioKit>();
        let descriptor = Descriptor::new("application/octet-stream", digest, data.len() as u64);
        let blob = client
            .blob(&format!("{addr}/tokio/blob"), descriptor)
            .unwrap();
        let mut got = Vec::new();
        ocireg_tokio::blob_reader(blob)
            .read_to_end(&mut got)
            .await
            .unwrap();
        assert_eq!(got, data);
    });
}
