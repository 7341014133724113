//! The signing policy (`signing/policy.toml`): for each role, the key ids allowed to sign and
//! how many distinct ones must.
//!
//! ```toml
//! [bundle]              # the archives and their sums file
//! keys = ["E7620F1842B4E81F"]
//! # threshold = 1       # optional here: any one listed key signs a bundle
//!
//! [update-metadata]     # what the updater trusts before it downloads anything
//! keys = []
//! threshold = 2         # required: at least this many distinct listed keys
//!
//! [builders]            # independent rebuilders, each vouching for a release's sums
//! keys = []
//! threshold = 2         # required: a release is installed only with this many
//! ```
//!
//! A role with no keys yet is valid and is satisfied by nothing.

use crate::keys::{KeyId, Keyring};
use serde::Deserialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Bundle archives and their sums file.
    Bundle,
    /// The updater's metadata.
    UpdateMetadata,
    /// Independent builders: each signs a release's sums files after its rebuild matched
    /// (crate::builders); a release needs `threshold` of them.
    Builders,
}

impl Role {
    /// The table name in `policy.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Bundle => "bundle",
            Role::UpdateMetadata => "update-metadata",
            Role::Builders => "builders",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// At most this many bundle key files in a bundle's `signing/keys/`: the pipeline refuses
/// to package more and the updater to read more.
pub const MAX_SHIPPED_KEYS: usize = 64;
/// At most this many bytes for a shipped key file or policy (a key file is ~100 bytes).
pub const MAX_SHIPPED_FILE: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePolicy {
    keys: Vec<KeyId>,
    threshold: u32,
}

impl RolePolicy {
    pub fn keys(&self) -> &[KeyId] {
        &self.keys
    }

