//! Role keys at rest. TUF defines no format for secret keys, so this is ours: a JSON file
//! with the public key and key id in the clear (a policy can name the key without its
//! password) and the ed25519 seed sealed with ChaCha20-Poly1305 under a key that scrypt
//! derives from the password, as minisign protects its secret keys.

use anyhow::{anyhow, bail, Context, Result};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use sha2::Digest;
use timb_release::tuf::canonical_json;

const FORMAT: &str = "timb-tuf-key-1";
/// A key's public half alone (`NAME.pub.json`), what roles files list.
pub const PUBLIC_FORMAT: &str = "timb-tuf-public-key-1";

/// scrypt's cost as log2(N), with r = 8, p = 1: 2^17 takes 128 MiB and about a second, which
/// makes guessing a release password expensive. Tests may go as low as [`MIN_LOG_N`].
pub const DEFAULT_LOG_N: u8 = 17;
pub const MIN_LOG_N: u8 = 10;

/// An opened role key: signs TUF metadata.
pub struct RoleKey {
    pair: Ed25519KeyPair,
    pub keyid: String,
}

impl RoleKey {
    /// The public key as TUF metadata lists it.
    pub fn public(&self) -> Value {
        public_json(self.pair.public_key().as_ref())
    }

    /// `{"keyid", "sig"}` over the canonical form of `signed`.
    pub fn sign(&self, signed: &Value) -> Result<Value> {
        let msg = canonical_json(signed).context("canonical JSON of the metadata")?;
        Ok(json!({"keyid": self.keyid, "sig": hex::encode(self.pair.sign(&msg).as_ref())}))
    }
}

fn public_json(raw: &[u8]) -> Value {
    json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(raw)}})
}

/// The key id securesystemslib gives a key: the SHA-256 of its canonical JSON. (Verifiers
/// treat key ids as opaque; ours are computed the standard way so others can check them.)
pub fn key_id(public: &Value) -> Result<String> {
    Ok(hex::encode(sha2::Sha256::digest(canonical_json(public)?)))
}

fn derive(password: &str, salt: &[u8], log_n: u8) -> Result<LessSafeKey> {
    if !(MIN_LOG_N..=20).contains(&log_n) {
        bail!("scrypt cost log_n={log_n} is outside {MIN_LOG_N}..=20");
    }
    // (These error types implement std's Error only with features we do not need.)
    let params = scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| anyhow!("scrypt: {e}"))?;
    let mut k = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut k)
        .map_err(|e| anyhow!("scrypt: {e}"))?;
    let key = UnboundKey::new(&CHACHA20_POLY1305, &k).map_err(|_| anyhow!("sealing key"))?;
    k.fill(0);
    Ok(LessSafeKey::new(key))
}

/// The additional data the seal covers: the format and the key id, so a sealed seed cannot
/// be moved under another key's public half unnoticed.
fn aad(keyid: &str) -> Vec<u8> {
    format!("{FORMAT}\n{keyid}").into_bytes()
}

/// A new key: the file's text (to be written owner-only) and the opened key.
pub fn generate(password: &str, log_n: u8) -> Result<(String, RoleKey)> {
    if password.is_empty() {
        bail!("refusing an empty password for a role key");
    }
    let rng = SystemRandom::new();
    let mut seed = [0u8; 32];
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; NONCE_LEN];
    for buf in [&mut seed[..], &mut salt[..], &mut nonce[..]] {
        rng.fill(buf).map_err(|_| anyhow!("no randomness"))?;
    }
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|e| anyhow!("ed25519: {e}"))?;
    let public = public_json(pair.public_key().as_ref());
    let keyid = key_id(&public)?;
    let mut sealed = seed.to_vec();
    seed.fill(0);
    derive(password, &salt, log_n)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&keyid)),
            &mut sealed,
        )
        .map_err(|_| anyhow!("sealing the key"))?;
    let file = json!({
        "format": FORMAT,
        "keyid": keyid,
        "public": public,
        "kdf": {"name": "scrypt", "log_n": log_n, "r": 8, "p": 1, "salt": hex::encode(salt)},
        "cipher": "chacha20-poly1305",
        "nonce": hex::encode(nonce),
        "sealed": hex::encode(&sealed),
    });
    let text = serde_json::to_string_pretty(&file)? + "\n";
    Ok((text, RoleKey { pair, keyid }))
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(p)
            .with_context(|| format!("key file: no \"{}\"", path.join(".")))?;
    }
    Ok(cur)
}

