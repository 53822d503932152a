//! `cargo fuzz run -s none pg_notices`: see `understudy_fuzz::checks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = understudy_fuzz::checks::pg_notices(data);
});
