//! The client's trusted metadata, updated only in the order and by the checks of the TUF
//! client workflow (spec §5), at one reference time fixed when the refresh starts (spec
//! §5.1: every role is judged at the same instant, however long a mirror stretches the
//! downloads).
//!
//! Every update either succeeds or leaves the set exactly as it was: nothing is half-applied.
//! The fetcher persists the bytes of each successful update; this module never does I/O.

use super::error::{RoleName, TufError};
use super::hashes::check_hashes;
use super::metadata::{
    parse_time, verify_role, Checked, MetaFile, Root, Signed, Snapshot, Targets, Timestamp,
    Unverified,
};
use super::target::TargetInfo;

/// What a root update did to the rest of the trusted set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootUpdate {
    /// The new root gives timestamp or snapshot other keys or another threshold, so the
    /// trusted timestamp and snapshot were dropped (fast-forward recovery, spec §5.3.11): the
    /// fetcher deletes their files too, or a rollback check against a version an attacker
    /// pushed with a since-revoked key would lock the client out forever. (Trusted targets
    /// are always dropped by a root update: they are fetched again under the new root.)
    pub dropped_timestamp_and_snapshot: bool,
}

/// The result of offering a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// A newer timestamp is now trusted.
    Updated,
    /// The offered timestamp is the trusted version: nothing changed (spec §5.4.3.2: not an
    /// error). The trusted one is still current at the reference time.
    AlreadyCurrent,
}

/// The trusted root, timestamp, snapshot and targets of one refresh.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    now: i64,
    root: Checked<Root>,
    timestamp: Option<Checked<Timestamp>>,
    snapshot: Option<Checked<Snapshot>>,
    targets: Option<Checked<Targets>>,
}

fn expired<T: Signed>(md: &T, now: i64) -> Result<(), TufError> {
    // Parsed when read; an unparsable time cannot reach here, but counts as expired.
    match parse_time(md.expires()) {
        Some(t) if now < t => Ok(()),
        _ => Err(TufError::Expired {
            role: T::ROLE,
            expires: md.expires().to_string(),
        }),
    }
}

impl TrustedSet {
    /// Starts from the root the client trusts (shipped with the bundle, or the last one
    /// persisted) at reference time `now` (seconds since 1970, UTC). The root must be signed
    /// by a threshold of its own keys; it may be expired (a newer one is fetched next, and
    /// [`check_root_current`](Self::check_root_current) checks the last one).
    pub fn new(trusted_root: &[u8], now: i64) -> Result<TrustedSet, TufError> {
        let root = Unverified::<Root>::parse(trusted_root)?;
        verify_role(&root, RoleName::Root, root.signed())?;
        Ok(TrustedSet {
            now,
            root: Checked::new(root.signed),
            timestamp: None,
            snapshot: None,
            targets: None,
        })
    }

    /// The reference time of this refresh.
    pub fn reference_time(&self) -> i64 {
        self.now
    }

