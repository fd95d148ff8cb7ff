#![no_main]
//! Fuzz target `manifest`: see `ocireg_fuzz_checks::parsers::manifest`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::manifest(data));
