//! Which nodes vote, and which stand by: the reconciler's target, a pure function of the
//! membership view.
//!
//! Rules, in order (docs/ARCHITECTURE.md, section 9):
//! 1. **Only candidates count**: live nodes that may vote (the driver passes only those).
//! 2. **An odd number of voters**, at most `max_voters`: the largest odd number not above
//!    the candidates (a quorum of an even set tolerates no more failures than the odd set one
//!    smaller, and needs one more vote).
//! 3. **Spread over failure domains**: voters are picked round-robin over the domains, so no
//!    domain holds more than one voter above any other that still has candidates; losing one
//!    domain costs as few voters as it can.
//! 4. **Within a domain**: higher `priority` first, then the **incumbent** (a node already
//!    voting keeps its seat, so a join does not reshuffle voters), then the node's name.
//! 5. **Standbys**: the next `max_standbys` nodes in the same order, so a promoted standby
//!    keeps the spread.
//!
//! Domains take their turns in a fixed order: the one holding more incumbent voters first,
//! then by name, so a seat that does not divide evenly stays where it already is.
//!
//! ```
//! use understudy_registry::core::reconcile::{target, Candidate, Limits};
//! use understudy_actor::NodeId;
//!
//! let node = |n: u64, domain: &str| Candidate {
//!     node: NodeId::new(n).unwrap(),
//!     name: format!("n{n}"),
//!     domain: Some(domain.to_owned()),
//!     priority: 0,
//! };
//! let view: Vec<_> = (1..=6).map(|n| node(n, if n % 2 == 0 { "east" } else { "west" })).collect();
//! let t = target(&view, &[], Limits { max_voters: 5, max_standbys: 4 });
//! assert_eq!(t.voters.len(), 5);
//! assert_eq!(t.standbys.len(), 1);
//! ```

use std::collections::{BTreeMap, HashSet};

use understudy_actor::NodeId;

/// A node that may vote now: live and eligible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its id.
    pub node: NodeId,
    /// Its name (the last tie-break, so every node computes the same target).
    pub name: String,
    /// Its failure domain (rack, zone); nodes without one share the unnamed domain.
    pub domain: Option<String>,
    /// Higher first, within its domain.
    pub priority: i32,
}

/// How many voters and standbys the registry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many voters (odd; an even value acts as the odd number below it).
    pub max_voters: usize,
    /// At most this many standbys.
    pub max_standbys: usize,
}

/// The roles the reconciler works towards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The voters, in the order they were picked.
    pub voters: Vec<NodeId>,
    /// The standbys, in the order they would be promoted.
    pub standbys: Vec<NodeId>,
}

/// The target roles for `candidates`, given the current `voters` (incumbents keep their seats
/// where the rules allow). The same inputs, in any order, give the same target.
pub fn target(candidates: &[Candidate], voters: &[NodeId], limits: Limits) -> Target {
    let incumbent: HashSet<NodeId> = voters.iter().copied().collect();
    // Each domain's queue, best first; duplicates of a node count once.
    let mut seen = HashSet::new();
    let mut domains: BTreeMap<Option<&str>, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        if seen.insert(c.node) {
            domains.entry(c.domain.as_deref()).or_default().push(c);
        }
    }
    for queue in domains.values_mut() {
        queue.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| {
                    incumbent
                        .contains(&b.node)
                        .cmp(&incumbent.contains(&a.node))
                })
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.node.cmp(&b.node))
        });
    }
    // Domains holding more incumbents take their turn first, then by name.
    let mut order: Vec<(Option<&str>, Vec<&Candidate>)> = domains.into_iter().collect();
    order.sort_by(|(da, qa), (db, qb)| {
        let held = |q: &[&Candidate]| q.iter().filter(|c| incumbent.contains(&c.node)).count();
        held(qb).cmp(&held(qa)).then_with(|| da.cmp(db))
    });
    let ranked = round_robin(order.into_iter().map(|(_, q)| q).collect());

    let seats = odd_at_most(limits.max_voters.min(ranked.len()));
    let voters: Vec<NodeId> = ranked.iter().take(seats).map(|c| c.node).collect();
    let standbys = ranked
        .iter()
        .skip(seats)
        .take(limits.max_standbys)
        .map(|c| c.node)
        .collect();
    Target { voters, standbys }
}

