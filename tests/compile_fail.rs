//! Misuses of the macros fail to compile with a message that says what to do.
//! The expected messages live in `tests/ui/*.stderr` (refresh with `TRYBUILD=overwrite`), and
//! in `tests/ui_local/*.stderr` for those of a local-only build (`--no-default-features`).
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

/// In a local-only build, a remote message is one error that names the feature to enable.
#[cfg(not(feature = "remote"))]
#[test]
fn remote_messages_in_a_local_only_build_name_the_feature() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_local/*.rs");
}
