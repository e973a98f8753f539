//! Fuzz target `sql_plan`: the body is `ferris_fuzz::sql_plan` (fuzz/src/lib.rs), which the corpus
//! replay test (crates/ferris-cli/tests/fuzz_corpus.rs) runs on every corpus file too.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferris_fuzz::sql_plan(data));
