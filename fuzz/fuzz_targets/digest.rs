#![no_main]
//! Fuzz target `digest`: see `ocireg_fuzz_checks::parsers::digest`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::digest(data));
