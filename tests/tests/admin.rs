//! Administration through the library's `Client`, on every runtime, against the
//! in-process registry: more tags for a manifest (no blob moves), digests, deletes of a
//! tag alone, of a manifest (and its entry in its subject's referrers tag when the
//! registry has no referrers API), of a blob; credentials checked before they are kept.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use ocireg_core::referrers::fallback_tag;
use ocireg_core::{Credentials, Digest, ErrorKind, Manifest, Platform, Secret};
use ocireg_driver::client::Client;
use ocireg_registry::images::{artifact, image};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::kit::Kit;
use ocireg_tests::on_every_runtime;
use ocireg_tests::real::write_oci_layout;

fn client<K: Kit>() -> Client {
    Client::from_parts(Arc::from(K::transport(&[])), Arc::from(K::runtime())).docker_config(None)
}

fn blob_requests(reg: &Mutex<FaultyRegistry>) -> usize {
    reg.lock()
        .unwrap()
        .log
        .iter()
        .filter(|s| s.path.contains("/blobs/"))
        .count()
}

async fn tag_digest_and_deletes<K: Kit>() {
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(Registry::new(), vec![])));
    let addr = K::serve(reg.clone()).await;
    let at = |r: &str| format!("{addr}/{r}");
    let img = image(95, &[4000, 9000], &Platform::host(), false);
    let work = tempfile::tempdir().unwrap();
    write_oci_layout(work.path(), &[(&img, Some("v1"))], &[]);
    let client = client::<K>();
    client
        .push(work.path(), None, &at("team/app:v1"))
        .await
        .unwrap();
    // more tags: the manifest's bytes under each, no blob moved
    let blobs_before = blob_requests(&reg);
    let digest = client
        .tag(&at("team/app:v1"), &["a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(digest, img.digest());
    assert_eq!(blob_requests(&reg), blobs_before, "a tag moved a blob");
    let tags: Vec<String> = client
        .tags(&at("team/app"))
        .map(|t| t.unwrap())
        .collect()
        .await;
    assert_eq!(tags, ["a", "b", "v1"]);
    let d = client.digest(&at("team/app:a")).await.unwrap();
    assert_eq!(d.digest, img.digest());
    assert_eq!(d.size as usize, img.manifest.len());
    // a tag alone: the manifest stays under its other tags
    client.delete_tag(&at("team/app:a")).await.unwrap();
    let tags: Vec<String> = client
        .tags(&at("team/app"))
        .map(|t| t.unwrap())
        .collect()
        .await;
    assert_eq!(tags, ["b", "v1"]);
    assert_eq!(
        client.digest(&at("team/app:b")).await.unwrap().digest,
        img.digest()
    );
    // the manifest a tag names: resolved, then deleted with every tag on it
    let deleted = client.delete_manifest(&at("team/app:b")).await.unwrap();
    assert_eq!(deleted, img.digest());
    let e = client.manifest(&at("team/app:v1")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // a blob
    let layer = Digest::sha256(&img.layers[0]);
    assert!(reg.lock().unwrap().inner.has_blob("team/app", &layer));
    client
        .delete_blob(&at(&format!("team/app@{layer}")))
        .await
        .unwrap();
    assert!(!reg.lock().unwrap().inner.has_blob("team/app", &layer));
    let e = client
        .delete_blob(&at(&format!("team/app@{layer}")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

async fn deleting_a_referrer_takes_it_out_of_the_referrers_tag<K: Kit>() {
    // a registry without the referrers API: referrers live in the referrers tag
    let mut r = Registry::new();
    r.set_referrers_api(false);
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(r, vec![])));
    let addr = K::serve(reg.clone()).await;
    let at = |r: &str| format!("{addr}/{r}");
    let img = image(96, &[3000], &Platform::host(), false);
    let sig = artifact("application/vnd.example.sig", &[("s", b"sig")], Some(&img));
    let sbom = artifact("application/spdx+json", &[("b", b"sbom")], Some(&img));
    let work = tempfile::tempdir().unwrap();
    write_oci_layout(
        work.path(),
        &[
            (&img, Some("v1")),
            (&sig, Some("sig")),
            (&sbom, Some("sbom")),
        ],
        &[],
    );
    let client = client::<K>();
    client
        .push(work.path(), Some("v1"), &at("team/app:v1"))
        .include_referrers(true)
        .await
        .unwrap();
    let listed = |client: &Client| {
        let client = client.clone();
        let tag = at(&format!("team/app:{}", fallback_tag(&img.digest())));
        async move {
            match client.manifest(&tag).await.unwrap().manifest {
                Manifest::Index(ix) => ix
                    .manifests
                    .into_iter()
                    .map(|d| d.digest)
                    .collect::<Vec<_>>(),
                Manifest::Image(_) => panic!("the referrers tag holds an image"),
            }
        }
    };
    assert_eq!(listed(&client).await.len(), 2);
    client
        .delete_manifest(&at(&format!("team/app@{}", sig.digest())))
        .await
        .unwrap();
    assert_eq!(listed(&client).await, [sbom.digest()]);
    // the image the referrers refer to is left alone
    assert_eq!(
        client.digest(&at("team/app:v1")).await.unwrap().digest,
        img.digest()
    );
    // deleting the image leaves its referrers alone
    client
        .delete_manifest(&at(&format!("team/app@{}", img.digest())))
        .await
        .unwrap();
    assert_eq!(
        client
            .digest(&at(&format!("team/app@{}", sbom.digest())))
            .await
            .unwrap()
            .digest,
        sbom.digest()
    );
}

async fn credentials_are_checked_before_they_are_kept<K: Kit>() {
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(Registry::new(), vec![])));
    let addr = K::serve(reg.clone()).await;
    let basic = |p: &str| Credentials::Basic {
        username: "me".into(),
        password: Secret::new(p.to_string()),
    };
    let client = client::<K>();
    // a registry that needs none says so
    assert!(!client.check_credentials(&addr, basic("any")).await.unwrap());
    reg.lock().unwrap().set_rules(vec![Rule::all(Fault::Basic {
        username: "me".into(),
        password: "right".into(),
    })]);
    assert!(client
        .check_credentials(&addr, basic("right"))
        .await
        .unwrap());
    let e = client
        .check_credentials(&addr, basic("wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Unauthorized {
                credentials_given: true
            }
        ),
        "{e}"
    );
    // a token service: checked with the token it issues
    reg.lock().unwrap().set_rules(vec![Rule::all(Fault::Token {
        realm: format!("http://{addr}/token"),
        service: "admin.test".into(),
    })]);
    assert!(client
        .check_credentials(&addr, basic("right"))
        .await
        .unwrap());
}

