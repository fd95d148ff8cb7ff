//! Hashing elsewhere (`Config::hashing`): the core hands large blobs' bytes to the
//! caller's offload, in order, and still checks the digest the offload returns; small
//! blobs are hashed where they arrive. Over the simulated network, and with the driver's
//! hash threads.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use ocireg_core::offload::{HashOffload, OffloadedHash};
use ocireg_core::{Config, Digest, Error, Machine, Platform, Reference, Verifier};
use ocireg_registry::images::image;
use ocireg_registry::{FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{test_config, Outcome, Sim, ORIGIN};

/// An offload that hashes where it is called, records what it saw, and can lie.
#[derive(Debug, Default)]
struct Recording {
    /// (bytes given, digest returned) per finished hash.
    finished: Mutex<Vec<(u64, Digest)>>,
    lie: bool,
}

struct Here {
    verifier: Verifier,
    owner: Arc<Recording>,
}

/// The offload the core is given: a handle to the recording.
#[derive(Debug)]
struct Offload(Arc<Recording>);

impl HashOffload for Offload {
    fn start(&self, verifier: Verifier) -> Box<dyn OffloadedHash> {
        Box::new(Here {
            verifier,
            owner: self.0.clone(),
        })
    }
}

impl OffloadedHash for Here {
    fn update(&mut self, bytes: Bytes) {
        self.verifier.update(&bytes);
    }
    fn finish(self: Box<Self>) -> Digest {
        let len = self.verifier.len();
        let digest = if self.owner.lie {
            Digest::sha256(b"something else")
        } else {
            self.verifier.finish()
        };
        self.owner
            .finished
            .lock()
            .unwrap()
            .push((len, digest.clone()));
        digest
    }
}

fn pull_with(offload: Arc<Recording>, rules: Vec<Rule>) -> (Outcome, Vec<u64>) {
    let img = image(7, &[3 << 20, 2 << 20, 1000], &Platform::host(), false);
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, rules));
    let cfg = Config {
        hashing: Some(Arc::new(Offload(offload.clone()))),
        ..test_config()
    };
    let t0 = Instant::now();
    let mut p = Machine::pull(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
    let out = sim.run(&mut p, t0);
    let mut sizes: Vec<u64> = offload
        .finished
        .lock()
        .unwrap()
        .iter()
        .map(|(n, _)| *n)
        .collect();
    sizes.sort();
    (out, sizes)
}

/// Without faults, and with each blob cut twice (resumed into the same offloaded hash).
#[test]
fn large_blobs_are_hashed_by_the_offload_and_small_ones_here() {
    use ocireg_registry::Fault;
    let cut = Rule {
        path_contains: "/blobs/".into(),
        fault: Fault::CutBody {
            after: 1 << 20,
            times: 2,
        },
    };
    for rules in [vec![], vec![cut]] {
        let (out, sizes) = pull_with(Arc::default(), rules);
        assert!(
            matches!(out.result, Some(Ok(()))),
            "{:?}",
            out.result.map(|r| r.map_err(|e| e.to_string()))
        );
        // the two layers over 1 MiB, each whole and once; the small layer and the
        // config were not
        assert_eq!(sizes, vec![2 << 20, 3 << 20]);
    }
}

#[test]
fn the_core_checks_what_the_offload_returns() {
    let lying = Arc::new(Recording {
        lie: true,
        ..Recording::default()
    });
    let (out, _) = pull_with(lying, vec![]);
    match out.result {
        Some(Err(Error::DigestMismatch { .. })) => {}
        other => panic!(
            "expected a digest mismatch, got {:?}",
            other.map(|r| r.map_err(|e| e.to_string()))
        ),
    }
}

/// The driver's hash threads do the hashing (they report the bytes of both large
/// layers, and nothing else), and a layer whose bytes are not its digest is caught on
/// that path.
#[test]
fn the_driver_hash_threads_verify_a_pull() {
    let img = image(8, &[5 << 20, 4 << 20], &Platform::host(), false);
    let run = |corrupt: bool| {
        let mut r = Registry::new();
        img.add_to(&mut r, "test/repo", Some("v1"));
        if corrupt {
            // the 4 MiB layer's digest serves other bytes of its length
            let layer = &img.layers[1];
            let other = ocireg_registry::images::random_bytes(99, layer.len());
            r.add_blob_with_digest("test/repo", Digest::sha256(layer), other);
        }
        let mut sim = Sim::new(ORIGIN, FaultyRegistry::new(r, vec![]));
        let threads = ocireg_driver::hashing::HashThreads::start(2).unwrap();
        let cfg = Config {
            hashing: Some(threads.clone()),
            ..test_config()
        };
        let t0 = Instant::now();
        let mut p = Machine::pull(cfg, Reference::parse("reg.test/test/repo:v1").unwrap(), t0);
        (sim.run(&mut p, t0), threads.bytes_hashed())
    };
    let (out, hashed) = run(false);
    assert!(matches!(out.result, Some(Ok(()))));
    assert_eq!(out.done.len(), img.blobs().count());
    assert_eq!(hashed, 9 << 20, "the two large layers, on the threads");
    let (out, hashed) = run(true);
    assert!(
        matches!(out.result, Some(Err(Error::DigestMismatch { .. }))),
        "{:?}",
        out.result.map(|r| r.map_err(|e| e.to_string()))
    );
    assert!(
        hashed >= 4 << 20,
        "the corrupt layer was hashed on the threads: {hashed}"
    );
}
