#![no_main]
//! Fuzz target `push`: see `ocireg_fuzz_checks::push::check`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::push::check(data));
