//! Real TLS handshakes against loopback servers made at test time.

use std::net::SocketAddr;
use std::sync::Arc;

use timb_tls::test_ca::{Leaf, TestCa};
use timb_tls::{
    connect, connect_with, peer_spki_sha256, tls_exporter, ConnectOptions, PinSet, SpkiSha256,
    TlsError, TlsPolicy, TofuStore,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const NAME: &str = "server.test";

#[allow(clippy::disallowed_methods)] // dials a loopback server this test started itself
async fn dial(port: u16) -> TcpStream {
    TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("loopback connect")
}

/// Serves one TLS connection: sends "hello", then returns the server-side
/// channel-binding value (or the handshake error text).
async fn serve_once(
    config: Arc<rustls::ServerConfig>,
) -> (u16, JoinHandle<Result<[u8; 32], String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut out = [0u8; 32];
        tls.get_ref()
            .1
            .export_keying_material(&mut out, b"EXPORTER-Channel-Binding", Some(&[]))
            .map_err(|e| e.to_string())?;
        tls.write_all(b"hello").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        Ok(out)
    });
    (port, task)
}

async fn try_policy(leaf: &Leaf, name: &str, policy: &TlsPolicy) -> Result<String, TlsError> {
    let (port, server) = serve_once(leaf.server_config(&[])).await;
    // The TOFU key uses the server's public port, not the loopback one.
    let opts = ConnectOptions {
        port: Some(6697),
        ..Default::default()
    };
    let result = connect_with(dial(port).await, name, policy, &opts).await;
    match result {
        Ok(mut tls) => {
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            let ours = tls_exporter(&tls).unwrap();
            let spki = peer_spki_sha256(&tls).unwrap();
            tls.shutdown().await.ok();
            drop(tls);
            let theirs = server.await.unwrap().unwrap();
            assert_eq!(ours, theirs, "tls-exporter must agree on both ends");
            Ok(spki)
        }
        Err(e) => {
            server.abort();
            Err(e)
        }
    }
}

fn pinned(leaf: &Leaf) -> TlsPolicy {
    TlsPolicy::Pinned(PinSet::leaf("test", [leaf.spki_sha256()]))
}

#[tokio::test]
async fn correct_leaf_pin_is_accepted() {
    timb_tls::install_crypto_provider();
    let ca = TestCa::new("timb test CA");
    let leaf = ca.issue(&[NAME]);
    let spki = try_policy(&leaf, NAME, &pinned(&leaf)).await.unwrap();
    assert_eq!(spki, leaf.spki_sha256().hex());
}

