//! The checking functions behind every fuzz target. Each takes the raw fuzz input and
//! panics only when an invariant breaks. `cargo +nightly fuzz run TARGET` calls them from
//! `fuzz/fuzz_targets/`, and `fuzz-checks/tests/replay.rs` replays the committed corpora through them
//! on stable, so CI guards them without nightly.

pub mod ledger;
pub mod machine;
pub mod parsers;
pub mod push;
pub mod server;

/// A target's check: panics only when an invariant breaks.
pub type Check = fn(&[u8]);

/// Every target: its name (as in `fuzz/fuzz_targets/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("reference", parsers::reference),
    ("digest", parsers::digest),
    ("www_authenticate", parsers::www_authenticate),
    ("content_range", parsers::content_range),
    ("retry_after", parsers::retry_after),
    ("link", parsers::link),
    ("manifest", parsers::manifest),
    ("registry_errors", parsers::registry_errors),
    ("token_response", parsers::token_response),
    ("machine", machine::check),
    ("push", push::check),
    ("server", server::check),
];