fn text_field(v: &Value, path: &[&str]) -> Result<String> {
    field(v, path)?
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("key file: \"{}\" is not text", path.join(".")))
}

/// The public half and key id of a key file or a public key file, without a password.
pub fn read_public(text: &str) -> Result<(String, Value)> {
    let v: Value = serde_json::from_str(text).context("key file is not JSON")?;
    let format = v.get("format").and_then(Value::as_str);
    if format != Some(FORMAT) && format != Some(PUBLIC_FORMAT) {
        bail!("not a timb role key file (format {FORMAT} or {PUBLIC_FORMAT})");
    }
    let public = field(&v, &["public"])?.clone();
    let keyid = text_field(&v, &["keyid"])?;
    if key_id(&public)? != keyid {
        bail!("key file: the key id does not match its public key");
    }
    Ok((keyid, public))
}

/// Opens a key file with its password.
pub fn open(text: &str, password: &str) -> Result<RoleKey> {
    let (keyid, public) = read_public(text)?;
    let v: Value = serde_json::from_str(text)?;
    if v["format"] != FORMAT {
        bail!("a public key file holds no secret key to sign with");
    }
    if text_field(&v, &["kdf", "name"])? != "scrypt"
        || field(&v, &["kdf", "r"])?.as_u64() != Some(8)
        || field(&v, &["kdf", "p"])?.as_u64() != Some(1)
        || text_field(&v, &["cipher"])? != "chacha20-poly1305"
    {
        bail!("key file: unsupported key derivation or cipher");
    }
    let log_n = field(&v, &["kdf", "log_n"])?
        .as_u64()
        .and_then(|n| u8::try_from(n).ok())
        .context("key file: bad log_n")?;
    let salt = hex::decode(text_field(&v, &["kdf", "salt"])?).context("key file: salt")?;
    let nonce: [u8; NONCE_LEN] = hex::decode(text_field(&v, &["nonce"])?)
        .ok()
        .and_then(|n| n.try_into().ok())
        .context("key file: nonce")?;
    let mut sealed = hex::decode(text_field(&v, &["sealed"])?).context("key file: sealed")?;
    let seed = derive(password, &salt, log_n)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&keyid)),
            &mut sealed,
        )
        .map_err(|_| anyhow!("wrong password for key {keyid} (or a damaged key file)"))?;
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| anyhow!("ed25519: {e}"))?;
    sealed.fill(0);
    if public_json(pair.public_key().as_ref()) != public {
        bail!("key file: the sealed key is not the one its public half names");
    }
    Ok(RoleKey { pair, keyid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_opens_with_its_password_only_and_signs() {
        let (text, key) = generate("correct horse", MIN_LOG_N).unwrap();
        let opened = open(&text, "correct horse").unwrap();
        assert_eq!(opened.keyid, key.keyid);
        assert_eq!(
            read_public(&text).unwrap(),
            (key.keyid.clone(), key.public())
        );
        let err = open(&text, "wrong").err().unwrap().to_string();
        assert!(err.contains("wrong password"), "{err}");
        // Another key's sealed seed under this key's public half is refused.
        let (other, _) = generate("correct horse", MIN_LOG_N).unwrap();
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let o: Value = serde_json::from_str(&other).unwrap();
        v["sealed"] = o["sealed"].clone();
        v["nonce"] = o["nonce"].clone();
        v["kdf"] = o["kdf"].clone();
        assert!(open(&v.to_string(), "correct horse").is_err());
        assert!(generate("", MIN_LOG_N).is_err());
    }
}
