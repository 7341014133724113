//! The second check on a bundle, beyond TUF: the archive's minisign signature (the one
//! users check by hand), by a key the shipped `signing/policy.toml` lists for bundles. TUF
//! says "this is the current release"; minisign says "the release keys made it". A target
//! must pass both, so a compromise of the TUF keys alone installs nothing.
//!
//! A third check, the builder quorum (timb_release::builders): the archive's sha256 must be
//! listed in the release's published sums, signed by at least the policy's `[builders]`
//! threshold of independent builders' keys, so that the release machine alone cannot make
//! an update either.
//!
//! The keys and the policy are files the bundle ships (`app/VERSION/signing/`, copied from
//! the repository's `signing/` by the pipeline), not compiled in: like the TUF root beside
//! them, they are covered by the bundle's signature and sums, and whoever can change them
//! in the bundle's folder can change the binary too. As data, one compiled binary can be
//! packaged with other keys (a release engineer's, or a test's) without being built again.

use crate::error::Failure;
use timb_release::{
    Keyring, Policy, PublicKey, Role, SignatureKind, Subject, TrustedComment, Unverified,
};

/// Where a bundle version ships its signing policy and keys: `app/VERSION/signing/`.
pub const SIGNING_DIR: &str = "signing";
/// The policy in it, as in the repository.
pub const POLICY_FILE: &str = "policy.toml";
/// The folder of public keys in it, `NAME.pub` each.
pub const KEYS_DIR: &str = "keys";

/// More public key files than this in one folder is not a signing folder; a minisign public
/// key file is about 100 bytes, the policy a few kilobytes (the pipeline keeps to the same).
const MAX_KEYS: usize = timb_release::MAX_SHIPPED_KEYS;
const MAX_FILE: u64 = timb_release::MAX_SHIPPED_FILE;

/// Which keys may sign a bundle, and the policy that says so.
#[derive(Debug, Clone)]
pub struct BundleTrust {
    keys: Keyring,
    policy: Policy,
}

impl BundleTrust {
    /// The keys and policy a bundle ships in `dir` (`app/VERSION/signing/`, the layout of
    /// the repository's `signing/`): `policy.toml` and every `keys/NAME.pub`. A missing or
    /// unreadable file, a key that does not parse, or a policy naming a key that is not
    /// there is an error: with no trust, no update is ever installed.
    pub fn read(dir: &std::path::Path) -> Result<BundleTrust, String> {
        let read = |p: &std::path::Path| -> Result<String, String> {
            use std::io::Read;
            let shown = p.strip_prefix(dir).unwrap_or(p).display().to_string();
            let err = |e: std::io::Error| format!("{SIGNING_DIR}/{shown}: {e}");
            // Read through a cap: a huge file, or a FIFO, cannot hold the update check.
            let mut text = String::new();
            std::fs::File::open(p)
                .map_err(err)?
                .take(MAX_FILE + 1)
                .read_to_string(&mut text)
                .map_err(err)?;
            if text.len() as u64 > MAX_FILE {
                return Err(format!(
                    "{SIGNING_DIR}/{shown}: larger than {MAX_FILE} bytes"
                ));
            }
            Ok(text)
        };
        let policy = Policy::parse(&read(&dir.join(POLICY_FILE))?)
            .map_err(|e| format!("{SIGNING_DIR}/{POLICY_FILE}: {e}"))?;
        let mut names = Vec::new();
        // No keys folder is no key: a policy that lists none is then still valid. Any other
        // failure to read it is an error, not "no keys".
        let listed = match std::fs::read_dir(dir.join(KEYS_DIR)) {
            Ok(rd) => Some(rd),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{SIGNING_DIR}/{KEYS_DIR}: {e}")),
        };
        if let Some(rd) = listed {
            for e in rd {
                let e = e.map_err(|e| format!("{SIGNING_DIR}/{KEYS_DIR}: {e}"))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(stem) = name.strip_suffix(".pub") {
                    names.push(stem.to_string());
                }
                if names.len() > MAX_KEYS {
                    return Err(format!(
                        "{SIGNING_DIR}/{KEYS_DIR}: more than {MAX_KEYS} keys"
                    ));
                }
            }
        }
        names.sort();
        let mut keys = Keyring::new();
        for name in names {
            let text = read(&dir.join(KEYS_DIR).join(format!("{name}.pub")))?;
            keys.add(
                PublicKey::parse(&text)
                    .map_err(|e| format!("{SIGNING_DIR}/{KEYS_DIR}/{name}.pub: {e}"))?,
                format!("release key {name}"),
            );
        }
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
    /// Returns the commit the signature names, which the builders must have vouched for.
    pub(crate) fn check(
        &self,
        minisig: &[u8],
        name: &str,
        data: &[u8],
    ) -> Result<timb_release::SourceCommit, Failure> {
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
            SignatureKind::Release => Ok(checked.into_body().commit().clone()),
            SignatureKind::Development => Err(Failure::DevelopmentSignature),
        }
    }

