#![no_main]
//! Fuzz target `token_response`: see `ocireg_fuzz_checks::parsers::token_response`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::parsers::token_response(data));
