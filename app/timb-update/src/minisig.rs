//! The second check on a bundle, beyond TUF: the archive's minisign signature (the one
//! users check by hand), by a key the shipped `signing/policy.toml` lists for bundles. TUF
//! says "this is the current release"; minisign says "the release keys made it". A target
//! must pass both, so a compromise of the TUF keys alone installs nothing.

use crate::error::Failure;
use timb_release::{
    Keyring, Policy, PublicKey, Role, SignatureKind, Subject, TrustedComment, Unverified,
};

/// The bundle release keys shipped with the app: `(name, minisign public key file)`, every
/// `signing/keys/NAME.pub` (build.rs). None exists yet (signing/README.md).
const SHIPPED_KEYS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/shipped_keys.rs"));

const SHIPPED_POLICY: &str = include_str!("../../../signing/policy.toml");

/// Which keys may sign a bundle, and the policy that says so.
#[derive(Debug, Clone)]
pub struct BundleTrust {
    keys: Keyring,
    policy: Policy,
}

impl BundleTrust {
    /// The keys and policy shipped in this build.
    pub fn shipped() -> Result<BundleTrust, String> {
        let mut keys = Keyring::new();
        for (name, text) in SHIPPED_KEYS {
            keys.add(
                PublicKey::parse(text).map_err(|e| format!("{name}: {e}"))?,
                format!("release key {name}"),
            );
        }
        let policy = Policy::parse(SHIPPED_POLICY).map_err(|e| e.to_string())?;
        BundleTrust::new(keys, policy)
    }

    /// Other keys and policy (the test client's, with keys made by a test). Every key the
    /// policy names must be among `keys`.
    pub fn new(keys: Keyring, policy: Policy) -> Result<BundleTrust, String> {
        policy.check_keys(&keys).map_err(|e| e.to_string())?;
        Ok(BundleTrust { keys, policy })
    }

    /// Checks `minisig` over the archive `name` (its file name) with bytes `data`. A
    /// development signature is refused: it is never an update.
    pub(crate) fn check(&self, minisig: &[u8], name: &str, data: &[u8]) -> Result<(), Failure> {
        let text = std::str::from_utf8(minisig).map_err(|_| {
            Failure::Signature(timb_release::CheckError::Format(
                timb_release::KeyError::Signature("the .minisig file is not text".into()),
            ))
        })?;
        let checked = Unverified::<TrustedComment>::parse(text)
            .and_then(|u| {
                u.check(
                    &self.keys,
                    &self.policy,
                    Role::Bundle,
                    &Subject { name, data },
                )
            })
            .map_err(Failure::Signature)?;
        match checked.kind() {
            SignatureKind::Release => Ok(()),
            SignatureKind::Development => Err(Failure::DevelopmentSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_reads_and_every_key_file_is_shipped() {
        BundleTrust::shipped().unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../signing/keys");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter_map(|n| n.strip_suffix(".pub").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let shipped: Vec<&str> = SHIPPED_KEYS.iter().map(|(n, _)| *n).collect();
        assert_eq!(shipped, files, "SHIPPED_KEYS is not signing/keys/*.pub");
    }
}