#[tokio::test]
async fn wrong_pin_is_refused_naming_both_keys() {
    let ca = TestCa::new("timb test CA");
    let leaf = ca.issue(&[NAME]);
    let other = ca.issue(&[NAME]);
    match try_policy(&leaf, NAME, &pinned(&other)).await {
        Err(TlsError::PinMismatch { expected, got }) => {
            assert_eq!(got, leaf.spki_sha256().hex());
            assert_eq!(expected, vec![format!("leaf {}", other.spki_sha256())]);
        }
        other => panic!("expected PinMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_are_refused_even_when_pinned() {
    let ca = TestCa::new("timb test CA");
    let old = ca.issue_between(&[NAME], (2020, 1, 1), (2021, 1, 1));
    assert!(matches!(
        try_policy(&old, NAME, &pinned(&old)).await,
        Err(TlsError::Expired)
    ));
    let future = ca.issue_between(&[NAME], (2090, 1, 1), (2091, 1, 1));
    assert!(matches!(
        try_policy(&future, NAME, &pinned(&future)).await,
        Err(TlsError::NotYetValid)
    ));
}

/// Bug 18.6: with a pinned key or TOFU the key is the identity, so a certificate naming
/// another host (a .onion server showing its clear-web certificate) is accepted; where a
/// chain vouches for the server (web PKI, a pinned anchor) the name is still checked.
#[tokio::test]
async fn name_mismatch_is_accepted_for_a_pinned_key_or_tofu_but_not_for_a_chain() {
    let ca = TestCa::new("timb test CA");
    let leaf = ca.issue(&["other.test"]);
    let onion = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz23.onion";
    let spki = try_policy(&leaf, onion, &pinned(&leaf)).await.unwrap();
    assert_eq!(spki, leaf.spki_sha256().hex());
    try_policy(&leaf, NAME, &pinned(&leaf)).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let tofu = TlsPolicy::Tofu(TofuStore::open(dir.path().join("tofu.txt")).unwrap());
    try_policy(&leaf, onion, &tofu).await.unwrap();
    // The key still counts: another key under the same name is refused.
    let other = ca.issue(&["other.test"]);
    assert!(matches!(
        try_policy(&other, onion, &tofu).await,
        Err(TlsError::TofuChanged { .. })
    ));

    let set = PinSet::parse("ca", &format!("# our CA\n{}", ca.cert_pem)).unwrap();
    match try_policy(&leaf, NAME, &TlsPolicy::Pinned(set)).await {
        Err(TlsError::WrongName { name }) => assert_eq!(name, NAME),
        other => panic!("expected WrongName, got {other:?}"),
    }
}

#[tokio::test]
async fn bundled_anchor_in_pin_file_validates_chain() {
    let ca = TestCa::new("timb test CA");
    let leaf = ca.issue(&[NAME]);
    let set = PinSet::parse("ca", &format!("# our CA\n{}", ca.cert_pem)).unwrap();
    assert_eq!(set.root_pins().len(), 1);
    let policy = TlsPolicy::Pinned(set);
    try_policy(&leaf, NAME, &policy).await.unwrap();

    let stranger = TestCa::new("someone else").issue(&[NAME]);
    assert!(matches!(
        try_policy(&stranger, NAME, &policy).await,
        Err(TlsError::PinMismatch { .. })
    ));
}

#[tokio::test]
async fn webpki_refuses_a_private_ca() {
    let leaf = TestCa::new("timb test CA").issue(&[NAME]);
    assert!(matches!(
        try_policy(&leaf, NAME, &TlsPolicy::WebPki).await,
        Err(TlsError::UntrustedIssuer)
    ));
}

#[tokio::test]
async fn bundled_oftc_set_refuses_a_private_ca() {
    let leaf = TestCa::new("timb test CA").issue(&["irc.oftc.net"]);
    let policy = TlsPolicy::Pinned(PinSet::bundled("oftc").unwrap());
    assert!(matches!(
        try_policy(&leaf, "irc.oftc.net", &policy).await,
        Err(TlsError::PinMismatch { .. })
    ));
}

#[tokio::test]
async fn tofu_stores_then_enforces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tls-tofu.txt");
    let ca = TestCa::new("timb test CA");
    let first = ca.issue(&[NAME]);
    let policy = TlsPolicy::Tofu(TofuStore::open(&path).unwrap());

    try_policy(&first, NAME, &policy).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!("{NAME}:6697 {}", first.spki_sha256())),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "pin file must be owner-only");
    }
    // Same key again: fine, even after reopening the store.
    let policy = TlsPolicy::Tofu(TofuStore::open(&path).unwrap());
    try_policy(&first, NAME, &policy).await.unwrap();

    // A new key (even from the same CA) is refused, naming both.
    let second = ca.issue(&[NAME]);
    match try_policy(&second, NAME, &policy).await {
        Err(TlsError::TofuChanged { old, new, .. }) => {
            assert_eq!(old, first.spki_sha256().hex());
            assert_eq!(new, second.spki_sha256().hex());
        }
        other => panic!("expected TofuChanged, got {other:?}"),
    }
    // And it stays refused: the failure did not replace the pin.
    assert!(matches!(
        try_policy(&second, NAME, &policy).await,
        Err(TlsError::TofuChanged { .. })
    ));
}