/// The Raft configuration now: who votes, and who replicates without voting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The voters.
    pub voters: Vec<NodeId>,
    /// The learners (standbys, and nodes on their way to a vote).
    pub learners: Vec<NodeId>,
}

/// One change to the Raft configuration. The driver makes one at a time and waits for it to
/// commit before asking for the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start replicating to a node without giving it a vote.
    AddLearner(NodeId),
    /// Make exactly these the voters, in one joint-consensus change (voters that leave stay
    /// learners). Odd to odd: no even voter set is ever in force.
    ChangeVoters(Vec<NodeId>),
    /// Stop replicating to these learners.
    RemoveLearners(Vec<NodeId>),
}

/// The next step from `now` towards `target`, if any. `caught_up` says whether a learner has
/// the log closely enough to vote without stalling commits.
///
/// Quorum-safe order: first every node the target needs becomes a learner (voters-to-be
/// first); once all voters-to-be are caught up, the voter set changes in one joint step; only
/// then are nodes the target no longer needs dropped, and only ever as learners. A voter is
/// never removed directly, so the configuration never loses a vote it still counts on.
pub fn next_step(
    now: &Membership,
    target: &Target,
    caught_up: impl Fn(NodeId) -> bool,
) -> Option<Step> {
    let known = |n: &NodeId| now.voters.contains(n) || now.learners.contains(n);
    if let Some(&new) = target
        .voters
        .iter()
        .chain(&target.standbys)
        .find(|n| !known(n))
    {
        return Some(Step::AddLearner(new));
    }
    let same_voters = now.voters.len() == target.voters.len()
        && target.voters.iter().all(|n| now.voters.contains(n));
    if !same_voters && !target.voters.is_empty() {
        let ready = target
            .voters
            .iter()
            .all(|n| now.voters.contains(n) || caught_up(*n));
        return ready.then(|| Step::ChangeVoters(target.voters.clone()));
    }
    let needed = |n: &NodeId| target.voters.contains(n) || target.standbys.contains(n);
    let surplus: Vec<NodeId> = now
        .learners
        .iter()
        .copied()
        .filter(|n| !needed(n))
        .collect();
    (!surplus.is_empty()).then_some(Step::RemoveLearners(surplus))
}

/// The largest odd number not above `n` (0 for 0).
fn odd_at_most(n: usize) -> usize {
    if n == 0 { 0 } else { n - (1 - n % 2) }
}

