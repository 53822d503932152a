//! Restart strategies: which children go down and come back when one of them must restart.
//!
//! As in OTP (`supervisor.erl`), children are kept in start order and:
//! - [`Strategy::OneForOne`] restarts only the child that exited;
//! - [`Strategy::OneForAll`] stops every other child (in reverse start order), then starts
//!   all of them again in start order — for children that only make sense together;
//! - [`Strategy::RestForOne`] stops the children started *after* the one that exited (in
//!   reverse order), then starts it and them again in order — for a chain where later
//!   children depend on earlier ones.
//!
//! [`Strategy::affected`] is the pure part: given the position of the child to restart, the
//! positions of the group that goes down and comes back.

use std::ops::Range;

/// How a supervisor reacts when a child has to be restarted (OTP's restart strategies).
///
/// Children are kept in start order; a group is stopped in reverse order, then started
/// again in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Restart only the child that exited.
    #[default]
    OneForOne,
    /// Restart every child.
    OneForAll,
    /// Restart the child that exited and every child started after it.
    RestForOne,
}

impl Strategy {
    /// The positions (in start order) restarted together with the child at `index`, among
    /// `len` children. Always contains `index` when `index < len`; empty otherwise.
    ///
    /// ```
    /// use understudy_actor::supervisor::Strategy;
    /// assert_eq!(Strategy::OneForOne.affected(1, 4), 1..2);
    /// assert_eq!(Strategy::OneForAll.affected(1, 4), 0..4);
    /// assert_eq!(Strategy::RestForOne.affected(1, 4), 1..4);
    /// ```
    pub fn affected(self, index: usize, len: usize) -> Range<usize> {
        if index >= len {
            return index..index;
        }
        match self {
            Strategy::OneForOne => index..index + 1,
            Strategy::OneForAll => 0..len,
            Strategy::RestForOne => index..len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::{prop_assert, prop_assert_eq, proptest};

    proptest! {
        #[test]
        fn the_group_contains_the_child_and_respects_order(index in 0usize..20, len in 0usize..20) {
            for s in [Strategy::OneForOne, Strategy::OneForAll, Strategy::RestForOne] {
                let r = s.affected(index, len);
                prop_assert!(r.end <= len.max(index));
                if index < len {
                    prop_assert!(r.contains(&index));
                    // Nothing started before the child is touched unless it is one_for_all.
                    if s != Strategy::OneForAll {
                        prop_assert_eq!(r.start, index);
                    }
                } else {
                    prop_assert!(r.is_empty());
                }
            }
        }
    }
}
