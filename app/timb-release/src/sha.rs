//! A sha256 digest, written as 64 lowercase hex digits as `sha256sum` does.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Sha256Error {
    #[error("a sha256 is 64 lowercase hex digits, not {0:?}")]
    Malformed(String),
}

impl Sha256 {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Sha256 {
        use sha2::Digest;
        Sha256(sha2::Sha256::digest(data).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Sha256 {
        Sha256(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Sha256 {
    type Err = Sha256Error;

    fn from_str(s: &str) -> Result<Sha256, Sha256Error> {
        let canonical = s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut out = [0u8; 32];
        if !canonical || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(Sha256Error::Malformed(clip(s)));
        }
        Ok(Sha256(out))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// A file name a signed comment or sums file may name: a plain name in one
/// folder (no path, no `.`/`..`), printable, no spaces, at most 255 bytes
/// (what file systems allow), so that what is signed is what gets opened.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// At most 80 characters of untrusted input, for error messages.
pub(crate) fn clip(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        s.chars().take(80).chain("…".chars()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_spellings() {
        // sha256("hello")
        let h = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let d: Sha256 = h.parse().unwrap();
        assert_eq!(d.to_string(), h);
        assert_eq!(d, Sha256::of(b"hello"));
        for bad in [
            "",
            "ab",
            &h.to_uppercase(),
            &format!("{h}0"),
            &h.replace('2', "g"),
        ] {
            assert!(bad.parse::<Sha256>().is_err(), "{bad}");
        }
        // Multi-byte characters of the right byte length are refused, not sliced.
        assert!("é".repeat(32).parse::<Sha256>().is_err());
    }
}
