//! Who a node is: its [`NodeName`], its [`NodeId`] and its [`Incarnation`], in a
//! [`ClusterName`]d cluster.
//!
//! The three answer different questions (docs/ARCHITECTURE.md, section 4):
//!
//! - The **name** is what operators and certificates speak: unique in the cluster, chosen in the
//!   node's config, and written into the node's TLS certificate as the SAN
//!   `<name>.node.<cluster>`. After a handshake, the name a peer *claims* must be the name its
//!   certificate *carries* (see [`crate::certs`]). Because names become DNS labels, they follow
//!   DNS label rules (see [`NodeName`]).
//! - The **[`NodeId`]** is what the wire speaks: ractor identifies remote actors by a `u64` node
//!   id, so every actor address carries one. It is derived from the cluster and node name
//!   ([`node_id`]), so a node keeps its id across restarts without storing anything, and every
//!   node computes the same id for a peer from its name alone.
//! - The **[`Incarnation`]** tells one run of a node from the next. It grows on every restart, so
//!   membership (SWIM) can tell "the old `web-1` is gone" from "`web-1` is back", and actor
//!   addresses from a previous run can be recognised as stale.
//!
//! Names are validated once, at the edge (config, CLI, certificates, the wire): holding a
//! [`NodeName`] or [`ClusterName`] means it is valid.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use understudy_actor::NodeId;

/// The longest name allowed: one DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// What names may look like, said once for every error message.
const NAME_RULES: &str = "names are 1 to 63 characters of lowercase a-z, 0-9 and '-', \
                          starting with a letter and not ending with '-' \
                          (they become DNS labels in TLS certificates)";

/// Which kind of name was being checked; used in [`InvalidName`] messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A [`NodeName`].
    Node,
    /// A [`ClusterName`].
    Cluster,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Node => "node",
            NameKind::Cluster => "cluster",
        })
    }
}

/// Why a name was rejected: the offending input (shortened if long), what is wrong with it, and
/// the rules.
///
/// ```
/// use understudy_cluster::identity::NodeName;
/// let err = NodeName::new("Web_1").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid node name \"Web_1\": 'W' at position 0 is not allowed (use lowercase); names are \
///      1 to 63 characters of lowercase a-z, 0-9 and '-', starting with a letter and not ending \
///      with '-' (they become DNS labels in TLS certificates)",
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {input:?}: {problem}; {NAME_RULES}")]
pub struct InvalidName {
    kind: NameKind,
    input: String,
    problem: String,
}

impl InvalidName {
    /// Which kind of name was rejected.
    pub fn kind(&self) -> NameKind {
        self.kind
    }

