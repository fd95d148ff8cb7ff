//! Hostile layout directories: planted symlinks, corrupt blobs and partial files, concurrent pulls, layouts `serve` must load quickly or refuse.

use super::*;

fn pull(addr: &str, tag: &str, dir: &Path) -> Output {
    ocireg()
        .args(["pull", "--plain-http", "--progress", "none"])
        .arg(format!("{addr}/test/repo:{tag}"))
        .arg(dir)
        .output()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn symlinks_planted_in_the_layout_are_never_followed() {
    use std::os::unix::fs::symlink;
    let img = img(2);
    let server = serve_image(&img);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let victim = work.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let layer = &img.layers[1];
    let layer_d = Digest::sha256(layer);
    let config_d = Digest::sha256(&img.config);
    std::fs::create_dir_all(layout.join("ingest")).unwrap();
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    // a symlink where the partial file of a layer goes
    symlink(
        &victim,
        layout.join(format!("ingest/sha256-{}.partial", layer_d.hex())),
    )
    .unwrap();
    // a symlink named like the config blob, pointing at a file of the right size
    let decoy = work.path().join("decoy");
    std::fs::write(&decoy, vec![b'z'; img.config.len()]).unwrap();
    symlink(
        &decoy,
        layout.join(format!("blobs/sha256/{}", config_d.hex())),
    )
    .unwrap();
    let out = pull(&server.addr, "v1", &layout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&decoy).unwrap(), vec![b'z'; img.config.len()]);
    for (d, data) in [(&layer_d, &layer[..]), (&config_d, &img.config[..])] {
        let p = layout.join(format!("blobs/sha256/{}", d.hex()));
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.is_file(), "{} is not a regular file", p.display());
        assert_eq!(std::fs::read(&p).unwrap(), data);
    }
    // a symlinked ingest directory is refused, not written through
    refuses_a_symlinked(&server.addr, "ingest");
}

/// A pull into a fresh layout whose `dir` (`ingest`, `blobs`) is a symlink to another
/// directory fails saying so, and writes nothing there.
fn refuses_a_symlinked(addr: &str, dir: &str) {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let elsewhere = work.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, layout.join(dir)).unwrap();
    let out = pull(addr, "v1", &layout);
    assert_eq!(out.status.code(), Some(1), "{dir}: {}", stderr(&out));
    assert!(stderr(&out).contains("symlink"), "{dir}: {}", stderr(&out));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "{dir}");
}

#[test]
fn verify_existing_replaces_a_corrupt_blob() {
    let img = img(3);
    let server = serve_image(&img);
    let dir = tempfile::tempdir().unwrap();
    assert!(pull(&server.addr, "v1", dir.path()).status.success());
    let layer_d = Digest::sha256(&img.layers[0]);
    let p = dir.path().join(format!("blobs/sha256/{}", layer_d.hex()));
    std::fs::write(&p, vec![b'!'; img.layers[0].len()]).unwrap();
    // trusted by name without the flag
    assert!(pull(&server.addr, "v1", dir.path()).status.success());
    assert_ne!(std::fs::read(&p).unwrap(), img.layers[0]);
    let out = ocireg()
        .args([
            "pull",
            "--plain-http",
            "--progress",
            "none",
            "--verify-existing",
        ])
        .arg(format!("{}/test/repo:v1", server.addr))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&p).unwrap(), img.layers[0]);
}

