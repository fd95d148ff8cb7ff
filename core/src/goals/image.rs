//! The image goal: the manifest the reference names, the index's platform choice (or
//! every child), nested indexes within bounds, and every blob the chosen manifests list,
//! each asked of the engine once.

use std::collections::{HashMap, HashSet};

use std::time::Instant;

use crate::digest::Digest;
use crate::engine::{Engine, Fetched, OpId};
use crate::error::Error;
use crate::machine::{Goal, Machine};
use crate::manifest::{Descriptor, Manifest, Platform};
use crate::reference::Reference;
use crate::Config;
use crate::{Event, ManifestRole, PlatformChoice};

use super::manifest::{self, Wanted};

/// A manifest fetch in flight, and why it was asked for.
#[derive(Debug)]
struct Pending {
    wanted: Wanted,
    role: ManifestRole,
    /// Indexes above this manifest.
    depth: u8,
}

/// Pulls one image: manifests first, then the blobs they list.
#[derive(Debug)]
pub(crate) struct ImagePull {
    pending: HashMap<OpId, Pending>,
    /// Digests asked for already (manifests and blobs): an index cannot make the pull
    /// loop, and a layer listed twice is downloaded once.
    seen: HashSet<Digest>,
    /// Manifest fetches asked for (bounded by `Config::max_manifests`).
    manifests: u32,
    /// Whether blobs are downloaded (not for a copy within one registry, which mounts).
    blobs: bool,
}

impl ImagePull {
    /// Starts with the manifest the reference names.
    pub(crate) fn start(engine: &mut Engine, blobs: bool) -> ImagePull {
        let mut goal = ImagePull {
            pending: HashMap::new(),
            seen: HashSet::new(),
            manifests: 0,
            blobs,
        };
        let wanted = Wanted {
            reference: engine.reference().manifest_path_ref(),
            expected: engine.reference().digest().cloned(),
            platform: None,
        };
        goal.add_manifest(engine, wanted, ManifestRole::Top, 0);
        if blobs {
            // The blobs follow the manifest at once: their connections can be opened
            // while it is in flight (one more round trip saved). As many as the general
            // limit, less the manifest's own.
            engine.prepare(engine.config().max_concurrent.saturating_sub(1));
        }
        goal
    }

    /// Asks for a child of the index at `parent_depth`. Digests already seen are not
    /// fetched again, and the depth of nesting and the number of manifests are bounded.
    fn add_child(&mut self, engine: &mut Engine, child: &Descriptor, parent_depth: u8) {
        if !self.seen.insert(child.digest.clone()) {
            return;
        }
        if let Err(e) = child.validate() {
            return engine.fail(e.into());
        }
        let max_depth = engine.config().max_index_depth;
        if parent_depth >= max_depth {
            return engine.fail(Error::TooMany {
                what: format!("indexes nested in {}", engine.reference()),
                limit: u64::from(max_depth),
                hint: "the image nests indexes deeper than any client follows".into(),
            });
        }
        let wanted = Wanted {
            reference: child.digest.to_string(),
            expected: Some(child.digest.clone()),
            platform: child.platform.clone(),
        };
        self.add_manifest(engine, wanted, ManifestRole::Child, parent_depth + 1);
    }

    fn add_manifest(&mut self, engine: &mut Engine, wanted: Wanted, role: ManifestRole, depth: u8) {
        self.manifests += 1;
        let max = engine.config().max_manifests;
        if self.manifests > max {
            return engine.fail(Error::TooMany {
                what: format!("manifests in {}", engine.reference()),
                limit: u64::from(max),
                hint: "pull one platform (--platform) instead of all".into(),
            });
        }
        let op = manifest::fetch(engine, &wanted);
        self.pending.insert(
            op,
            Pending {
                wanted,
                role,
                depth,
            },
        );
    }

    fn add_blob(&mut self, engine: &mut Engine, descriptor: Descriptor) {
        if !self.blobs || !self.seen.insert(descriptor.digest.clone()) {
            return;
        }
        match descriptor.validate() {
            Ok(embedded) => {
                engine.download(descriptor, embedded);
            }
            Err(e) => engine.fail(e.into()),
        }
    }
}

impl Goal for ImagePull {
    /// A manifest arrived: verify it, say so, and ask for what it lists.
    fn on_fetched(&mut self, engine: &mut Engine, fetched: Fetched) {
        let Some(Pending {
            wanted,
            role,
            depth,
        }) = self.pending.remove(&fetched.op)
        else {
            return;
        };
        let verified = match manifest::verify(&wanted, fetched) {
            Ok(v) => v,
            Err(e) => return engine.fail(e),
        };
        let all = engine.config().platform == PlatformChoice::All;
        let event_role = match verified.manifest {
            Manifest::Index(_) if !all => ManifestRole::Selector,
            _ => role,
        };
        let descriptor = verified.descriptor;
        engine.emit(Event::Manifest {
            digest: verified.digest,
            media_type: verified.media_type,
            bytes: verified.bytes,
            manifest: verified.manifest.clone(),
            role: event_role,
            platform: wanted.platform,
        });
        let resolves = role == ManifestRole::Top || !all;
        match verified.manifest {
            Manifest::Image(m) => {
                if resolves {
                    engine.emit(Event::Resolved { descriptor });
                }
                for d in m.blobs() {
                    self.add_blob(engine, d.clone());
                }
            }
            Manifest::Index(idx) if all => {
                if role == ManifestRole::Top {
                    engine.emit(Event::Resolved { descriptor });
                }
                for child in &idx.manifests {
                    self.add_child(engine, child, depth);
                }
            }
            Manifest::Index(idx) => {
                let wanted = match &engine.config().platform {
                    PlatformChoice::Exactly(p) => p.clone(),
                    _ => Platform::host(),
                };
                match idx.select(&wanted) {
                    Ok(child) => self.add_child(engine, child, depth),
                    Err(e) => engine.fail(e.into()),
                }
            }
        }
    }
}

impl Machine {
    /// Pulls `reference`: its manifests (platform selection included) and every blob,
    /// each delivered as it arrives and verified. See the crate docs for the events.
    pub fn pull(config: Config, reference: Reference, now: Instant) -> Machine {
        Machine::start(config, reference, now, |e| Ok(ImagePull::start(e, true)))
    }

    /// Fetches and verifies the manifests of the image, as [`Machine::pull`] would
    /// (indexes, the chosen platforms), without any blob: [`Event::Manifest`] for each,
    /// then `Done`. For a copy within one registry, whose blobs are mounted rather than
    /// moved.
    pub fn pull_manifests(config: Config, reference: Reference, now: Instant) -> Machine {
        Machine::start(config, reference, now, |e| Ok(ImagePull::start(e, false)))
    }
}
