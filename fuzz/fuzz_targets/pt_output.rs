#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| timb_fuzz_targets::pt_output(data));
