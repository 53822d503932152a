//! Optional exponential backoff before a restart, with jitter.
//!
//! OTP restarts a crashed child at once. That is right for a bug that one restart cures, and
//! wrong for a child that crashes because something outside it is down (a database, a peer):
//! immediate restarts then burn the restart intensity in milliseconds and escalate. A
//! supervisor configured with a [`Backoff`] waits before each restart instead:
//!
//! - the `n`-th restart of the same child within the supervisor's `period` waits
//!   `min · factorⁿ` (n = 0 for the first), capped at `max`;
//! - jitter `j ∈ [0, 1]` spreads restarts of many children out: the wait is drawn uniformly
//!   from `[(1 − j) · base, base]`, so it never exceeds `max`.
//!
//! While a child waits, its supervisor keeps serving calls and other children's exits; the
//! restart still counts against the intensity at the moment of the exit, as in OTP.
//!
//! Everything here is pure: the random sample is passed in, drawn from a [`JitterSource`] the
//! supervisor seeds (see `SupervisorSpec::jitter_seed`), so delays are reproducible.
//! Nonsense settings are repaired rather than rejected (no panics on configuration): a factor
//! below 1 or not finite counts as 1, jitter is clamped to `[0, 1]`, and `max < min` means `min`.

use std::time::Duration;

/// Exponential backoff before restarts, with jitter (not in OTP; off unless configured).
///
/// The `n`-th restart of the same child within its supervisor's period (n = 0 for the
/// first) waits `min · factorⁿ`, capped at `max`. Jitter `j` draws the wait uniformly from
/// `[(1 − j) · base, base]`, so it never exceeds `max`. Settings out of range are repaired,
/// never rejected: a factor below 1 or not finite counts as 1, jitter is clamped to
/// `[0, 1]`, and `max < min` means `min`.
///
/// ```
/// use std::time::Duration;
/// use understudy_actor::supervisor::Backoff;
///
/// let b = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(1), factor: 2.0, jitter: 0.0 };
/// assert_eq!(b.delay(0, 0.5), Duration::from_millis(100));
/// assert_eq!(b.delay(2, 0.5), Duration::from_millis(400));
/// assert_eq!(b.delay(10, 0.5), Duration::from_secs(1)); // capped
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Wait before the first restart of a child (within the period).
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Growth per further restart of the same child within the period (≥ 1).
    pub factor: f64,
    /// Fraction of the wait that is randomised away, in `[0, 1]`.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s, with 20 % jitter.
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(10),
            factor: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The wait before restart number `attempt` (0-based, counted per child within the
    /// supervisor's period), given a uniform `sample` in `[0, 1)` (values outside are clamped).
    pub fn delay(&self, attempt: u32, sample: f64) -> Duration {
        let max = self.max.max(self.min);
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let base = nanos_to_duration(self.min.as_nanos() as f64 * factor.powi(exponent), max);
        let jitter = clamp_unit(self.jitter);
        let sample = clamp_unit(sample);
        // Uniform in [(1 - j) * base, base]: the jitter only ever shortens the wait.
        let keep = 1.0 - jitter * sample;
        nanos_to_duration(base.as_nanos() as f64 * keep, max)
    }
}

/// `nanos` (≥ 0, possibly huge or infinite) as a duration, capped at `cap`. NaN (from
/// `0 · ∞`, a zero `min` with an overflowing growth) means zero.
fn nanos_to_duration(nanos: f64, cap: Duration) -> Duration {
    if nanos.is_nan() {
        return Duration::ZERO;
    }
    if nanos >= cap.as_nanos() as f64 {
        return cap;
    }
    let nanos = nanos.max(0.0).round() as u128;
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits a u32.
    let sub = (nanos % 1_000_000_000) as u32;
    Duration::new(secs, sub).min(cap)
}

