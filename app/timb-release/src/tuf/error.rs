//! Every way TUF metadata or a target is refused, one variant per check, so that the updater
//! can say in plain words which check failed and tests can tell one attack from another.

use super::canonical::CanonicalError;
use std::fmt;

/// The four top-level roles (delegated roles are refused, see [`TufError::DelegationsRefused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleName {
    Root,
    Timestamp,
    Snapshot,
    Targets,
}

impl RoleName {
    pub const ALL: [RoleName; 4] = [
        RoleName::Root,
        RoleName::Timestamp,
        RoleName::Snapshot,
        RoleName::Targets,
    ];

    /// The name TUF uses in `_type`, in root's `roles` and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Root => "root",
            RoleName::Timestamp => "timestamp",
            RoleName::Snapshot => "snapshot",
            RoleName::Targets => "targets",
        }
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TufError {
    // --- reading
    #[error("{role} metadata is {len} bytes, more than the {max} allowed: refused unread (endless data)")]
    TooLarge {
        role: RoleName,
        len: usize,
        max: usize,
    },
    #[error("{role} metadata is not JSON: {reason}")]
    NotJson { role: RoleName, reason: String },
    #[error("{role} metadata has no canonical form: {reason}")]
    NotCanonical {
        role: RoleName,
        reason: CanonicalError,
    },
    #[error("{role} metadata does not have TUF's form: {reason}")]
    Malformed { role: RoleName, reason: String },
    #[error("{expected} metadata was expected, but the file says it is {found:?}")]
    WrongType { expected: RoleName, found: String },
    #[error("{role} metadata is written for TUF specification {found:?}; only 1.x is supported")]
    SpecVersion { role: RoleName, found: String },
    #[error("{role} metadata carries two signatures with key id {keyid}; refused (a signature counts once)")]
    DuplicateSignature { role: RoleName, keyid: String },

    // --- signatures
    #[error("{role} metadata has {valid} valid signature(s) by distinct keys; the trusted root requires {threshold}")]
    Threshold {
        role: RoleName,
        valid: usize,
        threshold: u64,
    },
    #[error("{role} metadata reaches its threshold of {threshold} only by counting one key under several key ids ({keyids}); a key counts once")]
    SameKeyTwice {
        role: RoleName,
        keyids: String,
        threshold: u64,
    },
    #[error("new root version {version} has {valid} valid signature(s) by the trusted root's keys, which require {threshold}: a rotation signed only by new keys is refused")]
    RootNotSignedByTrusted {
        version: u64,
        valid: usize,
        threshold: u64,
    },
    #[error("new root version {version} has {valid} valid signature(s) by its own keys, which require {threshold}")]
    RootNotSelfSigned {
        version: u64,
        valid: usize,
        threshold: u64,
    },

    // --- versions, freshness, consistency
    #[error("root version {found} was offered where the next one is {expected}: roots are walked one version at a time")]
    RootVersion { expected: u64, found: u64 },
    #[error(
        "{role} metadata expired at {expires} (freeze attack, or a mirror that is not updated)"
    )]
    Expired { role: RoleName, expires: String },
    #[error(
        "{role} version {offered} is older than the trusted version {trusted}: rollback refused"
    )]
    Rollback {
        role: RoleName,
        trusted: u64,
        offered: u64,
    },
    #[error("the new timestamp lists snapshot version {offered}, older than the trusted timestamp's {trusted}: rollback refused")]
    SnapshotMetaRollback { trusted: u64, offered: u64 },
    #[error("the new snapshot lists {name} version {offered}, older than the trusted snapshot's {trusted}: rollback refused")]
    TargetsMetaRollback {
        name: String,
        trusted: u64,
        offered: u64,
    },
    #[error("the new snapshot no longer lists {name}, which the trusted snapshot lists")]
    MetaRemoved { name: String },
    #[error("{role} metadata is {actual} bytes, not the {expected} that {listed_by} lists")]
    MetaLength {
        role: RoleName,
        listed_by: RoleName,
        expected: u64,
        actual: usize,
    },
    #[error("{role} metadata's {algorithm} differs from the one {listed_by} lists (mix-and-match, or changed on the mirror)")]
    MetaHash {
        role: RoleName,
        listed_by: RoleName,
        algorithm: String,
    },
    #[error("{role} version {found} is not the version {expected} that {listed_by} lists (mix-and-match)")]
    VersionMismatch {
        role: RoleName,
        listed_by: RoleName,
        expected: u64,
        found: u64,
    },
    #[error("{listed_by} does not list {name}")]
    MissingMeta { listed_by: RoleName, name: String },
    #[error("{role} cannot be updated now: {reason}")]
    Order {
        role: RoleName,
        reason: &'static str,
    },
    #[error("targets delegates to other roles ({roles}); timb does not support delegations and refuses them rather than half-support them")]
    DelegationsRefused { roles: String },
    #[error("{listed_by} lists a hash with algorithm {algorithm:?}, which timb cannot check (sha256 and sha512 only)")]
    UnsupportedHash {
        listed_by: RoleName,
        algorithm: String,
    },

    // --- targets
    #[error("no target named {name:?} in the trusted targets metadata")]
    UnknownTarget { name: String },
    #[error("target {name:?} goes on past its listed {length} bytes (endless data)")]
    TargetTooLong { name: String, length: u64 },
    #[error("target {name:?} ended after {actual} bytes, short of its listed {length}")]
    TargetTooShort {
        name: String,
        length: u64,
        actual: u64,
    },
    #[error("target {name:?} has another {algorithm} than the signed targets metadata lists: the file is not the released one (arbitrary software)")]
    TargetHash { name: String, algorithm: String },

    // --- timb's custom fields
    #[error("target {name:?} carries no valid timb fields (custom.timb): {reason}")]
    CustomFields { name: String, reason: String },
    #[error("target {name:?} is not named after the bundle its timb fields describe ({expected}): what is signed must be what is opened")]
    TargetName { name: String, expected: String },
    #[error(
        "target {name:?} is built for {offered}, not for this bundle's {running} (wrong software)"
    )]
    WrongTarget {
        name: String,
        offered: String,
        running: String,
    },
    #[error(
        "target {name:?} is on channel {offered:?}, not this bundle's {running:?} (wrong software)"
    )]
    WrongChannel {
        name: String,
        offered: String,
        running: String,
    },
    #[error("target {name:?} is version {offered}, not newer than the running {running}: downgrades are refused")]
    NotNewer {
        name: String,
        offered: String,
        running: String,
    },
}
