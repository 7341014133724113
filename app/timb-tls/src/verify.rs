//! The certificate decision for one connection.
//!
//! rustls can only carry a generic error out of a verifier, so the precise
//! [`TlsError`] is kept here and picked up by `connect` after the handshake
//! fails.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::{der, SpkiSha256, TlsError, TlsPolicy};

#[derive(Debug)]
pub(crate) struct PolicyVerifier {
    policy: TlsPolicy,
    tofu_key: String,
    provider: Arc<CryptoProvider>,
    /// Chain verifier for WebPki, or for a pin set's anchors.
    chain: Option<Arc<WebPkiServerVerifier>>,
    failure: Mutex<Option<TlsError>>,
    /// A TOFU key seen for the first time, recorded only once the handshake
    /// proves the server holds the private key.
    first_use: Mutex<Option<SpkiSha256>>,
}

fn webpki_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
        })
        .clone()
}

impl PolicyVerifier {
    pub(crate) fn new(
        policy: TlsPolicy,
        tofu_key: String,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let roots = match &policy {
            TlsPolicy::WebPki => Some(webpki_roots()),
            TlsPolicy::Pinned(set) if !set.roots().is_empty() => Some(set.roots().clone()),
            _ => None,
        };
        let chain = roots
            .map(|r| {
                WebPkiServerVerifier::builder_with_provider(r, provider.clone())
                    .build()
                    .map_err(|e| TlsError::Handshake(e.to_string()))
            })
            .transpose()?;
        Ok(PolicyVerifier {
            policy,
            tofu_key,
            provider,
            chain,
            failure: Mutex::new(None),
            first_use: Mutex::new(None),
        })
    }

    pub(crate) fn take_failure(&self) -> Option<TlsError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub(crate) fn first_use(&self) -> Option<SpkiSha256> {
        *self.first_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn decide(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), TlsError> {
        let parsed = ParsedCertificate::try_from(end_entity)
            .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
        let got = SpkiSha256::of_spki_der(parsed.subject_public_key_info().as_ref());

        // Validity checks that no policy skips, in a fixed order so each
        // failure has its own error.
        let (not_before, not_after) = der::validity(end_entity.as_ref())
            .ok_or_else(|| TlsError::BadCertificate("unreadable validity period".into()))?;
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now_secs > not_after {
            return Err(TlsError::Expired);
        }
        if now_secs < not_before {
            return Err(TlsError::NotYetValid);
        }
        // The name matters where a certificate authority vouches for it. With a pinned
        // key or TOFU the key itself is the server's identity: a server on a .onion or an
        // IP address often shows a certificate for its clear-web name, and that is fine.
        let name_check = || {
            rustls::client::verify_server_name(&parsed, server_name).map_err(|_| {
                TlsError::WrongName {
                    name: server_name.to_str().into_owned(),
                }
            })
        };

        match &self.policy {
            TlsPolicy::WebPki => {
                name_check()?;
                self.check_chain(end_entity, intermediates, server_name, now)
            }
            TlsPolicy::Pinned(set) => {
                if set.leaf_pins().contains(&got) {
                    return Ok(());
                }
                let mismatch = || TlsError::PinMismatch {
                    expected: set.describe(),
                    got: got.hex(),
                };
                if self.chain.is_none() {
                    return Err(mismatch());
                }
                // Trusted through a pinned anchor: a chain, so its name is checked.
                name_check()?;
                match self.check_chain(end_entity, intermediates, server_name, now) {
                    Err(TlsError::UntrustedIssuer) => Err(mismatch()),
                    other => other,
                }
            }
            TlsPolicy::Tofu(store) => match store.get(&self.tofu_key)? {
                Some(old) if old == got => Ok(()),
                Some(old) => Err(TlsError::TofuChanged {
                    host: self.tofu_key.clone(),
                    old: old.hex(),
                    new: got.hex(),
                }),
                None => {
                    *self.first_use.lock().unwrap_or_else(|p| p.into_inner()) = Some(got);
                    Ok(())
                }
            },
        }
    }

    fn check_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), TlsError> {
        let Some(chain) = &self.chain else {
            return Err(TlsError::UntrustedIssuer);
        };
        chain
            .verify_server_cert(end_entity, intermediates, server_name, &[], now)
            .map(|_| ())
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(c) => map_cert_error(&c),
                other => TlsError::BadCertificate(other.to_string()),
            })
    }
}

pub(crate) fn map_cert_error(e: &CertificateError) -> TlsError {
    match e {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsError::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsError::NotYetValid
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsError::WrongName {
                name: String::new(),
            }
        }
        CertificateError::UnknownIssuer => TlsError::UntrustedIssuer,
        other => TlsError::BadCertificate(format!("{other:?}")),
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.decide(end_entity, intermediates, server_name, now) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(e) => {
                let generic = match &e {
                    TlsError::Expired => CertificateError::Expired,
                    TlsError::NotYetValid => CertificateError::NotValidYet,
                    TlsError::WrongName { .. } => CertificateError::NotValidForName,
                    TlsError::UntrustedIssuer => CertificateError::UnknownIssuer,
                    _ => CertificateError::ApplicationVerificationFailure,
                };
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Err(rustls::Error::InvalidCertificate(generic))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
