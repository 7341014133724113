//! SCRAM-SHA-256-PLUS with tls-exporter channel binding, end to end over
//! real TLS 1.3 (timb-tls on the client, rustls on a scripted server), since
//! Debian's prosody offers no -PLUS mechanism.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use timb_core::{AccountError, AccountId, Command, ConnectionState, Event};
use timb_tls::test_ca::TestCa;
use timb_tls::{PinSet, TlsPolicy};
use timb_xmpp::stream::{Frame, XmlStream};
use timb_xmpp::{
    BoxFuture, BoxStream, ConnectError, Connector, PolicyTls, ServerAddr, TlsMode, XmppConfig,
};
use tokio::io::DuplexStream;

struct PipeConnector(Mutex<Option<DuplexStream>>);

impl Connector for PipeConnector {
    fn connect(&self, _host: String, _port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
        let s = self.0.lock().unwrap().take();
        Box::pin(async move {
            s.map(|s| Box::new(s) as BoxStream)
                .ok_or(ConnectError::Refused)
        })
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Honest,
    /// Answers with a signature that does not prove knowledge of the
    /// password, as an impostor would.
    ForgedSignature,
}

const HDR: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s' from='plus.test' version='1.0'>";

async fn stanza<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    xs: &mut XmlStream<S>,
) -> timb_xmpp::xml::Element {
    loop {
        match xs.next().await.unwrap() {
            Frame::Stanza(e) => return e,
            Frame::StreamStart(_) => {}
            Frame::StreamEnd => panic!("client closed"),
        }
    }
}

/// Returns what the server saw: mechanism chosen and whether the channel
/// binding matched its own TLS exporter.
async fn run(mode: Server) -> (Vec<Event>, String, bool) {
    timb_tls::install_crypto_provider();
    let leaf = TestCa::new("plus CA").issue(&["plus.test"]);
    let server_cfg = leaf.server_config(&[&rustls::version::TLS13]);
    let (client_end, server_end) = tokio::io::duplex(1 << 16);
    let mut cfg = XmppConfig::new("user@plus.test", "pencil");
    cfg.server = Some(ServerAddr {
        host: "127.0.0.1".into(),
        port: 5223,
        tls: TlsMode::Direct,
    });
    cfg.timeout = Duration::from_secs(5);
    cfg.reconnect = timb_core::Backoff::NEVER;
    cfg.allow_plain = true; // offered, but must not be picked over -PLUS
    let policy = TlsPolicy::Pinned(PinSet::leaf("plus.test", [leaf.spki_sha256()]));
    let mut h = timb_xmpp::spawn_account(
        AccountId(5),
        cfg,
        Arc::new(PipeConnector(Mutex::new(Some(client_end)))),
        Arc::new(PolicyTls::new(policy, Some(5223), true)),
    );
    h.commands.send(Command::Connect).await.unwrap();

    let server = tokio::spawn(async move {
        let tls = tokio_rustls::TlsAcceptor::from(server_cfg)
            .accept(server_end)
            .await
            .unwrap();
        let mut exporter = [0u8; 32];
        tls.get_ref()
            .1
            .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", Some(&[]))
            .unwrap();
        let mut xs = XmlStream::new(tls, 1 << 20);
        let _ = xs.next().await.unwrap();
        xs.send_raw(&format!("{HDR}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-256-PLUS</mechanism></mechanisms><sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/></sasl-channel-binding></stream:features>")).await.unwrap();
        let auth = stanza(&mut xs).await;
        let mech = auth.attr("mechanism").unwrap().to_owned();
        let first = String::from_utf8(B64.decode(auth.text()).unwrap()).unwrap();
        let (gs2, bare) = first.split_at(first.find("n=").unwrap());
        let cnonce = bare.split(",r=").nth(1).unwrap().to_owned();
        let salt = b"NaCl-salt-1234";
        let nonce = format!("{cnonce}SERVERNONCE");
        let server_first = format!("r={nonce},s={},i=4096", B64.encode(salt));
        xs.send_raw(&format!(
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
            B64.encode(&server_first)
        ))
        .await
        .unwrap();
        let resp = stanza(&mut xs).await;
        let fin = String::from_utf8(B64.decode(resp.text()).unwrap()).unwrap();
        let (without_proof, proof) = fin.rsplit_once(",p=").unwrap();
        let c = without_proof
            .strip_prefix("c=")
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let mut expect_cb = gs2.as_bytes().to_vec();
        expect_cb.extend_from_slice(&exporter);
        let binding_ok = B64.decode(c).unwrap() == expect_cb;
        // Verify the proof like a server that stores StoredKey/ServerKey.
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pencil", salt, 4096, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored = Sha256::digest(&client_key);
        let auth_msg = format!("{bare},{server_first},{without_proof}");
        let sig = hmac(&stored, auth_msg.as_bytes());
        let recovered: Vec<u8> = B64
            .decode(proof)
            .unwrap()
            .iter()
            .zip(&sig)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(Sha256::digest(&recovered), stored, "client proof is wrong");
        let mut server_sig = hmac(&hmac(&salted, b"Server Key"), auth_msg.as_bytes());
        if mode == Server::ForgedSignature {
            server_sig[0] ^= 1;
        }
        xs.send_raw(&format!(
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
            B64.encode(format!("v={}", B64.encode(&server_sig)))
        ))
        .await
        .unwrap();
        if mode == Server::Honest {
            let mut xs = xs.restart();
            let _ = xs.next().await.unwrap();
            xs.send_raw(&format!("{HDR}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")).await.unwrap();
            let bind = stanza(&mut xs).await;
            let id = bind.attr("id").unwrap().to_owned();
            xs.send_raw(&format!("<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user@plus.test/timb</jid></bind></iq>")).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(1), stanza(&mut xs)).await;
        }
        (mech, binding_ok)
    });
    let mut events = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), h.events.recv()).await {
        let done = matches!(
            e,
            Event::State(ConnectionState::Connected { .. }) | Event::Error(_)
        );
        events.push(e);
        if done {
            break;
        }
    }
    let (mech, ok) = server.await.unwrap();
    (events, mech, ok)
}

#[tokio::test]
async fn scram_sha256_plus_binds_to_the_tls_session() {
    let (events, mech, binding_ok) = run(Server::Honest).await;
    assert_eq!(mech, "SCRAM-SHA-256-PLUS");
    assert!(binding_ok, "channel binding data is not the TLS exporter");
    assert!(
        matches!(
            events.last(),
            Some(Event::State(ConnectionState::Connected {
                spki_sha256: Some(_)
            }))
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn forged_server_signature_is_refused() {
    let (events, _, _) = run(Server::ForgedSignature).await;
    assert_eq!(
        events.last(),
        Some(&Event::Error(AccountError::Auth(
            "the server could not prove it knows the password (SCRAM server signature mismatch)"
                .into()
        )))
    );
}
