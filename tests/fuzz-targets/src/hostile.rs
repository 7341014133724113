//! A hostile XMPP server's side, scripted in-process over a pipe: shared by the
//! `xmpp_session` fuzz target and `cargo xtask bench flood` (app/timb/examples/bench_flood.rs).
//! The pipe stands in for Tor and TLS: what is measured is what timb does with the
//! server's stanzas once it is logged in.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use timb_core::{AccountHandle, AccountId};
use timb_xmpp::stream::{Frame, XmlStream};
use timb_xmpp::xml::Element;
use timb_xmpp::{BoxFuture, BoxStream, ConnectError, Connector, TlsInfo, TlsUpgrade, XmppError};
use tokio::io::{DuplexStream, WriteHalf};
use tokio::sync::oneshot;

/// The account's address; the server binds it to resource `timb`.
pub const JID: &str = "me@evil.test";

/// The room the fuzz target and the flood bench join.
pub const ROOM: &str = "room@conference.evil.test";

/// Hands out one end of a pipe, once.
pub struct Pipe(Mutex<Option<DuplexStream>>);

impl Connector for Pipe {
    fn connect(&self, _host: String, _port: u16) -> BoxFuture<Result<BoxStream, ConnectError>> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            s.map(|s| Box::new(s) as BoxStream)
                .ok_or(ConnectError::Refused)
        })
    }
}

/// Leaves the stream as it is: TLS is timb-tls's and measured there.
pub struct NoTls;

impl TlsUpgrade for NoTls {
    fn upgrade(
        &self,
        stream: BoxStream,
        _server_name: String,
    ) -> BoxFuture<Result<(BoxStream, TlsInfo), XmppError>> {
        Box::pin(async move { Ok((stream, TlsInfo::default())) })
    }
}

/// The account as the app configures it, but for the pipe: no reconnects, and pings
/// only after an hour (the server here does not answer them).
pub fn account(id: AccountId, client: DuplexStream) -> AccountHandle {
    let mut cfg = timb_xmpp::XmppConfig::new(JID, "pw");
    cfg.server = Some(timb_xmpp::ServerAddr {
        host: "evil.test".into(),
        port: 5223,
        tls: timb_xmpp::TlsMode::Direct,
    });
    cfg.allow_plain = true;
    cfg.reconnect = timb_core::Backoff::NEVER;
    cfg.ping_interval = Duration::from_secs(3600);
    timb_xmpp::spawn_account(
        id,
        cfg,
        Arc::new(Pipe(Mutex::new(Some(client)))),
        Arc::new(NoTls),
    )
}

const HDR: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='evil.test' version='1.0'>";

/// The client's next stanza; `None` once its stream ended or broke.
pub async fn next_stanza(xs: &mut XmlStream<DuplexStream>) -> Option<Element> {
    loop {
        match xs.next().await {
            Ok(Frame::Stanza(e)) => return Some(e),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Logs the client in as the server: PLAIN, resource binding, an empty roster; the
/// client's initial presence follows on the returned stream.
pub async fn login(server: DuplexStream) -> XmlStream<DuplexStream> {
    let mut xs = XmlStream::new(server, 1 << 20);
    let sasl = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
    let _ = xs.next().await;
    let _ = xs.send_raw(&format!("{HDR}{sasl}")).await;
    let _ = next_stanza(&mut xs).await;
    let _ = xs
        .send_raw("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await;
    let mut xs = xs.restart();
    let _ = xs.next().await;
    let bind =
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";
    let _ = xs.send_raw(&format!("{HDR}{bind}")).await;
    let id = next_stanza(&mut xs)
        .await
        .and_then(|e| e.attr("id").map(str::to_owned))
        .unwrap_or_default();
    let _ = xs
        .send_raw(&format!("<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{JID}/timb</jid></bind></iq>"))
        .await;
    // The roster request comes next; an empty roster answers it.
    if let Some(get) = next_stanza(&mut xs).await {
        let id = get.attr("id").unwrap_or_default().to_owned();
        let _ = xs
            .send_raw(&format!(
                "<iq type='result' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
            ))
            .await;
    }
    xs
}

/// [`login`], then the client's stanzas read and dropped by a task of its own, as a server
/// would: the server's write half, and word once the client has asked to join [`ROOM`]
/// (or has stopped talking).
pub async fn serve(
    server: DuplexStream,
) -> (Option<WriteHalf<DuplexStream>>, oneshot::Receiver<()>) {
    let (mut rd, wr) = login(server).await.split();
    let (joined_tx, joined_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut joined = Some(joined_tx);
        while let Some(e) = next_stanza(&mut rd).await {
            if e.name == "presence" && e.attr("to").is_some_and(|t| t.starts_with(ROOM)) {
                if let Some(j) = joined.take() {
                    let _ = j.send(());
                }
            }
        }
    });
    (wr, joined_rx)
}
