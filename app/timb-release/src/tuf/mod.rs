//! TUF 1.0 metadata (The Update Framework, spec 1.0.x) and the client's verification of it:
//! bytes in, verdicts out, no I/O. The fetcher (the updater crate) downloads with the byte
//! caps given here, offers each file to [`TrustedSet`] in the order of the spec's client
//! workflow, persists what it accepts, and checks targets with [`TargetVerifier`] and
//! [`TimbFields::check_update`].
//!
//! Our own implementation, not a crate: the Rust TUF crates do not fit today (one refuses
//! current `spec_version` strings, the other brings a second crypto stack with a C build);
//! this one uses the sha2 and ring already in the tree. It is checked against the Python
//! reference implementation (`tests/tuf_interop.rs`).
//!
//! | file | what |
//! |---|---|
//! | `canonical.rs` | canonical JSON, byte for byte as securesystemslib writes it |
//! | `keys.rs` | ed25519, ECDSA P-256/P-384 and RSA-PSS public keys, verified through ring |
//! | `metadata.rs` | the four roles' types, the signature envelope, byte caps, thresholds |
//! | `trusted.rs` | [`TrustedSet`]: the client workflow's state machine |
//! | `target.rs` | [`TargetInfo`], the streaming [`TargetVerifier`], [`names`] on a repository |
//! | `custom.rs` | timb's `custom.timb` target fields, the wrong-software and downgrade checks |
//! | `error.rs` | [`TufError`]: one variant per refusal |
//! | `shipped.rs` | [`ShippedChannel`]: the root and mirror list a bundle ships |
//!
//! Delegations are not supported and are refused with [`TufError::DelegationsRefused`].

mod canonical;
mod custom;
mod error;
mod hashes;
mod keys;
mod metadata;
mod shipped;
mod target;
mod trusted;

pub use canonical::{encode as canonical_json, CanonicalError};
pub use custom::{Channel, TimbFields};
pub use error::{RoleName, TufError};
pub use keys::Key;
pub use metadata::{
    parse_time, Checked, MetaFile, RoleKeys, Root, Signature, Signed, Snapshot, TargetFile,
    Targets, Timestamp, Unverified, MAX_ROOT_ROTATIONS, MAX_ROOT_SIZE, MAX_SNAPSHOT_SIZE,
    MAX_TARGETS_SIZE, MAX_TIMESTAMP_SIZE,
};
pub use shipped::{check_shipped_root, ShippedChannel, ShippedError, CHANNEL_FILE, ROOT_FILE};
pub use target::{names, TargetInfo, TargetVerifier};
pub use trusted::{RootUpdate, TimestampUpdate, TrustedSet};
