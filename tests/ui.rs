//! Compile-fail and compile-pass cases of `#[aggregate]`.
//!
//! `tests/ui/*.rs` each make one mistake (a few make several, to show they are reported
//! together) and `tests/ui/*.stderr` hold the expected compiler output; `tests/ui/pass/*.rs`
//! cover every supported form and must compile.
//!
//! The expected output is tied to this project's toolchain, Rust 1.95: another compiler may
//! word or place its messages differently. Cases whose output would quote other crates' source
//! (a state type that is not `Serialize`, an error type that is not `std::error::Error`) are
//! left out: their `.stderr` would change with every edit of those lines. After changing the macro, regenerate with
//! `TRYBUILD=overwrite cargo test --test ui` and review the diff of the `.stderr` files.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
