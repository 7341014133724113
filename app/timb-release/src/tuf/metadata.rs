//! The four top-level metadata files and their signature envelope
//! `{"signed": …, "signatures": [{"keyid", "sig"}]}`.
//!
//! A file is read in three steps, in the "unverified → checked" style used across this crate:
//! bytes (capped) → a JSON value whose `signed` part is canonicalised as *received*, unknown
//! fields included, since that is what the signer signed → typed fields. The result is an
//! [`Unverified`]; only the trusted set turns it into a [`Checked`] after the signatures,
//! and everything else the client workflow asks, hold.

use super::canonical;
use super::error::{RoleName, TufError};
use super::keys::{Key, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Largest `root.json` read (python-tuf's default too).
pub const MAX_ROOT_SIZE: usize = 512_000;
/// Largest `timestamp.json` read.
pub const MAX_TIMESTAMP_SIZE: usize = 16_384;
/// Largest `snapshot.json` read.
pub const MAX_SNAPSHOT_SIZE: usize = 2_000_000;
/// Largest `targets.json` read.
pub const MAX_TARGETS_SIZE: usize = 5_000_000;
/// Most root versions one refresh walks: the loop is the fetcher's, the cap is here so that
/// a mirror serving ever newer roots cannot keep a client busy forever.
pub const MAX_ROOT_ROTATIONS: u64 = 256;

impl RoleName {
    /// The byte cap for this role's metadata file.
    pub fn max_size(self) -> usize {
        match self {
            RoleName::Root => MAX_ROOT_SIZE,
            RoleName::Timestamp => MAX_TIMESTAMP_SIZE,
            RoleName::Snapshot => MAX_SNAPSHOT_SIZE,
            RoleName::Targets => MAX_TARGETS_SIZE,
        }
    }
}

/// One entry of `signatures`.
#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    pub keyid: String,
    pub sig: String,
}

/// Which keys may sign a role, and how many of them must.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoleKeys {
    pub keyids: Vec<String>,
    pub threshold: u64,
}

/// `root.json`'s signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, Key>,
    pub roles: BTreeMap<String, RoleKeys>,
}

/// A metadata file as timestamp and snapshot list it.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    pub length: Option<u64>,
    pub hashes: Option<BTreeMap<String, String>>,
}

/// `timestamp.json`'s signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct Timestamp {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
}

/// `snapshot.json`'s signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub meta: BTreeMap<String, MetaFile>,
}

/// A target file as targets lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    pub custom: Option<Value>,
}

/// `targets.json`'s signed part.
#[derive(Debug, Clone, Deserialize)]
pub struct Targets {
    #[serde(rename = "_type")]
    pub type_: String,
    pub spec_version: String,
    pub version: u64,
    pub expires: String,
    pub targets: BTreeMap<String, TargetFile>,
    pub delegations: Option<Value>,
}

/// What every role's signed part has.
pub trait Signed: DeserializeOwned {
    const ROLE: RoleName;
    fn type_(&self) -> &str;
    fn spec_version(&self) -> &str;
    fn version(&self) -> u64;
    fn expires(&self) -> &str;
    /// Role-specific checks of form, beyond what the types say.
    fn check_form(&self) -> Result<(), String> {
        Ok(())
    }
}

