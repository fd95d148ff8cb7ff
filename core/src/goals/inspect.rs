//! The inspect goal: only the manifest (or index) the reference names, verified.

use crate::engine::{Engine, Fetched};
use crate::types::{Action, Event, ManifestRole};

use super::manifest::{self, Wanted};

/// Fetches one manifest: one [`Event::Manifest`], one [`Event::Resolved`].
#[derive(Debug)]
pub(crate) struct Inspect {
    wanted: Wanted,
}

impl Inspect {
    pub(crate) fn start(engine: &mut Engine) -> Inspect {
        let wanted = Wanted {
            reference: engine.reference().manifest_path_ref(),
            expected: engine.reference().digest().cloned(),
            platform: None,
        };
        manifest::fetch(engine, &wanted);
        Inspect { wanted }
    }

    pub(crate) fn on_fetched(&mut self, engine: &mut Engine, fetched: Fetched) {
        let v = match manifest::verify(&self.wanted, fetched) {
            Ok(v) => v,
            Err(e) => return engine.fail(e),
        };
        engine.emit(Action::Event(Event::Manifest {
            digest: v.digest,
            media_type: v.media_type,
            bytes: v.bytes,
            manifest: v.manifest,
            role: ManifestRole::Top,
            platform: None,
        }));
        engine.emit(Action::Event(Event::Resolved {
            descriptor: v.descriptor,
        }));
    }
}
