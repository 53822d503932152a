//! Misuses of the macros fail to compile with a message that says what to do.
//! The expected messages live in `tests/ui/*.stderr` (refresh with `TRYBUILD=overwrite`).

#[test]
fn macro_misuses_are_readable_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
