//! Which Tor network to use, and where arti keeps its state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arti_client::config::dir::FallbackDir;
use arti_client::config::TorClientConfigBuilder;
use arti_client::TorClientConfig;
use serde::Deserialize;
use tor_llcrypto::pk::ed25519::Ed25519Identity;
use tor_llcrypto::pk::rsa::RsaIdentity;

use crate::TorError;

/// A ready-to-use arti configuration plus our own knobs.
#[derive(Debug, Clone)]
pub struct TorConfig {
    pub(crate) arti: TorClientConfig,
    pub(crate) bootstrap_timeout: Duration,
    pub(crate) private: bool,
}

/// The network file written by the test harness (the shared contract);
/// unknown tables such as `[harness]` are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkFile {
    pub network: NetworkParams,
    #[serde(rename = "authority")]
    pub authorities: Vec<Authority>,
    #[serde(rename = "relay")]
    pub relays: Vec<Relay>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NetworkParams {
    pub voting_interval_secs: u32,
    pub hsdir_interval_minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Authority {
    pub nickname: String,
    pub address: String,
    pub or_port: u16,
    pub dir_port: u16,
    pub v3ident: String,
    pub rsa_identity: String,
    pub ed_identity: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Relay {
    pub nickname: String,
    pub address: String,
    pub or_port: u16,
    pub rsa_identity: String,
    pub ed_identity: String,
}

impl NetworkFile {
    pub fn load(path: &Path) -> Result<NetworkFile, TorError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TorError::Config(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| TorError::Config(format!("{}: {e}", path.display())))
    }
}

fn bad(what: &str, value: &str) -> TorError {
    TorError::Config(format!("invalid {what} {value:?} in the network file"))
}

/// Addresses in the network file must be IP literals: resolving a name here
/// would be a DNS lookup outside Tor.
fn sockaddr(address: &str, port: u16) -> Result<std::net::SocketAddr, TorError> {
    let ip: std::net::IpAddr = address.parse().map_err(|_| bad("address", address))?;
    Ok(std::net::SocketAddr::new(ip, port))
}

fn builder(state_dir: &Path) -> TorClientConfigBuilder {
    // Everything arti writes stays inside the (portable) profile folder;
    // nothing goes to $HOME or the XDG directories.
    TorClientConfigBuilder::from_directories(state_dir.join("state"), state_dir.join("cache"))
}

impl TorConfig {
    /// The public Tor network, with arti's state and cache under
    /// `state_dir` (e.g. `<profile>/tor`).
    pub fn default_network(state_dir: &Path) -> Result<TorConfig, TorError> {
        let arti = builder(state_dir)
            .build()
            .map_err(|e| TorError::Config(e.to_string()))?;
        Ok(TorConfig {
            arti,
            bootstrap_timeout: Duration::from_secs(180),
            private: false,
        })
    }

    /// A private network described by the harness's network file.
    pub fn private_network(file: &Path, state_dir: &Path) -> Result<TorConfig, TorError> {
        let net = NetworkFile::load(file)?;
        Self::from_network_file(&net, state_dir)
    }

    pub fn from_network_file(net: &NetworkFile, state_dir: &Path) -> Result<TorConfig, TorError> {
        if net.authorities.is_empty() || net.relays.is_empty() {
            return Err(TorError::Config(
                "the network file lists no authorities or relays".into(),
            ));
        }
        let mut b = builder(state_dir);
        {
            let auth = b.tor_network().authorities();
            let mut idents = Vec::new();
            let mut dirs = Vec::new();
            for a in &net.authorities {
                idents.push(
                    RsaIdentity::from_hex(&a.v3ident).ok_or_else(|| bad("v3ident", &a.v3ident))?,
                );
                dirs.push(vec![sockaddr(&a.address, a.dir_port)?]);
            }
            auth.set_v3idents(idents);
            auth.set_uploads(dirs.clone());
            auth.set_downloads(dirs.clone());
            auth.set_votes(dirs);
        }
        let mut fallbacks = Vec::new();
        for r in &net.relays {
            let rsa = RsaIdentity::from_hex(&r.rsa_identity)
                .ok_or_else(|| bad("rsa_identity", &r.rsa_identity))?;
            let ed = Ed25519Identity::from_base64(&r.ed_identity)
                .ok_or_else(|| bad("ed_identity", &r.ed_identity))?;
            let mut f = FallbackDir::builder();
            f.rsa_identity(rsa).ed_identity(ed);
            f.orports().push(sockaddr(&r.address, r.or_port)?);
            fallbacks.push(f);
        }
        b.tor_network().set_fallback_caches(fallbacks);
        // Every relay shares 127.0.0.1: without these, arti would treat them
        // all as one family and find no path.
        b.path_rules()
            .ipv4_subnet_family_prefix(33)
            .ipv6_subnet_family_prefix(129);
        b.address_filter().allow_local_addrs(true);
        // c-tor's test networks use a time period of 24 voting intervals;
        // onion descriptors are not found unless arti agrees.
        b.override_net_params().insert(
            "hsdir_interval".into(),
            i32::try_from(net.network.hsdir_interval_minutes)
                .map_err(|_| bad("hsdir_interval_minutes", "out of range"))?,
        );
        // Loopback circuits build in milliseconds; a learned timeout would be
        // tiny and a CPU spike on a loaded test machine would fail every
        // circuit. Use a fixed, generous one (as the harness's c-tor does).
        b.override_net_params().insert("cbtdisabled".into(), 1);
        b.override_net_params()
            .insert("cbtinitialtimeout".into(), 60_000);
        let arti = b.build().map_err(|e| TorError::Config(e.to_string()))?;
        Ok(TorConfig {
            arti,
            bootstrap_timeout: Duration::from_secs(120),
            private: true,
        })
    }

    /// How long [`crate::Transport::bootstrap`] waits before giving up with
    /// a readable reason.
    pub fn with_bootstrap_timeout(mut self, timeout: Duration) -> Self {
        self.bootstrap_timeout = timeout;
        self
    }

    pub fn is_private_network(&self) -> bool {
        self.private
    }
}

/// `<profile>/tor`: where a profile keeps arti's files.
pub fn profile_state_dir(profile_dir: &Path) -> PathBuf {
    profile_dir.join("tor")
}
