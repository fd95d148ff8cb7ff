//! Checking credentials: the registry's API root (`/v2/`), answered after whatever
//! authentication it asks for (Basic, or a token from its realm), before anything is
//! stored.

use std::time::Instant;

use crate::endpoint::{Endpoint, Target};
use crate::engine::{Call, Engine, Fetched, History};
use crate::machine::{Goal, Machine};
use crate::reference::Reference;
use crate::{Config, Event};

/// Asks `/v2/` once.
#[derive(Debug)]
struct Check;

impl Goal for Check {
    fn on_fetched(&mut self, engine: &mut Engine, _: Fetched) {
        let needed = engine.authenticated();
        engine.emit(Event::CredentialsChecked { needed });
    }
}

impl Machine {
    /// Checks the configuration's credentials against `registry` (a reference whose
    /// registry is used): `/v2/`, answered after the authentication it asks for.
    /// [`Event::CredentialsChecked`] (saying whether any was needed), then `Done`;
    /// rejected credentials fail with [`Error::Unauthorized`](crate::Error::Unauthorized).
    pub fn check_credentials(config: Config, registry: Reference, now: Instant) -> Machine {
        let registry = Reference::registry_root(registry.registry()).unwrap_or(registry);
        Machine::start(config, registry, now, |engine| {
            let limit = engine.config().list_page_limit;
            engine.call(
                Target::Api(Endpoint::Root),
                "the registry's API root".into(),
                Call::get("application/json", "API root", limit),
                History::default(),
            );
            Ok(Check)
        })
    }
}