macro_rules! signed {
    ($t:ty, $role:expr) => {
        impl Signed for $t {
            const ROLE: RoleName = $role;
            fn type_(&self) -> &str {
                &self.type_
            }
            fn spec_version(&self) -> &str {
                &self.spec_version
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> &str {
                &self.expires
            }
            fn check_form(&self) -> Result<(), String> {
                self.form()
            }
        }
    };
}
signed!(Root, RoleName::Root);
signed!(Timestamp, RoleName::Timestamp);
signed!(Snapshot, RoleName::Snapshot);
signed!(Targets, RoleName::Targets);

impl Root {
    fn form(&self) -> Result<(), String> {
        for role in RoleName::ALL {
            let r = self
                .roles
                .get(role.as_str())
                .ok_or_else(|| format!("root lists no {role} role"))?;
            if r.threshold == 0 {
                return Err(format!("the {role} role's threshold is 0"));
            }
            // As the reference refuses it (each key id would count once anyway).
            let unique: BTreeSet<&String> = r.keyids.iter().collect();
            if unique.len() != r.keyids.len() {
                return Err(format!("the {role} role lists a key id twice"));
            }
        }
        Ok(())
    }

    /// The keys and threshold of a top-level role (present: checked when parsed).
    pub fn role(&self, role: RoleName) -> Option<&RoleKeys> {
        self.roles.get(role.as_str())
    }

    /// The raw public keys of a role with its threshold: two roots give a role the same
    /// keys when these are equal, whatever key ids they use.
    pub(crate) fn role_identity(&self, role: RoleName) -> (BTreeSet<Vec<u8>>, u64) {
        let Some(r) = self.role(role) else {
            return (BTreeSet::new(), 0);
        };
        let keys = r
            .keyids
            .iter()
            .filter_map(|id| self.keys.get(id))
            .filter_map(VerifyingKey::from_key)
            .map(|k| k.bytes().to_vec())
            .collect();
        (keys, r.threshold)
    }
}

impl Timestamp {
    fn form(&self) -> Result<(), String> {
        match self.meta.len() {
            1 if self.meta.contains_key("snapshot.json") => meta_form(&self.meta),
            _ => Err("timestamp must list snapshot.json and nothing else".into()),
        }
    }

    /// The snapshot entry (present: checked when parsed).
    pub fn snapshot_meta(&self) -> Option<&MetaFile> {
        self.meta.get("snapshot.json")
    }
}

impl Snapshot {
    fn form(&self) -> Result<(), String> {
        meta_form(&self.meta)
    }
}

impl Targets {
    fn form(&self) -> Result<(), String> {
        match self.targets.iter().find(|(_, t)| t.hashes.is_empty()) {
            Some((name, _)) => Err(format!("target {:?} lists no hash", crate::sha::clip(name))),
            None => Ok(()),
        }
    }
}

/// Listed hashes, when given, are not an empty set; versions start at 1.
fn meta_form(meta: &BTreeMap<String, MetaFile>) -> Result<(), String> {
    for (name, m) in meta {
        if m.version == 0 || m.hashes.as_ref().is_some_and(BTreeMap::is_empty) {
            return Err(format!(
                "the entry for {:?} has version 0 or no hash",
                crate::sha::clip(name)
            ));
        }
    }
    Ok(())
}

/// Metadata read and parsed, its signatures not checked yet.
#[derive(Debug, Clone)]
pub struct Unverified<T> {
    pub(crate) signed: T,
    /// The canonical bytes of the received `signed` value: what signatures cover.
    pub(crate) canonical: Vec<u8>,
    pub(crate) signatures: Vec<Signature>,
}

/// Metadata whose signatures and client-workflow checks have held.
#[derive(Debug, Clone)]
pub struct Checked<T> {
    signed: T,
}

impl<T> Checked<T> {
    pub(crate) fn new(signed: T) -> Checked<T> {
        Checked { signed }
    }

    pub fn signed(&self) -> &T {
        &self.signed
    }
}

impl<T: Signed> Unverified<T> {
    /// Reads one metadata file: refuses it over its role's byte cap, when it is not JSON, not
    /// canonicalisable, not of TUF's form, of another role or of a spec major other than 1.
    pub fn parse(bytes: &[u8]) -> Result<Unverified<T>, TufError> {
        let role = T::ROLE;
        if bytes.len() > role.max_size() {
            return Err(TufError::TooLarge {
                role,
                len: bytes.len(),
                max: role.max_size(),
            });
        }
        // Clipped: a parser's message may quote what the file says.
        let malformed = |reason: String| TufError::Malformed {
            role,
            reason: crate::sha::clip(&reason),
        };
        let mut value: Value = serde_json::from_slice(bytes).map_err(|e| TufError::NotJson {
            role,
            reason: e.to_string(),
        })?;
        let obj = value
            .as_object_mut()
            .ok_or_else(|| malformed("not a JSON object".into()))?;
        let signed_value = obj
            .remove("signed")
            .ok_or_else(|| malformed("no \"signed\" field".into()))?;
        let signatures: Vec<Signature> = serde_json::from_value(
            obj.remove("signatures")
                .ok_or_else(|| malformed("no \"signatures\" field".into()))?,
        )
        .map_err(|e| malformed(format!("signatures: {e}")))?;
        let mut seen = BTreeSet::new();
        for s in &signatures {
            if !seen.insert(s.keyid.as_str()) {
                return Err(TufError::DuplicateSignature {
                    role,
                    keyid: crate::sha::clip(&s.keyid),
                });
            }
        }
        let canonical = canonical::encode(&signed_value)
            .map_err(|reason| TufError::NotCanonical { role, reason })?;
        // `_type` first, so a file of another role says so rather than "missing field".
        let type_ = signed_value
            .get("_type")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no \"_type\" string".into()))?;
        if type_ != role.as_str() {
            return Err(TufError::WrongType {
                expected: role,
                found: crate::sha::clip(type_),
            });
        }
        let signed: T =
            serde_json::from_value(signed_value).map_err(|e| malformed(e.to_string()))?;
        check_spec_version(role, signed.spec_version())?;
        if signed.version() == 0 {
            return Err(malformed("version 0 (versions start at 1)".into()));
        }
        parse_time(signed.expires()).ok_or_else(|| {
            malformed(format!(
                "expires {:?} is not YYYY-MM-DDTHH:MM:SSZ",
                crate::sha::clip(signed.expires())
            ))
        })?;
        signed.check_form().map_err(malformed)?;
        Ok(Unverified {
            signed,
            canonical,
            signatures,
        })
    }

    /// The claims, unverified: for error messages and for the trusted set's own checks.
    pub(crate) fn signed(&self) -> &T {
        &self.signed
    }
}