    pub fn root(&self) -> &Root {
        self.root.signed()
    }

    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref().map(Checked::signed)
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().map(Checked::signed)
    }

    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref().map(Checked::signed)
    }

    /// Replaces the trusted root by the next version: exactly version N+1, signed by a
    /// threshold of the trusted root's root keys *and* of its own, each key counted once.
    /// Its expiry is not checked here (an expired intermediate root is fine); call
    /// [`check_root_current`](Self::check_root_current) once the chain is walked, at most
    /// [`MAX_ROOT_ROTATIONS`](super::MAX_ROOT_ROTATIONS) times per refresh.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<RootUpdate, TufError> {
        if self.snapshot.is_some() {
            return Err(TufError::Order {
                role: RoleName::Root,
                reason: "the snapshot is already trusted; the root chain is walked first",
            });
        }
        let new = Unverified::<Root>::parse(bytes)?;
        let old = self.root.signed();
        let version = new.signed().version;
        verify_role(&new, RoleName::Root, old).map_err(|e| match e {
            TufError::Threshold {
                valid, threshold, ..
            } => TufError::RootNotSignedByTrusted {
                version,
                valid,
                threshold,
            },
            e => e,
        })?;
        let expected = old.version.saturating_add(1);
        if version != expected {
            return Err(TufError::RootVersion {
                expected,
                found: version,
            });
        }
        verify_role(&new, RoleName::Root, new.signed()).map_err(|e| match e {
            TufError::Threshold {
                valid, threshold, ..
            } => TufError::RootNotSelfSigned {
                version,
                valid,
                threshold,
            },
            e => e,
        })?;
        let rotated = [RoleName::Timestamp, RoleName::Snapshot]
            .into_iter()
            .any(|r| old.role_identity(r) != new.signed().role_identity(r));
        if rotated {
            self.timestamp = None;
        }
        self.targets = None;
        self.root = Checked::new(new.signed);
        Ok(RootUpdate {
            dropped_timestamp_and_snapshot: rotated,
        })
    }

    /// The final root must not be expired (checked once the chain is walked, spec §5.3.10).
    pub fn check_root_current(&self) -> Result<(), TufError> {
        expired(self.root.signed(), self.now)
    }

    /// Takes the timestamp persisted by the last refresh as the rollback baseline: signed by
    /// the current root's timestamp keys, its expiry not checked (an expired one still says
    /// which versions are older). Only before any timestamp is trusted.
    pub fn load_local_timestamp(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.timestamp.is_some() {
            return Err(TufError::Order {
                role: RoleName::Timestamp,
                reason: "a timestamp is already trusted",
            });
        }
        let new = Unverified::<Timestamp>::parse(bytes)?;
        verify_role(&new, RoleName::Timestamp, self.root.signed())?;
        self.timestamp = Some(Checked::new(new.signed));
        Ok(())
    }

    /// Offers a newly fetched timestamp (spec §5.4): the final root must be current; signed by
    /// a threshold of timestamp keys; its version and the snapshot version it lists never
    /// below the trusted ones; not expired.
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<TimestampUpdate, TufError> {
        if self.snapshot.is_some() {
            return Err(TufError::Order {
                role: RoleName::Timestamp,
                reason: "the snapshot is already trusted",
            });
        }
        self.check_root_current()?;
        let new = Unverified::<Timestamp>::parse(bytes)?;
        verify_role(&new, RoleName::Timestamp, self.root.signed())?;
        if let Some(old) = self.timestamp() {
            let (o, n) = (old.version, new.signed().version);
            if n < o {
                return Err(TufError::Rollback {
                    role: RoleName::Timestamp,
                    trusted: o,
                    offered: n,
                });
            }
            if n == o {
                expired(old, self.now)?;
                return Ok(TimestampUpdate::AlreadyCurrent);
            }
            let old_snap = old.snapshot_meta().map_or(0, |m| m.version);
            let new_snap = new.signed().snapshot_meta().map_or(0, |m| m.version);
            if new_snap < old_snap {
                return Err(TufError::SnapshotMetaRollback {
                    trusted: old_snap,
                    offered: new_snap,
                });
            }
        }
        expired(new.signed(), self.now)?;
        self.timestamp = Some(Checked::new(new.signed));
        Ok(TimestampUpdate::Updated)
    }

    fn current_timestamp(&self, role: RoleName) -> Result<&Timestamp, TufError> {
        let ts = self.timestamp().ok_or(TufError::Order {
            role,
            reason: "no timestamp is trusted yet",
        })?;
        expired(ts, self.now)?;
        Ok(ts)
    }

    fn snapshot_meta(&self, role: RoleName) -> Result<&MetaFile, TufError> {
        self.current_timestamp(role)?
            .snapshot_meta()
            .ok_or(TufError::MissingMeta {
                listed_by: RoleName::Timestamp,
                name: "snapshot.json".into(),
            })
    }

    /// Takes the snapshot persisted by the last refresh as the rollback baseline: signed by
    /// the current snapshot keys; its hash, version and expiry are not checked (the current
    /// timestamp may list a newer one). Whether it is current is
    /// [`snapshot_is_current`](Self::snapshot_is_current): if not, fetch and offer a new one.
    pub fn load_local_snapshot(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.snapshot.is_some() {
            return Err(TufError::Order {
                role: RoleName::Snapshot,
                reason: "a snapshot is already trusted",
            });
        }
        self.current_timestamp(RoleName::Snapshot)?;
        let new = Unverified::<Snapshot>::parse(bytes)?;
        verify_role(&new, RoleName::Snapshot, self.root.signed())?;
        self.snapshot = Some(Checked::new(new.signed));
        Ok(())
    }

    /// Whether the trusted snapshot is the one the trusted timestamp lists and not expired.
    pub fn snapshot_is_current(&self) -> bool {
        self.current_snapshot(RoleName::Snapshot).is_ok()
    }

    /// Offers a newly fetched snapshot (spec §5.5): the timestamp must be current; length and
    /// hashes as the timestamp lists them (when it does); signed by a threshold of snapshot
    /// keys; the version the timestamp lists; no targets file removed or older than in the
    /// trusted snapshot; not expired.
    pub fn update_snapshot(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        if self.targets.is_some() {
            return Err(TufError::Order {
                role: RoleName::Snapshot,
                reason: "the targets are already trusted",
            });
        }
        let meta = self.snapshot_meta(RoleName::Snapshot)?;
        check_listed(bytes, meta, RoleName::Snapshot, RoleName::Timestamp)?;
        let new = Unverified::<Snapshot>::parse(bytes)?;
        verify_role(&new, RoleName::Snapshot, self.root.signed())?;
        if new.signed().version != meta.version {
            return Err(TufError::VersionMismatch {
                role: RoleName::Snapshot,
                listed_by: RoleName::Timestamp,
                expected: meta.version,
                found: new.signed().version,
            });
        }
        if let Some(old) = self.snapshot() {
            for (name, o) in &old.meta {
                let n = new
                    .signed()
                    .meta
                    .get(name)
                    .ok_or_else(|| TufError::MetaRemoved {
                        name: crate::sha::clip(name),
                    })?;
                if n.version < o.version {
                    return Err(TufError::TargetsMetaRollback {
                        name: crate::sha::clip(name),
                        trusted: o.version,
                        offered: n.version,
                    });
                }
            }
        }
        expired(new.signed(), self.now)?;
        self.snapshot = Some(Checked::new(new.signed));
        Ok(())
    }

    fn current_snapshot(&self, role: RoleName) -> Result<&Snapshot, TufError> {
        let meta = self.snapshot_meta(role)?;
        let snap = self.snapshot().ok_or(TufError::Order {
            role,
            reason: "no snapshot is trusted yet",
        })?;
        if snap.version != meta.version {
            return Err(TufError::VersionMismatch {
                role: RoleName::Snapshot,
                listed_by: RoleName::Timestamp,
                expected: meta.version,
                found: snap.version,
            });
        }
        expired(snap, self.now)?;
        Ok(snap)
    }

    /// Offers a newly fetched `targets.json` (spec §5.6): the snapshot must be current and
    /// list it; length and hashes as listed (when they are); signed by a threshold of targets
    /// keys; the listed version; not expired; no delegations.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        let snap = self.current_snapshot(RoleName::Targets)?;
        let meta = snap.meta.get("targets.json").ok_or(TufError::MissingMeta {
            listed_by: RoleName::Snapshot,
            name: "targets.json".into(),
        })?;
        check_listed(bytes, meta, RoleName::Targets, RoleName::Snapshot)?;
        let new = Unverified::<Targets>::parse(bytes)?;
        verify_role(&new, RoleName::Targets, self.root.signed())?;
        if new.signed().version != meta.version {
            return Err(TufError::VersionMismatch {
                role: RoleName::Targets,
                listed_by: RoleName::Snapshot,
                expected: meta.version,
                found: new.signed().version,
            });
        }
        expired(new.signed(), self.now)?;
        if let Some(roles) = delegated_roles(new.signed()) {
            return Err(TufError::DelegationsRefused { roles });
        }
        self.targets = Some(Checked::new(new.signed));
        Ok(())
    }

    /// The trusted description of target `name`: its length, hashes and custom fields.
    pub fn target(&self, name: &str) -> Result<TargetInfo, TufError> {
        let targets = self.targets().ok_or(TufError::Order {
            role: RoleName::Targets,
            reason: "no targets metadata is trusted yet",
        })?;
        let file = targets
            .targets
            .get(name)
            .ok_or_else(|| TufError::UnknownTarget {
                name: crate::sha::clip(name),
            })?;
        Ok(TargetInfo::new(name, file))
    }

    /// Whether the trusted root asks for consistent snapshots (version- and hash-prefixed
    /// file names, see [`super::names`]).
    pub fn consistent_snapshot(&self) -> bool {
        self.root.signed().consistent_snapshot
    }
}

