//! From a transport stream to a running account: TLS through timb-tls unless
//! the account explicitly allows plain text to an onion service.

use timb_core::{AccountError, AccountHandle, AccountId};
use timb_tls::{ClientIdentity, ConnectOptions, PinSet, TlsError, TlsPolicy};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::session::{spawn, IrcAuth, IrcConfig};
use crate::transport::{choose_security, Security};

/// Where an IRC account connects and how it trusts the server.
#[derive(Debug, Clone)]
pub struct IrcServer {
    /// Host name as the user gave it: the TLS name, resolved by the Tor exit.
    pub host: String,
    pub port: u16,
    pub tls: TlsPolicy,
    /// Explicit opt-in to plain text; honoured only for `.onion` hosts.
    pub allow_plaintext: bool,
    /// Client certificate (CertFP, and the credential for SASL EXTERNAL).
    pub client_identity: Option<ClientIdentity>,
}

impl IrcServer {
    /// OFTC, Tor Messenger's recommended network, pinned to the bundled SPI
    /// trust anchor so it works without certificate warnings.
    pub fn oftc() -> Option<IrcServer> {
        Some(IrcServer {
            host: "irc.oftc.net".into(),
            port: 6697,
            tls: TlsPolicy::Pinned(PinSet::bundled("oftc")?),
            allow_plaintext: false,
            client_identity: None,
        })
    }
}

/// Why an account could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl From<&StartError> for AccountError {
    fn from(e: &StartError) -> Self {
        match e {
            StartError::Config(m) => AccountError::Refused(m.clone()),
            StartError::Tls(t) if t.is_certificate_error() => {
                AccountError::Certificate(t.to_string())
            }
            StartError::Tls(t) => AccountError::Transport(t.to_string()),
        }
    }
}

/// Secures `stream` (already connected to `server` through Tor) as the
/// account requires and starts the session task on it.
pub async fn start<S>(
    id: AccountId,
    stream: S,
    server: &IrcServer,
    mut config: IrcConfig,
) -> Result<AccountHandle, StartError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let security =
        choose_security(&server.host, server.allow_plaintext).map_err(StartError::Config)?;
    if config.auth == IrcAuth::External
        && (security != Security::Tls || server.client_identity.is_none())
    {
        return Err(StartError::Config(
            "SASL EXTERNAL needs TLS with a client certificate".into(),
        ));
    }
    match security {
        Security::PlainOnion => Ok(spawn(id, stream, config)),
        Security::Tls => {
            let options = ConnectOptions {
                port: Some(server.port),
                client_identity: server.client_identity.clone(),
                alpn: Vec::new(),
            };
            let tls = timb_tls::connect_with(stream, &server.host, &server.tls, &options).await?;
            config.spki_sha256 = timb_tls::peer_spki_sha256(&tls);
            Ok(spawn(id, tls, config))
        }
    }
}
