//! Artifacts and referrers from the command line: an artifact that refers to an image
//! (a signature) is pushed, listed by `ocireg referrers` and shown by `ocireg inspect`;
//! against the real `docker-registry` 2.8 (no referrers API: the referrers tag is kept
//! by the push and read by the listing) and the in-process registry (with the API).

use ocireg_core::referrers::fallback_tag;
use ocireg_core::Platform;
use ocireg_registry::images::{artifact, image, TestImage};
use ocireg_tests::real::{write_oci_layout, Mode, RealRegistry};

mod support;
use support::{serve_inprocess, succeed, Served};

const SIG: &str = "application/vnd.example.signature.v1";

/// Pushes `img` as `repo:v1` and `sig` (which refers to it) by digest to `addr`; then
/// lists the referrers of `repo:v1`: the JSON document.
fn push_and_list(addr: &str, plain: bool, img: &TestImage, sig: &TestImage) -> serde_json::Value {
    let work = tempfile::tempdir().unwrap();
    let (image_dir, sig_dir) = (work.path().join("img"), work.path().join("sig"));
    write_oci_layout(&image_dir, &[(img, Some("v1"))], &[]);
    write_oci_layout(&sig_dir, &[(sig, Some("sig"))], &[]);
    let tls: &[&str] = if plain { &["--plain-http"] } else { &[] };
    let push = |dir: &std::path::Path, target: String| {
        let mut args = vec!["push", "--progress", "plain"];
        args.extend(tls);
        let dir = dir.display().to_string();
        args.extend([dir.as_str(), target.as_str()]);
        succeed(&args);
    };
    push(&image_dir, format!("{addr}/team/app:v1"));
    push(&sig_dir, format!("{addr}/team/app"));
    let mut args = vec!["referrers", "--format", "json"];
    args.extend(tls);
    let target = format!("{addr}/team/app:v1");
    args.push(&target);
    serde_json::from_str(&succeed(&args)).unwrap()
}

