//! timb's only way onto the network: an embedded arti Tor client.
//!
//! Accounts get streams from a shared [`Transport`]; each account has its own
//! isolation token, so two accounts are never linkable by a shared circuit.
//! TLS on top comes from timb-tls, so certificate policy is enforced in one
//! place.
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod bridges;
mod config;
mod connector;
pub mod http;
mod net;
pub mod pt;

pub use bridges::{Bridge, BridgeLineError, Transports};
pub use config::{profile_state_dir, Authority, NetworkFile, NetworkParams, Relay, TorConfig};
pub use connector::{boxed, AsyncStream, BoxFuture, BoxStream, Connector, TorConnector};
pub use net::{BootstrapProgress, Isolation, TorPhase, TorStream, Transport};
pub use timb_core::ConnectError;
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
    /// A stream could not be opened (before any TLS).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The typed refusal behind a TLS certificate error, `None` for any other
/// TLS failure (shared by both protocols).
pub fn certificate_problem(e: &TlsError) -> Option<timb_core::CertProblem> {
    use timb_core::CertProblem;
    Some(match e {
        TlsError::PinMismatch { got, .. } => CertProblem::PinMismatch { got: got.clone() },
        TlsError::TofuChanged { old, new, .. } => CertProblem::KeyChanged {
            old: old.clone(),
            new: new.clone(),
        },
        TlsError::Expired => CertProblem::Expired,
        TlsError::NotYetValid => CertProblem::NotYetValid,
        TlsError::WrongName { .. } => CertProblem::WrongName,
        TlsError::UntrustedIssuer => CertProblem::UntrustedIssuer,
        TlsError::BadCertificate(_) => CertProblem::Unusable,
        _ => return None,
    })
}

impl From<TorError> for timb_core::AccountError {
    fn from(e: TorError) -> Self {
        if let TorError::Tls(t) = &e {
            if let Some(p) = certificate_problem(t) {
                return timb_core::AccountError::Certificate(p);
            }
        }
        match e {
            TorError::Connect(c) => timb_core::AccountError::Connect(c),
            // Tor did not start: nothing to retry until the user asks again.
            TorError::Config(_)
            | TorError::ClockSkew(_)
            | TorError::NoNetwork(_)
            | TorError::Blocked(_)
            | TorError::Bootstrap(_) => timb_core::AccountError::Connect(ConnectError::NoTor),
            other => timb_core::AccountError::Transport(other.to_string()),
        }
    }
}