async fn artifacts_from_files_and_indexes_of_manifests<K: Kit>() {
    use ocireg_driver::client::{ArtifactFile, Content};
    let reg = Arc::new(Mutex::new(FaultyRegistry::new(Registry::new(), vec![])));
    let addr = K::serve(reg.clone()).await;
    let at = |r: &str| format!("{addr}/{r}");
    let amd = Platform::parse("linux/amd64").unwrap();
    let arm = Platform::parse("linux/arm64/v8").unwrap();
    let (a, b) = (
        image(97, &[2000], &amd, false),
        image(98, &[2500], &arm, false),
    );
    let client = client::<K>();
    for (img, tag) in [(&a, "amd"), (&b, "arm")] {
        let dir = tempfile::tempdir().unwrap();
        write_oci_layout(dir.path(), &[(img, Some(tag))], &[]);
        client
            .push(dir.path(), None, &at(&format!("team/app:{tag}")))
            .await
            .unwrap();
    }
    // an index of the two: platforms read from their configs, no blob sent
    let writes = |reg: &Mutex<FaultyRegistry>| {
        reg.lock()
            .unwrap()
            .log
            .iter()
            .filter(|s| s.path.contains("/blobs/") && s.method != "GET" && s.method != "HEAD")
            .count()
    };
    let before = writes(&reg);
    let digest = client
        .create_index(&at("team/app:multi"))
        .manifest(&at("team/app:amd"), None)
        .annotation("org.opencontainers.image.version", "1")
        .run()
        .await
        .unwrap();
    let index = client.manifest(&at("team/app:multi")).await.unwrap();
    assert_eq!(index.digest, digest);
    let client2 = client.clone();
    client2
        .create_index(&at("team/app:multi"))
        .append(true)
        .manifest(&at("team/app:arm"), None)
        .manifest(&at("team/app:amd"), None)
        .run()
        .await
        .unwrap();
    let Manifest::Index(ix) = client
        .manifest(&at("team/app:multi"))
        .await
        .unwrap()
        .manifest
    else {
        panic!("an index")
    };
    let listed: Vec<_> = ix
        .manifests
        .iter()
        .map(|d| {
            let p = d.platform.clone().expect("a platform read from the config");
            (d.digest.clone(), format!("{}/{}", p.os, p.architecture))
        })
        .collect();
    assert_eq!(
        listed,
        [
            (a.digest(), format!("{}/{}", amd.os, amd.architecture)),
            (b.digest(), format!("{}/{}", arm.os, arm.architecture)),
        ],
        "each once, with its platform"
    );
    assert_eq!(writes(&reg), before, "an index moved a blob");
    // an artifact from files (and from memory), pulled back as files
    let work = tempfile::tempdir().unwrap();
    let on_disk = work.path().join("app.yaml");
    std::fs::write(&on_disk, b"replicas: 3\n").unwrap();
    let pushed = client
        .push_artifact(&at("team/config:v1"), "application/vnd.example.config")
        .file(ArtifactFile {
            title: "app.yaml".into(),
            media_type: "application/yaml".into(),
            content: Content::File(on_disk),
        })
        .file(ArtifactFile {
            title: "notes/readme.txt".into(),
            media_type: "text/plain".into(),
            content: Content::Bytes(bytes::Bytes::from_static(b"read me")),
        })
        .annotation("org.opencontainers.image.created", "2026-12-06T00:00:00Z")
        .await
        .unwrap();
    let layout = work.path().join("layout");
    let pulled = client
        .pull(&at("team/config:v1"))
        .to_layout(&layout)
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, pushed);
    let out = work.path().join("files");
    ocireg_driver::files::write_titled_files(&layout, &pulled.descriptor, &out).unwrap();
    assert_eq!(
        std::fs::read(out.join("app.yaml")).unwrap(),
        b"replicas: 3\n"
    );
    assert_eq!(
        std::fs::read(out.join("notes/readme.txt")).unwrap(),
        b"read me"
    );
    // a title that climbs out is refused before anything is sent
    let e = client
        .push_artifact(&at("team/config:bad"), "application/vnd.example.config")
        .file(ArtifactFile {
            title: "../evil".into(),
            media_type: "text/plain".into(),
            content: Content::Bytes(bytes::Bytes::from_static(b"x")),
        })
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains(".."), "{e}");
    // attached to an image: one of its referrers
    let sbom = client
        .push_artifact(&at("team/app"), "application/spdx+json")
        .subject(&at("team/app:amd"))
        .file(ArtifactFile {
            title: "sbom.json".into(),
            media_type: "application/spdx+json".into(),
            content: Content::Bytes(bytes::Bytes::from_static(b"{}")),
        })
        .await
        .unwrap();
    let referrers = client.referrers(&at("team/app:amd"), None).await.unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0].digest, sbom);
    assert_eq!(
        referrers[0].artifact_type.as_deref(),
        Some("application/spdx+json")
    );
}

on_every_runtime!(
    artifacts_from_files_and_indexes_of_manifests,
    tag_digest_and_deletes,
    deleting_a_referrer_takes_it_out_of_the_referrers_tag,
    credentials_are_checked_before_they_are_kept,
);
