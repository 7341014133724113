//! Bridges: Tor relays that are not in the public list, for networks that block Tor.
//!
//! A bridge is given as a line in Tor's format, as BridgeDB, a friend or a bundle's list
//! hands it out: `[Bridge] [TRANSPORT] IP:PORT FINGERPRINT [KEY=VALUE …]`, e.g.
//! `obfs4 192.0.2.3:443 0123…CDEF cert=… iat-mode=0`. A line with a transport is reached
//! through that pluggable transport (a program shipped in the bundle, which arti starts);
//! one without is a plain bridge.
//!
//! Lines are checked here, before arti sees them, so that the window can say what is
//! wrong with a pasted line as it is typed, in words a person can act on; arti's own parser
//! then checks them again. A bridge is never given by name: looking the name up would be a
//! DNS lookup outside Tor, on the very network that watches for Tor.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use arti_client::config::pt::TransportConfigBuilder;
use arti_client::config::{BoolOrAuto, BridgeConfigBuilder, CfgPath, TorClientConfigBuilder};

/// The pluggable transports timb knows how to check a line for. obfs4 is the one the
/// bundle ships (lyrebird); a line for another is refused with the reason, not passed on to
/// fail later inside arti.
pub const OBFS4: &str = "obfs4";

/// At most this many bridges: a pasted list longer than this is a mistake (a bridge
/// list from BridgeDB has three), and each is a guard arti keeps state for.
pub const MAX_BRIDGES: usize = 64;

/// At most this many bytes in a line: an obfs4 line is about 200.
const MAX_LINE: usize = 1024;

/// One bridge line, checked: what the window shows and the profile keeps (when the user
/// asked to remember it) is [`Bridge::line`], normalised to single spaces without the
/// `Bridge` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    line: String,
    transport: Option<String>,
    addr: SocketAddr,
}

/// Why a bridge line was refused, in words for the person who pasted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeLineError {
    #[error("the line is empty")]
    Empty,
    #[error("the line is too long to be a bridge line")]
    TooLong,
    #[error("{0:?} is not an IP address and port (like 192.0.2.3:443 or [2001:db8::3]:443)")]
    Address(String),
    #[error("the line has no address (an IP address and port, like 192.0.2.3:443)")]
    NoAddress,
    #[error(
        "{0:?} is a name: a bridge is given by its IP address (looking a name up would happen outside Tor)"
    )]
    Name(String),
    #[error("the port of {0} is 0")]
    PortZero(String),
    #[error("the line has no fingerprint (40 hexadecimal digits after the address)")]
    NoFingerprint,
    #[error("{0:?} is not a fingerprint (40 hexadecimal digits)")]
    Fingerprint(String),
    #[error("{0:?} is not a transport name")]
    TransportName(String),
    #[error("this timb has no {0:?} transport (it has obfs4); ask for an obfs4 bridge")]
    UnknownTransport(String),
    #[error("{0:?} is not a KEY=VALUE setting")]
    Setting(String),
    #[error("a plain bridge takes no settings ({0:?})")]
    SettingWithoutTransport(String),
    #[error("an obfs4 bridge needs its cert=… setting")]
    NoCert,
    #[error("the cert=… setting is not an obfs4 certificate (70 characters of base64)")]
    Cert,
    #[error("an obfs4 bridge needs its iat-mode=… setting (0, 1 or 2)")]
    NoIatMode,
    #[error("iat-mode must be 0, 1 or 2, not {0:?}")]
    IatMode(String),
    #[error("{0:?} is given twice")]
    Twice(String),
    #[error("more than {MAX_BRIDGES} bridges")]
    TooMany,
    #[error("arti refuses the line: {0}")]
    Arti(String),
}

fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

