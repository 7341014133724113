//! timb's only way onto the network: an embedded arti Tor client.
//!
//! Accounts get streams from a shared [`Transport`]; each account has its own
//! isolation token, so two accounts are never linkable by a shared circuit.
//! TLS on top comes from timb-tls, so certificate policy is enforced in one
//! place.
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod config;
pub mod http;
mod net;

pub use config::{profile_state_dir, Authority, NetworkFile, NetworkParams, Relay, TorConfig};
pub use net::{BootstrapProgress, Isolation, TorStream, Transport};
pub use timb_tls::{ConnectOptions, PinSet, TlsError, TlsPolicy, TlsStream, TofuStore};

/// Failures a user (or the GUI) can act on.
#[derive(Debug, thiserror::Error)]
pub enum TorError {
    #[error("Tor configuration: {0}")]
    Config(String),
    #[error("{0}")]
    ClockSkew(String),
    #[error("{0}")]
    NoNetwork(String),
    #[error("{0}")]
    Blocked(String),
    #[error("{0}")]
    Bootstrap(String),
    #[error("{0} is not an address Tor can connect to")]
    BadAddress(String),
    #[error("the exit relay could not find the host {0}")]
    HostNotFound(String),
    #[error("{0} refused the connection")]
    ConnectionRefused(String),
    #[error("Tor would not connect to {target}: {detail}")]
    Forbidden { target: String, detail: String },
    #[error("the onion service {target} could not be reached: {detail}")]
    OnionService { target: String, detail: String },
    #[error("connecting to {0} through Tor timed out")]
    Timeout(String),
    #[error("could not connect to {target} through Tor: {detail}")]
    Connect { target: String, detail: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl From<TorError> for timb_core::AccountError {
    fn from(e: TorError) -> Self {
        match e {
            TorError::Tls(t) if t.is_certificate_error() => {
                timb_core::AccountError::Certificate(t.to_string())
            }
            other => timb_core::AccountError::Transport(other.to_string()),
        }
    }
}
