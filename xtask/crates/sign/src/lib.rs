//! minisign signatures over bundles: the development key, release keys held to
//! `signing/policy.toml`, signing and checking files; Authenticode over the Windows exes
//! ([`authenticode`]). The formats (trusted comment, policy,
//! key ids) and the checks are timb-release's.

pub mod authenticode;
pub mod macos;

use anyhow::{bail, Context, Result};
use minisign::{PublicKey, PublicKeyBox, SecretKey, SecretKeyBox};
use std::path::{Path, PathBuf};
use timb_release::{
    Checked, KeyId, Keyring, Policy, Role, Subject, TrustedComment, Unverified,
    DEVELOPMENT_KEY_MARK as DEV_KEY_MARK,
};

/// The local development key's password. It protects nothing: the key only
/// exists so a fresh checkout can produce a signed bundle, and every bundle it
/// signs says so in its trusted comment.
const DEV_KEY_PASSWORD: &str = "timb-local-development-key-not-for-release";

pub struct Signer {
    sk: SecretKey,
    pk: PublicKey,
    pub dev: bool,
}

pub fn dev_key_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("timb-dev-key")
}

pub fn dev_public_key_path(target_dir: &Path) -> PathBuf {
    dev_key_dir(target_dir).join("timb-dev.pub")
}

