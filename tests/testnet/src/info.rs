//! The network file: the contract between this harness and `timb-tor`
//! (`TorConfig::private_network(path)`). Field names are part of that contract;
//! README.md documents them.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Exit-port indices reserved per test suite, so test binaries running in
/// parallel against one network never bind the same port.
pub mod exit_port_index {
    use std::ops::Range;
    /// timb-tor's own tests.
    pub const TOR: Range<usize> = 0..4;
    /// XMPP tests.
    pub const XMPP: Range<usize> = 4..8;
    /// IRC tests.
    pub const IRC: Range<usize> = 8..12;
    /// GUI tests and benchmarks.
    pub const GUI_BENCH: Range<usize> = 12..16;
    /// This crate's own tests (beyond the 16 the contract reserves).
    pub const TESTNET: Range<usize> = 16..20;
    /// The updater's HTTPS mirror reached through an exit (tests/update-client).
    pub const UPDATE: Range<usize> = 20..24;
    /// timb-tor's bridge tests (through a bridge, and from a censored namespace).
    pub const BRIDGES: Range<usize> = 24..26;
    /// tests/e2e (XMPP, then IRC): they run beside the GUI tests and the real window.
    pub const E2E: Range<usize> = 26..28;
    /// The bundle tests' real window (`real_window_world`: XMPP, then IRC), which runs
    /// beside the whole suite.
    pub const REAL_WINDOW: Range<usize> = 28..30;
}

/// The well-known onion service names, each hosted by the c-tor service
/// instance and forwarded to its own loopback `target_port`. "testnet" is
/// this crate's own, so its tests never bind a port another suite uses.
pub const ONION_SERVICE_NAMES: [&str; 8] = [
    "echo",
    "xmpp",
    "irc",
    "gui",
    "bench",
    "testnet",
    "update",
    "app-update",
];

/// The parsed network file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetInfo {
    pub network: NetworkParams,
    #[serde(rename = "authority")]
    pub authorities: Vec<AuthorityInfo>,
    /// Every relay including the authorities (clients use them as fallback caches).
    #[serde(rename = "relay")]
    pub relays: Vec<RelayInfo>,
    pub harness: HarnessInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkParams {
    pub voting_interval_secs: u32,
    /// c-tor's test-network time period (24 × voting interval, in minutes); arti
    /// must use the same `hsdir_interval` or it looks for onion descriptors in
    /// the wrong place.
    pub hsdir_interval_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorityInfo {
    pub nickname: String,
    pub address: String,
    pub or_port: u16,
    pub dir_port: u16,
    /// Hex fingerprint of the authority's v3 signing identity (tor-gencert).
    pub v3ident: String,
    /// Hex fingerprint of the relay RSA identity.
    pub rsa_identity: String,
    /// Unpadded base64 of the relay ed25519 identity.
    pub ed_identity: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayInfo {
    pub nickname: String,
    pub address: String,
    pub or_port: u16,
    pub rsa_identity: String,
    pub ed_identity: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HarnessInfo {
    /// SOCKS port of a c-tor client on 127.0.0.1 (baselines, harness checks).
    pub socks_port: u16,
    /// Loopback ports every exit accepts; see [`exit_port_index`].
    pub exit_ports: Vec<u16>,
    /// Where the daemons' data and logs live.
    pub data_dir: PathBuf,
    /// Seconds from start until the network was usable.
    pub ready_secs: f64,
    #[serde(rename = "onion_service")]
    pub onion_services: Vec<OnionServiceInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnionServiceInfo {
    pub name: String,
    /// `<56 base32 chars>.onion`.
    pub onion: String,
    /// Virtual port on the onion address.
    pub port: u16,
    /// 127.0.0.1 port the test binds its server on.
    pub target_port: u16,
}

impl NetInfo {
    /// Reads and parses a network file.
    pub fn load(path: &Path) -> Result<NetInfo, crate::Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| crate::Error::new(format!("reading {}: {e}", path.display())))?;
        NetInfo::parse(&text)
            .map_err(|e| crate::Error::new(format!("parsing {}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<NetInfo, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn to_toml(&self) -> String {
        // Only strings, integers, floats and paths that came from UTF-8 strings:
        // serialisation cannot fail.
        toml::to_string(self).expect("NetInfo serialises to TOML")
    }

    /// The onion service with this well-known name.
    pub fn onion_service(&self, name: &str) -> Option<&OnionServiceInfo> {
        self.harness.onion_services.iter().find(|s| s.name == name)
    }

    /// The exit port at `index` (see [`exit_port_index`]).
    pub fn exit_port(&self, index: usize) -> Option<u16> {
        self.harness.exit_ports.get(index).copied()
    }
}
