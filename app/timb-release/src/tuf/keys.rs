//! TUF public keys and signature verification through `ring`.
//!
//! Supported, as securesystemslib writes them:
//! - `ed25519` / scheme `ed25519`: `keyval.public` is the 32-byte key in hex;
//! - `ecdsa` (or `ecdsa-sha2-nistp256`) / scheme `ecdsa-sha2-nistp256` (and `-nistp384`):
//!   `keyval.public` is a SubjectPublicKeyInfo PEM, signatures are DER;
//! - `rsa` / scheme `rsassa-pss-sha256`: SubjectPublicKeyInfo PEM; the salt is the digest
//!   length, which is what securesystemslib signs with (ring checks no other length).
//!
//! Signatures are hex. A key of another type is kept but verifies nothing, so that a root
//! listing one unknown key stays usable through its other keys.

use base64::Engine;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A key as root lists it. Key ids are opaque strings chosen by the repository and are
/// never recomputed (some real repositories' ids are not the hash of the key).
#[derive(Debug, Clone, Deserialize)]
pub struct Key {
    pub keytype: String,
    pub scheme: String,
    pub keyval: BTreeMap<String, Value>,
}

/// A key ready to verify: its algorithm and the raw key bytes ring takes.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    algorithm: &'static dyn VerificationAlgorithm,
    /// The raw public key: two key ids whose keys have the same bytes are one key.
    bytes: Vec<u8>,
}

impl VerifyingKey {
    /// `None` when the key's type or scheme is not supported or its value is malformed:
    /// such a key can sign nothing.
    pub(crate) fn from_key(key: &Key) -> Option<VerifyingKey> {
        let public = key.keyval.get("public")?.as_str()?;
        let (algorithm, bytes): (&'static dyn VerificationAlgorithm, Vec<u8>) =
            match (key.keytype.as_str(), key.scheme.as_str()) {
                ("ed25519", "ed25519") => {
                    let raw = hex::decode(public).ok()?;
                    (raw.len() == 32).then_some(())?;
                    (&signature::ED25519, raw)
                }
                ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => (
                    &signature::ECDSA_P256_SHA256_ASN1,
                    spki(public, Spki::EcP256)?,
                ),
                ("ecdsa" | "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384") => (
                    &signature::ECDSA_P384_SHA384_ASN1,
                    spki(public, Spki::EcP384)?,
                ),
                ("rsa", "rsassa-pss-sha256") => (
                    &signature::RSA_PSS_2048_8192_SHA256,
                    spki(public, Spki::Rsa)?,
                ),
                _ => return None,
            };
        Some(VerifyingKey { algorithm, bytes })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `sig_hex` is a valid signature over `message`.
    pub(crate) fn verify(&self, message: &[u8], sig_hex: &str) -> bool {
        let Ok(sig) = hex::decode(sig_hex) else {
            return false;
        };
        UnparsedPublicKey::new(self.algorithm, &self.bytes)
            .verify(message, &sig)
            .is_ok()
    }
}

#[derive(Clone, Copy)]
enum Spki {
    EcP256,
    EcP384,
    Rsa,
}

// Object identifiers, as DER content bytes.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The key bytes ring takes (an uncompressed EC point, or a PKCS#1 RSAPublicKey) from a
/// `PUBLIC KEY` PEM, after checking that its algorithm is the one the scheme names.
fn spki(pem: &str, kind: Spki) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PUBLIC KEY-----")?
        .strip_suffix("-----END PUBLIC KEY-----")?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let (spki, rest) = der_take(&der, 0x30)?;
    rest.is_empty().then_some(())?;
    let (alg, rest) = der_take(spki, 0x30)?;
    let (bits, rest) = der_take(rest, 0x03)?;
    rest.is_empty().then_some(())?;
    let (oid, params) = der_take(alg, 0x06)?;
    match kind {
        Spki::EcP256 | Spki::EcP384 => {
            let want = if matches!(kind, Spki::EcP256) {
                OID_P256
            } else {
                OID_P384
            };
            let (curve, rest) = der_take(params, 0x06)?;
            (oid == OID_EC_PUBLIC_KEY && curve == want && rest.is_empty()).then_some(())?;
        }
        Spki::Rsa => {
            // The parameters are an explicit NULL.
            (oid == OID_RSA && params == [0x05, 0x00]).then_some(())?;
        }
    }
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then(|| key.to_vec())
}

/// One DER element with tag `tag` at the start of `input`: its contents and what follows.
fn der_take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    (t == tag).then_some(())?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, after) = rest.split_at(n);
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_keys_verify_nothing_and_do_not_panic() {
        let key = |t: &str, s: &str, p: &str| Key {
            keytype: t.into(),
            scheme: s.into(),
            keyval: [("public".to_string(), Value::String(p.into()))].into(),
        };
        for k in [
            key("ed25519", "ed25519", "00"),
            key("ed25519", "ed25519", "zz"),
            key("ed25519", "ecdsa-sha2-nistp256", &"00".repeat(32)),
            key(
                "ecdsa",
                "ecdsa-sha2-nistp256",
                "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----",
            ),
            key(
                "ecdsa",
                "ecdsa-sha2-nistp256",
                "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----",
            ),
            key(
                "rsa",
                "rsassa-pss-sha256",
                "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
            ),
            key("gpg", "x", "y"),
        ] {
            assert!(VerifyingKey::from_key(&k).is_none(), "{k:?}");
        }
        assert!(der_take(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 0x30).is_none());
        assert!(der_take(&[0x30, 0x81], 0x30).is_none());
    }
}
