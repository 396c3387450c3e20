//! The simulator catches known bugs: each fault of `planted::Fault`, planted
//! into every tab's keeper behind the test-only `planted-faults` switch,
//! breaks a named invariant within a stated number of seeds. (Run by
//! `make test`: `cargo test -p tokenkeeper-core --features planted-faults
//! --test planted`.)

mod model;

use model::{run, run_planted, Invariant};
use tokenkeeper_core::planted::Fault;

/// The first seed (from 1) whose schedule breaks an invariant with `fault`
/// planted, within `within` seeds, and the invariant.
fn first_caught(fault: Fault, within: u64) -> Option<(u64, Invariant)> {
    (1..=within).find_map(|seed| match run_planted(seed, false, fault) {
        Err((v, _)) => Some((seed, v.invariant)),
        Ok(_) => None,
    })
}

/// `fault` is caught within `within` seeds, and every seed that catches it
/// passes without it (the schedule, not the model, is what breaks).
fn caught(fault: Fault, within: u64, expect: &[Invariant]) {
    let Some((seed, invariant)) = first_caught(fault, within) else {
        panic!("{fault:?} planted: no invariant broken in {within} seeds");
    };
    println!("{fault:?}: seed {seed} breaks {}", invariant.name());
    assert!(
        expect.contains(&invariant),
        "{fault:?} broke {} (seed {seed}), not one of {expect:?}",
        invariant.name()
    );
    assert!(
        run(seed, false).is_ok(),
        "seed {seed} fails without {fault:?} too"
    );
}

#[test]
fn no_lock() {
    caught(
        Fault::NoLock,
        200,
        &[Invariant::NoReuse, Invariant::OneRequestPerRotation],
    );
}

#[test]
fn no_generation_recheck_after_the_lock() {
    caught(
        Fault::NoRecheckAfterLock,
        500,
        &[Invariant::NoReuse, Invariant::OneRequestPerRotation],
    );
}

#[test]
fn adopting_an_older_generation() {
    caught(
        Fault::AdoptOlder,
        200,
        &[Invariant::Converges, Invariant::NoReuse],
    );
}

#[test]
fn refreshing_on_a_stale_401() {
    caught(
        Fault::RefreshOnStale401,
        2_000,
        &[Invariant::OneRequestPerRotation],
    );
}

#[test]
fn ignoring_retry_after() {
    caught(
        Fault::IgnoreRetryAfter,
        500,
        &[Invariant::HonoursRetryAfter],
    );
}

#[test]
fn a_backoff_without_a_bound() {
    caught(
        Fault::UnboundedBackoff,
        5_000,
        &[Invariant::Converges, Invariant::CallsSettle],
    );
}
