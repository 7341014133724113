//! End-to-end tests against a real prosody (Debian package) on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use timb_core::{
    AccountError, Command, ConnectionState, Event, MessageKind, Presence, RosterItem, Target,
};
use timb_xmpp::TlsMode;

fn is_connected(e: &Event) -> bool {
    matches!(e, Event::State(ConnectionState::Connected { .. }))
}

fn msg_from<'a>(e: &'a Event, who: &Target) -> Option<&'a str> {
    match e {
        Event::Message { from, body, .. } if from == who => Some(body),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_subscribe_chat_and_talk_in_a_room() {
    let pr = Prosody::start(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    // Alice uses direct TLS (XEP-0368), Bob STARTTLS.
    let mut a = spawn(&pr, "alice", "alice-pw", pr.tls_port, TlsMode::Direct);
    let mut b = spawn(&pr, "bob", "bob-pw", pr.c2s_port, TlsMode::StartTls);
    a.cmd(Command::Connect).await;
    b.cmd(Command::Connect).await;
    let ev = a.wait("alice connected", is_connected).await;
    let Event::State(ConnectionState::Connected { spki_sha256 }) = ev else {
        unreachable!()
    };
    assert_eq!(spki_sha256, Some(pr.leaf.spki_sha256().hex()));
    b.wait("bob connected", is_connected).await;

    // Mutual subscription.
    a.cmd(Command::AddContact {
        id: "bob@timb.test".into(),
    })
    .await;
    b.wait(
        "subscription request",
        |e| matches!(e, Event::SubscriptionRequest { from } if from == "alice@timb.test"),
    )
    .await;
    b.cmd(Command::AnswerSubscription {
        from: "alice@timb.test".into(),
        approve: true,
    })
    .await;
    b.cmd(Command::AddContact {
        id: "alice@timb.test".into(),
    })
    .await;
    a.wait(
        "subscription request",
        |e| matches!(e, Event::SubscriptionRequest { from } if from == "bob@timb.test"),
    )
    .await;
    a.cmd(Command::AnswerSubscription {
        from: "bob@timb.test".into(),
        approve: true,
    })
    .await;
    a.wait("roster both", |e| {
        matches!(e, Event::RosterSet(RosterItem { id, subscribed_to: true, subscribed_from: true, .. }) if id == "bob@timb.test")
    })
    .await;
    b.wait("alice online", |e| {
        matches!(e, Event::Presence { contact, presence: Presence::Available } if contact == "alice@timb.test")
    })
    .await;

    // Chat both ways, with markup and non-ASCII that must survive escaping.
    let tricky = "hi <b>bob</b> & 'friends' \u{263A}";
    a.cmd(Command::Send {
        to: Target::Direct("bob@timb.test".into()),
        body: tricky.into(),
        kind: MessageKind::Normal,
    })
    .await;
    let alice = Target::Direct("alice@timb.test".into());
    let e = b
        .wait("message from alice", |e| msg_from(e, &alice).is_some())
        .await;
    assert_eq!(msg_from(&e, &alice), Some(tricky));
    b.cmd(Command::Send {
        to: Target::Direct("alice@timb.test".into()),
        body: "waves".into(),
        kind: MessageKind::Action,
    })
    .await;
    let bob = Target::Direct("bob@timb.test".into());
    let e = a
        .wait("action from bob", |e| msg_from(e, &bob).is_some())
        .await;
    assert!(
        matches!(e, Event::Message { ref body, kind: MessageKind::Action, sender: None, .. } if body == "waves")
    );

    // Group chat.
    let room = format!("lounge@{MUC}");
    a.cmd(Command::JoinGroup {
        room: room.clone(),
        nick: Some("al".into()),
    })
    .await;
    a.wait(
        "alice joined",
        |e| matches!(e, Event::GroupJoined { nick, .. } if nick == "al"),
    )
    .await;
    b.cmd(Command::JoinGroup {
        room: room.clone(),
        nick: Some("bo".into()),
    })
    .await;
    let e = b
        .wait("bob members", |e| matches!(e, Event::GroupMembers { .. }))
        .await;
    assert!(
        matches!(e, Event::GroupMembers { ref members, .. } if members.contains(&"al".to_string()))
    );
    a.wait(
        "bob joins",
        |e| matches!(e, Event::MemberJoined { nick, .. } if nick == "bo"),
    )
    .await;
    b.cmd(Command::Send {
        to: Target::Group(room.clone()),
        body: "hello room".into(),
        kind: MessageKind::Normal,
    })
    .await;
    let e = a
        .wait("room message", |e| {
            matches!(
                e,
                Event::Message {
                    from: Target::Group(_),
                    ..
                }
            )
        })
        .await;
    assert!(
        matches!(e, Event::Message { ref body, sender: Some(ref s), .. } if body == "hello room" && s == "bo")
    );
    a.cmd(Command::Send {
        to: Target::Group(room.clone()),
        body: "hi bo".into(),
        kind: MessageKind::Normal,
    })
    .await;
    let e = b
        .wait("room reply", |e| {
            matches!(
                e,
                Event::Message {
                    from: Target::Group(_),
                    ..
                }
            )
        })
        .await;
    assert!(
        matches!(e, Event::Message { ref body, sender: Some(ref s), .. } if body == "hi bo" && s == "al")
    );
    b.cmd(Command::LeaveGroup { room: room.clone() }).await;
    b.wait("bob left", |e| matches!(e, Event::GroupLeft { .. }))
        .await;
    a.wait(
        "member left",
        |e| matches!(e, Event::MemberLeft { nick, .. } if nick == "bo"),
    )
    .await;

    // OTR-looking traffic is marked private / no-store.
    a.cmd(Command::Send {
        to: Target::Direct("bob@timb.test".into()),
        body: "?OTR:AAMDfake".into(),
        kind: MessageKind::Normal,
    })
    .await;
    b.wait("otr message", |e| {
        msg_from(e, &alice) == Some("?OTR:AAMDfake")
    })
    .await;

    b.cmd(Command::Disconnect).await;
    a.wait("bob offline", |e| {
        matches!(e, Event::Presence { contact, presence: Presence::Offline } if contact == "bob@timb.test")
    })
    .await;
    a.cmd(Command::Disconnect).await;
    a.wait("alice disconnected", |e| {
        matches!(e, Event::State(ConnectionState::Disconnected))
    })
    .await;

    // Privacy: what alice sent inside TLS.
    let sent = a.rec.sent();
    privacy_checks(&sent);
    assert!(
        sent.contains("<resource>timb</resource>"),
        "constant resource"
    );
    assert!(sent.contains(
        "<private xmlns='urn:xmpp:carbons:2'/><no-permanent-store xmlns='urn:xmpp:hints'/>"
    ));
    assert!(
        sent.contains("&lt;b&gt;bob&lt;/b&gt; &amp; &apos;friends&apos;")
            || sent.contains("&lt;b&gt;bob&lt;/b&gt; &amp; 'friends'")
    );
    // The tricky body appears only inside <body>.
    let at = sent.find("&lt;b&gt;bob").unwrap();
    assert!(sent[..at].ends_with("<body>hi "));
    let sent_b = b.rec.sent();
    privacy_checks(&sent_b);
}

/// Nothing that reports activity, typing, locale, time or client details.
/// Bug 18.3: Bob is online and Alice already sees him; when Alice then accepts Bob's own
/// request, the roster push must not leave him looking offline (the server does not send an
/// unchanged presence again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_request_keeps_an_online_contact_online() {
    let pr = Prosody::start(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let mut a = spawn(&pr, "alice", "alice-pw", pr.c2s_port, TlsMode::StartTls);
    let mut b = spawn(&pr, "bob", "bob-pw", pr.c2s_port, TlsMode::StartTls);
    a.cmd(Command::Connect).await;
    b.cmd(Command::Connect).await;
    a.wait("alice connected", is_connected).await;
    b.wait("bob connected", is_connected).await;
    let bob = "bob@timb.test";
    let is_bob_online = |e: &Event| matches!(e, Event::Presence { contact, presence: Presence::Available } if contact == bob);

    a.cmd(Command::AddContact { id: bob.into() }).await;
    b.wait("request from alice", |e| {
        matches!(e, Event::SubscriptionRequest { .. })
    })
    .await;
    b.cmd(Command::AnswerSubscription {
        from: "alice@timb.test".into(),
        approve: true,
    })
    .await;
    a.wait("bob online", is_bob_online).await;

    b.cmd(Command::AddContact {
        id: "alice@timb.test".into(),
    })
    .await;
    a.wait(
        "request from bob",
        |e| matches!(e, Event::SubscriptionRequest { from } if from == bob),
    )
    .await;
    a.cmd(Command::AnswerSubscription {
        from: bob.into(),
        approve: true,
    })
    .await;
    a.wait("roster both", |e| {
        matches!(e, Event::RosterSet(RosterItem { id, subscribed_from: true, .. }) if id == bob)
    })
    .await;
    // What a window folds these events into: a roster change resets nothing it was not told.
    let after = a.drain(Duration::from_secs(2)).await;
    let mut online = false;
    for e in &after {
        match e {
            Event::RosterSet(RosterItem { id, .. }) if id == bob => online = false,
            Event::Presence { contact, presence } if contact == bob => {
                online = *presence == Presence::Available
            }
            _ => {}
        }
    }
    // Right after the push the last word about Bob must be that he is online.
    assert!(
        after.iter().any(is_bob_online),
        "no presence for bob after the roster push: {after:?}"
    );
    assert!(online, "bob shown offline after: {after:?}");
}

/// Bug 18.4: "Join group" with a contact's address is refused at once, and leaves no pending
/// room that would take that contact's presence; a join the room refuses is an error too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_contacts_address_is_refused_and_the_contact_keeps_working() {
    let pr = Prosody::start(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    let mut a = spawn(&pr, "alice", "alice-pw", pr.c2s_port, TlsMode::StartTls);
    let mut b = spawn(&pr, "bob", "bob-pw", pr.c2s_port, TlsMode::StartTls);
    a.cmd(Command::Connect).await;
    b.cmd(Command::Connect).await;
    a.wait("alice connected", is_connected).await;
    b.wait("bob connected", is_connected).await;
    let bob = "bob@timb.test";

    a.cmd(Command::AddContact { id: bob.into() }).await;
    a.wait(
        "bob in the roster",
        |e| matches!(e, Event::RosterSet(RosterItem { id, .. }) if id == bob),
    )
    .await;
    a.cmd(Command::JoinGroup {
        room: bob.into(),
        nick: None,
    })
    .await;
    let e = a
        .wait("join refused", |e| matches!(e, Event::Error(_)))
        .await;
    assert!(
        matches!(
            &e,
            Event::Error(AccountError::Notice(timb_core::Notice::ContactAddress))
        ),
        "{e:?}"
    );
    // Bob accepts: his presence reaches Alice as a person's, not a room's.
    b.wait("request from alice", |e| {
        matches!(e, Event::SubscriptionRequest { .. })
    })
    .await;
    b.cmd(Command::AnswerSubscription {
        from: "alice@timb.test".into(),
        approve: true,
    })
    .await;
    a.wait("bob online", |e| {
        matches!(e, Event::Presence { contact, presence: Presence::Available } if contact == bob)
    })
    .await;
    // And Bob's own request still arrives.
    b.cmd(Command::AddContact {
        id: "alice@timb.test".into(),
    })
    .await;
    a.wait(
        "request from bob",
        |e| matches!(e, Event::SubscriptionRequest { from } if from == bob),
    )
    .await;

    // A real room that refuses the join (the nick is taken): an error, then a join works.
    let room = format!("desk@{MUC}");
    b.cmd(Command::JoinGroup {
        room: room.clone(),
        nick: Some("same".into()),
    })
    .await;
    b.wait("bob joined", |e| matches!(e, Event::GroupJoined { .. }))
        .await;
    a.cmd(Command::JoinGroup {
        room: room.clone(),
        nick: Some("same".into()),
    })
    .await;
    let e = a
        .wait("nick conflict", |e| matches!(e, Event::Error(_)))
        .await;
    assert!(
        matches!(&e, Event::Error(AccountError::GroupRefused { room: r, why }) if *r == room && why.contains("conflict")),
        "{e:?}"
    );
    a.cmd(Command::JoinGroup {
        room: room.clone(),
        nick: Some("al".into()),
    })
    .await;
    a.wait(
        "alice joined",
        |e| matches!(e, Event::GroupJoined { nick, .. } if nick == "al"),
    )
    .await;
}

fn privacy_checks(sent: &str) {
    for bad in [
        "<show",
        "<status",
        "<priority",
        "xml:lang",
        "jabber:iq:last",
        "urn:xmpp:idle",
        "chatstates",
        "<composing",
        "<active",
        "<paused",
        "jabber:iq:version",
        "<os",
        "urn:xmpp:time",
        "<tzo",
        "<utc",
        "<delay",
        "http://jabber.org/protocol/caps",
        "urn:xmpp:carbons:2'/><enable",
        "<enable xmlns='urn:xmpp:carbons",
        "xhtml",
        "urn:xmpp:receipts",
        "<nick",
        "from='",
    ] {
        assert!(!sent.contains(bad), "client sent {bad:?}");
    }
    // Presence is only ever bare or unavailable/subscription management.
    for p in sent.split("<presence").skip(1) {
        let head: String = p.chars().take_while(|c| *c != '>').collect();
        let closed = head.ends_with('/');
        let is_muc_join = p.starts_with(" to=") && p.contains("protocol/muc'/>");
        assert!(
            closed || is_muc_join,
            "presence with content: <presence{p:.80}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_auth_error() {
    let pr = Prosody::start(&[("carol", "right")]);
    let mut c = spawn(&pr, "carol", "wrong", pr.tls_port, TlsMode::Direct);
    c.cmd(Command::Connect).await;
    let e = c.wait("auth error", |e| matches!(e, Event::Error(_))).await;
    assert_eq!(
        e,
        Event::Error(AccountError::Auth("wrong user name or password".into()))
    );
    c.wait("disconnected", |e| {
        matches!(e, Event::State(ConnectionState::Disconnected))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_mismatch_is_a_certificate_error() {
    let pr = Prosody::start(&[("dave", "pw")]);
    let other = timb_tls::test_ca::TestCa::new("other").issue(&[DOMAIN]);
    let policy = timb_tls::TlsPolicy::Pinned(timb_tls::PinSet::leaf(DOMAIN, [other.spki_sha256()]));
    for (port, mode) in [
        (pr.tls_port, TlsMode::Direct),
        (pr.c2s_port, TlsMode::StartTls),
    ] {
        let h = timb_xmpp::spawn_account(
            timb_core::AccountId(1),
            config("dave", "pw", port, mode),
            std::sync::Arc::new(LoopConnector { port }),
            std::sync::Arc::new(timb_xmpp::PolicyTls::new(
                policy.clone(),
                Some(port),
                mode == TlsMode::Direct,
            )),
        );
        let mut c = Client {
            h,
            rec: Recording::default(),
        };
        c.cmd(Command::Connect).await;
        let e = c
            .wait("certificate error", |e| matches!(e, Event::Error(_)))
            .await;
        assert!(
            matches!(
                e,
                Event::Error(AccountError::Certificate(
                    timb_core::CertProblem::PinMismatch { .. }
                ))
            ),
            "{e:?}"
        );
    }
}

/// The circuit dies (data black-holed, then the connection cut) while
/// messages are in flight both ways; XEP-0198 resumption delivers all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_resumes_after_a_dropped_connection_without_losing_messages() {
    let pr = Prosody::start(&[("erin", "pw1"), ("frank", "pw2")]);
    let proxy = Proxy::start(pr.tls_port).await;
    let rec = Recording::default();
    let mut e = {
        let tls = RecordingTls {
            inner: timb_xmpp::PolicyTls::new(pr.policy(), Some(pr.tls_port), true),
            rec: rec.clone(),
        };
        let h = timb_xmpp::spawn_account(
            timb_core::AccountId(7),
            config("erin", "pw1", proxy.port, TlsMode::Direct),
            std::sync::Arc::new(LoopConnector { port: proxy.port }),
            std::sync::Arc::new(tls),
        );
        Client { h, rec }
    };
    let mut f = spawn(&pr, "frank", "pw2", pr.tls_port, TlsMode::Direct);
    e.cmd(Command::Connect).await;
    f.cmd(Command::Connect).await;
    e.wait("erin connected", is_connected).await;
    f.wait("frank connected", is_connected).await;
    let erin = Target::Direct("erin@timb.test".into());
    let frank = Target::Direct("frank@timb.test".into());

    // Warm-up message proves the path works.
    e.cmd(Command::Send {
        to: frank.clone(),
        body: "before".into(),
        kind: MessageKind::Normal,
    })
    .await;
    f.wait("before", |ev| msg_from(ev, &erin) == Some("before"))
        .await;

    // The circuit silently dies: erin's next messages never reach the server.
    proxy.blackhole(true);
    for i in 0..3 {
        e.cmd(Command::Send {
            to: frank.clone(),
            body: format!("lost-{i}"),
            kind: MessageKind::Normal,
        })
        .await;
    }
    // Frank writes to erin meanwhile; the server holds them for the session.
    for i in 0..3 {
        f.cmd(Command::Send {
            to: erin.clone(),
            body: format!("held-{i}"),
            kind: MessageKind::Normal,
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.cut();

    e.wait("reconnecting", |ev| {
        matches!(ev, Event::State(ConnectionState::Reconnecting))
    })
    .await;
    e.wait("reconnected", is_connected).await;
    for i in 0..3 {
        let want = format!("held-{i}");
        e.wait(&want, |ev| msg_from(ev, &frank) == Some(want.as_str()))
            .await;
    }
    for i in 0..3 {
        let want = format!("lost-{i}");
        f.wait(&want, |ev| msg_from(ev, &erin) == Some(want.as_str()))
            .await;
    }
    // It was a resumption, not a new session: no second bind.
    let sent = e.rec.sent();
    assert_eq!(sent.matches("<bind").count(), 1, "{sent}");
    assert_eq!(sent.matches("<resume ").count(), 1);
    // And the conversation goes on.
    f.cmd(Command::Send {
        to: erin.clone(),
        body: "after".into(),
        kind: MessageKind::Normal,
    })
    .await;
    e.wait("after", |ev| msg_from(ev, &frank) == Some("after"))
        .await;
    // Nothing arrives twice.
    let extra = e.drain(Duration::from_millis(500)).await;
    assert!(
        !extra.iter().any(|ev| matches!(ev, Event::Message { .. })),
        "{extra:?}"
    );
}

/// The server forgot the session (hibernation expired) before we got back:
/// resumption fails, a fresh session is bound, and the messages it never
/// confirmed are sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_falls_back_to_a_fresh_one_and_resends_messages() {
    let pr = Prosody::start_custom(
        &[("gina", "pw1"), ("hal", "pw2")],
        free_port(),
        &[free_port()],
        "smacks_hibernation_time = 1",
    );
    let proxy = Proxy::start(pr.tls_port).await;
    let mut g = {
        let rec = Recording::default();
        let tls = RecordingTls {
            inner: timb_xmpp::PolicyTls::new(pr.policy(), Some(pr.tls_port), true),
            rec: rec.clone(),
        };
        let h = timb_xmpp::spawn_account(
            timb_core::AccountId(8),
            config("gina", "pw1", proxy.port, TlsMode::Direct),
            std::sync::Arc::new(LoopConnector { port: proxy.port }),
            std::sync::Arc::new(tls),
        );
        Client { h, rec }
    };
    let mut h = spawn(&pr, "hal", "pw2", pr.tls_port, TlsMode::Direct);
    g.cmd(Command::Connect).await;
    h.cmd(Command::Connect).await;
    g.wait("gina connected", is_connected).await;
    h.wait("hal connected", is_connected).await;
    let gina = Target::Direct("gina@timb.test".into());
    let hal = Target::Direct("hal@timb.test".into());
    g.cmd(Command::Send {
        to: hal.clone(),
        body: "warm".into(),
        kind: MessageKind::Normal,
    })
    .await;
    h.wait("warm", |e| msg_from(e, &gina) == Some("warm")).await;

    proxy.blackhole(true);
    for i in 0..3 {
        g.cmd(Command::Send {
            to: hal.clone(),
            body: format!("unconfirmed-{i}"),
            kind: MessageKind::Normal,
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.refuse(true);
    proxy.cut();
    g.wait("reconnecting", |e| {
        matches!(e, Event::State(ConnectionState::Reconnecting))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    proxy.refuse(false);
    g.wait("reconnected", is_connected).await;
    for i in 0..3 {
        let want = format!("unconfirmed-{i}");
        h.wait(&want, |e| msg_from(e, &gina) == Some(want.as_str()))
            .await;
    }
    let sent = g.rec.sent();
    assert_eq!(sent.matches("<resume ").count(), 1, "tried to resume");
    assert_eq!(
        sent.matches("<bind").count(),
        2,
        "then bound a fresh session"
    );
    // Still usable both ways.
    h.cmd(Command::Send {
        to: gina.clone(),
        body: "back".into(),
        kind: MessageKind::Normal,
    })
    .await;
    g.wait("back", |e| msg_from(e, &hal) == Some("back")).await;
}

/// Disconnect is obeyed at once even while the client is trying to get its
/// stream back, and the user is told which messages may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_while_reconnecting_is_immediate_and_reports_unsent_messages() {
    let pr = Prosody::start(&[("ivy", "pw")]);
    let proxy = Proxy::start(pr.tls_port).await;
    let h = timb_xmpp::spawn_account(
        timb_core::AccountId(3),
        config("ivy", "pw", proxy.port, TlsMode::Direct),
        std::sync::Arc::new(LoopConnector { port: proxy.port }),
        std::sync::Arc::new(timb_xmpp::PolicyTls::new(
            pr.policy(),
            Some(pr.tls_port),
            true,
        )),
    );
    let mut c = Client {
        h,
        rec: Recording::default(),
    };
    c.cmd(Command::Connect).await;
    c.wait("connected", is_connected).await;
    proxy.blackhole(true);
    for i in 0..2 {
        c.cmd(Command::Send {
            to: Target::Direct("nobody@timb.test".into()),
            body: format!("m{i}"),
            kind: MessageKind::Normal,
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.refuse(true);
    proxy.cut();
    c.wait("reconnecting", |e| {
        matches!(e, Event::State(ConnectionState::Reconnecting))
    })
    .await;
    // Queued while reconnecting: counted as unsent too.
    c.cmd(Command::Send {
        to: Target::Direct("nobody@timb.test".into()),
        body: "m2".into(),
        kind: MessageKind::Normal,
    })
    .await;
    let t0 = std::time::Instant::now();
    c.cmd(Command::Disconnect).await;
    let e = c.wait("warning", |e| matches!(e, Event::Error(_))).await;
    assert_eq!(
        e,
        Event::Error(AccountError::Notice(timb_core::Notice::MaybeUndelivered(3)))
    );
    c.wait("disconnected", |e| {
        matches!(e, Event::State(ConnectionState::Disconnected))
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
}

/// An account on erin's credentials whose every connect is counted and can be made to fail.
fn scripted_erin(pr: &Prosody, proxy: &Proxy) -> (Client, std::sync::Arc<Scripted>) {
    let counted = Scripted::new(std::sync::Arc::new(LoopConnector { port: proxy.port }));
    let mut cfg = config("erin", "pw1", proxy.port, TlsMode::Direct);
    cfg.reconnect = timb_core::Backoff {
        attempts: 3,
        first: Duration::from_millis(100),
        max: Duration::from_millis(200),
    };
    let rec = Recording::default();
    let tls = RecordingTls {
        inner: timb_xmpp::PolicyTls::new(pr.policy(), Some(pr.tls_port), true),
        rec: rec.clone(),
    };
    let h = timb_xmpp::spawn_account(
        timb_core::AccountId(8),
        cfg,
        counted.clone(),
        std::sync::Arc::new(tls),
    );
    (Client { h, rec }, counted)
}

/// After a drop, a permanent connect failure (the exit cannot find the host) is shown
/// once, typed, and not retried: one connect, one reconnect attempt, then Disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_connect_failure_is_not_retried() {
    let pr = Prosody::start(&[("erin", "pw1")]);
    let proxy = Proxy::start(pr.tls_port).await;
    let (mut e, counted) = scripted_erin(&pr, &proxy);
    e.cmd(Command::Connect).await;
    e.wait("erin connected", is_connected).await;
    assert_eq!(counted.attempts(), 1);

    counted.fail_with(Some(timb_core::ConnectError::HostNotFound));
    proxy.cut();
    let err = e
        .wait("the error", |ev| matches!(ev, Event::Error(_)))
        .await;
    assert_eq!(
        err,
        Event::Error(AccountError::Connect(timb_core::ConnectError::HostNotFound))
    );
    e.wait("disconnected", |ev| {
        matches!(ev, Event::State(ConnectionState::Disconnected))
    })
    .await;
    // Long enough for the whole backoff had it retried.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(counted.attempts(), 2, "a permanent failure was retried");
}

/// A transient failure (a timed-out circuit) is retried, with backoff, as often as the
/// account allows, and the account reconnects as soon as the path works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_connect_failure_is_retried_until_the_path_works() {
    let pr = Prosody::start(&[("erin", "pw1")]);
    let proxy = Proxy::start(pr.tls_port).await;
    let (mut e, counted) = scripted_erin(&pr, &proxy);
    e.cmd(Command::Connect).await;
    e.wait("erin connected", is_connected).await;

    // Every attempt times out: all three are made, then the account gives up.
    counted.fail_with(Some(timb_core::ConnectError::Timeout));
    proxy.cut();
    e.wait("reconnecting", |ev| {
        matches!(ev, Event::State(ConnectionState::Reconnecting))
    })
    .await;
    let err = e
        .wait("the error", |ev| matches!(ev, Event::Error(_)))
        .await;
    assert_eq!(
        err,
        Event::Error(AccountError::Connect(timb_core::ConnectError::Timeout))
    );
    assert_eq!(counted.attempts(), 1 + 3);

    // Connected again by hand, then a drop whose first retry fails and second works.
    counted.fail_with(None);
    e.cmd(Command::Connect).await;
    e.wait("erin connected again", is_connected).await;
    counted.fail_with(Some(timb_core::ConnectError::Circuit));
    let before = counted.attempts();
    proxy.cut();
    e.wait("reconnecting", |ev| {
        matches!(ev, Event::State(ConnectionState::Reconnecting))
    })
    .await;
    while counted.attempts() == before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    counted.fail_with(None);
    e.wait("reconnected", is_connected).await;
    assert!(counted.attempts() - before >= 2);
}

/// XEP-0077 against a prosody that allows in-band registration: the account is
/// created inside TLS and logged into at once, a second creation of the same
/// name is refused as taken, and later connections only log in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_is_created_on_a_server_that_allows_it() {
    let pr = Prosody::start_custom(
        &[("taken", "pw")],
        free_port(),
        &[free_port()],
        "allow_registration = true",
    );
    let mut cfg = config("newbie", "fresh-pw", pr.c2s_port, TlsMode::StartTls);
    cfg.register = true;
    let rec = Recording::default();
    let tls = RecordingTls {
        inner: timb_xmpp::PolicyTls::new(pr.policy(), Some(pr.c2s_port), false),
        rec: rec.clone(),
    };
    let mut c = Client {
        h: timb_xmpp::spawn_account(
            timb_core::AccountId(1),
            cfg,
            std::sync::Arc::new(LoopConnector { port: pr.c2s_port }),
            std::sync::Arc::new(tls),
        ),
        rec,
    };
    c.cmd(Command::Connect).await;
    c.wait("created", |e| matches!(e, Event::AccountCreated))
        .await;
    c.wait("connected", is_connected).await;
    let sent = c.rec.sent();
    assert!(
        sent.contains("jabber:iq:register"),
        "registration went inside TLS"
    );
    // Reconnecting logs in without creating the account again.
    c.cmd(Command::Disconnect).await;
    c.wait("disconnected", |e| {
        matches!(e, Event::State(ConnectionState::Disconnected))
    })
    .await;
    c.cmd(Command::Connect).await;
    let evs = c.drain(Duration::from_secs(5)).await;
    assert!(
        evs.iter().any(is_connected) && !evs.contains(&Event::AccountCreated),
        "{evs:?}"
    );

    // A name someone already has: taken.
    let mut cfg = config("taken", "x", pr.tls_port, TlsMode::Direct);
    cfg.register = true;
    let mut again = Client {
        h: timb_xmpp::spawn_account(
            timb_core::AccountId(2),
            cfg,
            std::sync::Arc::new(LoopConnector { port: pr.tls_port }),
            std::sync::Arc::new(timb_xmpp::PolicyTls::new(
                pr.policy(),
                Some(pr.tls_port),
                true,
            )),
        ),
        rec: Recording::default(),
    };
    again.cmd(Command::Connect).await;
    let e = again
        .wait("refused", |e| matches!(e, Event::Error(_)))
        .await;
    assert_eq!(
        e,
        Event::Error(AccountError::Registration(
            timb_core::RegistrationProblem::Taken
        ))
    );
}

/// A server that does not allow it, and one that asks for more than a name and a
/// password: each refused in its own words, nothing created, no login tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_refusals_are_clear_and_create_nothing() {
    let closed = Prosody::start(&[]);
    let mut cfg = config("nobody", "pw", closed.tls_port, TlsMode::Direct);
    cfg.register = true;
    let mut c = Client {
        h: timb_xmpp::spawn_account(
            timb_core::AccountId(1),
            cfg,
            std::sync::Arc::new(LoopConnector {
                port: closed.tls_port,
            }),
            std::sync::Arc::new(timb_xmpp::PolicyTls::new(
                closed.policy(),
                Some(closed.tls_port),
                true,
            )),
        ),
        rec: Recording::default(),
    };
    c.cmd(Command::Connect).await;
    let e = c
        .wait("not offered", |e| matches!(e, Event::Error(_)))
        .await;
    assert_eq!(
        e,
        Event::Error(AccountError::Registration(
            timb_core::RegistrationProblem::NotOffered
        ))
    );

    let picky = Prosody::start_custom(
        &[],
        free_port(),
        &[free_port()],
        "allow_registration = true\nadditional_registration_fields = { \"email+\" }\nregistration_instructions = \"Give us an e-mail address\"",
    );
    let mut cfg = config("wants", "pw", picky.tls_port, TlsMode::Direct);
    cfg.register = true;
    let mut c = Client {
        h: timb_xmpp::spawn_account(
            timb_core::AccountId(2),
            cfg,
            std::sync::Arc::new(LoopConnector {
                port: picky.tls_port,
            }),
            std::sync::Arc::new(timb_xmpp::PolicyTls::new(
                picky.policy(),
                Some(picky.tls_port),
                true,
            )),
        ),
        rec: Recording::default(),
    };
    c.cmd(Command::Connect).await;
    let e = c.wait("needs more", |e| matches!(e, Event::Error(_))).await;
    match e {
        Event::Error(AccountError::Registration(timb_core::RegistrationProblem::NeedsMore {
            instructions,
            fields,
            captcha: false,
        })) => {
            assert_eq!(instructions, "Give us an e-mail address");
            assert!(fields.to_lowercase().contains("email"), "{fields}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was created: the name cannot log in.
    let mut login = spawn(&picky, "wants", "pw", picky.tls_port, TlsMode::Direct);
    login.cmd(Command::Connect).await;
    let e = login
        .wait("no such account", |e| matches!(e, Event::Error(_)))
        .await;
    assert!(matches!(e, Event::Error(AccountError::Auth(_))), "{e:?}");
}
