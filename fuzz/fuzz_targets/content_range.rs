#![no_main]
//! Fuzz target `content_range`: see `ocireg_fuzz_checks::parsers::content_range`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::content_range(data));
