#![no_main]
//! Fuzz target `server`: see `ocireg_fuzz_checks::server::check`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::server::check(data));
