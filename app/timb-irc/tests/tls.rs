//! TLS through timb-tls to a real ngircd whose certificate comes from a test
//! CA made at test time.

mod common;

use common::*;
use timb_core::{AccountError, AccountId, Command, ConnectionState, Event, MessageKind, Target};
use timb_irc::{IrcConfig, IrcServer};
use timb_tls::{PinSet, SpkiSha256, TlsPolicy};

fn server_with(pins: PinSet, port: u16) -> IrcServer {
    IrcServer {
        host: "irc.test".into(),
        port,
        tls: TlsPolicy::Pinned(pins),
        allow_plaintext: false,
        client_identity: None,
    }
}

#[tokio::test]
async fn accounts_talk_over_tls_pinned_to_the_test_ca() {
    let ng = Ngircd::start();
    let pins = PinSet::parse("test-ca", &ng.pki.ca_pem).unwrap();
    let server = server_with(pins, ng.tls_port);
    let expected_spki = SpkiSha256::of_certificate(&ng.pki.server_cert_der)
        .unwrap()
        .hex();

    let mut handles = Vec::new();
    for (i, nick) in ["tlsalice", "tlsbob"].into_iter().enumerate() {
        let mut h = start(
            AccountId(i as u32),
            ng.tls_port,
            &server,
            IrcConfig::new(nick),
        )
        .await;
        let e = wait_for(&mut h, "Connected", |e| {
            matches!(e, Event::State(ConnectionState::Connected { .. }))
        })
        .await;
        assert_eq!(
            e,
            Event::State(ConnectionState::Connected {
                spki_sha256: Some(expected_spki.clone())
            })
        );
        handles.push(h);
    }
    let (a, b) = handles.split_at_mut(1);
    let (alice, bob) = (&mut a[0], &mut b[0]);
    alice
        .commands
        .send(Command::Send {
            to: Target::Direct("tlsbob".into()),
            body: "over TLS".into(),
            kind: MessageKind::Normal,
        })
        .await
        .unwrap();
    let e = wait_for(bob, "message", |e| matches!(e, Event::Message { .. })).await;
    assert!(
        matches!(e, Event::Message { body, from: Target::Direct(f), .. } if body == "over TLS" && f == "tlsalice")
    );
    alice.commands.send(Command::Disconnect).await.unwrap();
    wait_for(alice, "Disconnected", |e| {
        matches!(e, Event::State(ConnectionState::Disconnected))
    })
    .await;
}

#[tokio::test]
async fn pin_mismatch_is_a_hard_certificate_error() {
    let ng = Ngircd::start();
    let other = TestPki::new();
    let pins = PinSet::parse("wrong-ca", &other.ca_pem).unwrap();
    let mut h = start(
        AccountId(1),
        ng.tls_port,
        &server_with(pins, ng.tls_port),
        IrcConfig::new("x"),
    )
    .await;
    let err = start_error(&mut h).await;
    assert!(matches!(err, AccountError::Certificate(_)), "{err:?}");
    assert!(!err.is_transient());

    // Pinning the right key but under the wrong name still fails.
    let pins = PinSet::parse("test-ca", &ng.pki.ca_pem).unwrap();
    let mut server = server_with(pins, ng.tls_port);
    server.host = "other.test".into();
    let mut h = start(AccountId(1), ng.tls_port, &server, IrcConfig::new("x")).await;
    let err = start_error(&mut h).await;
    assert!(
        matches!(
            &err,
            AccountError::Certificate(timb_core::CertProblem::WrongName)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn plain_text_only_to_onions() {
    let ng = Ngircd::start();
    let pins = PinSet::parse("test-ca", &ng.pki.ca_pem).unwrap();
    let mut server = server_with(pins, ng.port);
    server.allow_plaintext = true;
    let mut h = start(AccountId(1), ng.port, &server, IrcConfig::new("x")).await;
    let err = start_error(&mut h).await;
    assert!(matches!(err, AccountError::Local(_)), "{err:?}");

    // The same server under an onion name is allowed in plain text (the
    // stream here stands in for an onion-service stream from arti).
    server.host = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.onion".into();
    let mut h = start(AccountId(1), ng.port, &server, IrcConfig::new("onionuser")).await;
    wait_connected(&mut h).await;
}

#[test]
fn oftc_preset_uses_the_bundled_pins() {
    let s = IrcServer::oftc().expect("bundled OFTC pins parse");
    assert_eq!((s.host.as_str(), s.port), ("irc.oftc.net", 6697));
    assert!(matches!(&s.tls, TlsPolicy::Pinned(p) if p.name() == "oftc"));
    assert!(!s.allow_plaintext);
}

/// A client certificate signed by a fresh CA: (CA PEM, cert PEM, key PEM).
fn client_cert() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "client CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut p = CertificateParams::new(Vec::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "timb user");
    p.extended_key_usages
        .push(ExtendedKeyUsagePurpose::ClientAuth);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn sasl_external_with_a_client_certificate_over_tls() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let pki = TestPki::new();
    let (client_ca, cert_pem, key_pem) = client_cert();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(client_ca.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.expect("client cert accepted");
        let presented = tls.get_ref().1.peer_certificates().map(<[_]>::len);
        assert_eq!(presented, Some(1), "client certificate presented");
        let (r, mut w) = tokio::io::split(tls);
        let mut r = BufReader::new(r);
        let script: &[(&str, &str)] = &[
            ("CAP LS 302", ":fake.test CAP * LS :sasl=EXTERNAL"),
            ("CAP REQ sasl", ":fake.test CAP me ACK :sasl"),
            ("AUTHENTICATE EXTERNAL", "AUTHENTICATE +"),
            (
                "AUTHENTICATE +",
                ":fake.test 903 me :SASL authentication successful",
            ),
            ("CAP END", ":fake.test 001 me :Welcome"),
        ];
        for (want, reply) in script {
            loop {
                let mut l = String::new();
                assert!(r.read_line(&mut l).await.unwrap() > 0, "client hung up");
                if l.trim_end() == *want {
                    break;
                }
            }
            w.write_all(format!("{reply}\r\n").as_bytes())
                .await
                .unwrap();
        }
        let mut rest = String::new();
        let _ = tokio::time::timeout(WAIT, r.read_line(&mut rest)).await;
    });

    let server_conf = IrcServer {
        host: "irc.test".into(),
        port,
        tls: TlsPolicy::Pinned(PinSet::parse("test-ca", &pki.ca_pem).unwrap()),
        allow_plaintext: false,
        client_identity: Some(timb_tls::ClientIdentity::from_pem(&cert_pem, &key_pem).unwrap()),
    };
    let mut cfg = IrcConfig::new("me");
    cfg.auth = timb_irc::IrcAuth::External;
    let mut h = start(AccountId(1), port, &server_conf, cfg.clone()).await;
    wait_connected(&mut h).await;
    h.commands.send(Command::Disconnect).await.unwrap();
    server.await.unwrap();

    // EXTERNAL without a certificate is refused before anything is sent.
    let mut no_cert = server_conf.clone();
    no_cert.client_identity = None;
    // The refusal must come before any I/O: the connector is never asked.
    let never = Scripted::new(Arc::new(LoopConnector { port }));
    let mut h = start_via(AccountId(1), &no_cert, cfg, never.clone()).await;
    let err = start_error(&mut h).await;
    assert!(matches!(err, AccountError::Local(_)), "{err:?}");
    assert_eq!(never.attempts(), 0);
}