/// Loads the local development key, creating it on first use.
pub fn dev_signer(target_dir: &Path) -> Result<Signer> {
    let dir = dev_key_dir(target_dir);
    let sk_path = dir.join("timb-dev.key");
    let pk_path = dev_public_key_path(target_dir);
    if !sk_path.is_file() {
        std::fs::create_dir_all(&dir)?;
        let kp = minisign::KeyPair::generate_encrypted_keypair(Some(DEV_KEY_PASSWORD.into()))
            .map_err(|e| anyhow::anyhow!("generating the development key: {e}"))?;
        let sk_box = kp
            .sk
            .to_box(Some(
                "timb LOCAL DEVELOPMENT secret key, never for releases",
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let pk_box = kp.pk.to_box().map_err(|e| anyhow::anyhow!("{e}"))?;
        write_private(&sk_path, sk_box.to_string().as_bytes())?;
        std::fs::write(&pk_path, pk_box.to_string())?;
    }
    let sk = SecretKey::from_box(
        SecretKeyBox::from_string(&std::fs::read_to_string(&sk_path)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", sk_path.display()))?,
        Some(DEV_KEY_PASSWORD.into()),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", sk_path.display()))?;
    let pk = read_public_key(&pk_path)?;
    Ok(Signer { sk, pk, dev: true })
}

/// A release key: a minisign secret key file, its password from
/// `TIMB_SIGNING_PASSWORD` or asked on the terminal; the public key beside it
/// (`.pub`) must be one of `signing/keys/` and listed for `[bundle]` in
/// `signing/policy.toml`, or the key is refused before anything is built.
pub fn release_signer(root: &Path, key: &Path) -> Result<Signer> {
    let (policy, keys) = repository_trust(root)?;
    release_signer_with(
        key,
        std::env::var("TIMB_SIGNING_PASSWORD").ok(),
        &policy,
        &keys,
    )
}

fn release_signer_with(
    key: &Path,
    password: Option<String>,
    policy: &Policy,
    keys: &Keyring,
) -> Result<Signer> {
    let pk_path = key.with_extension("pub");
    let pk = read_public_key(&pk_path).with_context(|| {
        format!(
            "the public key {} must sit beside the secret key",
            pk_path.display()
        )
    })?;
    // Checked before the password is asked for and long before the build.
    let id = key_id(pk.keynum());
    let role = policy.role(Role::Bundle);
    if !role.allows(id) {
        bail!(
            "key {id} ({}) is not a release key: signing/policy.toml does not list it for [bundle] (listed: {}); a bundle signed with it would be refused by `cargo xtask verify` and the updater",
            pk_path.display(),
            if role.keys().is_empty() {
                "none".to_string()
            } else {
                role.keys()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    let Some(listed) = keys.get(id) else {
        bail!("key {id} is in signing/policy.toml but not in signing/keys/");
    };
    if read_checking_key(&pk_path)? != *listed {
        bail!(
            "{} has the id of {} but is not the same key",
            pk_path.display(),
            keys.label(id).unwrap_or_default()
        );
    }
    let sk = open_secret(key, &pk, &pk_path, password)?;
    Ok(Signer { sk, pk, dev: false })
}

fn open_secret(
    key: &Path,
    pk: &PublicKey,
    pk_path: &Path,
    password: Option<String>,
) -> Result<SecretKey> {
    let text =
        std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let sk = SecretKey::from_box(
        SecretKeyBox::from_string(&text).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?,
        password,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    if pk.keynum() != sk.keynum() {
        bail!(
            "{} is not the public half of {}",
            pk_path.display(),
            key.display()
        );
    }
    Ok(sk)
}

/// A builder's own key (`cargo xtask rebuild`, `bundle --builder-key`): a minisign secret
/// key file, its password from `TIMB_BUILDER_PASSWORD` or asked on the terminal, the public
/// key beside it (`.pub`). Any key can sign; only the keys `signing/policy.toml` lists under
/// `[builders]` count, which is said here, before a rebuild of many minutes.
pub fn builder_signer(root: &Path, key: &Path) -> Result<Signer> {
    let pk_path = key.with_extension("pub");
    let pk = read_public_key(&pk_path).with_context(|| {
        format!(
            "the public key {} must sit beside the builder key",
            pk_path.display()
        )
    })?;
    let id = key_id(pk.keynum());
    let (policy, _) = repository_trust(root)?;
    if !policy.role(Role::Builders).allows(id) {
        eprintln!(
            "note: builder key {id} is not listed under [builders] in signing/policy.toml: its signatures count only once it is"
        );
    }
    let sk = open_secret(
        key,
        &pk,
        &pk_path,
        std::env::var("TIMB_BUILDER_PASSWORD").ok(),
    )?;
    Ok(Signer { sk, pk, dev: false })
}

impl Signer {
    pub fn key_id(&self) -> KeyId {
        key_id(self.pk.keynum())
    }

    /// Writes `<file>.minisig` with the given trusted comment, whose development mark must
    /// say what this key is.
    pub fn sign_file(&self, file: &Path, comment: &TrustedComment) -> Result<PathBuf> {
        if comment.is_development() != self.dev {
            bail!("a development signature must be marked as one, and only it");
        }
        let trusted_comment = comment.to_string();
        let data = std::fs::File::open(file)?;
        let untrusted = if self.dev {
            format!("signature from the timb {DEV_KEY_MARK}")
        } else {
            "signature from a timb release key".to_string()
        };
        let sig = minisign::sign(
            Some(&self.pk),
            &self.sk,
            data,
            Some(&trusted_comment),
            Some(&untrusted),
        )
        .map_err(|e| anyhow::anyhow!("signing {}: {e}", file.display()))?;
        let out = sig_path(file);
        std::fs::write(&out, sig.to_string())?;
        Ok(out)
    }
}

impl Signer {
    /// Writes `out`: this builder's signature over `data`, a sums file as the builder read
    /// and checked it (not read again from a folder someone else may write), whose comment
    /// names the builder, the release, the commit and the file's sha256.
    pub fn sign_as_builder(
        &self,
        data: &[u8],
        comment: &timb_release::builders::BuilderComment,
        out: &Path,
    ) -> Result<()> {
        if self.dev {
            bail!("a development key is not a builder's key");
        }
        let untrusted = format!("signature from timb builder {}", comment.builder());
        let sig = minisign::sign(
            Some(&self.pk),
            &self.sk,
            data,
            Some(&comment.to_string()),
            Some(&untrusted),
        )
        .map_err(|e| anyhow::anyhow!("signing {}: {e}", comment.file()))?;
        std::fs::write(out, sig.to_string()).with_context(|| format!("writing {}", out.display()))
    }
}

pub fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKeyBox::from_string(&text)
        .and_then(|b| b.into_public_key())
        .map_err(|e| anyhow::anyhow!("{} is not a minisign public key: {e}", path.display()))
}

/// A public key file as timb-release reads it (for checking signatures).
pub fn read_checking_key(path: &Path) -> Result<timb_release::PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    timb_release::PublicKey::parse(&text).with_context(|| path.display().to_string())
}

/// `signing/policy.toml` and the release keys of `signing/keys/`, every key the policy
/// names present among them.
pub fn repository_trust(root: &Path) -> Result<(Policy, Keyring)> {
    signing_trust(&root.join("signing"))
}

/// The policy and keys of a signing folder laid out as the repository's `signing/`
/// (`policy.toml`, `keys/NAME.pub`): a release engineer's, or a bundle's.
pub fn signing_trust(dir: &Path) -> Result<(Policy, Keyring)> {
    let policy_path = dir.join("policy.toml");
    let text = std::fs::read_to_string(&policy_path)
        .with_context(|| format!("reading {}", policy_path.display()))?;
    let policy = Policy::parse(&text).with_context(|| policy_path.display().to_string())?;
    let mut keys = Keyring::new();
    let dir = dir.join("keys");
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        {
            let key = read_checking_key(&p)?;
            // Two files with one id would leave which key counts to the order of reading.
            if let Some(other) = keys.label(key.id()) {
                bail!("{} has the key id of {other}", p.display());
            }
            keys.add(key, format!("release key {}", p.display()));
        }
    }
    policy
        .check_keys(&keys)
        .with_context(|| policy_path.display().to_string())?;
    Ok((policy, keys))
}

/// The keys `verify` checks with: the release keys in `signing/keys/`, plus this machine's
/// development key if one exists. Being here makes no key a release key: only the policy
/// does, and a development key's signatures pass only as marked development signatures.
pub fn trusted_keys(root: &Path, target_dir: &Path) -> Result<(Policy, Keyring)> {
    trusted_keys_in(&root.join("signing"), target_dir)
}

/// As [`trusted_keys`], with another signing folder than the repository's.
pub fn trusted_keys_in(signing: &Path, target_dir: &Path) -> Result<(Policy, Keyring)> {
    let (policy, mut keys) = signing_trust(signing)?;
    let dev = dev_public_key_path(target_dir);
    if dev.is_file() {
        keys.add(
            read_checking_key(&dev)?,
            format!("LOCAL DEVELOPMENT key {}", dev.display()),
        );
    }
    Ok((policy, keys))
}

pub fn key_id(keynum: &[u8]) -> KeyId {
    let mut b = [0u8; 8];
    b.copy_from_slice(&keynum[..8]);
    KeyId::from_bytes(b)
}

/// Checks `<file>.minisig` over `file` against `keys` and the policy's bundle role, and that
/// its signed comment matches the file (name, version and target, sha256).
pub fn check_signature(
    file: &Path,
    keys: &Keyring,
    policy: &Policy,
) -> Result<Checked<TrustedComment>> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file path has no file name")?;
    let sig = sig_path(file);
    if !sig.is_file() {
        bail!("no signature: {} is missing", sig.display());
    }
    let text =
        std::fs::read_to_string(&sig).with_context(|| format!("reading {}", sig.display()))?;
    let unverified = Unverified::<TrustedComment>::parse(&text)
        .with_context(|| format!("reading {}", sig.display()))?;
    let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    unverified
        .check(keys, policy, Role::Bundle, &Subject { name, data: &data })
        .with_context(|| format!("checking {}", file.display()))
}

/// Creates a secret key file owner-only from the start (never world-readable, not even
/// briefly) and syncs it; refuses to replace an existing file.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use timb_release::{SignatureKind, SourceCommit, Target};

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
    }

    fn sha256_file(p: &Path) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
    }

    fn scratch(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("xtask-sign-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A password-protected key pair as `minisign -G` writes it: `<dir>/k.key`, `<dir>/k.pub`.
    fn key_files(dir: &Path) -> (PathBuf, KeyId) {
        let kp = minisign::KeyPair::generate_encrypted_keypair(Some("pw".into())).unwrap();
        let sk = dir.join("k.key");
        std::fs::write(&sk, kp.sk.to_box(None).unwrap().to_string()).unwrap();
        std::fs::write(dir.join("k.pub"), kp.pk.to_box().unwrap().to_string()).unwrap();
        (sk, key_id(kp.pk.keynum()))
    }

    fn policy(bundle: &[KeyId]) -> Policy {
        let keys: Vec<String> = bundle.iter().map(|k| format!("\"{k}\"")).collect();
        Policy::parse(&format!(
            "[bundle]\nkeys = [{}]\n[update-metadata]\nkeys = []\nthreshold = 2\n[builders]\nkeys = []\nthreshold = 2\n",
            keys.join(", ")
        ))
        .unwrap()
    }

    fn comment(file: &Path, dev: bool) -> TrustedComment {
        TrustedComment::new(
            file.file_name().unwrap().to_str().unwrap(),
            "0.1.0".parse().unwrap(),
            Target::LinuxX86_64,
            sha256_file(file).parse().unwrap(),
            SourceCommit::Unknown,
            dev,
        )
        .unwrap()
    }

    #[test]
    fn the_repository_policy_and_keys_agree() {
        let (policy, keys) = repository_trust(&repo_root()).unwrap();
        policy.check_keys(&keys).unwrap();
    }

    #[test]
    fn bundle_key_refuses_a_key_the_policy_does_not_list() {
        let d = scratch("refuse");
        let (sk, id) = key_files(&d);
        let mut keys = Keyring::new();
        keys.add(
            read_checking_key(&d.join("k.pub")).unwrap(),
            "release key k.pub",
        );
        let e = release_signer_with(&sk, Some("pw".into()), &policy(&[]), &keys)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(&id.to_string()) && e.contains("does not list it for [bundle]"),
            "{e}"
        );
        // The repository's own policy lists no release key yet: refused there too.
        let (repo_policy, repo_keys) = repository_trust(&repo_root()).unwrap();
        assert!(release_signer_with(&sk, Some("pw".into()), &repo_policy, &repo_keys).is_err());
        // Listed, and in signing/keys/: accepted.
        let s = release_signer_with(&sk, Some("pw".into()), &policy(&[id]), &keys).unwrap();
        assert!(!s.dev);
        assert_eq!(s.key_id(), id);
        // Listed, but signing/keys/ holds another key: refused.
        let other = scratch("refuse-other");
        key_files(&other);
        let mut wrong = Keyring::new();
        wrong.add(read_checking_key(&other.join("k.pub")).unwrap(), "other");
        assert!(release_signer_with(&sk, Some("pw".into()), &policy(&[id]), &wrong).is_err());
        std::fs::remove_dir_all(d).unwrap();
        std::fs::remove_dir_all(other).unwrap();
    }

    #[test]
    fn verify_refuses_a_release_signature_by_a_key_outside_the_policy() {
        let d = scratch("verify");
        let (sk, id) = key_files(&d);
        let mut keys = Keyring::new();
        keys.add(read_checking_key(&d.join("k.pub")).unwrap(), "k.pub");
        let listed = policy(&[id]);
        let signer = release_signer_with(&sk, Some("pw".into()), &listed, &keys).unwrap();
        let file = d.join("timb-0.1.0-linux-x86_64.tar.xz");
        std::fs::write(&file, b"a bundle").unwrap();
        signer.sign_file(&file, &comment(&file, false)).unwrap();

        let c = check_signature(&file, &keys, &listed).unwrap();
        assert_eq!(c.kind(), SignatureKind::Release);
        let e = format!(
            "{:#}",
            check_signature(&file, &keys, &policy(&[])).unwrap_err()
        );
        assert!(
            e.contains(&id.to_string()) && e.contains("does not list"),
            "{e}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_development_key_signs_only_marked_and_passes_only_as_development() {
        let d = scratch("dev");
        let signer = dev_signer(&d).unwrap();
        let file = d.join("timb-0.1.0-linux-x86_64.tar.xz");
        std::fs::write(&file, b"a bundle").unwrap();
        assert!(signer.sign_file(&file, &comment(&file, false)).is_err());
        signer.sign_file(&file, &comment(&file, true)).unwrap();
        let mut keys = Keyring::new();
        keys.add(
            read_checking_key(&dev_public_key_path(&d)).unwrap(),
            "development",
        );
        let c = check_signature(&file, &keys, &policy(&[])).unwrap();
        assert_eq!(c.kind(), SignatureKind::Development);
        let sig = std::fs::read_to_string(sig_path(&file)).unwrap();
        assert!(sig.contains(DEV_KEY_MARK), "{sig}");
        std::fs::remove_dir_all(d).unwrap();
    }
}