/// `1.x` and `1.x.y` are read (a minor version only adds what an older client may ignore);
/// any other major is refused.
fn check_spec_version(role: RoleName, v: &str) -> Result<(), TufError> {
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if (parts.len() == 2 || parts.len() == 3) && numeric && parts[0] == "1" {
        Ok(())
    } else {
        Err(TufError::SpecVersion {
            role,
            found: crate::sha::clip(v),
        })
    }
}

/// The valid signatures by distinct keys of `role` over `canonical`: how many distinct keys,
/// and how many distinct key ids (more when one key is listed under several ids).
pub(crate) struct Count {
    pub(crate) keys: usize,
    pub(crate) keyids: Vec<String>,
}

pub(crate) fn count_signatures(
    canonical: &[u8],
    signatures: &[Signature],
    keys: &BTreeMap<String, Key>,
    role: &RoleKeys,
) -> Count {
    let mut distinct_keys = BTreeSet::new();
    let mut keyids = Vec::new();
    let listed: BTreeSet<&String> = role.keyids.iter().collect();
    for keyid in listed {
        let Some(key) = keys.get(keyid).and_then(VerifyingKey::from_key) else {
            continue;
        };
        // Signature key ids are unique (checked when parsed): at most one per key id.
        let Some(sig) = signatures.iter().find(|s| &s.keyid == keyid) else {
            continue;
        };
        if key.verify(canonical, &sig.sig) {
            distinct_keys.insert(key.bytes().to_vec());
            keyids.push(keyid.clone());
        }
    }
    Count {
        keys: distinct_keys.len(),
        keyids,
    }
}

/// Checks `md` is signed by a threshold of `role`'s keys in `root`, each key counted once.
pub(crate) fn verify_role<T>(
    md: &Unverified<T>,
    name: RoleName,
    root: &Root,
) -> Result<(), TufError> {
    let role = root.role(name).ok_or(TufError::Malformed {
        role: RoleName::Root,
        reason: format!("root lists no {name} role"),
    })?;
    let c = count_signatures(&md.canonical, &md.signatures, &root.keys, role);
    if c.keys as u64 >= role.threshold {
        return Ok(());
    }
    if c.keyids.len() as u64 >= role.threshold {
        return Err(TufError::SameKeyTwice {
            role: name,
            keyids: c.keyids.join(", "),
            threshold: role.threshold,
        });
    }
    Err(TufError::Threshold {
        role: name,
        valid: c.keys,
        threshold: role.threshold,
    })
}

/// Seconds since 1970 of a TUF `expires` time, which is exactly `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes().all(|c| c.is_ascii_digit()).then_some(())?;
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mo_idx = usize::try_from(mo - 1).ok()?;
    if d > month_days[mo_idx] {
        return None;
    }
    // Days since 1970-01-01 of the civil date (Gregorian calendar).
    let days_before_year = |y: i64| {
        let y = y - 1;
        y * 365 + y / 4 - y / 100 + y / 400 - (1969 * 365 + 1969 / 4 - 1969 / 100 + 1969 / 400)
    };
    let days = days_before_year(y) + month_days[..mo_idx].iter().sum::<i64>() + d - 1;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_exactly() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(parse_time("2038-01-19T03:14:08Z"), Some(1 << 31));
        assert_eq!(parse_time("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.5Z",
            "2024-01-01 00:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:0éZ",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn spec_versions() {
        for ok in ["1.0", "1.0.31", "1.2.3"] {
            check_spec_version(RoleName::Root, ok).unwrap();
        }
        for bad in ["2.0.0", "0.9", "1", "1.0.0.0", "1.x", "", "1..0", "v1.0"] {
            assert!(matches!(
                check_spec_version(RoleName::Root, bad),
                Err(TufError::SpecVersion { .. })
            ));
        }
    }
}