impl Bridge {
    /// Checks one line (surrounding white space and a leading `Bridge` are allowed).
    pub fn parse(line: &str) -> Result<Bridge, BridgeLineError> {
        if line.len() > MAX_LINE {
            return Err(BridgeLineError::TooLong);
        }
        let mut words = line.split_whitespace().peekable();
        // torrc's option name, in any case; no transport is called "bridge".
        if words
            .peek()
            .is_some_and(|w| w.eq_ignore_ascii_case("bridge"))
        {
            words.next();
        }
        let first = words.next().ok_or(BridgeLineError::Empty)?;
        let (transport, address) = if looks_like_address(first) {
            (None, first)
        } else {
            let ok = first
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && first.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(BridgeLineError::TransportName(clip(first)));
            }
            if first != OBFS4 {
                return Err(BridgeLineError::UnknownTransport(clip(first)));
            }
            let address = words.next().ok_or(BridgeLineError::NoAddress)?;
            (Some(first.to_string()), address)
        };
        let addr = address_of(address)?;
        let fingerprint = words.next().ok_or(BridgeLineError::NoFingerprint)?;
        if fingerprint.len() != 40 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BridgeLineError::Fingerprint(clip(fingerprint)));
        }
        let mut settings = BTreeMap::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| BridgeLineError::Setting(clip(w)))?;
            if transport.is_none() {
                return Err(BridgeLineError::SettingWithoutTransport(clip(w)));
            }
            if settings.insert(k, v).is_some() {
                return Err(BridgeLineError::Twice(clip(k)));
            }
        }
        let mut normal = Vec::new();
        if let Some(t) = &transport {
            // What obfs4 clients (lyrebird, obfs4proxy) require, or they fail at connect
            // time: a certificate of 52 bytes (node id and public key) in unpadded base64,
            // and the inter-arrival-time mode.
            let cert = settings.get("cert").ok_or(BridgeLineError::NoCert)?;
            if cert.is_empty() {
                return Err(BridgeLineError::NoCert);
            }
            let base64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
            if cert.len() != 70 || !cert.chars().all(base64) {
                return Err(BridgeLineError::Cert);
            }
            match settings.get("iat-mode") {
                Some(&"0" | &"1" | &"2") => {}
                None => return Err(BridgeLineError::NoIatMode),
                Some(other) => return Err(BridgeLineError::IatMode(clip(other))),
            }
            normal.push(t.clone());
        }
        normal.push(addr.to_string());
        normal.push(fingerprint.to_ascii_uppercase());
        normal.extend(settings.iter().map(|(k, v)| format!("{k}={v}")));
        let bridge = Bridge {
            line: normal.join(" "),
            transport,
            addr,
        };
        // arti's own parser, so that what passed here also passes there.
        bridge.arti()?;
        Ok(bridge)
    }

    /// Every line of `text` that holds anything (as pasted: one bridge per line), or the
    /// first refusal with its line number (from 1).
    pub fn parse_lines(text: &str) -> Result<Vec<Bridge>, (usize, BridgeLineError)> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let b = Bridge::parse(line).map_err(|e| (i + 1, e))?;
            if out.contains(&b) {
                continue;
            }
            if out.len() == MAX_BRIDGES {
                return Err((i + 1, BridgeLineError::TooMany));
            }
            out.push(b);
        }
        Ok(out)
    }

    /// The line, normalised (no `Bridge` prefix, single spaces, settings sorted).
    pub fn line(&self) -> &str {
        &self.line
    }

    /// The pluggable transport, or `None` for a plain bridge.
    pub fn transport(&self) -> Option<&str> {
        self.transport.as_deref()
    }

    /// Where the bridge (or its transport's listener) is.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn arti(&self) -> Result<BridgeConfigBuilder, BridgeLineError> {
        self.line
            .parse::<BridgeConfigBuilder>()
            .map_err(|e| BridgeLineError::Arti(clip(&e.to_string())))
    }
}

impl fmt::Display for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// Whether the first word is an address rather than a transport name: transport names
/// are identifiers, and addresses start with a digit or `[`.
fn looks_like_address(word: &str) -> bool {
    word.starts_with('[') || word.starts_with(|c: char| c.is_ascii_digit()) || word.contains(':')
}

fn address_of(word: &str) -> Result<SocketAddr, BridgeLineError> {
    match word.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => Err(BridgeLineError::PortZero(clip(word))),
        Ok(a) => Ok(a),
        Err(_) => {
            let host = word.rsplit_once(':').map_or(word, |(h, _)| h);
            let is_name = !host.is_empty()
                && host.parse::<std::net::IpAddr>().is_err()
                && host.contains(|c: char| c.is_ascii_alphabetic())
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            if is_name {
                Err(BridgeLineError::Name(clip(word)))
            } else {
                Err(BridgeLineError::Address(clip(word)))
            }
        }
    }
}

/// How arti reaches the pluggable transports: for the bundle, `lyrebird` (obfs4) beside
/// timb. Only transports whose program is there can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transports {
    obfs4: Option<Obfs4>,
}

/// How arti reaches obfs4.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Obfs4 {
    /// A program arti starts itself (tests, and a timb that is not confined).
    Program(PathBuf),
    /// A program already running, listening for SOCKS here (started outside the sandbox:
    /// [`crate::pt`]).
    Running(SocketAddr),
}

impl Transports {
    /// No transport: plain bridges only.
    pub fn none() -> Transports {
        Transports { obfs4: None }
    }

    /// obfs4 through the program at `path` (lyrebird, or a compatible obfs4proxy).
    pub fn obfs4(path: &Path) -> Transports {
        Transports {
            obfs4: Some(Obfs4::Program(path.to_path_buf())),
        }
    }

    /// obfs4 through a transport already running with its SOCKS listener at `addr`.
    pub fn obfs4_running(addr: SocketAddr) -> Transports {
        Transports {
            obfs4: Some(Obfs4::Running(addr)),
        }
    }

