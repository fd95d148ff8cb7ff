#![no_main]
//! Fuzz target `reference`: see `ocireg_fuzz_checks::parsers::reference`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::reference(data));
