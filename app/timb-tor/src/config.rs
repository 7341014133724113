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

/// The ports timb's accounts use unless told otherwise: XMPP with STARTTLS
/// (timb-xmpp's `default_server`) and IRC over TLS (timb-irc). arti builds exit
/// circuits ahead of the first stream only for ports it predicts, 80 and 443 by default,
/// neither of which timb uses; and these ports are in arti's (and c-tor's) long-lived set,
/// so a stream to them needs an all-Stable circuit, which a circuit built for 443 need not
/// be. Predicting them lets the first connect after "ready" find its circuit built.
pub const PREDICTED_PORTS: [u16; 2] = [5222, 6697];

/// A ready-to-use arti configuration plus our own knobs.
#[derive(Debug, Clone)]
pub struct TorConfig {
    /// What `arti` was built from, kept so the `with_…` methods can change it.
    builder: TorClientConfigBuilder,
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
        let mut b = builder(state_dir);
        b.preemptive_circuits()
            .set_initial_predicted_ports(PREDICTED_PORTS.to_vec());
        Self::built(b, Duration::from_secs(180), false)
    }

    fn built(
        builder: TorClientConfigBuilder,
        bootstrap_timeout: Duration,
        private: bool,
    ) -> Result<TorConfig, TorError> {
        let arti = builder
            .build()
            .map_err(|e| TorError::Config(e.to_string()))?;
        Ok(TorConfig {
            builder,
            arti,
            bootstrap_timeout,
            private,
        })
    }

    /// The exit ports arti builds circuits for before any stream asks (replacing the
    /// default: [`PREDICTED_PORTS`] on the public network, arti's 80 and 443 on a
    /// private one). A circuit built this way is not tied to an account until its first
    /// stream, so isolation is unchanged.
    pub fn with_predicted_ports(mut self, ports: &[u16]) -> Result<TorConfig, TorError> {
        self.builder
            .preemptive_circuits()
            .set_initial_predicted_ports(ports.to_vec());
        Self::built(self.builder, self.bootstrap_timeout, self.private)
    }

    /// Reaches Tor only through `bridges` (none: directly), starting the transports'
    /// programs in `transports` when a bridge needs one.
    pub fn with_bridges(
        mut self,
        bridges: &[crate::Bridge],
        transports: &crate::Transports,
    ) -> Result<TorConfig, TorError> {
        crate::bridges::configure(&mut self.builder, bridges, transports)?;
        Self::built(self.builder, self.bootstrap_timeout, self.private)
    }

    /// Adds `ports` to those whose streams need a circuit of Stable relays (arti's
    /// long-lived ports; 5222, 5223, 6667 and 6697 are among them already). For the
    /// benchmarks, whose private network serves on other ports.
    pub fn with_long_lived_ports(mut self, ports: &[u16]) -> Result<TorConfig, TorError> {
        self.builder
            .path_rules()
            .long_lived_ports()
            .extend(ports.iter().copied());
        Self::built(self.builder, self.bootstrap_timeout, self.private)
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
        Self::built(b, Duration::from_secs(120), true)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// arti keeps these fields private; its Debug output is the one place they show.
    fn shown(c: &TorConfig) -> String {
        format!("{:?}", c.arti)
    }

    #[test]
    fn the_public_network_predicts_timbs_ports_and_the_knobs_reach_arti() {
        let dir = tempfile::tempdir().unwrap();
        let public = TorConfig::default_network(dir.path()).unwrap();
        assert!(
            shown(&public).contains("initial_predicted_ports: [5222, 6697]"),
            "{}",
            shown(&public)
        );
        let other = public.clone().with_predicted_ports(&[4242]).unwrap();
        assert!(shown(&other).contains("initial_predicted_ports: [4242]"));
        assert!(!shown(&public).contains("4242"));
        let long = public.with_long_lived_ports(&[4242]).unwrap();
        let text = shown(&long);
        let set = text
            .split("long_lived_ports: {")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .unwrap_or_else(|| panic!("no long_lived_ports in {text}"));
        assert!(set.contains("4242") && set.contains("5222"), "{set}");
    }
}
