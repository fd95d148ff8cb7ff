//! How many downloads run at once, small and large, and the connections prepared for them.

use super::*;

/// The most blob exchanges outstanding at once in a pull of `img` with `cfg`.
fn most_blobs_at_once(img: &TestImage, cfg: Config) -> i32 {
    let mut sim = Sim::new(ORIGIN, registry_with(img, vec![]));
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, img);
    // Between BlobDone events, count the blob Sends outstanding (the first is the manifest).
    let mut outstanding = 0i32;
    let mut max = 0;
    let mut sends = 0;
    for t in &out.transcript {
        match *t {
            "Send" => {
                sends += 1;
                if sends > 1 {
                    outstanding += 1;
                }
            }
            "BlobFetched" => outstanding -= 1,
            _ => {}
        }
        max = max.max(outstanding);
    }
    max
}

#[test]
fn concurrency_limit_is_kept() {
    let img = image(3, &[5000; 20], &Platform::host(), false);
    let mut cfg = config();
    cfg.max_concurrent = 3;
    cfg.max_concurrent_small = 5;
    // 5000-byte blobs are small: up to 5 at once
    assert_eq!(most_blobs_at_once(&img, cfg.clone()), 5);
    // counted as large, they keep to 3
    cfg.small_blob = 4999;
    assert_eq!(most_blobs_at_once(&img, cfg.clone()), 3);
    // a small-blob limit below the general one does not lower it
    cfg.small_blob = 1 << 20;
    cfg.max_concurrent_small = 1;
    assert_eq!(most_blobs_at_once(&img, cfg), 3);
}

/// Large blobs keep to `max_concurrent` even while small ones use the wider limit: a
/// large one starts only while fewer than `max_concurrent` downloads run.
#[test]
fn large_blobs_wait_for_the_general_limit_among_small_ones() {
    let mut sizes = vec![300; 12];
    sizes.extend([9000; 4]);
    let img = image(5, &sizes, &Platform::host(), false);
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let mut cfg = config();
    cfg.max_concurrent = 2;
    cfg.max_concurrent_small = 8;
    cfg.small_blob = 1000;
    let out = pull(cfg, "reg.test/test/repo:v1", &mut sim);
    assert_complete(&out, &img);
    let large: Vec<String> = img
        .blobs()
        .filter(|b| b.len() == 9000)
        .map(|b| ocireg_core::Digest::sha256(b).to_string())
        .collect();
    // Walk the transcript: each Send is the next request; BlobDone ends a download.
    let mut requests = out.requests.iter();
    let (mut running, mut most, mut large_sent) = (0i32, 0, 0);
    for t in &out.transcript {
        match *t {
            "Send" => {
                let (_, _, path, _) = requests.next().expect("a request per Send");
                if !path.contains("/blobs/") {
                    continue;
                }
                if large.iter().any(|d| path.ends_with(d.as_str())) {
                    assert!(
                        running < 2,
                        "a large blob started beside {running} downloads"
                    );
                    large_sent += 1;
                }
                running += 1;
                most = most.max(running);
            }
            "BlobFetched" => running -= 1,
            _ => {}
        }
    }
    assert_eq!(large_sent, 4);
    // and the small ones did run wider than 2
    assert!(most > 2, "at most {most} at once");
}

/// The blobs' connections are asked for while the manifest is in flight: one hint, for
/// the registry's origin, right after the manifest's request; none for a pull that fetches no
/// blob, and none while a loopback registry's scheme is still being probed.
#[test]
fn the_blob_wave_is_prepared_while_the_manifest_is_in_flight() {
    let img = small();
    let t0 = Instant::now();
    let reference = || Reference::parse("reg.test/test/repo:v1").unwrap();
    // the manifest's request first (its connection is the first one), then the hint
    let mut p = Machine::pull(config(), reference(), t0);
    let first = p.poll_action(t0);
    let ocireg_core::Action::Send { request, .. } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(request.uri().path(), "/v2/test/repo/manifests/v1");
    let hint = p.poll_action(t0);
    assert!(
        matches!(&hint, ocireg_core::Action::Prepare { origin, connections: 7 } if origin.as_str() == "http://reg.test/"),
        "{hint:?}"
    );
    // one hint in a whole pull
    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let mut p = Machine::pull(config(), reference(), t0);
    let out = sim.run(&mut p, t0);
    assert_complete(&out, &img);
    assert_eq!(out.prepared, vec![("http://reg.test/".to_string(), 7)]);

    let mut sim = Sim::new(ORIGIN, registry_with(&img, vec![]));
    let mut p = Machine::inspect(config(), reference(), t0);
    let out = sim.run(&mut p, t0);
    assert!(
        out.prepared.is_empty(),
        "inspect fetches no blob: {:?}",
        out.prepared
    );

    // a loopback registry probed over https: no hint
    let loopback = Config {
        plain_http: false,
        ..config()
    };
    let reference = Reference::parse("127.0.0.1:5000/test/repo:v1").unwrap();
    let mut p = Machine::pull(loopback, reference, t0);
    assert!(matches!(
        p.poll_action(t0),
        ocireg_core::Action::Send { .. }
    ));
    let next = p.poll_action(t0);
    assert!(matches!(next, ocireg_core::Action::Wait { .. }), "{next:?}");
}