/// One from each queue in turn, until all are empty.
fn round_robin<T>(queues: Vec<Vec<T>>) -> Vec<T> {
    let mut queues: Vec<std::vec::IntoIter<T>> = queues.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for q in &mut queues {
            if let Some(item) = q.next() {
                out.push(item);
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u64) -> NodeId {
        NodeId::new(n).expect("non-zero")
    }

    fn cand(n: u64, domain: Option<&str>, priority: i32) -> Candidate {
        Candidate {
            node: id(n),
            name: format!("node-{n:03}"),
            domain: domain.map(str::to_owned),
            priority,
        }
    }

    const LIMITS: Limits = Limits {
        max_voters: 5,
        max_standbys: 4,
    };

    fn domain_of(view: &[Candidate], node: NodeId) -> Option<String> {
        view.iter()
            .find(|c| c.node == node)
            .and_then(|c| c.domain.clone())
    }

    fn counts(view: &[Candidate], nodes: &[NodeId]) -> BTreeMap<Option<String>, usize> {
        let mut m = BTreeMap::new();
        for n in nodes {
            *m.entry(domain_of(view, *n)).or_default() += 1;
        }
        m
    }

    #[test]
    fn twenty_nodes_over_three_domains_give_five_voters_and_four_standbys_spread() {
        let domains = ["a", "b", "c"];
        let view: Vec<_> = (1..=20)
            .map(|n| cand(n, Some(domains[(n % 3) as usize]), 0))
            .collect();
        let t = target(&view, &[], LIMITS);
        assert_eq!((t.voters.len(), t.standbys.len()), (5, 4));
        let mut per_domain: Vec<usize> = counts(&view, &t.voters).into_values().collect();
        per_domain.sort();
        assert_eq!(per_domain, [1, 2, 2]);
        let all: Vec<_> = t.voters.iter().chain(&t.standbys).copied().collect();
        let mut per_domain: Vec<usize> = counts(&view, &all).into_values().collect();
        per_domain.sort();
        assert_eq!(per_domain, [3, 3, 3], "standbys keep the spread");
    }

    #[test]
    fn the_voter_count_is_the_largest_odd_number_that_fits() {
        for (n, voters) in [
            (0, 0),
            (1, 1),
            (2, 1),
            (3, 3),
            (4, 3),
            (5, 5),
            (6, 5),
            (9, 5),
        ] {
            let view: Vec<_> = (1..=n).map(|i| cand(i, None, 0)).collect();
            assert_eq!(target(&view, &[], LIMITS).voters.len(), voters, "{n} nodes");
        }
        let view: Vec<_> = (1..=9).map(|i| cand(i, None, 0)).collect();
        let even = Limits {
            max_voters: 4,
            max_standbys: 0,
        };
        assert_eq!(target(&view, &[], even).voters.len(), 3);
    }

    #[test]
    fn a_join_does_not_move_incumbent_voters_and_priority_comes_first() {
        let view: Vec<_> = (10..15).map(|n| cand(n, Some("a"), 0)).collect();
        let first = target(&view, &[], LIMITS);
        // A node with a smaller name joins the same domain: the voters stay.
        let mut joined = view.clone();
        joined.push(cand(1, Some("a"), 0));
        let incumbents = &first.voters;
        assert_eq!(
            target(&joined, incumbents, LIMITS)
                .voters
                .iter()
                .collect::<HashSet<_>>(),
            incumbents.iter().collect::<HashSet<_>>()
        );
        // One with a higher priority takes a seat.
        let mut preferred = view.clone();
        preferred.push(cand(2, Some("a"), 10));
        assert!(
            target(&preferred, incumbents, LIMITS)
                .voters
                .contains(&id(2))
        );
    }

    /// Applies a step as Raft would once it commits.
    fn apply(now: &mut Membership, step: &Step) {
        match step {
            Step::AddLearner(n) => now.learners.push(*n),
            Step::ChangeVoters(voters) => {
                let leaving: Vec<NodeId> = now
                    .voters
                    .iter()
                    .copied()
                    .filter(|n| !voters.contains(n))
                    .collect();
                now.learners.retain(|n| !voters.contains(n));
                now.learners.extend(leaving);
                now.voters = voters.clone();
            }
            Step::RemoveLearners(gone) => now.learners.retain(|n| !gone.contains(n)),
        }
    }

    #[test]
    fn three_voters_become_five_then_three_in_quorum_safe_steps() {
        let view: Vec<_> = (1..=5).map(|n| cand(n, None, 0)).collect();
        let mut now = Membership {
            voters: vec![id(1), id(2), id(3)],
            learners: vec![],
        };
        let grown = target(&view, &now.voters, LIMITS);
        let mut steps = Vec::new();
        while let Some(step) = next_step(&now, &grown, |_| true) {
            apply(&mut now, &step);
            steps.push(step);
        }
        assert_eq!(now.voters.len(), 5);
        assert!(matches!(
            steps[..],
            [
                Step::AddLearner(_),
                Step::AddLearner(_),
                Step::ChangeVoters(_)
            ]
        ));
        // Two nodes leave: back to three voters, the leavers dropped only as learners.
        let shrunk = target(&view[..3], &now.voters, LIMITS);
        while let Some(step) = next_step(&now, &shrunk, |_| true) {
            apply(&mut now, &step);
        }
        assert_eq!(now.voters.len(), 3);
        assert!(now.learners.is_empty());
    }

    #[test]
    fn the_voter_set_waits_for_its_new_members_to_catch_up() {
        let view: Vec<_> = (1..=3).map(|n| cand(n, None, 0)).collect();
        let now = Membership {
            voters: vec![id(1)],
            learners: vec![id(2), id(3)],
        };
        let t = target(&view, &now.voters, LIMITS);
        assert_eq!(next_step(&now, &t, |n| n != id(3)), None, "3 is behind");
        assert!(matches!(
            next_step(&now, &t, |_| true),
            Some(Step::ChangeVoters(_))
        ));
    }

    fn views() -> impl Strategy<Value = (Vec<Candidate>, Vec<u64>)> {
        let node = (1u64..60, prop::option::of(0u8..4), -2i32..3);
        (
            prop::collection::vec(node, 0..40),
            prop::collection::vec(1u64..60, 0..7),
        )
            .prop_map(|(nodes, voters)| {
                let view = nodes
                    .into_iter()
                    .map(|(n, d, p)| {
                        let domain = d.map(|d| format!("zone-{d}"));
                        cand(n, domain.as_deref(), p)
                    })
                    .collect();
                (view, voters)
            })
    }

    proptest! {
        #[test]
        fn targets_are_odd_bounded_distinct_spread_and_order_free(
            (view, voters) in views(),
            max_voters in 1usize..8,
            max_standbys in 0usize..6,
            shuffle in any::<u64>(),
        ) {
            let limits = Limits { max_voters, max_standbys };
            let voters: Vec<NodeId> = voters.into_iter().map(id).collect();
            let t = target(&view, &voters, limits);
            // The first of each node (duplicates in a view count once).
            let mut seen = HashSet::new();
            let view: Vec<Candidate> = view.into_iter().filter(|c| seen.insert(c.node)).collect();

            prop_assert!(t.voters.len() % 2 == 1 || t.voters.is_empty());
            prop_assert!(t.voters.len() <= max_voters && t.voters.len() <= view.len());
            prop_assert!(t.voters.len() + 2 > max_voters.min(view.len()), "the largest odd that fits");
            prop_assert!(t.standbys.len() <= max_standbys);
            let all: Vec<NodeId> = t.voters.iter().chain(&t.standbys).copied().collect();
            prop_assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len(), "distinct");
            prop_assert!(all.iter().all(|n| view.iter().any(|c| c.node == *n)));

            // Spread: a domain holds at most one voter more than any domain with candidates
            // left over.
            let per = counts(&view, &t.voters);
            for c in &view {
                if !t.voters.contains(&c.node) {
                    let here = per.get(&c.domain).copied().unwrap_or(0);
                    prop_assert!(per.values().all(|&n| n <= here + 1), "{per:?}");
                }
            }

            // Order-free: the same view in another order gives the same target.
            let mut shuffled = view.clone();
            let len = shuffled.len().max(1);
            shuffled.rotate_left((shuffle as usize) % len);
            shuffled.reverse();
            prop_assert_eq!(target(&shuffled, &voters, limits), target(&view, &voters, limits));
        }

        #[test]
        fn steps_reach_the_target_and_never_hold_an_even_voter_set(
            (view, voters) in views(),
            max_voters in 1usize..8,
            max_standbys in 0usize..6,
        ) {
            let limits = Limits { max_voters, max_standbys };
            // Start from the target of some view's first node alone: one voter.
            let Some(first) = view.first() else { return Ok(()) };
            let mut now = Membership { voters: vec![first.node], learners: vec![] };
            let _ = voters;
            let goal = target(&view, &now.voters, limits);
            let mut steps = 0;
            while let Some(step) = next_step(&now, &goal, |_| true) {
                apply(&mut now, &step);
                prop_assert!(now.voters.len() % 2 == 1, "{now:?}");
                steps += 1;
                prop_assert!(steps <= view.len() + 3, "converges");
            }
            let as_set = |v: &[NodeId]| v.iter().copied().collect::<HashSet<_>>();
            prop_assert_eq!(as_set(&now.voters), as_set(&goal.voters));
            prop_assert_eq!(as_set(&now.learners), as_set(&goal.standbys));
        }
    }
}
