//! A throwaway certificate authority for tests (feature `test-ca`).
//!
//! Lets every crate's tests run real TLS servers on loopback with
//! certificates made at test time, so no key material is committed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures only (feature test-ca): a failure is a failed test"
)]

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::{ClientIdentity, SpkiSha256};

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_der: CertificateDer<'static>,
    pub cert_pem: String,
}

/// A certificate issued by a [`TestCa`] with its private key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
    key_der: Vec<u8>,
}

impl TestCa {
    pub fn new(common_name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        TestCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate valid now for `names` (DNS names or IPs).
    pub fn issue(&self, names: &[&str]) -> Leaf {
        self.issue_between(names, (2000, 1, 1), (2090, 1, 1))
    }

    /// A certificate valid between two (year, month, day) dates, for
    /// expiry tests.
    pub fn issue_between(
        &self,
        names: &[&str],
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("names");
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

impl Leaf {
    pub fn spki_sha256(&self) -> SpkiSha256 {
        SpkiSha256::of_certificate(self.cert_der.as_ref()).expect("own certificate parses")
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    pub fn as_client_identity(&self) -> ClientIdentity {
        ClientIdentity::new(vec![self.cert_der.clone()], self.key())
    }

    /// A rustls server config presenting this certificate over the given
    /// versions (TLS 1.2 and 1.3 if empty).
    pub fn server_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ServerConfig> {
        let versions = if versions.is_empty() {
            &[&rustls::version::TLS13, &rustls::version::TLS12][..]
        } else {
            versions
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], self.key())
            .expect("server cert");
        Arc::new(config)
    }
}
