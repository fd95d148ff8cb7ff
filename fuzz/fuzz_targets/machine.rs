#![no_main]
//! Fuzz target `machine`: see `ocireg_fuzz_checks::machine::check`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ocireg_fuzz_checks::machine::check(data));