    /// Checks that enough builders vouched for archive `name` (bytes `data`, signed as
    /// built from `commit`): `signatures` (a `.builders` file) over `sums` (the release's
    /// published sums, which must list `name` with `data`'s sha256), for the version the
    /// name gives and that commit.
    pub(crate) fn check_vouched(
        &self,
        sums: &[u8],
        signatures: &[u8],
        name: &str,
        data: &[u8],
        commit: &timb_release::SourceCommit,
    ) -> Result<(), Failure> {
        use timb_release::builders::{check_listed, check_quorum, split_signatures};
        use timb_release::builders::{QuorumError, PUBLISHED_SUMS_FILE};
        let text = std::str::from_utf8(signatures).map_err(|_| {
            Failure::Unvouched(QuorumError::TooFew {
                file: PUBLISHED_SUMS_FILE.into(),
                count: 0,
                threshold: self.policy.role(Role::Builders).threshold(),
                detail: "; the builders' signatures are not text".into(),
            })
        })?;
        let subject = Subject {
            name: PUBLISHED_SUMS_FILE,
            data: sums,
        };
        let vouched = check_quorum(&split_signatures(text), &self.keys, &self.policy, &subject)
            .map_err(Failure::Unvouched)?;
        let version = timb_release::Target::parse_archive_name(name).map(|(v, _)| v);
        if version.as_ref() != Some(&vouched.version)
            || commit.exact() != Some(vouched.commit.as_str())
        {
            return Err(Failure::Unvouched(QuorumError::Disagree {
                a: format!("the archive is {name}, signed as built from {commit}"),
                b: format!(
                    "the builders vouched for {} at {}",
                    vouched.version, vouched.commit
                ),
            }));
        }
        check_listed(
            PUBLISHED_SUMS_FILE,
            sums,
            name,
            &timb_release::Sha256::of(data),
        )
        .map_err(Failure::Unvouched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository_signing() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../signing")
    }

    #[test]
    fn the_repository_signing_folder_reads() {
        BundleTrust::read(&repository_signing()).unwrap();
    }

    #[test]
    fn a_missing_policy_a_bad_key_or_an_unlisted_one_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let e = BundleTrust::read(dir).unwrap_err();
        assert!(e.contains("signing/policy.toml"), "{e}");
        let policy = std::fs::read_to_string(repository_signing().join(POLICY_FILE)).unwrap();
        std::fs::write(dir.join(POLICY_FILE), &policy).unwrap();
        // With the repository's keys (none yet, or the release keys it lists).
        std::fs::create_dir(dir.join(KEYS_DIR)).unwrap();
        // (git keeps no empty folder: no keys/ in a clone is no key.)
        for e in std::fs::read_dir(repository_signing().join(KEYS_DIR))
            .into_iter()
            .flatten()
        {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(KEYS_DIR).join(e.file_name())).unwrap();
        }
        BundleTrust::read(dir).unwrap();
        std::fs::write(dir.join("keys/broken.pub"), "not a key").unwrap();
        let e = BundleTrust::read(dir).unwrap_err();
        assert!(e.contains("signing/keys/broken.pub"), "{e}");
        std::fs::remove_file(dir.join("keys/broken.pub")).unwrap();
        // A policy listing a key whose file is not shipped.
        let listed = "[bundle]\nkeys = [\"0123456789ABCDEF\"]\n\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = []\nthreshold = 2\n";
        std::fs::write(dir.join(POLICY_FILE), listed).unwrap();
        assert!(BundleTrust::read(dir).is_err());
    }
}
