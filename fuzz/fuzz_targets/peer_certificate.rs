//! `cargo fuzz run -s none peer_certificate`: see `understudy_fuzz::checks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = understudy_fuzz::checks::peer_certificate(data);
});
