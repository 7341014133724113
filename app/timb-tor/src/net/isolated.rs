//! Streams for a purpose that is no account's (the update check): they carry an isolation
//! token of their own, so an update check never shares a circuit with a chat account and
//! an exit cannot link the two. Added beside `connect` rather than through an `AccountId`:
//! an id reserved for updates could one day collide with a real account's.

use super::{TorStream, Transport};
use crate::TorError;
use arti_client::{IsolationToken, StreamPrefs};
use timb_tls::{ConnectOptions, TlsPolicy, TlsStream};

/// One isolation: every stream made with it may share circuits with each other, never with
/// an account's or another `Isolation`'s. Make a new one for a fresh set of circuits.
#[derive(Debug, Clone, Copy)]
pub struct Isolation(IsolationToken);

impl Isolation {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Isolation {
        Isolation(IsolationToken::new())
    }
}

impl Transport {
    /// A stream to `host:port` under `isolation` (the exit resolves `host`; `.onion` names go
    /// to the onion service), with the same wait for a usable path as [`Transport::connect`] (one loop for both).
    pub async fn connect_isolated(
        &self,
        isolation: &Isolation,
        host: &str,
        port: u16,
    ) -> Result<TorStream, TorError> {
        let mut prefs = StreamPrefs::new();
        prefs.set_isolation(isolation.0);
        Ok(self.connect_prefs(host, port, &prefs).await?)
    }

    /// [`Self::connect_isolated`] then TLS under `policy` (the TOFU key is `host:port`).
    pub async fn connect_tls_isolated(
        &self,
        isolation: &Isolation,
        host: &str,
        port: u16,
        policy: &TlsPolicy,
    ) -> Result<TlsStream<TorStream>, TorError> {
        let stream = self.connect_isolated(isolation, host, port).await?;
        let options = ConnectOptions {
            port: Some(port),
            ..ConnectOptions::default()
        };
        Ok(timb_tls::connect_with(stream, host, policy, &options).await?)
    }
}
