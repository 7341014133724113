//! A trusted target's description and the streaming check of its bytes: a download is fed
//! chunk by chunk, refused the moment it passes the listed length (endless data), and its
//! hashes are compared at the end, so a target is never buffered whole nor trusted early.

use super::error::{RoleName, TufError};
use super::hashes::Hasher;
use super::metadata::TargetFile;
use serde_json::Value;
use std::collections::BTreeMap;

/// What the trusted targets metadata says of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    pub name: String,
    pub length: u64,
    /// Algorithm → lowercase hex digest.
    pub hashes: BTreeMap<String, String>,
    pub custom: Option<Value>,
}

impl TargetInfo {
    pub(crate) fn new(name: &str, file: &TargetFile) -> TargetInfo {
        TargetInfo {
            name: name.to_string(),
            length: file.length,
            hashes: file.hashes.clone(),
            custom: file.custom.clone(),
        }
    }

    /// A verifier for this target's bytes. Refused when a listed hash is of an algorithm
    /// timb cannot compute.
    pub fn verifier(&self) -> Result<TargetVerifier, TufError> {
        let mut hashers = Vec::new();
        for (algorithm, digest) in &self.hashes {
            let h = Hasher::new(algorithm).ok_or_else(|| TufError::UnsupportedHash {
                listed_by: RoleName::Targets,
                algorithm: crate::sha::clip(algorithm),
            })?;
            hashers.push((algorithm.clone(), digest.clone(), h));
        }
        Ok(TargetVerifier {
            name: self.name.clone(),
            length: self.length,
            seen: 0,
            hashers,
        })
    }
}

/// Checks a target's bytes as they arrive. Dropping it without [`finish`](Self::finish)
/// trusts nothing.
pub struct TargetVerifier {
    name: String,
    length: u64,
    seen: u64,
    hashers: Vec<(String, String, Hasher)>,
}

impl TargetVerifier {
    /// Feeds the next chunk; refuses it when the total would pass the listed length (the
    /// fetcher stops reading then).
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), TufError> {
        let n = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        match self.seen.checked_add(n) {
            Some(total) if total <= self.length => self.seen = total,
            _ => {
                return Err(TufError::TargetTooLong {
                    name: crate::sha::clip(&self.name),
                    length: self.length,
                })
            }
        }
        for (_, _, h) in &mut self.hashers {
            h.update(chunk);
        }
        Ok(())
    }

    /// How many bytes the target may still have.
    pub fn remaining(&self) -> u64 {
        self.length - self.seen
    }

    /// The end of the download: exactly the listed length, and every listed hash matches.
    pub fn finish(self) -> Result<(), TufError> {
        if self.seen != self.length {
            return Err(TufError::TargetTooShort {
                name: crate::sha::clip(&self.name),
                length: self.length,
                actual: self.seen,
            });
        }
        for (algorithm, expected, h) in self.hashers {
            if h.finish_hex() != expected {
                return Err(TufError::TargetHash {
                    name: crate::sha::clip(&self.name),
                    algorithm,
                });
            }
        }
        Ok(())
    }
}

/// File names on a TUF repository (spec §5.3 to §5.7): with consistent snapshots, metadata
/// is fetched under a version prefix and targets under a hash prefix, so that a mirror
/// updating mid-refresh never serves a mix of two releases under one name.
pub mod names {
    use super::TargetInfo;

    /// `N.root.json`: roots are always fetched by version.
    pub fn root(version: u64) -> String {
        format!("{version}.root.json")
    }

    /// `timestamp.json`: never prefixed.
    pub const TIMESTAMP: &str = "timestamp.json";

    /// `V.snapshot.json` with consistent snapshots, else `snapshot.json`.
    pub fn snapshot(consistent: bool, version: u64) -> String {
        prefixed(consistent, version, "snapshot.json")
    }

    /// `V.targets.json` with consistent snapshots, else `targets.json`.
    pub fn targets(consistent: bool, version: u64) -> String {
        prefixed(consistent, version, "targets.json")
    }

    fn prefixed(consistent: bool, version: u64, name: &str) -> String {
        if consistent {
            format!("{version}.{name}")
        } else {
            name.to_string()
        }
    }

    /// The paths to fetch a target from: `dir/HASH.file` for each listed hash (sha256 first
    /// when listed, any of them serves) with consistent snapshots, else the target's path.
    pub fn target(consistent: bool, info: &TargetInfo) -> Vec<String> {
        if !consistent {
            return vec![info.name.clone()];
        }
        let (dir, file) = match info.name.rsplit_once('/') {
            Some((d, f)) => (format!("{d}/"), f),
            None => (String::new(), info.name.as_str()),
        };
        let mut algorithms: Vec<&String> = info.hashes.keys().collect();
        algorithms.sort_by_key(|a| (a.as_str() != "sha256", a.as_str()));
        algorithms
            .into_iter()
            .filter_map(|a| info.hashes.get(a))
            .map(|h| format!("{dir}{h}.{file}"))
            .collect()
    }
}
