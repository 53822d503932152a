//! `cargo fuzz run -s none control_frames`: see `understudy_fuzz::checks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = understudy_fuzz::checks::control_frames(data);
});
