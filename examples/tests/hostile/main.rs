//! The `ocireg` binary against small hostile servers on loopback and a hostile layout
//! directory: no credential leaves its origin, nothing a server or a file controls
//! makes it loop, panic, read without end or write outside the layout.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ocireg_core::{Digest, Platform};
use ocireg_registry::images::{image, TestImage};
use ocireg_tests::hostile::{json, Answer, Hostile, Req};

#[path = "../support/mod.rs"]
mod support;
use support::ocireg;

mod layouts;
mod servers;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn img(seed: u64) -> TestImage {
    image(seed, &[3000, 70_000], &Platform::host(), false)
}

/// Answers what a registry holding `img` as `test/repo:v1` would (nothing more).
fn registry_answer(img: &TestImage, req: &Req) -> Answer {
    let p = req.path.as_str();
    let manifest = format!("/v2/test/repo/manifests/{}", img.digest());
    if p == "/v2/" {
        return json(200, &[], "{}");
    }
    if p == "/v2/test/repo/manifests/v1" || p == manifest {
        let d = img.digest().to_string();
        return Answer::Full(
            200,
            vec![
                ("content-type".into(), img.media_type.clone()),
                ("docker-content-digest".into(), d),
            ],
            img.manifest.to_vec(),
        );
    }
    for b in img.blobs() {
        if p == format!("/v2/test/repo/blobs/{}", Digest::sha256(b)) {
            return Answer::Full(200, vec![], b.to_vec());
        }
    }
    json(
        404,
        &[],
        r#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#,
    )
}

/// A loopback server answering as a registry holding `img` would.
fn serve_image(img: &TestImage) -> Hostile {
    let img = img.clone();
    Hostile::start(move |req, _| registry_answer(&img, req))
}
