//! Bundled and user-supplied pin sets (format: PINS.md).

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, TrustAnchor};
use rustls::RootCertStore;
use sha2::{Digest, Sha256};

/// SHA-256 of a DER SubjectPublicKeyInfo: survives certificate renewal with
/// the same key, unlike a certificate hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiSha256(pub [u8; 32]);

impl SpkiSha256 {
    /// Hash of a full DER `SubjectPublicKeyInfo` (with its SEQUENCE header).
    pub fn of_spki_der(spki: &[u8]) -> Self {
        SpkiSha256(Sha256::digest(spki).into())
    }

    /// Hash of a DER certificate's SPKI; `None` if it does not parse.
    pub fn of_certificate(cert_der: &[u8]) -> Option<Self> {
        let cert = CertificateDer::from(cert_der);
        let parsed = rustls::server::ParsedCertificate::try_from(&cert).ok()?;
        Some(Self::of_spki_der(parsed.subject_public_key_info().as_ref()))
    }

    /// Trust anchors store the SPKI without its outer SEQUENCE header.
    pub(crate) fn of_anchor(anchor: &TrustAnchor<'_>) -> Self {
        let body = anchor.subject_public_key_info.as_ref();
        let mut der = vec![0x30];
        let len = body.len();
        if len < 0x80 {
            der.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            der.push(0x80 | (bytes.len() - skip) as u8);
            der.extend_from_slice(&bytes[skip..]);
        }
        der.extend_from_slice(body);
        Self::of_spki_der(&der)
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits; colons are allowed so users can paste
    /// `AA:BB:...` fingerprints.
    pub fn from_hex(s: &str) -> Option<Self> {
        let clean: String = s.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(clean).ok()?;
        Some(SpkiSha256(bytes.try_into().ok()?))
    }
}

impl fmt::Display for SpkiSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for SpkiSha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpkiSha256({})", self.hex())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pin set {name:?}, line {line}: {reason}")]
pub struct PinParseError {
    pub name: String,
    pub line: usize,
    pub reason: String,
}

/// What a pinned account trusts: end-entity keys, and/or trust anchors the
/// server's chain must validate to. Either match is enough; name and validity
/// period are always checked as well.
#[derive(Clone)]
pub struct PinSet {
    name: String,
    leaf: Vec<SpkiSha256>,
    root_pins: Vec<SpkiSha256>,
    roots: Arc<RootCertStore>,
}

impl fmt::Debug for PinSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinSet")
            .field("name", &self.name)
            .field("leaf", &self.leaf)
            .field("root_pins", &self.root_pins)
            .finish()
    }
}

/// Pin sets shipped inside the crate, by name.
const BUNDLED: &[(&str, &str)] = &[("oftc", include_str!("../pins/oftc.pins"))];

impl PinSet {
    /// A bundled pin set (`"oftc"`), or `None` for an unknown name.
    pub fn bundled(name: &str) -> Option<PinSet> {
        let (_, text) = BUNDLED.iter().find(|(n, _)| *n == name)?;
        // Bundled files are tested to parse; a failure here would be a
        // build defect, reported as "unknown" rather than a panic.
        PinSet::parse(name, text).ok()
    }

