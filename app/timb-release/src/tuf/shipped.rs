//! The update channel a bundle ships (`app/VERSION/update-channel/`): the TUF root it
//! trusts first and `channel.toml`, its channel name and mirror list. Written by
//! `cargo xtask release channel`, checked again by the bundle step, read by the app — one
//! parser for all three, so a bundle can never ship a file its app would refuse.

use super::{Channel, TrustedSet, TufError};

/// The channel folder's file names.
pub const ROOT_FILE: &str = "root.json";
pub const CHANNEL_FILE: &str = "channel.toml";
/// More mirrors only make a check slower to fail; the list is for fallbacks.
pub const MAX_MIRRORS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShippedError {
    #[error("channel.toml is not valid: {0}")]
    Toml(String),
    #[error("channel.toml: {0:?} is not a channel name (1 to 32 of a-z 0-9 -)")]
    Channel(String),
    #[error("channel.toml lists no mirror")]
    NoMirror,
    #[error("channel.toml lists more than {MAX_MIRRORS} mirrors")]
    TooManyMirrors,
    #[error("channel.toml: {0:?} is neither http://….onion/… nor https://…/ (plain HTTP is only for onion mirrors)")]
    Mirror(String),
    #[error("channel.toml: the onion mirror {0:?} comes after a clearnet one; onion mirrors go first (no exit sees them, and the address authenticates the server)")]
    OnionLast(String),
    #[error("root.json is not a valid TUF root: {0}")]
    Root(TufError),
}

/// `channel.toml`'s contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedChannel {
    pub channel: Channel,
    /// Each the base of a repository (`metadata/`, `targets/` beneath), tried in order.
    pub mirrors: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    channel: String,
    mirrors: Vec<String>,
}

/// `Some(true)` for an onion mirror, `Some(false)` for an HTTPS one, `None` otherwise.
fn mirror_kind(url: &str) -> Option<bool> {
    let (onion, rest) = if let Some(r) = url.strip_prefix("http://") {
        (true, r)
    } else {
        (false, url.strip_prefix("https://")?)
    };
    let host = rest.split(['/', ':']).next().unwrap_or("");
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let is_onion = host.ends_with(".onion");
    (host_ok && (!onion || is_onion) && url.ends_with('/')).then_some(is_onion)
}

impl ShippedChannel {
    pub fn new(channel: Channel, mirrors: Vec<String>) -> Result<ShippedChannel, ShippedError> {
        if mirrors.is_empty() {
            return Err(ShippedError::NoMirror);
        }
        if mirrors.len() > MAX_MIRRORS {
            return Err(ShippedError::TooManyMirrors);
        }
        let mut seen_clearnet = false;
        for m in &mirrors {
            match mirror_kind(m) {
                None => return Err(ShippedError::Mirror(m.chars().take(100).collect())),
                Some(true) if seen_clearnet => return Err(ShippedError::OnionLast(m.clone())),
                Some(true) => {}
                Some(false) => seen_clearnet = true,
            }
        }
        Ok(ShippedChannel { channel, mirrors })
    }

    pub fn parse(text: &str) -> Result<ShippedChannel, ShippedError> {
        let f: File = toml::from_str(text).map_err(|e| ShippedError::Toml(e.message().into()))?;
        let channel = Channel::new(&f.channel).ok_or(ShippedError::Channel(f.channel))?;
        ShippedChannel::new(channel, f.mirrors)
    }

    /// `channel.toml` as `release channel` writes it.
    pub fn to_toml(&self) -> String {
        let mirrors: Vec<String> = self.mirrors.iter().map(|m| format!("  {m:?},")).collect();
        format!(
            "# The update channel this bundle trusts; written by `cargo xtask release channel`.\nchannel = {:?}\nmirrors = [\n{}\n]\n",
            self.channel.as_str(),
            mirrors.join("\n")
        )
    }
}

/// Checks a root to ship: a valid, self-signed TUF root that has not expired at `now`.
pub fn check_shipped_root(bytes: &[u8], now: i64) -> Result<u64, ShippedError> {
    let set = TrustedSet::new(bytes, now).map_err(ShippedError::Root)?;
    set.check_root_current().map_err(ShippedError::Root)?;
    Ok(set.root().version)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONION: &str = "http://timbupdatexxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion/";

    #[test]
    fn a_channel_file_round_trips_and_bad_ones_say_why() {
        let c = ShippedChannel::new(
            Channel::new("stable").unwrap(),
            vec![ONION.into(), "https://updates.example.org/timb/".into()],
        )
        .unwrap();
        assert_eq!(ShippedChannel::parse(&c.to_toml()).unwrap(), c);
        let file = |m: &str| format!("channel = \"stable\"\nmirrors = [{m}]\n");
        let cases = [
            (file(""), "no mirror"),
            (file("\"http://example.org/\""), "neither"),
            (file("\"https://Example.org/\""), "neither"),
            (file("\"https://example.org\""), "neither"),
            (file("\"ftp://x.onion/\""), "neither"),
            (
                file(&format!("\"https://example.org/\", \"{ONION}\"")),
                "comes after a clearnet one",
            ),
            (
                "channel = \"Stable\"\nmirrors = []\n".into(),
                "not a channel",
            ),
            (format!("{}extra = 1\n", file("")), "not valid"),
        ];
        for (text, words) in cases {
            let e = ShippedChannel::parse(&text).unwrap_err().to_string();
            assert!(e.contains(words), "{text:?}: {e}");
        }
        let many = vec![ONION.to_string(); MAX_MIRRORS + 1];
        assert_eq!(
            ShippedChannel::new(Channel::new("stable").unwrap(), many),
            Err(ShippedError::TooManyMirrors)
        );
    }

    #[test]
    fn a_root_that_is_not_a_signed_tuf_root_is_refused() {
        assert!(matches!(
            check_shipped_root(b"{}", 0),
            Err(ShippedError::Root(_))
        ));
    }
}
