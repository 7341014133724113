//! minisign signatures over bundles: key handling, the trusted comment, checks.

use crate::util;
use anyhow::{bail, Context, Result};
use minisign::{PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The local development key's password. It protects nothing: the key only
/// exists so a fresh checkout can produce a signed bundle, and every bundle it
/// signs says so in its trusted comment.
const DEV_KEY_PASSWORD: &str = "timb-local-development-key-not-for-release";
pub const DEV_KEY_MARK: &str = "DEVELOPMENT-KEY-NOT-FOR-RELEASE";

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
/// (`.pub`) must be one of `signing/keys/`.
pub fn release_signer(key: &Path) -> Result<Signer> {
    let text =
        std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?;
    let password = std::env::var("TIMB_SIGNING_PASSWORD").ok();
    let sk = SecretKey::from_box(
        SecretKeyBox::from_string(&text).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?,
        password,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let pk_path = key.with_extension("pub");
    let pk = read_public_key(&pk_path).with_context(|| {
        format!(
            "the public key {} must sit beside the secret key",
            pk_path.display()
        )
    })?;
    if pk.keynum() != sk.keynum() {
        bail!(
            "{} is not the public half of {}",
            pk_path.display(),
            key.display()
        );
    }
    Ok(Signer { sk, pk, dev: false })
}

impl Signer {
    pub fn key_id(&self) -> String {
        key_id(self.pk.keynum())
    }

    /// Writes `<file>.minisig` with the given trusted comment.
    pub fn sign_file(&self, file: &Path, trusted_comment: &str) -> Result<PathBuf> {
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
            Some(trusted_comment),
            Some(&untrusted),
        )
        .map_err(|e| anyhow::anyhow!("signing {}: {e}", file.display()))?;
        let out = sig_path(file);
        std::fs::write(&out, sig.to_string())?;
        Ok(out)
    }
}

pub fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

/// `timb file:<name> version:<v> target:<t> sha256:<hex> commit:<c> [key:...]`:
/// binding the name and version means a renamed or downgraded file fails.
pub fn trusted_comment(
    name: &str,
    version: &str,
    target: &str,
    sha256: &str,
    commit: &str,
    dev: bool,
) -> String {
    let mut c = format!(
        "timb file:{name} version:{version} target:{target} sha256:{sha256} commit:{commit}"
    );
    if dev {
        c.push_str(&format!(" key:{DEV_KEY_MARK}"));
    }
    c
}

pub fn parse_trusted_comment(c: &str) -> Result<BTreeMap<String, String>> {
    let mut words = c.split_whitespace();
    if words.next() != Some("timb") {
        bail!("the signed comment is not a timb comment: {c:?}");
    }
    let mut m = BTreeMap::new();
    for w in words {
        let (k, v) = w
            .split_once(':')
            .with_context(|| format!("malformed field {w:?} in the signed comment"))?;
        if m.insert(k.to_string(), v.to_string()).is_some() {
            bail!("field {k} appears twice in the signed comment");
        }
    }
    for required in ["file", "version", "target", "sha256"] {
        if !m.contains_key(required) {
            bail!("the signed comment has no {required} field");
        }
    }
    Ok(m)
}

pub struct TrustedKey {
    pub pk: PublicKey,
    pub label: String,
    pub dev: bool,
}

pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKeyBox::from_string(&text)
        .and_then(|b| b.into_public_key())
        .map_err(|e| anyhow::anyhow!("{} is not a minisign public key: {e}", path.display()))
}

/// The release keys in `signing/keys/`, plus this machine's development key if
/// one exists (marked, so its use is never silent).
pub fn trusted_keys(root: &Path, target_dir: &Path) -> Result<Vec<TrustedKey>> {
    let mut keys = Vec::new();
    let dir = root.join("signing").join("keys");
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
        {
            keys.push(TrustedKey {
                pk: read_public_key(&p)?,
                label: format!("release key {}", p.display()),
                dev: false,
            });
        }
    }
    let dev = dev_public_key_path(target_dir);
    if dev.is_file() {
        keys.push(TrustedKey {
            pk: read_public_key(&dev)?,
            label: format!("LOCAL DEVELOPMENT key {}", dev.display()),
            dev: true,
        });
    }
    Ok(keys)
}

pub fn key_id(keynum: &[u8]) -> String {
    let mut b = [0u8; 8];
    b.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(b))
}

/// Checks `<file>.minisig` against `keys`; returns the key used and the
/// trusted comment.
pub fn verify_file<'k>(file: &Path, keys: &'k [TrustedKey]) -> Result<(&'k TrustedKey, String)> {
    let sig = sig_path(file);
    if !sig.is_file() {
        bail!("no signature: {} is missing", sig.display());
    }
    let text =
        std::fs::read_to_string(&sig).with_context(|| format!("reading {}", sig.display()))?;
    let sbox = SignatureBox::from_string(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a minisign signature: {e}", sig.display()))?;
    let id = key_id(sbox.keynum());
    let key = keys
        .iter()
        .find(|k| k.pk.keynum() == sbox.keynum())
        .with_context(|| {
            format!(
                "{} was signed by key {id}, which is not a trusted key (trusted: {})",
                file.display(),
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.iter()
                        .map(|k| format!("{} [{}]", key_id(k.pk.keynum()), k.label))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        })?;
    let data = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    minisign::verify(&key.pk, &sbox, data, true, false, false).map_err(|e| {
        anyhow::anyhow!(
            "BAD SIGNATURE: {} does not match its signature by key {id} ({e}); the file was changed or the signature belongs to another file",
            file.display()
        )
    })?;
    let comment = sbox
        .trusted_comment()
        .map_err(|e| anyhow::anyhow!("reading the signed comment: {e}"))?;
    Ok((key, comment))
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}

/// Checks a bundle's signature and that its signed comment matches the file.
pub fn check_bundle_signature(
    archive: &Path,
    keys: &[TrustedKey],
) -> Result<(bool, BTreeMap<String, String>)> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .context("the archive path has no file name")?;
    let (key, comment) = verify_file(archive, keys)?;
    let fields = parse_trusted_comment(&comment)?;
    if fields["file"] != name {
        bail!(
            "the signature is for {}, not for {name}: the file was renamed",
            fields["file"]
        );
    }
    let expected_name = crate::bundle::archive_name(&fields["version"], &fields["target"]);
    if expected_name != name {
        bail!(
            "{name} does not carry the signed version {} for {}",
            fields["version"],
            fields["target"]
        );
    }
    let actual = util::sha256_file(archive)?;
    if fields["sha256"] != actual {
        bail!(
            "the signed sha256 {} differs from the file's {actual}",
            fields["sha256"]
        );
    }
    Ok((key.dev, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_round_trip_and_reject_garbage() {
        let c = trusted_comment(
            "timb-1.0.0-linux-x86_64.tar.xz",
            "1.0.0",
            "linux-x86_64",
            "ab",
            "c0ffee",
            true,
        );
        let m = parse_trusted_comment(&c).unwrap();
        assert_eq!(m["version"], "1.0.0");
        assert_eq!(m["key"], DEV_KEY_MARK);
        assert!(parse_trusted_comment("timestamp:123").is_err());
        assert!(parse_trusted_comment("timb file:a file:b version:1 target:t sha256:x").is_err());
        assert!(parse_trusted_comment("timb file:a").is_err());
    }
}