#[tokio::test]
async fn tls12_only_server_is_accepted() {
    let leaf = TestCa::new("timb test CA").issue(&[NAME]);
    let (port, server) = serve_once(leaf.server_config(&[&rustls::version::TLS12])).await;
    let mut tls = connect(dial(port).await, NAME, &pinned(&leaf))
        .await
        .unwrap();
    assert!(!timb_tls::is_tls13(&tls));
    let mut buf = [0u8; 5];
    tls.read_exact(&mut buf).await.unwrap();
    drop(tls);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn client_certificate_is_presented() {
    let ca = TestCa::new("timb test CA");
    let leaf = ca.issue(&[NAME]);
    let client = ca.issue(&["client.test"]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert_der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![leaf.cert_der.clone()], leaf.key())
            .unwrap(),
    );
    let (port, server) = serve_once(config.clone()).await;
    let opts = ConnectOptions {
        client_identity: Some(client.as_client_identity()),
        ..Default::default()
    };
    let mut tls = connect_with(dial(port).await, NAME, &pinned(&leaf), &opts)
        .await
        .unwrap();
    let mut buf = [0u8; 5];
    tls.read_exact(&mut buf).await.unwrap();
    drop(tls);
    server.await.unwrap().unwrap();

    // PEM round trip gives the same identity.
    let id = timb_tls::ClientIdentity::from_pem(&client.cert_pem, &client.key_pem).unwrap();
    assert_eq!(
        id.cert_sha256_hex(),
        client.as_client_identity().cert_sha256_hex()
    );
    assert!(timb_tls::ClientIdentity::from_pem("", &client.key_pem).is_err());
}

/// A server that answers any ClientHello with a TLS 1.1 ServerHello,
/// like an old server that cannot do better.
#[tokio::test]
async fn tls11_server_hello_is_a_protocol_version_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut hello = [0u8; 512];
        let _ = tcp.read(&mut hello).await;
        let mut msg = vec![0x16, 0x03, 0x02, 0x00, 0x2a]; // handshake record, TLS 1.1
        msg.extend_from_slice(&[0x02, 0x00, 0x00, 0x26]); // ServerHello, 38 bytes
        msg.extend_from_slice(&[0x03, 0x02]); // server_version TLS 1.1
        msg.extend_from_slice(&[0x42; 32]); // random
        msg.extend_from_slice(&[0x00]); // no session id
        msg.extend_from_slice(&[0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
        msg.extend_from_slice(&[0x00]); // null compression
        tcp.write_all(&msg).await.unwrap();
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    let leaf = TestCa::new("x").issue(&[NAME]);
    let err = connect(dial(port).await, NAME, &pinned(&leaf))
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::ProtocolVersion), "{err:?}");
    server.abort();
}

/// The same against OpenSSL's own server restricted to TLS 1.1. Without the
/// openssl tool the test is skipped, loudly, unless TIMB_REQUIRE_INTEROP is
/// set (as `cargo xtask test` does), where a missing tool is a failure.
#[tokio::test]
async fn openssl_tls11_server_is_a_protocol_version_error() {
    if !std::path::Path::new("/usr/bin/openssl").exists() {
        assert!(
            std::env::var_os("TIMB_REQUIRE_INTEROP").is_none(),
            "/usr/bin/openssl missing: install Debian's openssl (cargo xtask test does)"
        );
        eprintln!("skipped: /usr/bin/openssl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let leaf = TestCa::new("x").issue(&[NAME]);
    std::fs::write(dir.path().join("c.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("k.pem"), &leaf.key_pem).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new("/usr/bin/openssl")
        .args([
            "s_server",
            "-quiet",
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.path().join("c.pem"))
        .arg("-key")
        .arg(dir.path().join("k.pem"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stream = None;
    for _ in 0..100 {
        #[allow(clippy::disallowed_methods)] // the openssl server this test started
        let attempt = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await;
        if let Ok(s) = attempt {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stream = stream.expect("openssl s_server did not start");
    let err = connect(stream, NAME, &pinned(&leaf)).await.unwrap_err();
    assert!(matches!(err, TlsError::ProtocolVersion), "{err:?}");
    child.kill().await.ok();
}

#[tokio::test]
async fn invalid_server_name_is_typed() {
    let (a, _b) = tokio::io::duplex(64);
    let err = connect(a, "not a name", &TlsPolicy::WebPki)
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::InvalidServerName(_)));
}

#[test]
fn spki_hex_round_trip() {
    let p = SpkiSha256([0xab; 32]);
    assert_eq!(SpkiSha256::from_hex(&p.hex()), Some(p));
    assert_eq!(SpkiSha256::from_hex("abcd"), None);
}