/// The names of the roles `targets` delegates to, if it delegates at all (an empty
/// `delegations` with no roles is the same as none).
fn delegated_roles(t: &Targets) -> Option<String> {
    let d = t.delegations.as_ref()?;
    if d.is_null() {
        return None;
    }
    let mut names: Vec<String> = d
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|roles| {
            roles
                .iter()
                .map(|r| {
                    r.get("name")
                        .and_then(|n| n.as_str())
                        .map_or_else(|| "unnamed".into(), crate::sha::clip)
                })
                .collect()
        })
        .unwrap_or_default();
    if d.get("succinct_roles").is_some_and(|s| !s.is_null()) {
        names.push("succinct hash bins".into());
    }
    if names.is_empty() && d.get("roles").is_some() {
        return None;
    }
    if names.is_empty() {
        names.push("in a form timb does not know".into());
    }
    Some(names.join(", "))
}

/// The length and hashes a metadata file must have where its lister gives them.
fn check_listed(
    bytes: &[u8],
    meta: &MetaFile,
    role: RoleName,
    listed_by: RoleName,
) -> Result<(), TufError> {
    if let Some(len) = meta.length {
        if u64::try_from(bytes.len()).ok() != Some(len) {
            return Err(TufError::MetaLength {
                role,
                listed_by,
                expected: len,
                actual: bytes.len(),
            });
        }
    }
    if let Some(hashes) = &meta.hashes {
        check_hashes(hashes, bytes).map_err(|e| match e {
            super::hashes::HashCheck::Mismatch(algorithm) => TufError::MetaHash {
                role,
                listed_by,
                algorithm,
            },
            super::hashes::HashCheck::Unsupported(algorithm) => TufError::UnsupportedHash {
                listed_by,
                algorithm,
            },
        })?;
    }
    Ok(())
}
