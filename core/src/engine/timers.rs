//! The timer table: every timer the engine runs, by name, ordered by expiry.
//!
//! A name says what runs out: the whole machine's deadline, an exchange's response
//! timer (no head, or a body silent too long), an operation's backoff. Each name holds
//! at most one expiry; setting it again moves it. The next expiry and the expired timers
//! come from an ordered set, so a poll never scans every operation.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::op::OpId;

/// A timer, by what runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// The caller's deadline for the whole machine (`Config::deadline`).
    Deadline,
    /// The exchange of this op said nothing for too long (head timeout, then idle).
    Response(OpId),
    /// This op's wait before its next attempt is over.
    Backoff(OpId),
}

/// Named timers ordered by expiry.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    by_expiry: BTreeSet<(Instant, Timer)>,
    armed: HashMap<Timer, Instant>,
}

impl TimerTable {
    /// Arms `timer` to run out at `at` (moving it if it was armed).
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(old) = self.armed.insert(timer, at) {
            self.by_expiry.remove(&(old, timer));
        }
        self.by_expiry.insert((at, timer));
    }

    /// Disarms `timer` (nothing if it was not armed).
    pub(crate) fn stop(&mut self, timer: Timer) {
        if let Some(old) = self.armed.remove(&timer) {
            self.by_expiry.remove(&(old, timer));
        }
    }

    /// The earliest expiry.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.by_expiry.first().map(|(at, _)| *at)
    }

    /// Disarms and returns the earliest timer that has run out at `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let &(at, timer) = self.by_expiry.first()?;
        if at > now {
            return None;
        }
        self.by_expiry.pop_first();
        self.armed.remove(&timer);
        Some(timer)
    }

    /// Disarms every timer.
    pub(crate) fn clear(&mut self) {
        self.by_expiry.clear();
        self.armed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_run_out_in_order_and_moving_one_replaces_it() {
        let t0 = Instant::now();
        let at = |s| crate::time::later(t0, Duration::from_secs(s));
        let mut t = TimerTable::default();
        t.set(Timer::Deadline, at(10));
        t.set(Timer::Response(OpId(1)), at(5));
        t.set(Timer::Backoff(OpId(2)), at(3));
        t.set(Timer::Response(OpId(1)), at(7)); // moved, not added
        assert_eq!(t.next_expiry(), Some(at(3)));
        assert_eq!(t.pop_expired(at(2)), None);
        assert_eq!(t.pop_expired(at(8)), Some(Timer::Backoff(OpId(2))));
        assert_eq!(t.pop_expired(at(8)), Some(Timer::Response(OpId(1))));
        assert_eq!(t.pop_expired(at(8)), None);
        t.stop(Timer::Deadline);
        assert_eq!(t.next_expiry(), None);
    }
}
