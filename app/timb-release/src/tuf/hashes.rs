//! The hash algorithms TUF metadata may list that timb checks: sha256 and sha512. Every
//! listed hash is checked; one timb cannot compute is a refusal, not a pass.

use sha2::Digest;
use std::collections::BTreeMap;

pub(crate) enum HashCheck {
    Mismatch(String),
    Unsupported(String),
}

/// A running hash of one supported algorithm.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn new(algorithm: &str) -> Option<Hasher> {
        match algorithm {
            "sha256" => Some(Hasher::Sha256(sha2::Sha256::new())),
            "sha512" => Some(Hasher::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// Lowercase hex, as TUF metadata writes digests (compared as strings, as the reference does).
    pub(crate) fn finish_hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Checks every hash of `hashes` (algorithm → hex digest) over `data`.
pub(crate) fn check_hashes(
    hashes: &BTreeMap<String, String>,
    data: &[u8],
) -> Result<(), HashCheck> {
    for (algorithm, expected) in hashes {
        let mut h = Hasher::new(algorithm)
            .ok_or_else(|| HashCheck::Unsupported(crate::sha::clip(algorithm)))?;
        h.update(data);
        if h.finish_hex() != *expected {
            return Err(HashCheck::Mismatch(crate::sha::clip(algorithm)));
        }
    }
    Ok(())
}
