#![no_main]
//! Fuzz target `registry_errors`: see `ocireg_fuzz_checks::parsers::registry_errors`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::registry_errors(data));
