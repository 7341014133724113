//! Hostile and broken servers, scripted in-process over a `tokio::io::duplex`
//! pipe: every failure must be a clear typed error, never a panic or a hang.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use timb_core::{AccountError, AccountHandle, AccountId, Command, Event, Target};
use timb_xmpp::stream::{Frame, XmlStream};
use timb_xmpp::xml::Element;
use timb_xmpp::{
    BoxFuture, BoxStream, ConnectError, Connector, ServerAddr, TlsInfo, TlsMode, TlsUpgrade,
    XmppConfig, XmppError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Hands out one end of a pipe; the test plays the server on the other.
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

/// Pretends TLS is up so the tests reach the XML layer; the real TLS is
/// covered by the prosody tests.
struct FakeTls;

impl TlsUpgrade for FakeTls {
    fn upgrade(
        &self,
        stream: BoxStream,
        _server_name: String,
    ) -> BoxFuture<Result<(BoxStream, TlsInfo), XmppError>> {
        Box::pin(async move { Ok((stream, TlsInfo::default())) })
    }
}

fn config(mode: TlsMode) -> XmppConfig {
    let mut c = XmppConfig::new("user@evil.test", "pw");
    c.server = Some(ServerAddr {
        host: "127.0.0.1".into(),
        port: 5222,
        tls: mode,
    });
    c.timeout = Duration::from_secs(2);
    c.ping_interval = Duration::from_secs(1);
    c.reconnect = timb_core::Backoff::NEVER;
    c.max_stanza = 4096;
    c.allow_plain = true;
    c
}

fn start(cfg: XmppConfig) -> (AccountHandle, DuplexStream) {
    let (client, server) = tokio::io::duplex(1 << 20);
    let h = timb_xmpp::spawn_account(
        AccountId(9),
        cfg,
        Arc::new(PipeConnector(Mutex::new(Some(client)))),
        Arc::new(FakeTls),
    );
    (h, server)
}

const HDR: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='evil.test' version='1.0'>";

async fn next_error(h: &mut AccountHandle) -> AccountError {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), h.events.recv()).await {
            Ok(Some(Event::Error(e))) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("task ended without an error event"),
            Err(_) => panic!("no error event within 20 s"),
        }
    }
}

/// Reads the client's stream header, then sends ours plus `rest`.
async fn greet(xs: &mut XmlStream<DuplexStream>, rest: &str) {
    match xs.next().await {
        Ok(Frame::StreamStart(h)) => {
            assert_eq!(h.attr("to"), Some("evil.test"));
            assert!(h.attr("from").is_none(), "client header leaks its JID");
        }
        other => panic!("expected client header, got {other:?}"),
    }
    xs.send_raw(&format!("{HDR}{rest}")).await.unwrap();
}

async fn stanza(xs: &mut XmlStream<DuplexStream>) -> Element {
    match xs.next().await {
        Ok(Frame::Stanza(e)) => e,
        other => panic!("expected a stanza, got {other:?}"),
    }
}