    pub fn bundled_names() -> impl Iterator<Item = &'static str> {
        BUNDLED.iter().map(|(n, _)| *n)
    }

    /// Only these end-entity keys are accepted (typical for a self-signed
    /// server whose fingerprint the user verified out of band).
    pub fn leaf(name: &str, pins: impl IntoIterator<Item = SpkiSha256>) -> PinSet {
        PinSet {
            name: name.to_owned(),
            leaf: pins.into_iter().collect(),
            root_pins: Vec::new(),
            roots: Arc::new(RootCertStore::empty()),
        }
    }

    /// Parses the PINS.md format.
    pub fn parse(name: &str, text: &str) -> Result<PinSet, PinParseError> {
        let err = |line: usize, reason: String| PinParseError {
            name: name.to_owned(),
            line,
            reason,
        };
        let mut leaf = Vec::new();
        let mut root_pins = Vec::new();
        let mut inline: Vec<TrustAnchor<'static>> = Vec::new();
        let mut pem: Option<(usize, String)> = None;
        for (i, raw) in text.lines().enumerate() {
            let lineno = i + 1;
            let line = raw.trim();
            if let Some((start, body)) = pem.as_mut() {
                if line == "-----END CERTIFICATE-----" {
                    let der = decode_base64(body)
                        .ok_or_else(|| err(*start, "certificate is not valid base64".into()))?;
                    let cert = CertificateDer::from(der);
                    let anchor = webpki_anchor(&cert)
                        .ok_or_else(|| err(*start, "certificate does not parse".into()))?;
                    root_pins.push(SpkiSha256::of_anchor(&anchor));
                    inline.push(anchor);
                    pem = None;
                } else {
                    body.push_str(line);
                }
                continue;
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line == "-----BEGIN CERTIFICATE-----" {
                pem = Some((lineno, String::new()));
                continue;
            }
            let mut words = line.split_whitespace();
            let (kind, value) = (words.next(), words.next());
            if words.next().is_some_and(|w| !w.starts_with('#')) {
                return Err(err(lineno, "trailing text after the pin".into()));
            }
            let pin = value
                .and_then(SpkiSha256::from_hex)
                .ok_or_else(|| err(lineno, "expected 64 hex digits of SHA-256".into()))?;
            match kind {
                Some("leaf") => leaf.push(pin),
                Some("root") => root_pins.push(pin),
                other => return Err(err(lineno, format!("unknown entry {other:?}"))),
            }
        }
        if let Some((start, _)) = pem {
            return Err(err(start, "certificate has no END line".into()));
        }
        let mut roots = RootCertStore::empty();
        for pin in &root_pins {
            let anchor = inline
                .iter()
                .chain(webpki_roots::TLS_SERVER_ROOTS.iter())
                .find(|a| SpkiSha256::of_anchor(a) == *pin)
                .ok_or_else(|| {
                    err(
                        0,
                        format!("root {pin} is neither bundled here nor a webpki-roots anchor"),
                    )
                })?;
            if !roots.roots.iter().any(|a| SpkiSha256::of_anchor(a) == *pin) {
                roots.roots.push(anchor.to_owned());
            }
        }
        if leaf.is_empty() && root_pins.is_empty() {
            return Err(err(0, "no pins".into()));
        }
        Ok(PinSet {
            name: name.to_owned(),
            leaf,
            root_pins,
            roots: Arc::new(roots),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn leaf_pins(&self) -> &[SpkiSha256] {
        &self.leaf
    }

    pub fn root_pins(&self) -> &[SpkiSha256] {
        &self.root_pins
    }

    pub(crate) fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    /// Everything this set would accept, for error messages.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.leaf
            .iter()
            .map(|p| format!("leaf {p}"))
            .chain(self.root_pins.iter().map(|p| format!("root {p}")))
            .collect()
    }
}

fn webpki_anchor(cert: &CertificateDer<'_>) -> Option<TrustAnchor<'static>> {
    let mut store = RootCertStore::empty();
    store.add(cert.clone()).ok()?;
    store.roots.pop()
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_sets_parse() {
        for name in PinSet::bundled_names() {
            let text = BUNDLED.iter().find(|(n, _)| *n == name).unwrap().1;
            let set = PinSet::parse(name, text).unwrap();
            assert!(!set.describe().is_empty());
        }
        assert!(PinSet::bundled("oftc").is_some());
        assert!(PinSet::bundled("nope").is_none());
    }

    #[test]
    fn parse_errors_are_typed() {
        assert_eq!(PinSet::parse("x", "leaf 1234").unwrap_err().line, 1);
        assert!(PinSet::parse("x", "# only a comment\n").is_err());
        assert!(PinSet::parse("x", "bogus aa").is_err());
        let unknown_root = format!("root {}", "00".repeat(32));
        assert!(PinSet::parse("x", &unknown_root).is_err());
        assert!(PinSet::parse("x", "-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
        assert!(PinSet::parse(
            "x",
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"
        )
        .is_err());
        let ok = format!("leaf {}  # comment\n", "ab:".repeat(31) + "ab");
        assert_eq!(PinSet::parse("x", &ok).unwrap().leaf_pins().len(), 1);
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a*").is_none());
    }
}
