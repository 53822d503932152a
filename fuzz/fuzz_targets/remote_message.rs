//! `cargo fuzz run -s none remote_message`: see `understudy_fuzz::checks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = understudy_fuzz::checks::remote_message(data);
});
