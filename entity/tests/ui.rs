//! `#[behaviour]` at compile time: each program under `ui/fail` must be refused with the message in its
//! `.stderr` file (regenerate with `TRYBUILD=overwrite cargo test -p entity --test ui` and review the diff);
//! each program under `ui/pass` must compile and run, checking what the attribute emits.

#[test]
fn behaviour_attribute() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
