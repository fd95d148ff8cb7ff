#![no_main]
//! Fuzz target `retry_after`: see `ocireg_fuzz_checks::parsers::retry_after`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::retry_after(data));
