#![no_main]
//! Fuzz target `link`: see `ocireg_fuzz_checks::parsers::link`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::link(data));
