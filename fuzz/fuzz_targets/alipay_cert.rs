#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scanpay::fuzzing::alipay_cert(data));
