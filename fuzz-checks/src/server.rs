//! The test registry's request handling: arbitrary methods, paths, ranges and headers.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use ocireg_core::Platform;
use ocireg_registry::images::image;
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};

#[derive(Arbitrary, Debug)]
struct Input {
    requests: Vec<Req>,
}

#[derive(Arbitrary, Debug)]
struct Req {
    method: u8,
    path: PathPick,
    range: Option<String>,
    if_none_match: Option<String>,
    auth: Option<String>,
}

#[derive(Arbitrary, Debug)]
enum PathPick {
    Raw(String),
    Manifest(String),
    Blob(u8),
    Tags(Option<u8>, Option<String>),
}

/// Handles arbitrary requests; replies must be well-formed and consistent with ranges.
pub fn check(data: &[u8]) {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let img = image(1, &[100, 2000], &Platform::host(), false);
    let mut r = Registry::new();
    img.add_to(&mut r, "a/b", Some("v1"));
    r.set_tag_page_size(3);
    let blobs: Vec<String> = img
        .blobs()
        .map(|b| ocireg_core::Digest::sha256(b).to_string())
        .collect();
    let mut reg = FaultyRegistry::new(
        r,
        vec![
            Rule::all(Fault::RedirectOnce),
            Rule::blobs(Fault::CutBody {
                after: 50,
                times: 1,
            }),
        ],
    );
    for q in input.requests.into_iter().take(64) {
        let method = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"][q.method as usize % 6];
        let path = match q.path {
            PathPick::Raw(p) => p,
            PathPick::Manifest(r) => format!("/v2/a/b/manifests/{r}"),
            PathPick::Blob(i) => format!("/v2/a/b/blobs/{}", blobs[i as usize % blobs.len()]),
            PathPick::Tags(n, last) => format!(
                "/v2/a/b/tags/list?n={}&last={}",
                n.unwrap_or(2),
                last.unwrap_or_default()
            ),
        };
        let mut b = http::Request::builder().method(method).uri(path.as_str());
        if let Some(v) = &q.range {
            b = b.header("range", v.as_str());
        }
        if let Some(v) = &q.if_none_match {
            b = b.header("if-none-match", v.as_str());
        }
        if let Some(v) = &q.auth {
            b = b.header("authorization", v.as_str());
        }
        let Ok(req) = b.body(Bytes::new()) else {
            continue;
        };
        let reply = reg.handle(&req);
        let status = reply.status().as_u16();
        assert!((200..600).contains(&status));
        if let Some(cl) = reply.head.headers().get("content-length") {
            let n: usize = cl.to_str().unwrap().parse().unwrap();
            if method != "HEAD" {
                assert_eq!(n, reply.body.len(), "Content-Length matches the body");
            }
        }
        if status == 206 {
            let cr = reply.head.headers()["content-range"].to_str().unwrap();
            let r = ocireg_core::range::parse_content_range(cr.as_bytes())
                .expect("a valid Content-Range");
            assert_eq!((r.last - r.first + 1) as usize, reply.body.len());
        }
    }
}
