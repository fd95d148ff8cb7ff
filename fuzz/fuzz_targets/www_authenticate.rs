#![no_main]
//! Fuzz target `www_authenticate`: see `ocireg_fuzz_checks::parsers::www_authenticate`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::www_authenticate(data));
