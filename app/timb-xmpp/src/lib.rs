//! timb's XMPP client.
//!
//! Transport-agnostic: bytes come from timb-tor's [`Connector`] (arti in the
//! app, a loopback socket in tests), the same shape IRC takes and TLS from a [`TlsUpgrade`] (timb-tls's pinned
//! rustls in the app). The crate never opens a socket, resolves a name or
//! touches the disk, and it logs nothing.
//!
//! Privacy choices, all deliberate:
//! - constant resource [`RESOURCE`]; no `from`/`xml:lang` in stream headers;
//! - our presence is bare `<presence/>` or `unavailable` — no show, status,
//!   priority, idle, caps or chat states;
//! - software version, time, last activity, disco and every other query are
//!   refused with `service-unavailable`; only pings are answered;
//! - carbons are never enabled; OTR messages carry `<private/>` and
//!   `<no-permanent-store/>` so servers neither copy nor archive them;
//! - incoming messages yield `<body>` text only (XHTML-IM is ignored) and the
//!   receive time is ours, never the sender's `<delay/>`.
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod connect;
pub mod error;
pub mod register;
pub mod scram;
pub mod session;
pub mod stream;
pub mod tls;
pub mod xml;

use std::time::Duration;

use zeroize::Zeroizing;

pub use connect::{default_server, KNOWN_ONIONS};
pub use error::{AuthError, XmppError};
pub use session::spawn_account;
pub use tls::PolicyTls;

/// The resource we bind: the same for every timb user, so it says nothing
/// beyond "this is timb".
pub const RESOURCE: &str = "timb";

pub use timb_tor::{boxed, AsyncStream, BoxFuture, BoxStream, ConnectError, Connector};

/// What the TLS layer tells us about the session it set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// RFC 9266 `tls-exporter` keying material (32 bytes of
    /// "EXPORTER-Channel-Binding"), when the TLS version allows it (1.3).
    pub exporter: Option<Vec<u8>>,
    /// Hex SHA-256 of the server certificate's SubjectPublicKeyInfo.
    pub spki_sha256: Option<String>,
}

/// Wraps a stream in TLS for `server_name` (the XMPP domain) and verifies
/// the server per the account's policy; a pin mismatch must be
/// [`XmppError::Certificate`].
pub trait TlsUpgrade: Send + Sync {
    fn upgrade(
        &self,
        stream: BoxStream,
        server_name: String,
    ) -> BoxFuture<Result<(BoxStream, TlsInfo), XmppError>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// XEP-0368: TLS from the first byte (preferred: the exit sees nothing).
    Direct,
    /// RFC 6120 STARTTLS; a server that does not offer it is refused.
    StartTls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
}

#[derive(Clone)]
pub struct XmppConfig {
    /// Bare JID, `user@domain`.
    pub jid: String,
    pub password: Zeroizing<String>,
    /// Explicit server; `None` uses [`default_server`] with STARTTLS.
    pub server: Option<ServerAddr>,
    /// PLAIN is only ever used inside TLS, and only if this is set.
    pub allow_plain: bool,
    pub max_stanza: usize,
    /// How long any single server answer may take before we give up.
    pub timeout: Duration,
    /// Idle time after which we ping the server to detect a dead circuit.
    pub ping_interval: Duration,
    /// How a dropped stream is re-established (the same policy as IRC's);
    /// only transient failures are retried.
    pub reconnect: timb_core::Backoff,
    /// Create the account on the server (XEP-0077) before the first login;
    /// cleared once it worked, so reconnects only log in.
    pub register: bool,
    /// Ask for stream management (XEP-0198: acks, resumption). Always on in the app;
    /// off only so `cargo xtask bench xmpp` can show what it costs.
    pub stream_management: bool,
}

impl std::fmt::Debug for XmppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppConfig")
            .field("server", &self.server)
            .field("allow_plain", &self.allow_plain)
            .field("register", &self.register)
            .finish_non_exhaustive()
    }
}

impl XmppConfig {
    /// Defaults sized for Tor: generous timeouts, 256 KiB stanzas.
    pub fn new(jid: &str, password: &str) -> XmppConfig {
        XmppConfig {
            jid: jid.to_owned(),
            password: Zeroizing::new(password.to_owned()),
            server: None,
            allow_plain: false,
            max_stanza: stream::DEFAULT_MAX_STANZA,
            timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(120),
            reconnect: timb_core::Backoff::DEFAULT,
            register: false,
            stream_management: true,
        }
    }

    pub fn domain(&self) -> &str {
        let j = self.jid.split('/').next().unwrap_or("");
        j.rsplit_once('@').map(|(_, d)| d).unwrap_or(j)
    }

    pub fn localpart(&self) -> &str {
        let j = self.jid.split('/').next().unwrap_or("");
        j.rsplit_once('@').map(|(l, _)| l).unwrap_or("")
    }

    pub fn tls_mode(&self) -> TlsMode {
        self.server
            .as_ref()
            .map(|s| s.tls)
            .unwrap_or(TlsMode::StartTls)
    }

    pub fn address(&self) -> (String, u16) {
        match &self.server {
            Some(s) => (s.host.clone(), s.port),
            None => default_server(self.domain()),
        }
    }
}

/// Fills `buf` from the OS RNG. Randomness failure is unrecoverable for a
/// security tool, so it aborts rather than continue with weak nonces.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        std::process::abort();
    }
}

/// Random stanza id: sequential ids would tell observers of the server how
/// many stanzas this client sent.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 9];
    random_bytes(&mut b);
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The bare part of a JID (`user@domain` of `user@domain/res`).
pub fn bare_jid(jid: &str) -> &str {
    jid.split_once('/').map(|(b, _)| b).unwrap_or(jid)
}

/// The resource of a full JID.
pub fn resource_of(jid: &str) -> Option<&str> {
    jid.split_once('/').map(|(_, r)| r)
}
