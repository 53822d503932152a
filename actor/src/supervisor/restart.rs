//! Child restart types and how an exit is classified.
//!
//! As in OTP:
//! - a [`Restart::Permanent`] child is always restarted;
//! - a [`Restart::Transient`] child is restarted only after an *abnormal* exit;
//! - a [`Restart::Temporary`] child is never restarted, and its spec is dropped from the
//!   supervisor once it exits (also when a one_for_all/rest_for_one restart takes it down).
//!
//! What counts as normal follows Erlang's exit reasons `normal`, `shutdown` and
//! `{shutdown, _}`, mapped onto ractor's events ([`ChildExit::classify`]):
//! a graceful stop with no reason, `"normal"`, `"shutdown"` or a reason starting with
//! `"shutdown:"` is normal; a stop with any other reason, a kill, a panic or an `Err` from a
//! handler (ractor's `ActorFailed`) is abnormal.

/// When a child is restarted (OTP's restart types).
///
/// An exit is abnormal unless it is a graceful stop with no reason, `"normal"`,
/// `"shutdown"` or `"shutdown:…"` (see [`ChildExit::classify`]); kills, panics and handler
/// errors are abnormal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Restart {
    /// Always restarted. The default, as in OTP.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit.
    Transient,
    /// Never restarted; removed from the supervisor when it exits.
    Temporary,
}

/// How a child exited, as far as restarting is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildExit {
    /// Stopped with no reason or with reason `"normal"`.
    Normal,
    /// Stopped with reason `"shutdown"` or `"shutdown:…"` (the reason is kept).
    Shutdown(String),
    /// Anything else: a stop with another reason, a kill, a panic, a handler error.
    Abnormal(String),
}

impl ChildExit {
    /// Classifies a graceful stop (ractor's `ActorTerminated`) by its reason.
    ///
    /// ```
    /// use understudy_actor::supervisor::ChildExit;
    /// assert_eq!(ChildExit::classify(None), ChildExit::Normal);
    /// assert!(!ChildExit::classify(Some("shutdown: maintenance")).is_abnormal());
    /// assert!(ChildExit::classify(Some("connection lost")).is_abnormal());
    /// ```
    pub fn classify(reason: Option<&str>) -> ChildExit {
        match reason {
            None | Some("normal") => ChildExit::Normal,
            Some(r) if r == "shutdown" || r.starts_with("shutdown:") => {
                ChildExit::Shutdown(r.to_owned())
            }
            Some(r) => ChildExit::Abnormal(r.to_owned()),
        }
    }

    /// A failure (ractor's `ActorFailed`: a panic or an error from a hook or handler).
    pub fn failed(error: impl std::fmt::Display) -> ChildExit {
        ChildExit::Abnormal(error.to_string())
    }

    /// Whether this exit is abnormal (a Transient child is restarted after it).
    pub fn is_abnormal(&self) -> bool {
        matches!(self, ChildExit::Abnormal(_))
    }
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Normal => f.write_str("normal"),
            ChildExit::Shutdown(r) | ChildExit::Abnormal(r) => f.write_str(r),
        }
    }
}

impl Restart {
    /// Whether a child of this restart type is restarted after `exit`.
    ///
    /// ```
    /// use understudy_actor::supervisor::{ChildExit, Restart};
    /// assert!(Restart::Permanent.restarts_after(&ChildExit::Normal));
    /// assert!(!Restart::Transient.restarts_after(&ChildExit::Normal));
    /// assert!(Restart::Transient.restarts_after(&ChildExit::failed("boom")));
    /// assert!(!Restart::Temporary.restarts_after(&ChildExit::failed("boom")));
    /// ```
    pub fn restarts_after(self, exit: &ChildExit) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => exit.is_abnormal(),
            Restart::Temporary => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_erlang_exit_reasons() {
        assert_eq!(ChildExit::classify(Some("normal")), ChildExit::Normal);
        assert_eq!(
            ChildExit::classify(Some("shutdown")),
            ChildExit::Shutdown("shutdown".into())
        );
        assert!(!ChildExit::classify(Some("shutdown:bye")).is_abnormal());
        // Only the exact prefix counts.
        assert!(ChildExit::classify(Some("shutdowns")).is_abnormal());
        assert!(ChildExit::classify(Some("Normal")).is_abnormal());
        assert!(ChildExit::classify(Some("")).is_abnormal());
        assert!(ChildExit::failed("panicked").is_abnormal());
    }

    #[test]
    fn restart_table() {
        let exits = [
            ChildExit::Normal,
            ChildExit::Shutdown("shutdown".into()),
            ChildExit::Abnormal("boom".into()),
        ];
        let row = |r: Restart| {
            exits
                .iter()
                .map(|e| r.restarts_after(e))
                .collect::<Vec<_>>()
        };
        assert_eq!(row(Restart::Permanent), [true, true, true]);
        assert_eq!(row(Restart::Transient), [false, false, true]);
        assert_eq!(row(Restart::Temporary), [false, false, false]);
    }
}