/// Runs a PLAIN authentication as the server; returns the restarted stream.
async fn plain_auth(server: DuplexStream) -> XmlStream<DuplexStream> {
    let mut xs = XmlStream::new(server, 1 << 20);
    greet(
        &mut xs,
        "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
    )
    .await;
    let auth = stanza(&mut xs).await;
    assert_eq!(auth.attr("mechanism"), Some("PLAIN"));
    xs.send_raw("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .unwrap();
    xs.restart()
}

/// Runs a PLAIN login and resource binding as the server; returns the
/// stream after the client's roster request and initial presence.
async fn login(server: DuplexStream) -> XmlStream<DuplexStream> {
    let mut xs = plain_auth(server).await;
    greet(
        &mut xs,
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    )
    .await;
    let bind = stanza(&mut xs).await;
    let id = bind.attr("id").unwrap().to_owned();
    xs.send_raw(&format!("<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user@evil.test/timb</jid></bind></iq>")).await.unwrap();
    let roster = stanza(&mut xs).await;
    assert_eq!(roster.attr("type"), Some("get"));
    let id = roster.attr("id").unwrap().to_owned();
    xs.send_raw(&format!(
        "<iq type='result' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
    ))
    .await
    .unwrap();
    let p = stanza(&mut xs).await;
    assert_eq!(p.to_xml(), "<presence/>", "initial presence must be bare");
    xs
}

#[tokio::test]
async fn server_without_starttls_is_refused_before_any_credentials() {
    let (mut h, server) = start(config(TlsMode::StartTls));
    h.commands.send(Command::Connect).await.unwrap();
    let srv = tokio::spawn(async move {
        let mut xs = XmlStream::new(server, 1 << 20);
        greet(
            &mut xs,
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        )
        .await;
        // Whatever the client sends next must not be credentials.
        let mut rest = Vec::new();
        let mut s = xs.into_inner().unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        String::from_utf8_lossy(&rest).into_owned()
    });
    let e = next_error(&mut h).await;
    assert_eq!(e, AccountError::Notice(timb_core::Notice::NoTls));
    drop(h);
    let rest = srv.await.unwrap();
    assert!(!rest.contains("auth"), "sent after refusal: {rest}");
}

#[tokio::test]
async fn no_acceptable_mechanism() {
    let mut cfg = config(TlsMode::Direct);
    cfg.allow_plain = false;
    let (mut h, server) = start(cfg);
    h.commands.send(Command::Connect).await.unwrap();
    tokio::spawn(async move {
        let mut xs = XmlStream::new(server, 1 << 20);
        greet(&mut xs, "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism><mechanism>DIGEST-MD5</mechanism></mechanisms></stream:features>").await;
        let _ = xs.next().await;
    });
    let e = next_error(&mut h).await;
    assert_eq!(
        e,
        AccountError::Auth("no acceptable mechanism (server offers: PLAIN DIGEST-MD5)".into())
    );
}

/// Sends `payload` right after the stream header and returns the error.
async fn error_for(payload: Vec<u8>) -> AccountError {
    let (mut h, server) = start(config(TlsMode::Direct));
    h.commands.send(Command::Connect).await.unwrap();
    tokio::spawn(async move {
        let mut xs = XmlStream::new(server, 1 << 20);
        greet(&mut xs, "").await;
        let mut s = xs.into_inner().unwrap();
        let _ = s.write_all(&payload).await;
        // Hold the pipe open: the error must come from the data, not EOF.
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    next_error(&mut h).await
}

#[tokio::test]
async fn oversize_stanza_is_a_clear_error() {
    let mut p = b"<stream:features><x xmlns='urn:x'>".to_vec();
    p.extend(std::iter::repeat_n(b'A', 100_000));
    let e = error_for(p).await;
    assert_eq!(
        e,
        AccountError::Protocol("the server sent a stanza larger than the 4096-byte limit".into())
    );
}

#[tokio::test]
async fn malformed_xml_is_a_clear_error() {
    let e = error_for(b"<stream:features><a></b></stream:features>".to_vec()).await;
    assert!(
        matches!(&e, AccountError::Protocol(m) if m.starts_with("malformed XML from the server")),
        "{e:?}"
    );
}

#[tokio::test]
async fn invalid_utf8_is_a_clear_error() {
    let e = error_for(b"<stream:features><a>\xc3\x28</a></stream:features>".to_vec()).await;
    assert_eq!(
        e,
        AccountError::Protocol("the server sent text that is not valid UTF-8".into())
    );
}

#[tokio::test]
async fn stream_error_is_reported_with_its_condition() {
    let e = error_for(b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>go away</text></stream:error>".to_vec()).await;
    assert_eq!(
        e,
        AccountError::Closed(
            "the server ended the stream with an error: host-unknown (go away)".into()
        )
    );
}

#[tokio::test]
async fn silent_server_times_out() {
    let (mut h, server) = start(config(TlsMode::Direct));
    h.commands.send(Command::Connect).await.unwrap();
    let t0 = std::time::Instant::now();
    let e = next_error(&mut h).await;
    assert_eq!(
        e,
        AccountError::Transport("the server did not answer within 2 seconds".into())
    );
    assert!(t0.elapsed() < Duration::from_secs(8));
    drop(server);
}

/// Bug 18.5: a connection that takes its time (a Tor circuit being built) is cancelled by
/// Disconnect at once, not when it finally succeeds or times out.
#[tokio::test]
async fn disconnect_while_connecting_is_immediate() {
    let mut cfg = config(TlsMode::Direct);
    cfg.timeout = Duration::from_secs(60);
    let (mut h, server) = start(cfg);
    h.commands.send(Command::Connect).await.unwrap();
    // The pipe is open but the "server" never speaks: the client waits in the connect.
    let connecting = tokio::time::timeout(Duration::from_secs(5), h.events.recv()).await;
    assert!(matches!(
        connecting,
        Ok(Some(Event::State(timb_core::ConnectionState::Connecting)))
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = std::time::Instant::now();
    h.commands.send(Command::Disconnect).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), h.events.recv()).await {
            Ok(Some(Event::State(timb_core::ConnectionState::Disconnected))) => break,
            Ok(Some(Event::Error(e))) => panic!("cancelling is not an error: {e:?}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("task ended"),
            Err(_) => panic!("Disconnect did not cancel the connect within 3 s"),
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(server);
}

#[tokio::test]
async fn server_that_stops_answering_mid_session_is_detected_by_ping() {
    let (mut h, server) = start(config(TlsMode::Direct));
    h.commands.send(Command::Connect).await.unwrap();
    let srv = tokio::spawn(async move {
        let mut xs = login(server).await;
        // Go silent, but keep reading so the client is not blocked.
        let mut seen = Vec::new();
        while let Ok(Ok(Frame::Stanza(e))) =
            tokio::time::timeout(Duration::from_secs(8), xs.next()).await
        {
            seen.push(e);
        }
        seen
    });
    let e = next_error(&mut h).await;
    assert_eq!(
        e,
        AccountError::Transport("the server did not answer within 2 seconds".into())
    );
    let seen = srv.await.unwrap();
    assert!(
        seen.iter().any(|e| e.has_child("ping", "urn:xmpp:ping")),
        "client never pinged: {seen:?}"
    );
}

/// Queries that would reveal the client, OS, clock or idle time are
/// refused; pings are answered; only `<body>` text reaches the GUI.
#[tokio::test]
async fn fingerprinting_queries_are_refused_and_only_body_is_delivered() {
    let (mut h, server) = start(config(TlsMode::Direct));
    h.commands.send(Command::Connect).await.unwrap();
    let srv = tokio::spawn(async move {
        let mut xs = login(server).await;
        let mut answers = Vec::new();
        for (id, ty, ns) in [
            ("v", "get", "<query xmlns='jabber:iq:version'/>"),
            ("t", "get", "<time xmlns='urn:xmpp:time'/>"),
            ("l", "get", "<query xmlns='jabber:iq:last'/>"),
            (
                "d",
                "get",
                "<query xmlns='http://jabber.org/protocol/disco#info'/>",
            ),
            ("p", "get", "<ping xmlns='urn:xmpp:ping'/>"),
            // A roster push from a stranger must not be accepted.
            (
                "r",
                "set",
                "<query xmlns='jabber:iq:roster'><item jid='x@y'/></query>",
            ),
        ] {
            xs.send_raw(&format!(
                "<iq type='{ty}' id='{id}' from='spy@evil.test/x' to='user@evil.test/timb'>{ns}</iq>"
            ))
            .await
            .unwrap();
            answers.push(stanza(&mut xs).await);
        }
        xs.send_raw(
            "<message from='friend@evil.test/phone' type='chat'><body>plain text</body>\
             <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>rich <img src='http://tracker/'/></p></body></html>\
             <delay xmlns='urn:xmpp:delay' stamp='2001-01-01T00:00:00Z'/>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>\
             <message from='friend@evil.test/phone' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        )
        .await
        .unwrap();
        // Keep the stream up until the test is done.
        tokio::time::sleep(Duration::from_secs(3)).await;
        answers
    });
    let msg = loop {
        match tokio::time::timeout(Duration::from_secs(20), h.events.recv()).await {
            Ok(Some(e @ Event::Message { .. })) => break e,
            Ok(Some(Event::Error(e))) => panic!("{e}"),
            Ok(Some(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    let Event::Message {
        from,
        sender,
        body,
        received_at,
        ..
    } = msg
    else {
        unreachable!()
    };
    assert_eq!(from, Target::Direct("friend@evil.test".into()));
    assert_eq!(sender, None);
    assert_eq!(body, "plain text");
    assert!(
        received_at > 1_600_000_000,
        "receive time is ours, not <delay>"
    );
    let answers = srv.await.unwrap();
    for a in &answers[..4] {
        assert_eq!(a.attr("type"), Some("error"), "{}", a.to_xml());
        assert!(a
            .child("error", "jabber:client")
            .unwrap()
            .has_child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"));
        assert!(
            a.elements().count() == 1,
            "error reply echoes nothing: {}",
            a.to_xml()
        );
    }
    assert_eq!(answers[4].attr("type"), Some("result"));
    assert_eq!(answers[4].attr("id"), Some("p"));
    assert_eq!(answers[5].attr("type"), Some("error"));
    // The only events: state changes and the one message; no roster change
    // from the forged push, nothing for the chat-state-only message.
    let rest: Vec<Event> = std::iter::from_fn(|| h.events.try_recv().ok()).collect();
    assert!(
        !rest.iter().any(|e| matches!(
            e,
            Event::RosterSet(_) | Event::Message { .. } | Event::Presence { .. }
        )),
        "{rest:?}"
    );
}

/// The same bounds hold in an established session: an oversize stanza
/// ends the session with a clear error and no reconnect loop.
#[tokio::test]
async fn oversize_stanza_mid_session_ends_it_cleanly() {
    let mut cfg = config(TlsMode::Direct);
    cfg.reconnect.attempts = 3;
    let (mut h, server) = start(cfg);
    h.commands.send(Command::Connect).await.unwrap();
    tokio::spawn(async move {
        let mut xs = login(server).await;
        let big = "x".repeat(50_000);
        let _ = xs
            .send_raw(&format!(
                "<message from='a@evil.test/r' type='chat'><body>{big}</body></message>"
            ))
            .await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let e = next_error(&mut h).await;
    assert_eq!(
        e,
        AccountError::Protocol("the server sent a stanza larger than the 4096-byte limit".into())
    );
    let next = tokio::time::timeout(Duration::from_secs(5), h.events.recv()).await;
    assert!(
        matches!(
            next,
            Ok(Some(Event::State(timb_core::ConnectionState::Disconnected)))
        ),
        "{next:?}"
    );
}

/// Cheap fuzzing of the session layer: valid XML with hostile content
/// (missing/odd attributes, unknown types, bogus acks, huge h, MUC noise,
/// roster junk) never panics the task; it keeps working or ends with an error.
#[tokio::test]
async fn random_hostile_stanzas_never_panic_the_session() {
    let templates = [
        "<message/>",
        "<message from=''><body/></message>",
        "<message from='a@b/c' type='groupchat'><body>x</body></message>",
        "<message from='a@b/c' type='error'/>",
        "<message from='@/' type='chat'><body>\u{0}</body></message>",
        "<presence/>",
        "<presence from='a@b/c' type='weird'/>",
        "<presence from='a@b/c'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/><status code='201'/></x></presence>",
        "<presence from='user@evil.test/timb'/>",
        "<presence from='x@y' type='subscribe'/>",
        "<iq/>",
        "<iq type='result'/>",
        "<iq type='set' id='1'><query xmlns='jabber:iq:roster'><item/><item jid=''/><item jid='z@z' subscription='bogus'/></query></iq>",
        "<iq type='get' id='2'/>",
        "<iq type='error' id='3'><error/></iq>",
        "<a xmlns='urn:xmpp:sm:3' h='99999'/>",
        "<r xmlns='urn:xmpp:sm:3'/>",
        "<enabled xmlns='urn:xmpp:sm:3'/>",
        "<unknown xmlns='urn:x'><deep><er/></deep></unknown>",
    ];
    let mut seed: u64 = 0xDEAD_BEEF_CAFE_F00D;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let script: Vec<String> = (0..400)
        .map(|_| templates[(rnd() % templates.len() as u64) as usize].to_owned())
        .collect();
    let (mut h, server) = start(config(TlsMode::Direct));
    h.commands.send(Command::Connect).await.unwrap();
    tokio::spawn(async move {
        let mut xs = login(server).await;
        for s in script {
            if xs.send_raw(&s).await.is_err() {
                return;
            }
        }
        let _ = xs
            .send_raw("<message from='end@evil.test/x' type='chat'><body>the end</body></message>")
            .await;
        // Keep reading so the client never blocks on writes.
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), xs.next()).await {}
    });
    loop {
        match tokio::time::timeout(Duration::from_secs(20), h.events.recv()).await {
            Ok(Some(Event::Message { body, .. })) if body == "the end" => break,
            Ok(Some(Event::Error(e @ (AccountError::Protocol(_) | AccountError::Closed(_))))) => {
                panic!("valid XML with odd content ended the session: {e}")
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the account task died"),
            Err(_) => panic!("no progress"),
        }
    }
}

/// XEP-0198 acks are coalesced: a burst of messages and the server's ack request get one
/// `<a/>` with the count of all of them, not one per stanza, and three messages sent back
/// to back one `<r/>`, not one each (small writes of their own, which over Tor held the
/// next stanza behind a relay's Nagle; bench xmpp).
#[tokio::test]
async fn a_burst_of_stanzas_gets_one_ack() {
    let (mut h, server) = start(config(TlsMode::Direct));
    h.commands.send(Command::Connect).await.unwrap();
    let mut xs = plain_auth(server).await;
    greet(
        &mut xs,
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><sm xmlns='urn:xmpp:sm:3'/></stream:features>",
    )
    .await;
    let bind = stanza(&mut xs).await;
    let id = bind.attr("id").unwrap().to_owned();
    xs.send_raw(&format!("<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user@evil.test/timb</jid></bind></iq>")).await.unwrap();
    let enable = stanza(&mut xs).await;
    assert!(enable.is("enable", "urn:xmpp:sm:3"), "{}", enable.to_xml());
    xs.send_raw("<enabled xmlns='urn:xmpp:sm:3' id='s1' resume='true'/>")
        .await
        .unwrap();
    // The session's start: roster request, initial presence, an ack request.
    let roster = stanza(&mut xs).await;
    let id = roster.attr("id").unwrap().to_owned();
    xs.send_raw(&format!(
        "<iq type='result' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
    ))
    .await
    .unwrap();
    let mut burst = String::new();
    for i in 0..3 {
        burst +=
            &format!("<message from='friend@evil.test/x' type='chat'><body>m{i}</body></message>");
    }
    burst += "<r xmlns='urn:xmpp:sm:3'/>";
    xs.send_raw(&burst).await.unwrap();
    let mut acks = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(f)) = tokio::time::timeout_at(until, xs.next()).await {
        if let Frame::Stanza(e) = f {
            if e.is("a", "urn:xmpp:sm:3") {
                acks.push(e.attr("h").unwrap_or("").to_owned());
            }
        }
    }
    // The roster result counts too: four stanzas handled, acknowledged in fewer acks
    // than stanzas (one, unless the machine stalls the session for 100 ms between them).
    assert!(
        acks.last().is_some_and(|h| h == "4") && acks.len() < 4,
        "acks written: {acks:?}"
    );
    let mut bodies = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), h.events.recv()).await
    {
        if let Event::Message { body, .. } = ev {
            bodies.push(body);
        }
    }
    assert_eq!(bodies, ["m0", "m1", "m2"]);

    // The other way: three messages sent back to back, one ack request after them.
    for i in 0..3 {
        h.commands
            .send(Command::Send {
                to: timb_core::Target::Direct("friend@evil.test".into()),
                body: format!("r{i}"),
                kind: timb_core::MessageKind::Normal,
            })
            .await
            .unwrap();
    }
    let (mut sent, mut requests) = (0, 0);
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(f)) = tokio::time::timeout_at(until, xs.next()).await {
        if let Frame::Stanza(e) = f {
            if e.name == "message" {
                sent += 1;
            } else if e.is("r", "urn:xmpp:sm:3") {
                requests += 1;
            }
        }
    }
    // One request after them (fewer than one each, whatever the machine's load).
    assert_eq!(sent, 3);
    assert!((1..3).contains(&requests), "{requests} ack requests");
}