#[test]
fn referrers_through_the_tag_schema_on_docker_registry() {
    let reg = RealRegistry::start(Mode::Open);
    let img = image(63, &[2000], &Platform::host(), false);
    let sig = artifact(SIG, &[("sig.bin", b"a signature")], Some(&img));
    let doc = push_and_list(&reg.addr, true, &img, &sig);
    assert_eq!(doc["via"], "referrers tag", "{doc:#}");
    assert_eq!(doc["subject"], img.digest().to_string());
    let listed = doc["referrers"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{doc:#}");
    assert_eq!(listed[0]["digest"], sig.digest().to_string());
    assert_eq!(listed[0]["artifactType"], SIG);
    // the push kept the tag: its index lists the signature
    let tag = fallback_tag(&img.digest());
    let raw = succeed(&[
        "inspect",
        "--raw",
        "--plain-http",
        &format!("{}/team/app:{tag}", reg.addr),
    ]);
    assert!(raw.contains(&sig.digest().to_string()), "{raw}");
    // the table, and a filter that matches nothing
    let table = succeed(&[
        "referrers",
        "--plain-http",
        &format!("{}/team/app:v1", reg.addr),
    ]);
    assert!(
        table.contains(SIG) && table.contains(&sig.digest().to_string()),
        "{table}"
    );
    let none = succeed(&[
        "referrers",
        "--plain-http",
        "--artifact-type",
        "application/other",
        &format!("{}/team/app:v1", reg.addr),
    ]);
    assert!(none.starts_with("no referrers of"), "{none}");
    // pulled with its referrers, pushed and copied with them: each new repository lists
    // the signature too (through its referrers tag: this registry has no API)
    let layout = tempfile::tempdir().unwrap();
    let at = |r: &str| format!("{}/{r}", reg.addr);
    let dir = layout.path().to_str().unwrap();
    let pulled = succeed(&[
        "pull",
        "--plain-http",
        "--include-referrers",
        &at("team/app:v1"),
        dir,
    ]);
    assert!(pulled.contains("referrers: 1 pulled"), "{pulled}");
    let pushed = succeed(&[
        "push",
        "--plain-http",
        "--include-referrers",
        &format!("{dir}:v1"),
        &at("pushed/app:v1"),
    ]);
    assert!(pushed.contains("referrers: 1 pushed"), "{pushed}");
    let copied = succeed(&[
        "copy",
        "--plain-http",
        "--include-referrers",
        &at("team/app:v1"),
        &at("copied/app"),
    ]);
    assert!(copied.contains("referrers: 1 copied"), "{copied}");
    for repo in ["pushed/app:v1", "copied/app:v1"] {
        let listed = succeed(&["referrers", "--plain-http", &at(repo)]);
        assert!(
            listed.contains(&sig.digest().to_string()),
            "{repo}: {listed}"
        );
    }
    // inspect shows what the artifact is and what it refers to
    let shown = succeed(&[
        "inspect",
        "--plain-http",
        &format!("{}/team/app@{}", reg.addr, sig.digest()),
    ]);
    for want in [
        format!("artifact    {SIG}"),
        format!("subject     {}", img.digest()),
        "annotation  org.opencontainers.image.created=".to_string(),
        "sig.bin".to_string(),
    ] {
        assert!(shown.contains(&want), "{want:?} in {shown}");
    }
}

/// `ocireg serve --allow-push` has the referrers API: the listing comes from it (on
/// both runtimes), and no referrers tag is written.
#[test]
fn referrers_through_the_api_of_ocireg_serve() {
    let img = image(64, &[2000], &Platform::host(), false);
    let sig = artifact(SIG, &[("sig.bin", b"another signature")], Some(&img));
    let empty = tempfile::tempdir().unwrap();
    write_oci_layout(empty.path(), &[(&img, Some("seed"))], &[]);
    for runtime in ["tokio", "async-std", "smol"] {
        let served = Served::start(empty.path(), runtime);
        let doc = push_and_list(&served.addr, false, &img, &sig);
        assert_eq!(doc["via"], "referrers API", "{runtime}: {doc:#}");
        assert_eq!(doc["referrers"][0]["digest"], sig.digest().to_string());
        // a registry with the API lists the referrer itself: no tag was written
        let tag = fallback_tag(&img.digest());
        let missing = std::ffi::OsString::from(format!("{}/team/app:{tag}", served.addr));
        let err = support::fail(&["inspect".as_ref(), &missing]);
        assert!(err.contains("404") || err.contains("not found"), "{err}");
    }
}

/// An artifact (artifactType, the empty config, layers of any media type) pulls into a
/// correct layout, and `--files` writes each titled layer as a file, once: a second pull
/// finds them there.
#[test]
fn an_artifact_pulls_into_a_layout_and_its_files() {
    let reg = RealRegistry::start(Mode::Open);
    let files: &[(&str, &[u8])] = &[
        ("policy.rego", b"package main"),
        ("data/input.json", b"{}\n"),
    ];
    let art = artifact("application/vnd.example.policy.v1", files, None);
    let work = tempfile::tempdir().unwrap();
    write_oci_layout(&work.path().join("src"), &[(&art, Some("v1"))], &[]);
    let target = format!("{}/policies/main:v1", reg.addr);
    succeed(&[
        "push",
        "--plain-http",
        work.path().join("src").to_str().unwrap(),
        &target,
    ]);
    let (layout, out) = (work.path().join("layout"), work.path().join("out"));
    let pull = || {
        succeed(&[
            "pull",
            "--plain-http",
            "--progress",
            "plain",
            "--files",
            out.to_str().unwrap(),
            &target,
            layout.to_str().unwrap(),
        ])
    };
    let summary = pull();
    assert!(summary.contains("files: 2"), "{summary}");
    for (name, bytes) in files {
        assert_eq!(std::fs::read(out.join(name)).unwrap(), *bytes, "{name}");
    }
    // the layout holds the manifest, the empty config and both layers
    let blobs = ocireg_tests::real::layout_blobs(&layout);
    for b in art.blobs().chain([&art.manifest]) {
        assert!(blobs.contains(&ocireg_core::Digest::sha256(b).to_string()));
    }
    let again = pull();
    assert!(again.contains("2 already there"), "{again}");
}

/// A title from a hostile registry that climbs out of the directory is refused, and
/// nothing is written outside it.
#[test]
fn a_title_that_climbs_out_is_refused() {
    let art = artifact("application/x", &[("../escaped.txt", b"nope")], None);
    let mut r = ocireg_registry::Registry::new();
    art.add_to(&mut r, "evil/art", Some("v1"));
    let (addr, _reg, _rt) = serve_inprocess(r, vec![]);
    let work = tempfile::tempdir().unwrap();
    let (files, layout) = (work.path().join("files"), work.path().join("layout"));
    let reference = std::ffi::OsString::from(format!("{addr}/evil/art:v1"));
    let err = support::fail(&[
        "pull".as_ref(),
        "--files".as_ref(),
        files.as_os_str(),
        &reference,
        layout.as_os_str(),
    ]);
    assert!(err.contains("climbs out"), "{err}");
    assert!(!work.path().join("escaped.txt").exists());
}
