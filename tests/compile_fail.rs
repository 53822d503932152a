//! Misuses of the macros fail to compile with a message that says what to do.
//! The expected messages live in `tests/ui/*.stderr` (refresh with `TRYBUILD=overwrite`).
//!
//! Only our macros' own errors are pinned here. A remote message with a non-serde type fails
//! with rustc's "`X: Serialize` is not satisfied … consider `#[derive(serde::Serialize)]`",
//! whose list of other implementors changes with the dependency graph, so pinning it would
//! break on unrelated dependency updates.

#[test]
fn macro_misuses_are_readable_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
