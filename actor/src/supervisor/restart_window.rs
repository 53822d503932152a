//! The restart window: "at most `intensity` restarts within any `period`".
//!
//! This is OTP's *maximum restart intensity* (`supervisor.erl`'s `add_restart/1`): every
//! restart is recorded with the time it happened; restarts older than `period` are forgotten;
//! if, counting the new one, more than `intensity` remain, the supervisor has restarted too
//! often and must give up ([`Verdict::Exceeded`]) — it stops its children and itself and lets
//! its own parent decide.
//!
//! The window is a pure value: the caller passes the current time in, so it is tested with
//! made-up instants (unit and property tests below) and never reads a clock. It is owned by
//! one supervisor actor, so it needs no lock.
//!
//! Edge cases, as in OTP:
//! - `intensity == 0` allows no restart at all: the first one already exceeds.
//! - A restart exactly `period` old still counts (the window is closed at both ends).
//! - Memory is bounded: at most `intensity + 1` instants are kept (the newest ones), which is
//!   all the verdict can ever depend on.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Whether a restart recorded in a [`RestartWindow`] stays within the allowed intensity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// At most `intensity` restarts in the last `period`: go ahead and restart.
    Allowed,
    /// More than `intensity` restarts in the last `period`: give up and escalate.
    Exceeded,
}

/// OTP's maximum restart intensity as a pure value: at most `intensity` restarts within
/// any `period`, with the current time passed in.
///
/// `intensity == 0` allows no restart at all. A restart exactly `period` old still counts.
/// At most `intensity + 1` instants are kept.
///
/// ```
/// use std::time::{Duration, Instant};
/// use understudy_actor::supervisor::{RestartWindow, Verdict};
///
/// let t0 = Instant::now();
/// let mut w = RestartWindow::new(1, Duration::from_secs(5)); // OTP's default
/// assert_eq!(w.record(t0), Verdict::Allowed);
/// // A second restart within 5 s is one too many...
/// assert_eq!(w.clone().record(t0 + Duration::from_secs(1)), Verdict::Exceeded);
/// // ...but after the period the first one is forgotten.
/// assert_eq!(w.record(t0 + Duration::from_secs(6)), Verdict::Allowed);
/// ```
#[derive(Debug, Clone)]
pub struct RestartWindow {
    intensity: u32,
    period: Duration,
    /// Restart times, oldest first; never more than `intensity + 1` of them.
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    /// A window allowing at most `intensity` restarts within any `period`.
    pub fn new(intensity: u32, period: Duration) -> Self {
        RestartWindow {
            intensity,
            period,
            restarts: VecDeque::new(),
        }
    }

    /// The configured maximum number of restarts per period.
    pub fn intensity(&self) -> u32 {
        self.intensity
    }

    /// The configured period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Records a restart at `now` and says whether the intensity is still respected.
    ///
    /// Times should not go backwards (use a monotonic clock); if they do, the earlier time is
    /// treated as if it were the latest one seen, so the verdict stays conservative.
    pub fn record(&mut self, now: Instant) -> Verdict {
        let now = match self.restarts.back() {
            Some(&last) if last > now => last,
            _ => now,
        };
        self.forget_before(now);
        self.restarts.push_back(now);
        let cap = self.cap();
        while self.restarts.len() > cap {
            self.restarts.pop_front();
        }
        if self.restarts.len() > self.intensity as usize {
            Verdict::Exceeded
        } else {
            Verdict::Allowed
        }
    }

    /// How many recorded restarts lie within `period` before `now` (saturating at
    /// `intensity + 1`). Does not record anything.
    pub fn recent(&self, now: Instant) -> usize {
        self.restarts
            .iter()
            .filter(|&&t| in_period(t, now, self.period))
            .count()
    }

