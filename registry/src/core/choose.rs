//! Where a placed name goes: a pure function of the placement rule, the name, and the
//! nodes that can start its kind.

use std::hash::{DefaultHasher, Hash, Hasher};

use understudy_actor::NodeId;

use super::placement::{Placement, Target};

/// A node that could start the name: up, and has the kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The node.
    pub node: NodeId,
    /// Its name.
    pub name: String,
    /// Its run.
    pub incarnation: u64,
    /// Its gossiped load score (lower is less loaded; 0 when it published none).
    pub score: u32,
    /// The named actors it holds now.
    pub named: u64,
}

impl Candidate {
    fn target(&self) -> Target {
        Target {
            node: self.node,
            incarnation: self.incarnation,
        }
    }
}

/// Why no node can take the name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unplaceable {
    /// No live node has the kind.
    #[error("no live node can start kind {kind:?}")]
    NobodyHasKind {
        /// The kind.
        kind: String,
    },
    /// The node the placement names is not up, or cannot start the kind.
    #[error("node {node:?} is not up or cannot start kind {kind:?} (nodes that can: {able:?})")]
    NodeCannot {
        /// The node named.
        node: String,
        /// The kind.
        kind: String,
        /// The live nodes that have the kind.
        able: Vec<String>,
    },
}

/// The node for `name` by `placement`, among `candidates` (the live nodes with the kind),
/// from `me` (the calling node's name; `None` on a failover, where `Local` means any).
/// `random` is a fresh random number for [`Placement::Random`].
pub fn choose(
    placement: &Placement,
    name: &str,
    kind: &str,
    me: Option<&str>,
    candidates: &[Candidate],
    random: u64,
) -> Result<Target, Unplaceable> {
    if candidates.is_empty() {
        return Err(Unplaceable::NobodyHasKind {
            kind: kind.to_owned(),
        });
    }
    let named = |node: &str| candidates.iter().find(|c| c.name == node);
    let cannot = |node: &str| Unplaceable::NodeCannot {
        node: node.to_owned(),
        kind: kind.to_owned(),
        able: candidates.iter().map(|c| c.name.clone()).collect(),
    };
    let chosen = match placement {
        Placement::Local => match me {
            Some(me) => named(me).ok_or_else(|| cannot(me))?,
            None => rendezvous(name, candidates),
        },
        Placement::Node(node) => named(node).ok_or_else(|| cannot(node))?,
        Placement::PreferNodes(nodes) => nodes
            .iter()
            .find_map(|n| named(n))
            .unwrap_or_else(|| rendezvous(name, candidates)),
        Placement::LeastLoaded => candidates
            .iter()
            .min_by_key(|c| (c.score, c.named, std::cmp::Reverse(score(name, &c.name))))
            .expect("not empty"),
        Placement::Random => &candidates[(random % candidates.len() as u64) as usize],
        Placement::Hash => rendezvous(name, candidates),
    };
    Ok(chosen.target())
}

/// The candidate with the highest hash of (name, node): stable while it stays, and a node
/// joining takes only the names it now scores highest on.
fn rendezvous<'a>(name: &str, candidates: &'a [Candidate]) -> &'a Candidate {
    candidates
        .iter()
        .max_by_key(|c| (score(name, &c.name), c.node))
        .expect("not empty")
}

fn score(name: &str, node: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (name, node).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(n: u64, score: u32, named: u64) -> Candidate {
        Candidate {
            node: NodeId::new(n).expect("non-zero"),
            name: format!("n{n}"),
            incarnation: 1,
            score,
            named,
        }
    }

    fn on(t: Result<Target, Unplaceable>) -> u64 {
        t.expect("placed").node.get()
    }

    #[test]
    fn each_rule_picks_as_documented() {
        let all = [candidate(1, 5, 0), candidate(2, 1, 3), candidate(3, 1, 1)];
        let pick = |p: Placement, me: Option<&str>| choose(&p, "s", "k", me, &all, 7);
        assert_eq!(on(pick(Placement::Local, Some("n2"))), 2);
        assert!(matches!(
            pick(Placement::Local, Some("n9")),
            Err(Unplaceable::NodeCannot { .. })
        ));
        assert_eq!(on(pick(Placement::Node("n3".into()), None)), 3);
        let Err(Unplaceable::NodeCannot { able, .. }) = pick(Placement::Node("n9".into()), None)
        else {
            panic!("n9 is not a candidate");
        };
        assert_eq!(able, ["n1", "n2", "n3"]);
        let prefer = |nodes: &[&str]| {
            Placement::PreferNodes(nodes.iter().map(|n| (*n).to_owned()).collect())
        };
        assert_eq!(on(pick(prefer(&["n9", "n3", "n1"]), None)), 3);
        assert_eq!(
            on(pick(prefer(&["n9"]), None)),
            on(pick(Placement::Hash, None)),
            "none of them up: any, by hash"
        );
        assert_eq!(
            on(pick(Placement::LeastLoaded, None)),
            3,
            "lowest score, then fewest"
        );
        assert_eq!(on(pick(Placement::Random, None)), [1, 2, 3][7 % 3]);
        assert_eq!(
            on(pick(Placement::Local, None)),
            on(pick(Placement::Hash, None)),
            "a failover of a Local name goes anywhere"
        );
        assert_eq!(
            choose(&Placement::Hash, "s", "k", None, &[], 0),
            Err(Unplaceable::NobodyHasKind { kind: "k".into() })
        );
    }

    #[test]
    fn hash_placement_moves_only_names_a_new_node_wins() {
        let before: Vec<Candidate> = (1..=5).map(|n| candidate(n, 0, 0)).collect();
        let mut after = before.clone();
        after.push(candidate(6, 0, 0));
        let mut moved = 0;
        for i in 0..1000 {
            let name = format!("name-{i}");
            let a = on(choose(&Placement::Hash, &name, "k", None, &before, 0));
            let b = on(choose(&Placement::Hash, &name, "k", None, &after, 0));
            if a != b {
                assert_eq!(b, 6, "a name moves only to the new node");
                moved += 1;
            }
        }
        // About a sixth of the names move.
        assert!((100..=300).contains(&moved), "{moved} of 1000 moved");
    }
}