#[test]
fn concurrent_pulls_into_one_layout_keep_every_tag() {
    // two images under two tags, and the first pulled twice at once
    let a = image(4, &[200_000, 3000], &Platform::host(), false);
    let b = image(5, &[150_000, 5000], &Platform::host(), false);
    let (ia, ib) = (a.clone(), b.clone());
    let server = Hostile::start(move |req, _| {
        let p = req
            .path
            .replace("/manifests/v2", &format!("/manifests/{}", ib.digest()));
        let mut r = req.clone();
        r.path = p;
        match registry_answer(&ia, &r) {
            Answer::Full(404, ..) => registry_answer(&ib, &r),
            other => other,
        }
    });
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let children: Vec<_> = ["v1", "v2", "v1"]
            .iter()
            .map(|tag| {
                ocireg()
                    .args(["pull", "--plain-http", "--progress", "none"])
                    .arg(format!("{}/test/repo:{tag}", server.addr))
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        let mut tags: Vec<(String, String)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["annotations"]["org.opencontainers.image.ref.name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    m["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        tags.sort();
        assert_eq!(
            tags,
            vec![
                ("v1".to_string(), a.digest().to_string()),
                ("v2".to_string(), b.digest().to_string())
            ],
            "round {round}"
        );
        for blob in a.blobs().chain(b.blobs()) {
            let p = dir
                .path()
                .join(format!("blobs/sha256/{}", Digest::sha256(blob).hex()));
            assert_eq!(&std::fs::read(&p).unwrap()[..], &blob[..], "round {round}");
        }
    }
}

/// Writes a layout whose `index.json` names `top`, with `manifests` as blobs.
fn hostile_layout(dir: &Path, manifests: &[Vec<u8>], top: &[u8]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for m in manifests {
        std::fs::write(
            dir.join(format!("blobs/sha256/{}", Digest::sha256(m).hex())),
            m,
        )
        .unwrap();
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": ocireg_core::manifest::OCI_INDEX, "digest": Digest::sha256(top).to_string(),
        "size": top.len(), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn index_over(children: &[Vec<u8>]) -> Vec<u8> {
    let ds: Vec<_> = children
        .iter()
        .map(|c| {
            serde_json::json!({"mediaType": ocireg_core::manifest::OCI_INDEX,
                "digest": Digest::sha256(c).to_string(), "size": c.len()})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": ocireg_core::manifest::OCI_INDEX, "manifests": ds}))
    .unwrap()
}

#[test]
fn serve_loads_hostile_layouts_quickly_or_refuses_them() {
    // fan-out: 7 levels of 8 indexes, each listing all 8 of the next level (8^7 paths)
    let work = tempfile::tempdir().unwrap();
    let fan = work.path().join("fan");
    let mut all = Vec::new();
    // eight distinct empty indexes at the bottom (told apart by an annotation)
    let mut level: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let mut v: serde_json::Value = serde_json::from_slice(&index_over(&[])).unwrap();
            v["annotations"] = serde_json::json!({"n": i.to_string()});
            serde_json::to_vec(&v).unwrap()
        })
        .collect();
    for _ in 0..6 {
        all.extend(level.iter().cloned());
        level = (0..8)
            .map(|i| {
                let mut v: serde_json::Value = serde_json::from_slice(&index_over(&level)).unwrap();
                v["annotations"] = serde_json::json!({"n": i.to_string()});
                serde_json::to_vec(&v).unwrap()
            })
            .collect();
    }
    all.extend(level.iter().cloned());
    let top = index_over(&level);
    all.push(top.clone());
    hostile_layout(&fan, &all, &top);
    let started = Instant::now();
    let mut server = ocireg()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .arg(&fan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(line.starts_with("serving"), "{line:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // a chain 20,000 indexes deep: an error, not a stack overflow
    let deep = work.path().join("deep");
    let mut chain = vec![index_over(&[])];
    for _ in 0..20_000 {
        let next = index_over(&chain[chain.len() - 1..]);
        chain.push(next);
    }
    let top = chain.last().unwrap().clone();
    hostile_layout(&deep, &chain, &top);
    let out = ocireg()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .arg(&deep)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nested"), "{}", stderr(&out));
}

#[test]
fn serve_offers_sha512_manifests_under_their_own_digest() {
    use ocireg_core::Algorithm;
    let img = img(7);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
    std::fs::create_dir_all(root.join("blobs/sha512")).unwrap();
    std::fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    for b in img.blobs() {
        let d = Digest::sha256(b);
        std::fs::write(root.join(format!("blobs/sha256/{}", d.hex())), b).unwrap();
    }
    let d512 = Digest::of(Algorithm::Sha512, &img.manifest);
    std::fs::write(
        root.join(format!("blobs/sha512/{}", d512.hex())),
        &img.manifest,
    )
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": img.media_type, "digest": d512.to_string(), "size": img.manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(root.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let mut reg = ocireg_registry::Registry::new();
    ocireg_driver::server::load_into(root, &mut reg, "test/repo").unwrap();
    for path in [
        format!("/v2/test/repo/manifests/{d512}"),
        "/v2/test/repo/manifests/v1".to_string(),
    ] {
        let req = http::Request::get(path.as_str()).body(()).unwrap();
        let reply = reg.handle(&req);
        assert_eq!(reply.status(), 200, "{path}");
        assert_eq!(&reply.body[..], &img.manifest[..]);
    }
    // and an invalid repository is an error, not a panic
    let e = ocireg_driver::server::load_into(root, &mut reg, "Not A Repo").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_corrupt_partial_file_restarts_its_blob_within_the_same_pull() {
    // An earlier run's partial file whose bytes are wrong (a disk error, another tool):
    // the pull continues it, finds the digest wrong at the end, starts that blob over from
    // byte 0 once, and succeeds in this run, saying so in a retry event.
    let img = img(9);
    let server = serve_image(&img);
    let dir = tempfile::tempdir().unwrap();
    let layer = &img.layers[1];
    let d = Digest::sha256(layer);
    std::fs::create_dir_all(dir.path().join("ingest")).unwrap();
    std::fs::write(
        dir.path()
            .join(format!("ingest/sha256-{}.partial", d.hex())),
        vec![b'#'; 5000],
    )
    .unwrap();
    let out = ocireg()
        .args(["pull", "--plain-http", "--progress", "json"])
        .arg(format!("{}/test/repo:v1", server.addr))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let summary = events.iter().find(|e| e["event"] == "summary").unwrap();
    assert_eq!(
        summary["resumed"], 1,
        "the partial file was continued first"
    );
    assert!(
        events.iter().any(|e| e["event"] == "restarted"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "retry"
            && e["error"]
                .as_str()
                .unwrap_or("")
                .contains("digest mismatch")),
        "{events:?}"
    );
    let p = dir.path().join(format!("blobs/sha256/{}", d.hex()));
    assert_eq!(std::fs::read(p).unwrap(), &layer[..]);
    // the blob was requested twice (resumed, then from zero), never more
    let tries = server
        .seen()
        .iter()
        .filter(|r| r.path.ends_with(&d.to_string()))
        .count();
    assert_eq!(tries, 2);
}

/// Whether `ocireg serve` loads a layout whose `index.json` names a chain of `depth`
/// indexes, each inside the one before (it stops at once when it does not).
fn serves_a_chain_of(depth: usize) -> bool {
    let work = tempfile::tempdir().unwrap();
    let mut chain = vec![index_over(&[])];
    while chain.len() < depth {
        let next = index_over(&chain[chain.len() - 1..]);
        chain.push(next);
    }
    let top = chain.last().unwrap().clone();
    hostile_layout(work.path(), &chain, &top);
    let mut server = ocireg()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .arg(work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    line.starts_with("serving")
}

/// `serve` follows indexes eight deep and refuses a ninth, as the README says.
#[test]
fn serve_follows_eight_nested_indexes_and_refuses_nine() {
    assert_eq!(ocireg_driver::server::MAX_SERVE_DEPTH, 8);
    assert!(serves_a_chain_of(8), "eight nested indexes are served");
    assert!(!serves_a_chain_of(9), "a ninth is refused");
}

/// A symlinked `blobs/` directory is refused, not written through (as a symlinked
/// `ingest/` is).
#[test]
fn a_symlinked_blobs_directory_is_refused() {
    let server = serve_image(&img(9));
    refuses_a_symlinked(&server.addr, "blobs");
}

/// Two writers of one partial file, made to overlap for certain: this test holds the
/// lock on a blob's shared partial file (as another pull downloading it would), and the
/// pull writes that blob to a private file instead: the shared file is left exactly as
/// its holder has it, the blob is named with its own bytes, and no private file is left.
#[test]
fn a_partial_file_another_process_holds_is_left_to_it() {
    let img = img(11);
    let server = serve_image(&img);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ingest")).unwrap();
    let layer = Digest::sha256(&img.layers[0]);
    let partial = dir
        .path()
        .join(format!("ingest/sha256-{}.partial", layer.hex()));
    std::fs::write(&partial, b"the holder's bytes").unwrap();
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&partial)
        .unwrap();
    held.lock().unwrap();
    let out = pull(&server.addr, "v1", dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&partial).unwrap(), b"the holder's bytes");
    let named = dir.path().join(format!("blobs/sha256/{}", layer.hex()));
    assert_eq!(std::fs::read(&named).unwrap(), img.layers[0].to_vec());
    let private: Vec<_> = std::fs::read_dir(dir.path().join("ingest"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".private"))
        .collect();
    assert!(private.is_empty(), "{private:?}");
    drop(held);
}

/// Concurrent `index.json` updates, in a certain order: this test holds the layout's
/// index lock (as another pull finishing would), a pull of another image names its blobs
/// and then waits for the lock; meanwhile the holder adds a tag of its own; once the
/// lock is released the pull adds its tag to the index as it then is, keeping the
/// holder's.
#[test]
fn an_index_update_waits_for_the_lock_and_keeps_what_the_holder_wrote() {
    let a = image(12, &[20_000], &Platform::host(), false);
    let b = image(13, &[30_000], &Platform::host(), false);
    let (ia, ib) = (a.clone(), b.clone());
    let server = Hostile::start(move |req, _| {
        let p = req
            .path
            .replace("/manifests/v2", &format!("/manifests/{}", ib.digest()));
        let mut r = req.clone();
        r.path = p;
        match registry_answer(&ia, &r) {
            Answer::Full(404, ..) => registry_answer(&ib, &r),
            other => other,
        }
    });
    let dir = tempfile::tempdir().unwrap();
    assert!(pull(&server.addr, "v1", dir.path()).status.success());
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("ingest/index.json.lock"))
        .unwrap();
    lock.lock().unwrap();
    let child = ocireg()
        .args(["pull", "--plain-http", "--progress", "none"])
        .arg(format!("{}/test/repo:v2", server.addr))
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the second image's layer is named before its tag is written
    let layer = dir.path().join(format!(
        "blobs/sha256/{}",
        Digest::sha256(&b.layers[0]).hex()
    ));
    let started = std::time::Instant::now();
    while !layer.exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no blob named");
        std::thread::sleep(Duration::from_millis(20));
    }
    let index_path = dir.path().join("index.json");
    let read = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap()
    };
    let tags = |index: &serde_json::Value| -> Vec<String> {
        let mut t: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(str::to_string)
            .collect();
        t.sort();
        t
    };
    // give a pull that ignored the lock every chance to write first
    std::thread::sleep(Duration::from_millis(300));
    let mut index = read();
    assert_eq!(
        tags(&index),
        ["v1"],
        "the pull wrote the index without the lock"
    );
    // the holder tags the first image again, as another pull would
    let mut entry = index["manifests"][0].clone();
    entry["annotations"]["org.opencontainers.image.ref.name"] = "held".into();
    index["manifests"].as_array_mut().unwrap().push(entry);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tags(&read()), ["held", "v1", "v2"]);
}
