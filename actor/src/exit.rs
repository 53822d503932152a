//! Why an actor exited, typed.
//!
//! ractor carries exit reasons as `Option<String>` (in `SupervisionEvent::ActorTerminated`,
//! `ActorCell::stop`); understudy keeps those strings on the wire and in ractor's events, so
//! both ecosystems mix, and gives users a typed view of them: [`ExitReason`]. The strings it
//! recognises are Erlang's reasons, spelled as Erlang spells them ([`NORMAL`], [`SHUTDOWN`]
//! and `"shutdown: …"` for `{shutdown, Term}`, [`KILLED`], [`NOCONNECTION`], [`NOPROC`]).

use std::fmt;

/// A graceful stop with nothing to say (also what `stop(None)` means).
pub const NORMAL: &str = "normal";
/// A stop asked for by a supervisor or an orderly shutdown; `"shutdown: why"` carries detail.
pub const SHUTDOWN: &str = "shutdown";
/// The actor was killed (ractor's `kill`, Erlang's `exit(Pid, kill)`).
pub const KILLED: &str = "killed";
/// The connection to the actor's node failed or the node left: the actor may still run.
pub const NOCONNECTION: &str = "noconnection";
/// The actor did not exist (already gone when it was monitored, or never existed).
pub const NOPROC: &str = "noproc";

/// Why an actor exited: Erlang's exit reasons over ractor's reason strings.
///
/// [`is_normal`](Self::is_normal) is OTP's sense of a normal exit (a `Transient` child is not
/// restarted after one): `Normal` and `Shutdown`.
///
/// ```
/// use understudy_actor::ExitReason;
/// assert_eq!(ExitReason::from_reason(None), ExitReason::Normal);
/// assert_eq!(ExitReason::from_reason(Some("noconnection")), ExitReason::NoConnection);
/// let why = ExitReason::from_reason(Some("shutdown: maintenance"));
/// assert_eq!(why, ExitReason::Shutdown(Some("maintenance".into())));
/// assert!(why.is_normal());
/// // Back to ractor's string, for `ActorCell::stop`:
/// assert_eq!(why.to_reason().as_deref(), Some("shutdown: maintenance"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitReason {
    /// Stopped gracefully with no reason, or with `"normal"`.
    Normal,
    /// Stopped with `"shutdown"`, or `"shutdown: detail"` (Erlang's `{shutdown, Term}`).
    Shutdown(Option<String>),
    /// Killed.
    Killed,
    /// Its node became unreachable (failed, left, or the connection broke).
    NoConnection,
    /// It did not exist when it was watched.
    NoProc,
    /// Any other reason: a stop with another reason, or a failure (a panic or an error
    /// returned from a handler or hook, whose message this is).
    Error(String),
}

impl ExitReason {
    /// Reads one of ractor's reasons (`None` is a normal stop).
    pub fn from_reason(reason: Option<&str>) -> ExitReason {
        let Some(reason) = reason else {
            return ExitReason::Normal;
        };
        match reason {
            NORMAL => ExitReason::Normal,
            SHUTDOWN => ExitReason::Shutdown(None),
            KILLED => ExitReason::Killed,
            NOCONNECTION => ExitReason::NoConnection,
            NOPROC => ExitReason::NoProc,
            other => match other.strip_prefix("shutdown:") {
                Some(detail) => ExitReason::Shutdown(Some(detail.trim_start().to_owned())),
                None => ExitReason::Error(other.to_owned()),
            },
        }
    }

    /// The reason as ractor spells it (`None` for `Normal`), e.g. for `ActorCell::stop`.
    pub fn to_reason(&self) -> Option<String> {
        match self {
            ExitReason::Normal => None,
            other => Some(other.to_string()),
        }
    }

    /// OTP's normal exit: `Normal` or `Shutdown`.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal | ExitReason::Shutdown(_))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str(NORMAL),
            ExitReason::Shutdown(None) => f.write_str(SHUTDOWN),
            ExitReason::Shutdown(Some(detail)) => write!(f, "{SHUTDOWN}: {detail}"),
            ExitReason::Killed => f.write_str(KILLED),
            ExitReason::NoConnection => f.write_str(NOCONNECTION),
            ExitReason::NoProc => f.write_str(NOPROC),
            ExitReason::Error(reason) => f.write_str(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_as_itself() {
        let all = [
            ExitReason::Normal,
            ExitReason::Shutdown(None),
            ExitReason::Shutdown(Some("maintenance".into())),
            ExitReason::Killed,
            ExitReason::NoConnection,
            ExitReason::NoProc,
            ExitReason::Error("boom".into()),
        ];
        for reason in all {
            let text = reason.to_reason();
            assert_eq!(ExitReason::from_reason(text.as_deref()), reason);
        }
    }

    #[test]
    fn ractor_and_supervisor_reasons_are_recognised() {
        assert_eq!(ExitReason::from_reason(Some("normal")), ExitReason::Normal);
        let escalation = ExitReason::from_reason(Some(crate::supervisor::ESCALATION_REASON));
        assert_eq!(
            escalation,
            ExitReason::Shutdown(Some("reached_max_restart_intensity".into()))
        );
        assert!(!ExitReason::from_reason(Some("connection lost")).is_normal());
    }
}
