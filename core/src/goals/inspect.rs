//! The inspect goal: only the manifest (or index) the reference names, verified.

use std::time::Instant;

use crate::engine::{Engine, Fetched};
use crate::machine::{Goal, Machine};
use crate::reference::Reference;
use crate::Config;
use crate::{Event, ManifestRole};

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
}

impl Goal for Inspect {
    fn on_fetched(&mut self, engine: &mut Engine, fetched: Fetched) {
        let v = match manifest::verify(&self.wanted, fetched) {
            Ok(v) => v,
            Err(e) => return engine.fail(e),
        };
        engine.emit(Event::Manifest {
            digest: v.digest,
            media_type: v.media_type,
            bytes: v.bytes,
            manifest: v.manifest,
            role: ManifestRole::Top,
            platform: None,
        });
        engine.emit(Event::Resolved {
            descriptor: v.descriptor,
        });
    }
}

impl Machine {
    /// Fetches and verifies only the manifest (or index) `reference` names: one
    /// [`Event::Manifest`], one [`Event::Resolved`], then `Done`. For `ocireg inspect`
    /// and a client's manifest read.
    pub fn inspect(config: Config, reference: Reference, now: Instant) -> Machine {
        Machine::start(config, reference, now, |e| Ok(Inspect::start(e)))
    }
}