    /// How many distinct listed keys must sign.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    pub fn allows(&self, id: KeyId) -> bool {
        self.keys.contains(&id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    bundle: RolePolicy,
    update_metadata: RolePolicy,
    builders: RolePolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the signing policy is not valid: {0}")]
    Toml(String),
    #[error("[{role}]: {source}")]
    KeyId {
        role: Role,
        source: crate::keys::KeyError,
    },
    #[error("[{role}]: key {key} is listed twice")]
    Repeated { role: Role, key: KeyId },
    #[error("[{role}]: threshold must be at least 1")]
    ZeroThreshold { role: Role },
    #[error("[{role}]: threshold {threshold} is more than the {keys} keys listed")]
    Unreachable {
        role: Role,
        threshold: u32,
        keys: usize,
    },
    #[error("[{role}]: the policy names key {key}, but no public key with that id was given (signing/keys/)")]
    MissingKey { role: Role, key: KeyId },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    bundle: RawRole,
    #[serde(rename = "update-metadata")]
    update_metadata: RawRoleWithThreshold,
    builders: RawRoleWithThreshold,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    keys: Vec<String>,
    threshold: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoleWithThreshold {
    keys: Vec<String>,
    threshold: u32,
}

fn role(role: Role, keys: Vec<String>, threshold: u32) -> Result<RolePolicy, PolicyError> {
    let mut ids: Vec<KeyId> = Vec::new();
    for k in keys {
        let id = k
            .parse()
            .map_err(|source| PolicyError::KeyId { role, source })?;
        if ids.contains(&id) {
            return Err(PolicyError::Repeated { role, key: id });
        }
        ids.push(id);
    }
    if threshold == 0 {
        return Err(PolicyError::ZeroThreshold { role });
    }
    // No keys yet is the documented state before the first release key exists.
    if !ids.is_empty() && threshold as usize > ids.len() {
        return Err(PolicyError::Unreachable {
            role,
            threshold,
            keys: ids.len(),
        });
    }
    Ok(RolePolicy {
        keys: ids,
        threshold,
    })
}

impl Policy {
    /// Parses `policy.toml`'s text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Toml(e.to_string()))?;
        Ok(Policy {
            bundle: role(
                Role::Bundle,
                raw.bundle.keys,
                raw.bundle.threshold.unwrap_or(1),
            )?,
            update_metadata: role(
                Role::UpdateMetadata,
                raw.update_metadata.keys,
                raw.update_metadata.threshold,
            )?,
            builders: role(Role::Builders, raw.builders.keys, raw.builders.threshold)?,
        })
    }

    pub fn role(&self, role: Role) -> &RolePolicy {
        match role {
            Role::Bundle => &self.bundle,
            Role::UpdateMetadata => &self.update_metadata,
            Role::Builders => &self.builders,
        }
    }

    /// Every key the policy names must be in `keys` (the public keys shipped beside it).
    pub fn check_keys(&self, keys: &Keyring) -> Result<(), PolicyError> {
        for r in [Role::Bundle, Role::UpdateMetadata, Role::Builders] {
            if let Some(&key) = self.role(r).keys.iter().find(|k| keys.get(**k).is_none()) {
                return Err(PolicyError::MissingKey { role: r, key });
            }
        }
        Ok(())
    }

    /// Writes the policy back as `policy.toml` text (without the comments).
    pub fn to_toml(&self) -> String {
        let list = |r: &RolePolicy| {
            r.keys
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "[bundle]\nkeys = [{}]\nthreshold = {}\n\n[update-metadata]\nkeys = [{}]\nthreshold = {}\n\n[builders]\nkeys = [{}]\nthreshold = {}\n",
            list(&self.bundle),
            self.bundle.threshold,
            list(&self.update_metadata),
            self.update_metadata.threshold,
            list(&self.builders),
            self.builders.threshold
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "E7620F1842B4E81F";
    const B: &str = "0123456789ABCDEF";

    #[test]
    fn the_repositorys_policy_parses() {
        let text = include_str!("../../../signing/policy.toml");
        let p = Policy::parse(text).unwrap();
        assert_eq!(p.role(Role::Bundle).threshold(), 1);
        assert_eq!(p.role(Role::UpdateMetadata).threshold(), 2);
        assert_eq!(p.role(Role::Builders).threshold(), 2);
        p.check_keys(&Keyring::new()).unwrap();
    }

    #[test]
    fn round_trips() {
        let text = format!(
            "[bundle]\nkeys = [\"{A}\"]\n[update-metadata]\nkeys = [\"{A}\", \"{B}\"]\nthreshold = 2\n[builders]\nkeys = [\"{B}\"]\nthreshold = 1\n"
        );
        let p = Policy::parse(&text).unwrap();
        assert!(p.role(Role::Builders).allows(B.parse().unwrap()));
        assert!(!p.role(Role::Builders).allows(A.parse().unwrap()));
        assert!(p.role(Role::Bundle).allows(A.parse().unwrap()));
        assert!(!p.role(Role::Bundle).allows(B.parse().unwrap()));
        assert_eq!(Policy::parse(&p.to_toml()).unwrap(), p);
    }

    #[test]
    fn rejections_say_why() {
        let ok_meta =
            "[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = []\nthreshold = 2\n";
        let cases = [
            (
                format!("[bundle]\nkeys = [\"{A}\", \"{A}\"]\n{ok_meta}"),
                "listed twice",
            ),
            (
                format!("[bundle]\nkeys = [\"xyz\"]\n{ok_meta}"),
                "not a minisign key id",
            ),
            (
                format!("[bundle]\nkeys = []\nthreshold = 0\n{ok_meta}"),
                "at least 1",
            ),
            (
                format!("[bundle]\nkeys = [\"{A}\"]\nthreshold = 2\n{ok_meta}"),
                "more than the 1 keys",
            ),
            (
                format!("[bundle]\nkeys = []\nsigners = 1\n{ok_meta}"),
                "unknown field",
            ),
            (
                "[bundle]\nkeys = []\n[update-metadata]\nkeys = []\n".to_string(),
                "threshold",
            ),
            (
                "[bundle]\nkeys = []\n[update-metadata]\nkeys = []\nthreshold = 1\n".to_string(),
                "missing field `builders`",
            ),
            (
                format!("[bundle]\nkeys = []\n[update-metadata]\nkeys = []\nthreshold = 1\n[builders]\nkeys = [\"{A}\"]\nthreshold = 2\n"),
                "[builders]: threshold 2 is more than the 1 keys",
            ),
            (ok_meta.to_string(), "bundle"),
            ("[bundle]\nkeys = []\n".to_string(), "update-metadata"),
            (format!("[bundle]\nkeys = \"{A}\"\n{ok_meta}"), "sequence"),
            ("\u{0}garbage[[".to_string(), "not valid"),
        ];
        for (text, want) in cases {
            let e = Policy::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn a_named_key_must_be_present() {
        let p = Policy::parse(&format!(
            "[bundle]\nkeys = [\"{A}\"]\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = []\nthreshold = 2\n"
        ))
        .unwrap();
        let e = p.check_keys(&Keyring::new()).unwrap_err().to_string();
        assert!(e.contains(A) && e.contains("[bundle]"), "{e}");
    }
}
