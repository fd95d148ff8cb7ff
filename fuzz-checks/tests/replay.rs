//! Replays every committed fuzz corpus (and the crash regressions) through its target's
//! check, on stable, so CI guards the fuzz targets without nightly.

use std::path::Path;

fn replay_dir(check: fn(&[u8]), dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let path = e.unwrap().path();
        if path.is_file() {
            check(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    n
}

#[test]
fn corpora_replay_without_failure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("fuzz");
    let mut total = 0;
    for (name, check) in ocireg_fuzz_checks::TARGETS {
        let n = replay_dir(*check, &root.join("corpus").join(name));
        assert!(n > 0, "no seed corpus for {name}");
        total += n;
        total += replay_dir(*check, &root.join("regressions").join(name));
    }
    eprintln!("{total} inputs replayed");
}

#[test]
fn every_target_survives_arbitrary_bytes() {
    // a cheap deterministic sweep in case a corpus is thin
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for (_, check) in ocireg_fuzz_checks::TARGETS {
        for len in [0usize, 1, 7, 64, 300, 2000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            check(&data);
        }
    }
}