    /// The rejected input (cut to 80 characters if it was longer).
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Checks `s` against the name rules; the error says what is wrong.
fn validate(kind: NameKind, s: &str) -> Result<(), InvalidName> {
    let fail = |problem: String| {
        let mut input: String = s.chars().take(80).collect();
        if input.len() < s.len() {
            input.push('…');
        }
        Err(InvalidName {
            kind,
            input,
            problem,
        })
    };
    let Some(first) = s.chars().next() else {
        return fail("it is empty".into());
    };
    if s.len() > MAX_NAME_LEN {
        return fail(format!("it is {} bytes long", s.len()));
    }
    for (i, c) in s.char_indices() {
        let ok = c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if !ok {
            let hint = if c.is_ascii_uppercase() {
                " (use lowercase)"
            } else if c == '.' {
                " (a name is a single DNS label)"
            } else {
                ""
            };
            return fail(format!("{c:?} at position {i} is not allowed{hint}"));
        }
    }
    if !first.is_ascii_lowercase() {
        return fail(format!("it starts with {first:?}, not a letter"));
    }
    if s.ends_with('-') {
        return fail("it ends with '-'".into());
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates `name`; see the type's docs for the rules.
            pub fn new(name: impl Into<String>) -> Result<$ty, InvalidName> {
                let name = name.into();
                validate($kind, &name)?;
                Ok($ty(name))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<$ty, InvalidName> {
                $ty::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<$ty, InvalidName> {
                $ty::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = InvalidName;
            fn try_from(s: &str) -> Result<$ty, InvalidName> {
                $ty::new(s)
            }
        }

        impl From<$ty> for String {
            fn from(name: $ty) -> String {
                name.0
            }
        }
    };
}

name_type!(
    /// A node's name, unique in its cluster: one DNS label.
    ///
    /// 1 to 63 characters of lowercase `a-z`, `0-9` and `-`, starting with a letter and not
    /// ending with `-` (RFC 1035's label syntax). The name goes into the node's certificate as
    /// `<name>.node.<cluster>`, so it must be a DNS label; uppercase is refused rather than
    /// folded, so two names that are equal as DNS names are also equal as values. Deserialising
    /// validates too.
    ///
    /// ```
    /// use understudy_cluster::identity::NodeName;
    /// let name: NodeName = "web-1".parse()?;
    /// assert_eq!(name.as_str(), "web-1");
    ///
    /// for bad in ["", "Web-1", "web_1", "web.1", "1web", "web-", &"a".repeat(64)] {
    ///     assert!(NodeName::new(bad).is_err(), "{bad:?}");
    /// }
    /// # Ok::<(), understudy_cluster::identity::InvalidName>(())
    /// ```
    NodeName,
    NameKind::Node
);

name_type!(
    /// A cluster's name: one DNS label, with the same rules as [`NodeName`].
    ///
    /// It scopes everything: node ids are derived from it ([`node_id`]), certificates carry it
    /// (`<cluster>.understudy` and `<name>.node.<cluster>`), and a node only trusts its own
    /// cluster's CA.
    ///
    /// ```
    /// use understudy_cluster::identity::ClusterName;
    /// let cluster = ClusterName::new("prod")?;
    /// assert_eq!(cluster.to_string(), "prod");
    /// assert!(ClusterName::new("prod.eu").is_err());
    /// # Ok::<(), understudy_cluster::identity::InvalidName>(())
    /// ```
    ClusterName,
    NameKind::Cluster
);

/// The [`NodeId`] of the node `name` in `cluster`: deterministic, stable across restarts and
/// releases, and never zero.
///
/// It is the first 8 bytes (big-endian) of SHA-256 over a domain tag, the cluster and the node
/// name, so every node computes the same id for a peer from its name alone, and nothing needs to
/// be stored for a restarted node to keep its id. With 64 bits, the chance that any two names in
/// one cluster collide is about n²/2⁶⁵ (one in 4·10¹³ for 1,000 nodes); membership should still
/// treat a second name with a known id as a conflict rather than trust it.
///
/// ```
/// use understudy_cluster::identity::{ClusterName, NodeName, node_id};
/// let prod = ClusterName::new("prod")?;
/// let web1 = NodeName::new("web-1")?;
/// assert_eq!(node_id(&prod, &web1), node_id(&prod, &web1));
/// assert_ne!(node_id(&prod, &web1), node_id(&prod, &NodeName::new("web-2")?));
/// assert_ne!(node_id(&prod, &web1), node_id(&ClusterName::new("test")?, &web1));
/// # Ok::<(), understudy_cluster::identity::InvalidName>(())
/// ```
pub fn node_id(cluster: &ClusterName, name: &NodeName) -> NodeId {
    // Names never contain NUL, so the encoding is unambiguous. Changing this changes every
    // node id on the wire: treat it as a protocol constant.
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"understudy node id v1\0");
    ctx.update(cluster.as_str().as_bytes());
    ctx.update(b"\0");
    ctx.update(name.as_str().as_bytes());
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    NodeId::new(u64::from_be_bytes(first)).unwrap_or(NODE_ID_ONE)
}

/// Stands in for the one-in-2⁶⁴ digest whose first 8 bytes are zero (ractor's "local").
const NODE_ID_ONE: NodeId = match NodeId::new(1) {
    Some(id) => id,
    None => panic!("1 is not zero"),
};

/// One run of a node: a number that is larger after every restart.
///
/// It is the wall-clock time in milliseconds since the Unix epoch when the node started, raised
/// to one more than the previous incarnation if that is known and the clock went backwards (or
/// the node restarted within the same millisecond). So a node needs no stored state to get a
/// larger incarnation, and one that does remember its last incarnation is protected from clock
/// steps.
///
/// ```
/// use understudy_cluster::identity::Incarnation;
/// let first = Incarnation::fresh(None);
/// let second = Incarnation::fresh(Some(first));
/// assert!(second > first);
///
/// // The pure form, for tests and simulations: the clock reading is passed in.
/// let a = Incarnation::fresh_at(1_000, None);
/// assert_eq!(a.get(), 1_000);
/// assert_eq!(Incarnation::fresh_at(900, Some(a)).get(), 1_001); // clock went backwards
/// assert_eq!(Incarnation::fresh_at(5_000, Some(a)).get(), 5_000);
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Incarnation(u64);

impl Incarnation {
    /// An incarnation from its raw value (as read from the wire or a state file).
    pub const fn new(raw: u64) -> Incarnation {
        Incarnation(raw)
    }

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The incarnation for a node starting now: the wall clock in Unix milliseconds, and
    /// strictly greater than `previous` if given.
    pub fn fresh(previous: Option<Incarnation>) -> Incarnation {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Incarnation::fresh_at(now, previous)
    }

    /// [`fresh`](Self::fresh) with the clock reading passed in: `unix_millis`, raised to
    /// `previous + 1` if that is larger.
    pub fn fresh_at(unix_millis: u64, previous: Option<Incarnation>) -> Incarnation {
        match previous {
            Some(prev) => Incarnation(unix_millis.max(prev.0.saturating_add(1))),
            None => Incarnation(unix_millis),
        }
    }
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Everything that identifies one run of one node: cluster, name, the [`NodeId`] derived from
/// them, and the [`Incarnation`].
///
/// The id is computed, never given, so it always agrees with the name.
///
/// ```
/// use understudy_cluster::identity::{ClusterName, Incarnation, NodeIdentity, NodeName, node_id};
/// let cluster = ClusterName::new("prod")?;
/// let name = NodeName::new("web-1")?;
/// let me = NodeIdentity::new(cluster.clone(), name.clone(), Incarnation::fresh(None));
/// assert_eq!(me.node_id(), node_id(&cluster, &name));
///
/// // After a restart: same name and id, larger incarnation.
/// let again = me.restarted();
/// assert_eq!(again.node_id(), me.node_id());
/// assert!(again.incarnation() > me.incarnation());
/// # Ok::<(), understudy_cluster::identity::InvalidName>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeIdentity {
    cluster: ClusterName,
    name: NodeName,
    node_id: NodeId,
    incarnation: Incarnation,
}

impl NodeIdentity {
    /// The identity of node `name` in `cluster`, in its run `incarnation`.
    pub fn new(cluster: ClusterName, name: NodeName, incarnation: Incarnation) -> NodeIdentity {
        let node_id = node_id(&cluster, &name);
        NodeIdentity {
            cluster,
            name,
            node_id,
            incarnation,
        }
    }

    /// The same node in its next run: a [fresh](Incarnation::fresh) incarnation larger than
    /// this one.
    pub fn restarted(&self) -> NodeIdentity {
        NodeIdentity {
            incarnation: Incarnation::fresh(Some(self.incarnation)),
            ..self.clone()
        }
    }

    /// The cluster the node belongs to.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }

    /// The node's name, unique in the cluster.
    pub fn name(&self) -> &NodeName {
        &self.name
    }

    /// The node's id, derived from cluster and name ([`node_id`]).
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// This run of the node.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} (id {}, incarnation {})",
            self.name, self.cluster, self.node_id, self.incarnation
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Valid names, generated from the rules rather than by filtering.
    fn valid_name() -> impl Strategy<Value = String> {
        "[a-z]([a-z0-9-]{0,61}[a-z0-9])?"
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(s in valid_name()) {
            let node = NodeName::new(s.clone()).expect("valid");
            prop_assert_eq!(node.as_str(), s.as_str());
            prop_assert_eq!(node.to_string().parse::<NodeName>().expect("again"), node.clone());
            let wire = postcard::to_stdvec(&node).expect("encode");
            prop_assert_eq!(postcard::from_bytes::<NodeName>(&wire).expect("decode"), node);
            let cluster = ClusterName::new(s.clone()).expect("valid");
            prop_assert_eq!(String::from(cluster), s);
        }

        #[test]
        fn arbitrary_input_never_panics(s in any::<String>()) {
            let ok = NodeName::new(s.clone()).is_ok();
            let expected = s.len() <= MAX_NAME_LEN
                && s.starts_with(|c: char| c.is_ascii_lowercase())
                && !s.ends_with('-')
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            prop_assert_eq!(ok, expected);
            prop_assert_eq!(ClusterName::new(s).is_ok(), expected);
        }

        #[test]
        fn invalid_characters_are_named(prefix in "[a-z][a-z0-9-]{0,30}", bad in "[^a-z0-9-]") {
            let s = format!("{prefix}{bad}x");
            let err = NodeName::new(s).expect_err("invalid");
            prop_assert!(err.to_string().contains("is not allowed"), "{}", err);
        }

        #[test]
        fn incarnations_grow(now in any::<u64>(), prev in proptest::option::of(any::<u64>())) {
            let prev = prev.map(Incarnation::new);
            let next = Incarnation::fresh_at(now, prev);
            prop_assert!(next.get() >= now);
            if let Some(p) = prev {
                prop_assert!(next > p || p.get() == u64::MAX);
            }
        }
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let msg = |s: &str| NodeName::new(s).expect_err(s).to_string();
        assert!(msg("").contains("it is empty"));
        assert!(msg("Web").contains("(use lowercase)"));
        assert!(msg("a.b").contains("single DNS label"));
        assert!(msg("1a").contains("starts with '1', not a letter"));
        assert!(msg("a-").contains("ends with '-'"));
        assert!(msg(&"a".repeat(64)).contains("64 bytes long"));
        let long = NodeName::new("x".repeat(500)).expect_err("long");
        assert_eq!(long.input().chars().count(), 81, "input is shortened");
        assert!(
            ClusterName::new("")
                .expect_err("empty")
                .to_string()
                .starts_with("invalid cluster name")
        );
    }

    #[test]
    fn deserialising_validates() {
        // postcard is the wire format; a String encodes the same as a name.
        let good = postcard_bytes("web-1");
        let bad = postcard_bytes("Web-1");
        assert_eq!(
            postcard::from_bytes::<NodeName>(&good)
                .expect("valid")
                .as_str(),
            "web-1"
        );
        assert!(postcard::from_bytes::<NodeName>(&bad).is_err());
    }

    fn postcard_bytes(s: &str) -> Vec<u8> {
        postcard::to_stdvec(&s.to_string()).expect("encode")
    }

    #[test]
    fn node_ids_are_pinned() {
        // A protocol constant: if this changes, nodes of different versions disagree on ids.
        let id = node_id(
            &ClusterName::new("prod").expect("valid"),
            &NodeName::new("web-1").expect("valid"),
        );
        assert_eq!(id.get(), PINNED_WEB1_PROD);
    }

    // = SHA-256(b"understudy node id v1\0prod\0web-1")[..8], big-endian.
    const PINNED_WEB1_PROD: u64 = 11_436_149_648_213_044_236;
}
