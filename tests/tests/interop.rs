//! The `oci-spec` feature: the core's image types and `oci_spec::image`'s convert both
//! ways without losing a field, and what one side cannot hold is an error.

use oci_spec::image as spec;
use ocireg_core::manifest::{ImageManifest, Index};
use ocireg_core::{Descriptor, Manifest, Platform};
use ocireg_registry::images::{artifact, image, index};

#[test]
fn manifests_indexes_descriptors_and_platforms_round_trip() {
    let img = image(98, &[100, 200], &Platform::host(), false);
    let sig = artifact("application/vnd.example.sig", &[("sig", b"s")], Some(&img));
    for m in [&img, &sig] {
        let Manifest::Image(ours) = Manifest::parse(&m.media_type, &m.manifest).unwrap().0 else {
            panic!("an image manifest")
        };
        let theirs = spec::ImageManifest::try_from(&ours).unwrap();
        assert_eq!(theirs.layers().len(), ours.layers.len());
        assert_eq!(
            theirs.config().digest().to_string(),
            ours.config.digest.to_string()
        );
        let back = ImageManifest::try_from(&theirs).unwrap();
        assert_eq!(back, ours);
    }
    let ix = index(&[(&img, &Platform::host())]);
    let Manifest::Index(ours) = Manifest::parse("", &ix).unwrap().0 else {
        panic!("an index")
    };
    let theirs = spec::ImageIndex::try_from(&ours).unwrap();
    let p = theirs.manifests()[0].platform().as_ref().unwrap();
    assert_eq!(p.os().to_string(), Platform::host().os);
    assert_eq!(Index::try_from(&theirs).unwrap(), ours);
    let d = &ours.manifests[0];
    assert_eq!(
        Descriptor::try_from(&spec::Descriptor::try_from(d).unwrap()).unwrap(),
        *d
    );
    let platform = Platform::parse("linux/arm64/v8").unwrap();
    let theirs = spec::Platform::try_from(&platform).unwrap();
    assert_eq!(Platform::try_from(&theirs).unwrap(), platform);
}

#[test]
fn what_the_other_side_cannot_hold_is_an_error() {
    let mut d = Descriptor::new("application/x", ocireg_core::Digest::sha256(b"x"), 1);
    d.size = -1;
    assert!(spec::Descriptor::try_from(&d).is_err());
}
