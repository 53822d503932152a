//! understudy's fuzz targets: see [`checks`]. The binaries in `fuzz_targets/` are one line
//! each; the logic is in `src/checks/`, which the main workspace's `tests/fuzz_corpus.rs`
//! also compiles (by path) to replay the committed corpus in every `cargo test`.

pub mod checks;
