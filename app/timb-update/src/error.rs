//! What the user is told when an update check or download fails: which file, on which
//! mirror (by its place in the list, never its address), and which check refused it, in
//! the words of [`TufError`], [`FetchError`] or the minisign [`CheckError`].

use crate::fetch::FetchError;
use crate::store::StoreError;
use std::fmt;
use timb_release::builders::QuorumError;
use timb_release::tuf::TufError;
use timb_release::CheckError;

/// Why one mirror could not give a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Not fetched: the network, the server, a cap or a timeout.
    Fetch(FetchError),
    /// Fetched, and refused by a TUF check.
    Tuf(TufError),
    /// Fetched and TUF-verified, and its minisign signature was refused.
    Signature(CheckError),
    /// No mirror gave the `.minisig` file.
    SignatureMissing(FetchError),
    /// A signature that is good but by the development key: never an update.
    DevelopmentSignature,
    /// Not vouched for by enough independent builders (timb_release::builders).
    Unvouched(QuorumError),
    /// No mirror gave the release's sums and its builders' signatures.
    VouchMissing(FetchError),
    /// Could not be written to the target folder.
    Disk(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Fetch(e) => write!(f, "download failed: {e}"),
            Failure::Tuf(e) => write!(f, "refused by the update metadata check: {e}"),
            Failure::Signature(e) => write!(f, "refused by the minisign signature check: {e}"),
            Failure::SignatureMissing(e) => write!(
                f,
                "refused by the minisign signature check: its .minisig could not be fetched ({e})"
            ),
            Failure::DevelopmentSignature => f.write_str(
                "refused by the minisign signature check: signed with a development key, which is never an update",
            ),
            Failure::Unvouched(e) => write!(f, "refused by the builder check: {e}"),
            Failure::VouchMissing(e) => write!(
                f,
                "refused by the builder check: the builders' signatures could not be fetched ({e})"
            ),
            Failure::Disk(e) => write!(f, "could not be saved: {e}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("no mirror gave a valid {file}: {}", list(.failures))]
    Mirrors {
        file: String,
        failures: Vec<(usize, Failure)>,
    },
    #[error("the update check failed: {0}")]
    Tuf(#[from] TufError),
    #[error("the trusted update metadata in the state folder is not usable: {0}")]
    LocalRoot(TufError),
    #[error(
        "no trusted root yet: the state folder must be initialised with the shipped root.json"
    )]
    NotInitialised,
    #[error("no mirror is configured")]
    NoMirror,
    #[error("target name {0:?} is not a plain relative path; refused")]
    BadTargetName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the shipped bundle signing policy cannot be read: {0}")]
    Policy(String),
}

fn list(failures: &[(usize, Failure)]) -> String {
    failures
        .iter()
        .map(|(i, f)| format!("mirror {}: {f}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

impl UpdateError {
    /// The failures by mirror, if this is a per-mirror error.
    pub fn failures(&self) -> &[(usize, Failure)] {
        match self {
            UpdateError::Mirrors { failures, .. } => failures,
            _ => &[],
        }
    }
}

/// What a person is told about a failed update, by what they can do about it. Ordered from
/// least to most alarming: when mirrors failed differently, the most alarming is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// Anything not below (a bug, a local state that cannot be read).
    Other,
    /// No mirror could be reached (network, timeouts, not found).
    Unreachable,
    /// The bundle's folder could not be written.
    Disk,
    /// Not enough space.
    DiskFull,
    /// A download was longer or shorter than signed, or metadata above its cap.
    Size,
    /// The update's contents are not allowed (links, paths out, too many files).
    Refused,
    /// A signature or hash check failed: tampering, or a broken mirror.
    Tampered,
    /// Signed metadata that expired: someone may be holding updates back.
    HeldBack,
    /// Older metadata than already trusted: someone may be pushing an old version.
    Rollback,
}

impl Problem {
    fn of_tuf(e: &TufError) -> Problem {
        match e {
            TufError::Expired { .. } => Problem::HeldBack,
            TufError::Rollback { .. }
            | TufError::SnapshotMetaRollback { .. }
            | TufError::TargetsMetaRollback { .. } => Problem::Rollback,
            TufError::TooLarge { .. }
            | TufError::TargetTooLong { .. }
            | TufError::TargetTooShort { .. } => Problem::Size,
            _ => Problem::Tampered,
        }
    }

    fn of_failure(f: &Failure) -> Problem {
        match f {
            Failure::Fetch(FetchError::TooLarge { .. }) => Problem::Size,
            Failure::Fetch(_) => Problem::Unreachable,
            Failure::Tuf(e) => Problem::of_tuf(e),
            Failure::Signature(_)
            | Failure::SignatureMissing(_)
            | Failure::DevelopmentSignature
            | Failure::Unvouched(_)
            | Failure::VouchMissing(_) => Problem::Tampered,
            Failure::Disk(_) => Problem::Disk,
        }
    }

    pub fn of_update(e: &UpdateError) -> Problem {
        match e {
            UpdateError::Mirrors { failures, .. } => failures
                .iter()
                .map(|(_, f)| Problem::of_failure(f))
                .max()
                .unwrap_or(Problem::Unreachable),
            UpdateError::Tuf(t) => Problem::of_tuf(t),
            UpdateError::BadTargetName(_) => Problem::Tampered,
            UpdateError::Store(_) => Problem::Disk,
            UpdateError::LocalRoot(_)
            | UpdateError::NotInitialised
            | UpdateError::NoMirror
            | UpdateError::Policy(_) => Problem::Other,
        }
    }

    pub fn of_apply(e: &crate::ApplyError) -> Problem {
        use crate::ApplyError as A;
        match e {
            A::DiskFull => Problem::DiskFull,
            A::Disk(_) | A::Layout(_) => Problem::Disk,
            A::Refused(_) | A::TooBig(_) => Problem::Refused,
            A::Damaged(_) => Problem::Tampered,
            A::FailedBefore(_) => Problem::Other,
        }
    }
}