/// Clamps to `[0, 1]`, mapping NaN to 0.
fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// A small seeded random source for jitter (SplitMix64). Not for cryptography.
///
/// ```
/// use understudy_actor::supervisor::JitterSource;
/// let mut a = JitterSource::new(7);
/// let mut b = JitterSource::new(7);
/// let x = a.next_unit();
/// assert_eq!(x, b.next_unit());
/// assert!((0.0..1.0).contains(&x));
/// ```
#[derive(Debug, Clone)]
pub struct JitterSource {
    state: u64,
}

impl JitterSource {
    /// A source seeded with `seed`; equal seeds give equal sequences.
    pub fn new(seed: u64) -> Self {
        JitterSource { state: seed }
    }

    /// The next uniform sample in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits, as a fraction of 2^53: exactly representable, strictly below 1.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_geometrically_then_caps() {
        let b = Backoff {
            min: ms(10),
            max: ms(100),
            factor: 3.0,
            jitter: 0.0,
        };
        let delays: Vec<_> = (0..5).map(|n| b.delay(n, 0.0)).collect();
        assert_eq!(delays, vec![ms(10), ms(30), ms(90), ms(100), ms(100)]);
    }

    #[test]
    fn full_jitter_spans_zero_to_base() {
        let b = Backoff {
            min: ms(100),
            max: ms(100),
            factor: 1.0,
            jitter: 1.0,
        };
        assert_eq!(b.delay(0, 0.0), ms(100));
        assert_eq!(b.delay(0, 0.5), ms(50));
        assert!(b.delay(0, 0.999_999) < ms(1));
    }

    #[test]
    fn nonsense_settings_are_repaired() {
        let b = Backoff {
            min: ms(50),
            max: ms(10),
            factor: f64::NAN,
            jitter: -3.0,
        };
        assert_eq!(b.delay(5, 0.3), ms(50));
        let b = Backoff {
            min: ms(50),
            max: ms(500),
            factor: 0.5,
            jitter: f64::INFINITY,
        };
        assert_eq!(b.delay(3, 0.0), ms(50));
        assert_eq!(b.delay(3, f64::NAN), ms(50));
        let huge = Backoff {
            min: Duration::MAX,
            max: Duration::MAX,
            factor: f64::MAX,
            jitter: 0.0,
        };
        assert_eq!(huge.delay(u32::MAX, 0.0), Duration::MAX);
    }

    #[test]
    fn the_jitter_source_is_deterministic_and_varied() {
        let mut a = JitterSource::new(1);
        let mut b = JitterSource::new(1);
        let xs: Vec<f64> = (0..100).map(|_| a.next_unit()).collect();
        let ys: Vec<f64> = (0..100).map(|_| b.next_unit()).collect();
        assert_eq!(xs, ys);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.3..0.7).contains(&mean), "mean {mean}");
        assert_ne!(JitterSource::new(2).next_unit(), xs[0]);
    }

    proptest! {
        /// Delays stay within [(1 - jitter) · base, max] and never shrink as attempts grow
        /// (for the same sample).
        #[test]
        fn delays_are_bounded_and_monotone(
            min_ms in 0u64..10_000,
            extra_ms in 0u64..100_000,
            factor in 1.0f64..4.0,
            jitter in 0.0f64..=1.0,
            sample in 0.0f64..1.0,
            attempt in 0u32..64,
        ) {
            let b = Backoff { min: ms(min_ms), max: ms(min_ms + extra_ms), factor, jitter };
            let d = b.delay(attempt, sample);
            prop_assert!(d <= b.max);
            let no_jitter = Backoff { jitter: 0.0, ..b }.delay(attempt, sample);
            prop_assert!(d <= no_jitter);
            prop_assert!(d.as_secs_f64() >= no_jitter.as_secs_f64() * (1.0 - jitter) - 1e-6);
            prop_assert!(b.delay(attempt + 1, sample) >= d);
        }

        #[test]
        fn samples_are_in_the_unit_interval(seed in any::<u64>()) {
            let mut s = JitterSource::new(seed);
            for _ in 0..32 {
                let x = s.next_unit();
                prop_assert!((0.0..1.0).contains(&x));
            }
        }
    }
}
