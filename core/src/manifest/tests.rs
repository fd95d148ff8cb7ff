//! Unit tests of the manifest types: parsing, validation, platform selection.

use super::*;

fn d(n: u8) -> String {
    format!("sha256:{}", format!("{n:02x}").repeat(32))
}

fn image_json(mt: Option<&str>, size: i64) -> String {
    let mt = mt
        .map(|m| format!("\"mediaType\":\"{m}\","))
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"c","digest":"{}","size":2}},"layers":[{{"mediaType":"l","digest":"{}","size":{size}}}]}}"#,
        d(1),
        d(2)
    )
}

#[test]
fn dispatch_on_header_and_body() {
    let (m, mt) = Manifest::parse(OCI_MANIFEST, image_json(None, 5).as_bytes()).unwrap();
    assert_eq!(mt, OCI_MANIFEST);
    assert!(matches!(m, Manifest::Image(ref i) if i.layers.len() == 1));
    let (_, mt) = Manifest::parse(
        "application/octet-stream",
        image_json(Some(DOCKER_MANIFEST), 5).as_bytes(),
    )
    .unwrap();
    assert_eq!(mt, DOCKER_MANIFEST);
    let (_, mt) = Manifest::parse(
        &format!("{DOCKER_MANIFEST}; charset=utf-8"),
        image_json(Some(DOCKER_MANIFEST), 5).as_bytes(),
    )
    .unwrap();
    assert_eq!(mt, DOCKER_MANIFEST);
    assert!(matches!(
        Manifest::parse(OCI_MANIFEST, image_json(Some(OCI_INDEX), 5).as_bytes()),
        Err(ManifestError::MediaTypeMismatch { .. })
    ));
    assert!(matches!(
        Manifest::parse("", image_json(Some("application/x"), 5).as_bytes()),
        Err(ManifestError::UnsupportedMediaType(_))
    ));
}

#[test]
fn rejects_bad_descriptors() {
    assert!(matches!(
        Manifest::parse(OCI_MANIFEST, image_json(None, -1).as_bytes()),
        Err(ManifestError::NegativeSize { size: -1, .. })
    ));
    let bad_digest = image_json(None, 1).replace(&d(2), "sha256:xyz");
    assert!(matches!(
        Manifest::parse(OCI_MANIFEST, bad_digest.as_bytes()),
        Err(ManifestError::Json(_))
    ));
    assert!(matches!(
        Manifest::parse(OCI_MANIFEST, b"{not json"),
        Err(ManifestError::Json(_))
    ));
}

#[test]
fn embedded_data() {
    let mut desc = Descriptor {
        media_type: OCI_EMPTY.into(),
        digest: Digest::sha256(b"{}"),
        size: 2,
        urls: None,
        annotations: None,
        data: Some("e30=".into()),
        platform: None,
        artifact_type: None,
    };
    assert_eq!(desc.validate().unwrap().unwrap(), Bytes::from_static(b"{}"));
    desc.size = 3;
    assert!(matches!(
        desc.validate(),
        Err(ManifestError::EmbeddedData { .. })
    ));
    desc.data = Some("!!".into());
    assert!(desc.validate().is_err());
}

#[test]
fn platforms() {
    let idx: Index = serde_json::from_str(&format!(
        r#"{{"schemaVersion":2,"manifests":[
        {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
        {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
        {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm"}}}}]}}"#,
        d(1),
        d(2),
        d(3)
    ))
    .unwrap();
    let p = |s| Platform::parse(s).unwrap();
    assert_eq!(
        idx.select(&p("linux/x86_64")).unwrap().digest.to_string(),
        d(1)
    );
    assert_eq!(
        idx.select(&p("linux/aarch64")).unwrap().digest.to_string(),
        d(2)
    );
    assert_eq!(
        idx.select(&p("linux/arm64/v8")).unwrap().digest.to_string(),
        d(2)
    );
    assert_eq!(
        idx.select(&p("linux/arm/v7")).unwrap().digest.to_string(),
        d(3)
    );
    let err = idx.select(&p("windows/amd64")).unwrap_err().to_string();
    assert!(err.contains("linux/arm64/v8"), "{err}");
    assert!(Platform::parse("linux").is_none());
    assert!(Platform::parse("linux/amd64/v1/x").is_none());
}
