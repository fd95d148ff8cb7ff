//! The core machine driven over the simulated network: behaviour, faults, invariants.
//! One module per concern; the helpers they share are here.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ocireg_core::{
    Config, Error, Event, Machine, Platform, PlatformChoice, Reference, RetryPolicy,
};
use ocireg_registry::images::{image, index, TestImage};
use ocireg_registry::{Fault, FaultyRegistry, Registry, Rule};
use ocireg_tests::sim::{Outcome, Sim};

use ocireg_tests::sim::{test_config as config, ORIGIN};

mod concurrency;
mod origins;
mod ranges;
mod retries;
mod shape;

fn small() -> TestImage {
    image(1, &[1000, 70_000, 5], &Platform::host(), false)
}

fn registry_with(img: &TestImage, rules: Vec<Rule>) -> FaultyRegistry {
    let mut r = Registry::new();
    img.add_to(&mut r, "test/repo", Some("v1"));
    FaultyRegistry::new(r, rules)
}

fn pull(cfg: Config, reference: &str, sim: &mut Sim) -> Outcome {
    let t0 = Instant::now();
    let mut p = Machine::pull(cfg, Reference::parse(reference).unwrap(), t0);
    sim.run(&mut p, t0)
}

fn assert_complete(out: &Outcome, img: &TestImage) {
    if let Some(Err(e)) = &out.result {
        panic!("pull failed: {e}");
    }
    let empty = Vec::new();
    let mut got: Vec<&Vec<u8>> = out
        .done
        .iter()
        .map(|b| out.blobs.get(b).unwrap_or(&empty))
        .collect();
    let mut want: Vec<&[u8]> = img.blobs().map(|b| b.as_ref()).collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.as_slice(), w);
    }
    assert_eq!(out.done.len(), img.blobs().count());
}
