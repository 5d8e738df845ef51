//! A point in time after which a ticket must no longer be installed.
//!
//! The Python side gives up on a kinit after `kdc_timeout` and tells the user
//! the login was refused; the kinit itself cannot be interrupted and may
//! still get an answer later. Without a deadline that late answer would
//! install a cache for a login that had already been refused. The deadline
//! is on CLOCK_MONOTONIC, the clock of Python's `time.monotonic()` on Linux,
//! so a wall-clock step (NTP, an admin's `date`) neither fires it early nor
//! keeps it from firing.

use std::time::Duration;

use nix::time::{clock_gettime, ClockId};

/// An absolute time on CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Duration);

impl Deadline {
    /// `seconds` as returned by `time.monotonic()`; `None` unless it is a
    /// finite, non-negative number.
    pub fn from_monotonic_secs(seconds: f64) -> Option<Self> {
        Duration::try_from_secs_f64(seconds).ok().map(Deadline)
    }

    /// `after` from now.
    pub fn after(after: Duration) -> Self {
        Deadline(now().saturating_add(after))
    }

    pub fn has_passed(&self) -> bool {
        now() >= self.0
    }
}

/// CLOCK_MONOTONIC cannot fail on Linux; should it ever, report the time as
/// infinitely late so a deadline counts as passed and nothing is installed
/// (failing closed is the point of a deadline).
fn now() -> Duration {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_and_future_deadlines() {
        assert!(Deadline::from_monotonic_secs(0.0).unwrap().has_passed());
        assert!(!Deadline::after(Duration::from_secs(3600)).has_passed());
        assert!(Deadline::after(Duration::ZERO).has_passed());
    }

    #[test]
    fn only_finite_non_negative_seconds_are_deadlines() {
        for bad in [f64::NAN, f64::INFINITY, -1.0, f64::NEG_INFINITY] {
            assert_eq!(Deadline::from_monotonic_secs(bad), None, "{bad}");
        }
        assert_eq!(
            Deadline::from_monotonic_secs(1.5),
            Some(Deadline(Duration::from_millis(1500)))
        );
    }
}
