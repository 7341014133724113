//! timb's own fields on a target, beyond TUF: which bundle a target is, so that valid
//! metadata still cannot make a bundle install another platform's or channel's build, or an
//! older release.
//!
//! Every bundle target carries, in its `custom` object:
//!
//! ```json
//! "custom": { "timb": { "version": "0.2.0", "target": "linux-x86_64", "channel": "stable" } }
//! ```
//!
//! - `version`: a [`Version`] (the release's version, compared with [`Version::cmp_release`]);
//! - `target`: a [`Target`] name (`linux-x86_64`, …), the platform the bundle runs on;
//! - `channel`: the release channel, 1 to 32 of `a-z 0-9 -` (`stable`, `alpha`, …).
//!
//! All three are required and no other key is allowed in `custom.timb` (a field timb does not
//! know might be a constraint it would silently skip); other keys of `custom` are ignored.
//! The target's name is the archive name these fields give (`timb-0.2.0-linux-x86_64.tar.xz`,
//! as [`Target::archive_name`] writes it), optionally in folders of plain names
//! (`linux/timb-…`): the name the minisign signature binds, and never a path that leaves the
//! download folder.

use super::error::TufError;
use super::target::TargetInfo;
use crate::target::{Target, Version};
use serde_json::Value;

/// A release channel name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Channel(String);

impl Channel {
    pub fn new(name: &str) -> Option<Channel> {
        let ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| Channel(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `custom.timb` says of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimbFields {
    pub version: Version,
    pub target: Target,
    pub channel: Channel,
}

impl TimbFields {
    /// Reads `custom.timb` of a trusted target.
    pub fn of(info: &TargetInfo) -> Result<TimbFields, TufError> {
        let bad = |reason: &str| TufError::CustomFields {
            name: crate::sha::clip(&info.name),
            reason: reason.to_string(),
        };
        let timb = info
            .custom
            .as_ref()
            .and_then(|c| c.get("timb"))
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no custom.timb object"))?;
        if let Some(k) = timb
            .keys()
            .find(|k| !["version", "target", "channel"].contains(&k.as_str()))
        {
            return Err(bad(&format!("unknown field {:?}", crate::sha::clip(k))));
        }
        let field = |k: &str| {
            timb.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(&format!("no {k} string")))
        };
        let fields = TimbFields {
            version: field("version")?
                .parse()
                .map_err(|e: crate::target::VersionError| bad(&e.to_string()))?,
            target: field("target")?
                .parse()
                .map_err(|e: crate::target::TargetError| bad(&e.to_string()))?,
            channel: Channel::new(field("channel")?)
                .ok_or_else(|| bad("the channel is not 1 to 32 of a-z 0-9 -"))?,
        };
        let expected = fields.target.archive_name(&fields.version);
        let mut parts = info.name.rsplit('/');
        let named =
            parts.next() == Some(expected.as_str()) && parts.all(crate::sha::is_plain_file_name);
        if !named {
            return Err(TufError::TargetName {
                name: crate::sha::clip(&info.name),
                expected,
            });
        }
        Ok(fields)
    }

    /// The custom fields of a target, for the running bundle to take it as its update:
    /// the same platform and channel, and a version above the running one.
    pub fn check_update(
        info: &TargetInfo,
        running_version: &Version,
        running_target: Target,
        running_channel: &Channel,
    ) -> Result<TimbFields, TufError> {
        let f = TimbFields::of(info)?;
        let name = || crate::sha::clip(&info.name);
        if f.target != running_target {
            return Err(TufError::WrongTarget {
                name: name(),
                offered: f.target.to_string(),
                running: running_target.to_string(),
            });
        }
        if f.channel != *running_channel {
            return Err(TufError::WrongChannel {
                name: name(),
                offered: f.channel.as_str().to_string(),
                running: running_channel.as_str().to_string(),
            });
        }
        if f.version.cmp_release(running_version) != std::cmp::Ordering::Greater {
            return Err(TufError::NotNewer {
                name: name(),
                offered: f.version.to_string(),
                running: running_version.to_string(),
            });
        }
        Ok(f)
    }
}
