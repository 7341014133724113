//! TLS for timb: rustls only, TLS 1.2 and 1.3 only, and an explicit trust
//! decision per account (pinned, trust-on-first-use, or the WebPKI).
//!
//! A certificate problem is always a typed, hard error: there is no "accept
//! anyway". The crate opens no connections; callers hand it a stream (from
//! timb-tor) and get the TLS stream back.
// Shipped code handles its errors; tests may unwrap (clippy.toml).
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod der;
mod pins;
mod tofu;
mod verify;

#[cfg(feature = "test-ca")]
pub mod test_ca;

use std::sync::{Arc, Once};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

pub use pins::{PinParseError, PinSet, SpkiSha256};
pub use tofu::TofuStore;
pub use tokio_rustls::client::TlsStream;

/// Installs ring as the process-wide rustls provider. arti panics on its
/// first TLS use without one; safe to call any number of times.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed, which is fine:
        // our own configs always name ring explicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How an account decides to trust its server.
#[derive(Debug, Clone)]
pub enum TlsPolicy {
    /// Only the keys/anchors in the set (bundled or user-entered).
    Pinned(PinSet),
    /// The first key seen for host:port, remembered in the profile.
    Tofu(TofuStore),
    /// Any certificate chaining to the Mozilla roots in webpki-roots.
    WebPki,
}

/// A client certificate, e.g. for IRC SASL EXTERNAL / CertFP.
#[derive(Debug)]
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ClientIdentity {
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        ClientIdentity { chain, key }
    }

    /// From PEM text holding the certificate chain and a PKCS#8, PKCS#1 or
    /// SEC1 private key (may be the same text).
    pub fn from_pem(certs_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let chain = CertificateDer::pem_slice_iter(certs_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::ClientIdentity(format!("certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(TlsError::ClientIdentity("no certificate in PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::ClientIdentity(format!("private key PEM: {e}")))?;
        Ok(ClientIdentity { chain, key })
    }

    /// SHA-256 of the DER certificate: what IRC servers show as CertFP.
    pub fn cert_sha256_hex(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.chain[0].as_ref()))
    }
}

/// Extra connection options; `Default` is what [`connect`] uses.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The server's port: part of the TOFU key (`host:port`). Without it the
    /// key is the bare host name.
    pub port: Option<u16>,
    pub client_identity: Option<ClientIdentity>,
    /// ALPN protocol names to offer, e.g. `b"xmpp-client"`.
    pub alpn: Vec<Vec<u8>>,
}

/// Why a TLS session was not established. Certificate variants are
/// deliberate refusals; none of them can be overridden at connect time.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the server's key {got} matches none of the pinned keys ({})", expected.join(", "))]
    PinMismatch { expected: Vec<String>, got: String },
    #[error(
        "the key of {host} changed from {old} to {new}; this can mean an attack, so the connection was refused"
    )]
    TofuChanged {
        host: String,
        old: String,
        new: String,
    },
    #[error("the server's certificate has expired")]
    Expired,
    #[error("the server's certificate is not valid yet (check the computer's clock)")]
    NotYetValid,
    #[error("the server's certificate is not valid for {name}")]
    WrongName { name: String },
    #[error("the server's certificate is not signed by a trusted authority")]
    UntrustedIssuer,
    #[error("the server's certificate could not be used: {0}")]
    BadCertificate(String),
    #[error("the server only offers TLS versions older than 1.2")]
    ProtocolVersion,
    #[error("{0:?} is not a valid server name")]
    InvalidServerName(String),
    #[error("the TLS handshake failed: {0}")]
    Handshake(String),
    #[error("the trust-on-first-use pin file: {0}")]
    TofuStore(String),
    #[error("the client certificate: {0}")]
    ClientIdentity(String),
    #[error("connection error during TLS: {0}")]
    Io(#[source] std::io::Error),
}

impl TlsError {
    /// True for refusals of the server's identity (as opposed to the network
    /// or protocol failing), i.e. what the GUI shows as a certificate error.
    pub fn is_certificate_error(&self) -> bool {
        matches!(
            self,
            TlsError::PinMismatch { .. }
                | TlsError::TofuChanged { .. }
                | TlsError::Expired
                | TlsError::NotYetValid
                | TlsError::WrongName { .. }
                | TlsError::UntrustedIssuer
                | TlsError::BadCertificate(_)
        )
    }
}

/// TLS over `stream` to `server_name` under `policy`.
pub async fn connect<S>(
    stream: S,
    server_name: &str,
    policy: &TlsPolicy,
) -> Result<TlsStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    connect_with(stream, server_name, policy, &ConnectOptions::default()).await
}

/// [`connect`] with a port for TOFU, a client certificate and/or ALPN.
pub async fn connect_with<S>(
    stream: S,
    server_name: &str,
    policy: &TlsPolicy,
    options: &ConnectOptions,
) -> Result<TlsStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()))?;
    let tofu_key = match options.port {
        Some(port) => format!("{server_name}:{port}"),
        None => server_name.to_owned(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(verify::PolicyVerifier::new(
        policy.clone(),
        tofu_key.clone(),
        provider.clone(),
    )?);
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Handshake(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone());
    let mut config = match &options.client_identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| TlsError::ClientIdentity(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    // A resumed session would link this connection to an earlier one, which
    // may have used a different Tor circuit.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = options.alpn.clone();

    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = match connector.connect(name, stream).await {
        Ok(tls) => tls,
        Err(e) => return Err(verifier.take_failure().unwrap_or_else(|| map_io_error(e))),
    };
    if let (TlsPolicy::Tofu(store), Some(pin)) = (policy, verifier.first_use()) {
        store.record(&tofu_key, pin)?;
    }
    Ok(tls)
}

fn map_io_error(e: std::io::Error) -> TlsError {
    use rustls::{AlertDescription, Error, PeerIncompatible};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<Error>()) else {
        return TlsError::Io(e);
    };
    match tls {
        Error::PeerIncompatible(PeerIncompatible::ServerDoesNotSupportTls12Or13)
        | Error::PeerIncompatible(PeerIncompatible::SupportedVersionsExtensionRequired)
        | Error::AlertReceived(AlertDescription::ProtocolVersion) => TlsError::ProtocolVersion,
        Error::InvalidCertificate(c) => verify::map_cert_error(c),
        other => TlsError::Handshake(other.to_string()),
    }
}

/// The server key's SPKI SHA-256 in hex, for the GUI to display.
pub fn peer_spki_sha256<S>(tls: &TlsStream<S>) -> Option<String> {
    let cert = tls.get_ref().1.peer_certificates()?.first()?;
    SpkiSha256::of_certificate(cert.as_ref()).map(|p| p.hex())
}

/// The negotiated version: `true` for TLS 1.3.
pub fn is_tls13<S>(tls: &TlsStream<S>) -> bool {
    tls.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
}

/// RFC 9266 `tls-exporter` channel binding (32 bytes) for SCRAM-*-PLUS.
/// RFC 9266 defines it for TLS 1.3; callers should only offer -PLUS with
/// it when [`is_tls13`] holds.
pub fn tls_exporter<S>(tls: &TlsStream<S>) -> Result<[u8; 32], TlsError> {
    let mut out = [0u8; 32];
    tls.get_ref()
        .1
        .export_keying_material(&mut out, b"EXPORTER-Channel-Binding", Some(&[]))
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
    Ok(out)
}
