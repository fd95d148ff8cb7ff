//! The adapters' `Client`: every operation in a line, on each runtime, against the test
//! registry on loopback; a failure says what kind it is.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use ocireg_core::{ErrorKind, Platform};
use ocireg_driver::client::Client;
use ocireg_driver::Error as DriveError;
use ocireg_registry::images::{artifact, image};
use ocireg_registry::{FaultyRegistry, Registry};
use ocireg_tests::kit::{AsyncStdKit, Kit, SmolKit, TokioKit};
use ocireg_tests::real::{layout_blobs, write_oci_layout};

/// Every operation of `client` against the registry at `addr`.
async fn every_operation(client: &Client, addr: &str) {
    let img = image(90, &[4000, 70_000], &Platform::host(), false);
    let sig = artifact("application/vnd.example.sig", &[("s", b"sig")], Some(&img));
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    write_oci_layout(&src, &[(&img, Some("v1")), (&sig, None)], &[]);
    let at = |r: &str| format!("{addr}/{r}");
    // push, then everything else reads what went in
    let top = client
        .push(&src, Some("v1"), &at("team/app:v1"))
        .await
        .unwrap();
    assert_eq!(top, img.digest());
    client
        .push(&src, Some("v1"), &at("team/app:v2"))
        .await
        .unwrap();
    let pulled = client
        .pull(&at("team/app:v1"))
        .to_layout(work.path().join("out"))
        .await
        .unwrap();
    assert_eq!(pulled.descriptor.digest, img.digest());
    let mut want: Vec<String> = img
        .blobs()
        .chain([&img.manifest])
        .map(|b| ocireg_core::Digest::sha256(b).to_string())
        .collect();
    want.sort();
    assert_eq!(layout_blobs(&work.path().join("out")), want);
    let inspected = client.inspect(&at("team/app:v2")).await.unwrap();
    assert_eq!(inspected.digest, img.digest());
    let tags: Vec<String> = client
        .tags(&at("team/app"))
        .map(|t| t.unwrap())
        .collect()
        .await;
    assert_eq!(tags, ["v1", "v2"]);
    let copied = client
        .copy(&at("team/app:v1"), &at("copied/app:v1"))
        .await
        .unwrap();
    assert_eq!(copied.digest, img.digest());
    // the signature, pushed by digest, is a referrer of the image
    let sig_dir = work.path().join("sig");
    write_oci_layout(&sig_dir, &[(&sig, Some("sig"))], &[]);
    client
        .push(&sig_dir, None, &at("team/app:sig"))
        .await
        .unwrap();
    let referrers = client.referrers(&at("team/app:v1"), None).await.unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0].digest, sig.digest());
    // the referrers come along with a pull, and with a copy (whose untagged target takes
    // the source's tag)
    let with = work.path().join("with-referrers");
    let pulled = client
        .pull(&at("team/app:v1"))
        .include_referrers(true)
        .to_layout(&with)
        .await
        .unwrap();
    assert_eq!(pulled.referrers.len(), 1);
    assert!(layout_blobs(&with).contains(&sig.digest().to_string()));
    let copied = client
        .copy(&at("team/app:v1"), &at("again/app"))
        .include_referrers(true)
        .await
        .unwrap();
    assert_eq!(copied.target, at("again/app:v1"));
    assert_eq!(copied.referrers.len(), 1);
    let found = client.referrers(&at("again/app:v1"), None).await.unwrap();
    assert_eq!(found.len(), 1, "the signature was copied along");
    // and a copy into a layout, named as asked
    let copied = client
        .copy(
            &at("team/app:v1"),
            &format!("oci:{}:kept", work.path().join("oci").display()),
        )
        .await
        .unwrap();
    assert_eq!(copied.digest, img.digest());
    let index = std::fs::read_to_string(work.path().join("oci/index.json")).unwrap();
    assert!(index.contains("\"kept\""), "{index}");
    // failures say what kind they are
    match client.inspect(&at("team/app:nope")).await {
        Err(DriveError::Registry(e)) => assert_eq!(e.kind(), ErrorKind::NotFound, "{e}"),
        other => panic!("{other:?}"),
    }
    match client
        .pull("Not A Reference")
        .to_layout(work.path().join("x"))
        .await
    {
        Err(DriveError::Registry(e)) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
        other => panic!("{other:?}"),
    }
}

fn registry() -> Arc<Mutex<FaultyRegistry>> {
    Arc::new(Mutex::new(FaultyRegistry::new(Registry::new(), vec![])))
}

#[test]
fn the_tokio_client_does_every_operation() {
    TokioKit::block_on(async {
        let addr = TokioKit::serve(registry()).await;
        let client = ocireg_tokio::Client::new().unwrap();
        every_operation(&client, &addr).await;
    });
}

#[test]
fn the_async_std_client_does_every_operation() {
    AsyncStdKit::block_on(async {
        let addr = AsyncStdKit::serve(registry()).await;
        let client = ocireg_async_std::Client::new().unwrap();
        every_operation(&client, &addr).await;
    });
}

#[test]
fn the_smol_client_does_every_operation() {
    SmolKit::block_on(async {
        let addr = SmolKit::serve(registry()).await;
        let client = ocireg_smol::Client::new().unwrap();
        every_operation(&client, &addr).await;
    });
}
