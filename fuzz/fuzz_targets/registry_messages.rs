//! `cargo fuzz run -s none registry_messages`: see `understudy_fuzz::checks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = understudy_fuzz::checks::registry_messages(data);
});
