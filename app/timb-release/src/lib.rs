//! timb's release formats, shared by the pipeline that builds and signs bundles (`xtask`) and
//! by the app's coming updater, so each format has exactly one definition.
//!
//! - [`Target`]: the platforms a bundle is made for, and the archive name of each.
//! - [`TrustedComment`]: the signed line of a minisign signature that binds a file's name,
//!   version, target, sha256 and source commit.
//! - [`Sums`]: the `sha256sums-unsigned-build.txt` file rebuilders compare.
//! - [`Policy`]: `signing/policy.toml`, which keys may sign what, and how many are needed.
//! - [`builders`]: independent builders' signatures over a release's sums, and the quorum
//!   of them a release needs.
//! - [`Unverified`] → [`Checked`]: a signature and what it claims are only reachable through a
//!   check against trusted keys and the policy (the "unverified → checked" style of arti's
//!   `tor-checkable`).
//! - [`tuf`]: TUF 1.0 update metadata and the client's checks of it (the updater's trust).
//!
//! Nothing here reads files, opens connections or holds a secret key: callers pass bytes in.
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod builders;
mod check;
mod comment;
mod keys;
mod policy;
mod sha;
mod sums;
mod target;
pub mod tuf;

pub use check::{CheckError, Checked, SignatureKind, SignedBody, Subject, Unverified};
pub use comment::{CommentError, SourceCommit, TrustedComment, DEVELOPMENT_KEY_MARK};
pub use keys::{KeyError, KeyId, Keyring, PublicKey};
pub use policy::{Policy, PolicyError, Role, RolePolicy, MAX_SHIPPED_FILE, MAX_SHIPPED_KEYS};
pub use sha::{is_plain_file_name, Sha256, Sha256Error};
pub use sums::{Sums, SumsError, SUMS_FILE};
pub use target::{ArchiveFormat, Target, TargetError, Version, VersionError};
