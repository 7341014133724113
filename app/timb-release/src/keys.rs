//! minisign public keys and their ids.

use crate::sha::clip;
use base64::Engine;
use std::fmt;
use std::str::FromStr;

/// A minisign key id: 8 bytes, shown as 16 uppercase hex digits of the little-endian number.
/// Read with or without leading zeros: stock minisign 0.11 writes the id into a public
/// key's comment unpadded (one key in sixteen has a 15-digit id there), and a release
/// engineer copies it into `signing/policy.toml` from that line.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; 8]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0:?} is not a minisign key id (up to 16 hex digits)")]
    Id(String),
    #[error("not a minisign public key: {0}")]
    PublicKey(String),
    #[error("not a minisign signature: {0}")]
    Signature(String),
}

impl KeyId {
    /// From the 8 bytes minisign stores (its `keynum`).
    pub fn from_bytes(bytes: [u8; 8]) -> KeyId {
        KeyId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<KeyId, KeyError> {
        // The same number with or without its leading zeros (see the type's doc).
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::Id(clip(s)));
        }
        let n = u64::from_str_radix(s, 16).map_err(|_| KeyError::Id(clip(s)))?;
        Ok(KeyId(n.to_le_bytes()))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A minisign binary blob (`algorithm[2] ‖ key id[8] ‖ …`) of exactly `len` bytes,
/// base64-encoded on the second line of a key or signature file, and its key id.
pub(crate) fn blob(line: Option<&str>, len: usize) -> Option<(KeyId, Vec<u8>)> {
    let bin = base64::engine::general_purpose::STANDARD
        .decode(line?.trim_end_matches('\r'))
        .ok()?;
    if bin.len() != len {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(bin.get(2..10)?);
    Some((KeyId(id), bin))
}

/// A minisign public key (the `.pub` file format: an untrusted comment line, then the key).
#[derive(Clone)]
pub struct PublicKey {
    id: KeyId,
    /// The decoded key line: algorithm, id and Ed25519 key.
    bytes: Vec<u8>,
    key: minisign_verify::PublicKey,
}

/// Two keys are the same when their key lines are (comments do not count).
impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let mut lines = text.lines();
        if !lines
            .next()
            .is_some_and(|l| l.starts_with("untrusted comment:"))
        {
            return Err(KeyError::PublicKey(
                "the first line must be an `untrusted comment:`".into(),
            ));
        }
        let (id, bytes) = blob(lines.next(), 42)
            .ok_or_else(|| KeyError::PublicKey("the second line is not a base64 key".into()))?;
        let key = minisign_verify::PublicKey::decode(text)
            .map_err(|e| KeyError::PublicKey(e.to_string()))?;
        Ok(PublicKey { id, bytes, key })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn inner(&self) -> &minisign_verify::PublicKey {
        &self.key
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

/// The keys a check may use, each with a label saying where it came from (for messages).
/// Being in the keyring does not make a key a release key: only the [`Policy`](crate::Policy)
/// does.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<(PublicKey, String)>,
}

impl Keyring {
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Adds a key; a second key with the same id replaces nothing and is ignored.
    pub fn add(&mut self, key: PublicKey, label: impl Into<String>) {
        if self.get(key.id()).is_none() {
            self.keys.push((key, label.into()));
        }
    }

    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|(k, _)| k.id == id).map(|(k, _)| k)
    }

    pub fn label(&self, id: KeyId) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k.id == id)
            .map(|(_, l)| l.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `ID [label], …` or `none`.
    pub fn describe(&self) -> String {
        if self.keys.is_empty() {
            return "none".into();
        }
        self.keys
            .iter()
            .map(|(k, l)| format!("{} [{l}]", k.id))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // minisign-verify's own test key.
    const PUB: &str = "untrusted comment: minisign public key E7620F1842B4E81F\nRWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n";

    #[test]
    fn key_ids_are_what_minisign_prints() {
        let k = PublicKey::parse(PUB).unwrap();
        assert_eq!(k.id().to_string(), "E7620F1842B4E81F");
        assert_eq!("E7620F1842B4E81F".parse::<KeyId>().unwrap(), k.id());
        assert_eq!("e7620f1842b4e81f".parse::<KeyId>().unwrap(), k.id());
        // As minisign 0.11 writes an id with a leading zero into a key's comment.
        let id: KeyId = "8AF4A79D2499221".parse().unwrap();
        assert_eq!(id.to_string(), "08AF4A79D2499221");
        assert_eq!("08AF4A79D2499221".parse::<KeyId>().unwrap(), id);
        assert_eq!(
            "1".parse::<KeyId>().unwrap().to_string(),
            "0000000000000001"
        );
        for bad in [
            "",
            "E7620F1842B4E81FF",
            " E7620F1842B4E81F",
            "E7620F1842B4E81F\n",
            "0x7620F1842B4E81F",
            "+7620F1842B4E81F",
            "G7620F1842B4E81F",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_public_keys_are_refused() {
        for bad in [
            "",
            "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n",
            "untrusted comment: x\n",
            "untrusted comment: x\nRWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7\n",
            "untrusted comment: x\n!!!!\n",
            "untrusted comment: x\nééééééééééééééééééééééééééééééééééééééééééééééééééééééé\n",
        ] {
            assert!(PublicKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_equal_by_their_key_line() {
        let a = PublicKey::parse(PUB).unwrap();
        let b =
            PublicKey::parse(&PUB.replace("public key E7620F1842B4E81F", "other words")).unwrap();
        assert_eq!(a, b);
        let other = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let c = PublicKey::parse(&other.pk.to_box().unwrap().to_string()).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn keyring_describes_its_keys() {
        let mut r = Keyring::new();
        assert_eq!(r.describe(), "none");
        r.add(PublicKey::parse(PUB).unwrap(), "test key");
        r.add(PublicKey::parse(PUB).unwrap(), "again");
        assert_eq!(r.describe(), "E7620F1842B4E81F [test key]");
    }
}
