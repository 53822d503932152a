//! A supervisor's configuration: strategy, restart intensity, optional backoff, children.
//!
//! Mirrors OTP's supervisor flags and child list. Defaults are OTP's: `one_for_one`, at most
//! 1 restart in 5 seconds, no backoff. Every setting is valid as given — an intensity of 0
//! (no restarts at all) included — so building a spec never fails; only duplicate child ids
//! are reported, when the supervisor starts.

use std::time::Duration;

use super::backoff::Backoff;
use super::child_spec::ChildSpec;
use super::strategy::Strategy;

/// OTP's default restart intensity: 1 restart...
pub const DEFAULT_INTENSITY: u32 = 1;
/// ...per 5 seconds.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);

/// How a supervisor supervises, and its initial children (started in this order).
///
/// ```
/// use std::time::Duration;
/// use understudy_actor::supervisor::{Backoff, SupervisorSpec};
///
/// let spec = SupervisorSpec::rest_for_one()
///     .intensity(3, Duration::from_secs(10))
///     .backoff(Backoff::default())
///     .jitter_seed(42);
/// assert_eq!(spec.restart_intensity(), (3, Duration::from_secs(10)));
/// assert!(spec.child_specs().is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub(crate) strategy: Strategy,
    pub(crate) intensity: u32,
    pub(crate) period: Duration,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) jitter_seed: Option<u64>,
    pub(crate) children: Vec<ChildSpec>,
}

impl Default for SupervisorSpec {
    fn default() -> Self {
        Self::new(Strategy::default())
    }
}

impl SupervisorSpec {
    /// A spec with `strategy` and OTP's defaults otherwise.
    pub fn new(strategy: Strategy) -> Self {
        SupervisorSpec {
            strategy,
            intensity: DEFAULT_INTENSITY,
            period: DEFAULT_PERIOD,
            backoff: None,
            jitter_seed: None,
            children: Vec::new(),
        }
    }

    /// `SupervisorSpec::new(Strategy::OneForOne)`.
    pub fn one_for_one() -> Self {
        Self::new(Strategy::OneForOne)
    }

    /// `SupervisorSpec::new(Strategy::OneForAll)`.
    pub fn one_for_all() -> Self {
        Self::new(Strategy::OneForAll)
    }

    /// `SupervisorSpec::new(Strategy::RestForOne)`.
    pub fn rest_for_one() -> Self {
        Self::new(Strategy::RestForOne)
    }

    /// At most `max_restarts` restarts within any `period`; one more and the supervisor
    /// gives up (stops its children and itself). `0` allows no restarts.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.intensity = max_restarts;
        self.period = period;
        self
    }

    /// Waits before restarts, growing per child (see [`Backoff`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Seeds the jitter of the backoff, for reproducible delays (default: a random seed).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Adds a child, started after the ones already added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Adds several children, in order.
    pub fn children(mut self, children: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.children.extend(children);
        self
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// `(max_restarts, period)`.
    pub fn restart_intensity(&self) -> (u32, Duration) {
        (self.intensity, self.period)
    }

    /// The backoff, if any.
    pub fn backoff_policy(&self) -> Option<Backoff> {
        self.backoff
    }

    /// The initial children, in start order.
    pub fn child_specs(&self) -> &[ChildSpec] {
        &self.children
    }
}