    /// Forgets every restart.
    pub fn clear(&mut self) {
        self.restarts.clear();
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&oldest) = self.restarts.front() {
            if in_period(oldest, now, self.period) {
                break;
            }
            self.restarts.pop_front();
        }
    }

    fn cap(&self) -> usize {
        (self.intensity as usize).saturating_add(1)
    }
}

/// Whether a restart at `then` still counts at `now` (closed interval, like OTP's `>=`).
fn in_period(then: Instant, now: Instant, period: Duration) -> bool {
    now.saturating_duration_since(then) <= period
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn otp_default_allows_one_restart_per_five_seconds() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, secs(5));
        assert_eq!(w.record(t0), Verdict::Allowed);
        assert_eq!(w.record(t0 + secs(4)), Verdict::Exceeded);
    }

    #[test]
    fn intensity_zero_allows_nothing() {
        let mut w = RestartWindow::new(0, secs(5));
        assert_eq!(w.record(Instant::now()), Verdict::Exceeded);
    }

    #[test]
    fn a_restart_exactly_one_period_old_still_counts() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, secs(5));
        w.record(t0);
        assert_eq!(w.record(t0 + secs(5)), Verdict::Exceeded);
        let mut w = RestartWindow::new(1, secs(5));
        w.record(t0);
        assert_eq!(
            w.record(t0 + secs(5) + Duration::from_nanos(1)),
            Verdict::Allowed
        );
    }

    #[test]
    fn zero_period_only_counts_simultaneous_restarts() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, Duration::ZERO);
        assert_eq!(w.record(t0), Verdict::Allowed);
        assert_eq!(w.record(t0 + Duration::from_nanos(1)), Verdict::Allowed);
        assert_eq!(w.record(t0 + Duration::from_nanos(1)), Verdict::Exceeded);
    }

    #[test]
    fn time_going_backwards_is_conservative() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, secs(5));
        w.record(t0 + secs(10));
        assert_eq!(w.record(t0), Verdict::Exceeded);
    }

    #[test]
    fn recent_counts_without_recording() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(3, secs(5));
        w.record(t0);
        w.record(t0 + secs(1));
        assert_eq!(w.recent(t0 + secs(2)), 2);
        assert_eq!(w.recent(t0 + secs(6)), 1);
        assert_eq!(w.recent(t0 + secs(7)), 0);
        w.clear();
        assert_eq!(w.recent(t0 + secs(2)), 0);
    }

    proptest! {
        /// The verdict equals a naive model that remembers every restart forever and counts
        /// those within the period; and the window never holds more than intensity + 1.
        #[test]
        fn matches_the_naive_model(
            intensity in 0u32..6,
            period_ms in 0u64..2_000,
            gaps_ms in proptest::collection::vec(0u64..1_500, 1..60),
        ) {
            let base = Instant::now();
            let period = Duration::from_millis(period_ms);
            let mut w = RestartWindow::new(intensity, period);
            let mut all = Vec::new();
            let mut now = base;
            for gap in gaps_ms {
                now += Duration::from_millis(gap);
                all.push(now);
                let in_window = all.iter().filter(|&&t| now - t <= period).count();
                let expected = if in_window > intensity as usize {
                    Verdict::Exceeded
                } else {
                    Verdict::Allowed
                };
                prop_assert_eq!(w.record(now), expected);
                prop_assert!(w.restarts.len() <= intensity as usize + 1);
                prop_assert_eq!(w.recent(now), in_window.min(intensity as usize + 1));
            }
        }

        /// Restarts spaced more than a period apart never exceed a non-zero intensity.
        #[test]
        fn spaced_restarts_never_exceed(
            intensity in 1u32..5,
            period_ms in 0u64..1_000,
            n in 1usize..50,
        ) {
            let period = Duration::from_millis(period_ms);
            let mut w = RestartWindow::new(intensity, period);
            let mut now = Instant::now();
            for _ in 0..n {
                prop_assert_eq!(w.record(now), Verdict::Allowed);
                now += period + Duration::from_millis(1);
            }
        }
    }
}