    /// Where the bundle keeps lyrebird: beside timb, in `dir`.
    pub fn lyrebird_in(dir: &Path) -> PathBuf {
        dir.join(if cfg!(windows) {
            "lyrebird.exe"
        } else {
            "lyrebird"
        })
    }

    /// The bundle's transports in `dir` (those present).
    pub fn in_dir(dir: &Path) -> Transports {
        let lyrebird = Transports::lyrebird_in(dir);
        Transports {
            obfs4: lyrebird.is_file().then_some(Obfs4::Program(lyrebird)),
        }
    }

    pub fn has_obfs4(&self) -> bool {
        self.obfs4.is_some()
    }
}

/// Puts `bridges` into arti's configuration: with any, arti reaches Tor only through
/// them (bridges enabled), and starts a transport's program when a bridge needs it.
pub(crate) fn configure(
    b: &mut TorClientConfigBuilder,
    bridges: &[Bridge],
    transports: &Transports,
) -> Result<(), crate::TorError> {
    if bridges.is_empty() {
        return Ok(());
    }
    let mut need_obfs4 = false;
    for bridge in bridges {
        need_obfs4 |= bridge.transport() == Some(OBFS4);
        let built = bridge
            .arti()
            .map_err(|e| crate::TorError::Config(format!("bridge {bridge}: {e}")))?;
        b.bridges().bridges().push(built);
    }
    b.bridges().enabled(BoolOrAuto::Explicit(true));
    if need_obfs4 {
        let how = transports.obfs4.as_ref().ok_or_else(|| {
            crate::TorError::Config(
                "an obfs4 bridge is configured but this timb has no obfs4 transport (lyrebird)"
                    .into(),
            )
        })?;
        let mut t = TransportConfigBuilder::default();
        t.protocols(vec![OBFS4
            .parse()
            .map_err(|e| crate::TorError::Config(format!("obfs4: {e}")))?]);
        match how {
            Obfs4::Program(path) => {
                // Literal: a bundle folder's name may hold a `$`, which arti would expand.
                t.path(CfgPath::new_literal(path.clone()))
                    // Started when a bridge needs it, not at start.
                    .run_on_startup(false);
            }
            Obfs4::Running(addr) => {
                t.proxy_addr(*addr);
            }
        }
        b.bridges().transports().push(t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "0123456789ABCDEF0123456789ABCDEF01234567";
    const CERT: &str = "ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw";

    fn obfs4(addr: &str) -> String {
        format!("obfs4 {addr} {FP} cert={CERT} iat-mode=0")
    }

    #[test]
    fn good_lines_are_normalised() {
        let b = Bridge::parse(&format!("  Bridge  {}  ", obfs4("192.0.2.3:443"))).unwrap();
        assert_eq!(b.line(), obfs4("192.0.2.3:443"));
        assert_eq!(b.transport(), Some("obfs4"));
        assert_eq!(b.addr(), "192.0.2.3:443".parse().unwrap());
        let b = Bridge::parse(&format!(
            "obfs4 [2001:db8::3]:9001 {} iat-mode=1 cert={CERT}",
            FP.to_lowercase()
        ))
        .unwrap();
        assert_eq!(
            b.line(),
            format!("obfs4 [2001:db8::3]:9001 {FP} cert={CERT} iat-mode=1")
        );
        let plain = Bridge::parse(&format!("198.51.100.7:9001 {FP}")).unwrap();
        assert_eq!(plain.transport(), None);
        assert_eq!(plain.line(), format!("198.51.100.7:9001 {FP}"));
    }

    #[test]
    fn bad_lines_say_why() {
        use BridgeLineError as E;
        let cases: Vec<(String, E)> = vec![
            ("".into(), E::Empty),
            ("Bridge".into(), E::Empty),
            ("x".repeat(2000), E::TooLong),
            (
                format!("obfs4 bridge.example.org:443 {FP} cert={CERT}"),
                E::Name("bridge.example.org:443".into()),
            ),
            (
                format!("obfs4 192.0.2.3 {FP} cert={CERT}"),
                E::Address("192.0.2.3".into()),
            ),
            (
                format!("obfs4 192.0.2.3:0 {FP} cert={CERT}"),
                E::PortZero("192.0.2.3:0".into()),
            ),
            (
                format!("obfs4 192.0.2.3:70000 {FP} cert={CERT}"),
                E::Address("192.0.2.3:70000".into()),
            ),
            ("obfs4 192.0.2.3:443".into(), E::NoFingerprint),
            ("obfs4".into(), E::NoAddress),
            ("bridge obfs4".into(), E::NoAddress),
            (
                format!("obfs4 192.0.2.3:443 {FP} cert=abc iat-mode=0"),
                E::Cert,
            ),
            (
                format!("obfs4 192.0.2.3:443 {FP} cert={}! iat-mode=0", &CERT[1..]),
                E::Cert,
            ),
            (
                format!("obfs4 192.0.2.3:443 {FP} cert={CERT}"),
                E::NoIatMode,
            ),
            (
                format!("obfs4 192.0.2.3:443 {} cert={CERT}", &FP[1..]),
                E::Fingerprint(FP[1..].into()),
            ),
            (
                format!("snowflake 192.0.2.3:443 {FP} url=https://x"),
                E::UnknownTransport("snowflake".into()),
            ),
            (
                format!("obfs-4 192.0.2.3:443 {FP}"),
                E::TransportName("obfs-4".into()),
            ),
            (format!("obfs4 192.0.2.3:443 {FP} iat-mode=0"), E::NoCert),
            (
                format!("obfs4 192.0.2.3:443 {FP} cert= iat-mode=0"),
                E::NoCert,
            ),
            (
                format!("obfs4 192.0.2.3:443 {FP} cert={CERT} iat-mode=3"),
                E::IatMode("3".into()),
            ),
            (
                format!("obfs4 192.0.2.3:443 {FP} cert={CERT} cert=x"),
                E::Twice("cert".into()),
            ),
            (
                format!("obfs4 192.0.2.3:443 {FP} cert={CERT} junk"),
                E::Setting("junk".into()),
            ),
            (
                format!("192.0.2.3:443 {FP} cert={CERT}"),
                E::SettingWithoutTransport(format!("cert={CERT}")),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(Bridge::parse(&line), Err(want), "{line}");
        }
        // Every refusal reads as a sentence, never the whole (possibly huge) input.
        let e = Bridge::parse(&format!("obfs4 {}:1 {FP}", "a".repeat(500))).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn pasted_lists_skip_blank_lines_and_duplicates_and_name_the_bad_line() {
        let text = format!(
            "\n{}\n\n{}\n{}\n",
            obfs4("192.0.2.3:443"),
            obfs4("192.0.2.3:443"),
            obfs4("192.0.2.4:443")
        );
        let got = Bridge::parse_lines(&text).unwrap();
        assert_eq!(got.len(), 2);
        let text = format!("{}\nobfs4 192.0.2.5:443\n", obfs4("192.0.2.3:443"));
        assert_eq!(
            Bridge::parse_lines(&text),
            Err((2, BridgeLineError::NoFingerprint))
        );
        let many: String = (0..=MAX_BRIDGES)
            .map(|i| obfs4(&format!("192.0.2.{}:443", i + 1)) + "\n")
            .collect();
        assert_eq!(
            Bridge::parse_lines(&many),
            Err((MAX_BRIDGES + 1, BridgeLineError::TooMany))
        );
        // A duplicate after the last allowed one is no bridge more.
        let full: String = (0..MAX_BRIDGES)
            .map(|i| obfs4(&format!("192.0.2.{}:443", i + 1)) + "\n")
            .collect();
        let again = format!("{full}{}\n", obfs4("192.0.2.1:443"));
        assert_eq!(Bridge::parse_lines(&again).unwrap().len(), MAX_BRIDGES);
    }

    #[test]
    fn bridges_reach_arti_with_their_transport() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = Bridge::parse(&obfs4("192.0.2.3:443")).unwrap();
        let no_pt = crate::TorConfig::default_network(dir.path())
            .unwrap()
            .with_bridges(std::slice::from_ref(&bridge), &Transports::none());
        assert!(
            matches!(&no_pt, Err(crate::TorError::Config(m)) if m.contains("no obfs4 transport")),
            "{no_pt:?}"
        );
        let c = crate::TorConfig::default_network(dir.path())
            .unwrap()
            .with_bridges(
                std::slice::from_ref(&bridge),
                &Transports::obfs4(Path::new("/opt/timb $x/lyrebird")),
            )
            .unwrap();
        let shown = format!("{:?}", c.arti);
        assert!(shown.contains("192.0.2.3:443"), "{shown}");
        assert!(shown.contains("/opt/timb $x/lyrebird"), "{shown}");
        assert!(shown.contains("Explicit(true)"), "{shown}");
        let running = crate::TorConfig::default_network(dir.path())
            .unwrap()
            .with_bridges(
                std::slice::from_ref(&bridge),
                &Transports::obfs4_running("127.0.0.1:40123".parse().unwrap()),
            )
            .unwrap();
        let shown = format!("{:?}", running.arti);
        assert!(shown.contains("127.0.0.1:40123"), "{shown}");
        // None: the configuration is the plain one.
        let plain = crate::TorConfig::default_network(dir.path()).unwrap();
        let same = plain
            .clone()
            .with_bridges(&[], &Transports::none())
            .unwrap();
        assert!(
            plain.arti == same.arti,
            "no bridges changed the configuration"
        );
    }
}
