//! Conversions between the core's image types and the `oci-spec` crate's (feature
//! `oci-spec`), for callers whose code already speaks those types: [`Descriptor`],
//! [`Platform`], [`ImageManifest`] and [`Index`] to and from `oci_spec::image`'s
//! `Descriptor`, `Platform`, `ImageManifest` and `ImageIndex`.
//!
//! Both sides are the image-spec's JSON, so each conversion goes through it: whatever
//! one side holds that the other cannot (an unknown media type that `oci-spec` refuses,
//! a negative size) is an [`InteropError`] rather than a silent loss.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::manifest::{Descriptor, ImageManifest, Index, Platform};
use oci_spec::image as spec;

/// A value one side holds that the other cannot.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert between ocireg and oci-spec types: {0}")]
pub struct InteropError(String);

fn convert<A: Serialize, B: DeserializeOwned>(a: &A) -> Result<B, InteropError> {
    let json = serde_json::to_value(a).map_err(|e| InteropError(e.to_string()))?;
    serde_json::from_value(json).map_err(|e| InteropError(e.to_string()))
}

macro_rules! both_ways {
    ($ours:ty, $theirs:ty) => {
        impl TryFrom<&$ours> for $theirs {
            type Error = InteropError;
            fn try_from(value: &$ours) -> Result<Self, InteropError> {
                convert(value)
            }
        }

        impl TryFrom<&$theirs> for $ours {
            type Error = InteropError;
            fn try_from(value: &$theirs) -> Result<Self, InteropError> {
                let ours: $ours = convert(value)?;
                Ok(ours)
            }
        }
    };
}

both_ways!(Descriptor, spec::Descriptor);
both_ways!(Platform, spec::Platform);
both_ways!(ImageManifest, spec::ImageManifest);
both_ways!(Index, spec::ImageIndex);
