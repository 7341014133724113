//! Through the private Tor network (timb-testnet): prosody reached via an
//! exit (exit_ports[4..8]) and as the "xmpp" onion service.
//!
//! Every account's stream comes from timb-tor's embedded arti client, as in
//! the app, each with its own isolation token; the crate itself only sees a
//! [`timb_xmpp::Connector`].

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use timb_core::{AccountId, Command, ConnectionState, Event, MessageKind, Target};
use timb_testnet::{exit_port_index, NetInfo, TestNet};
use timb_tor::TorConnector;
use timb_xmpp::{Connector, ServerAddr, TlsMode};

async fn testnet() -> (NetInfo, std::path::PathBuf) {
    tokio::task::spawn_blocking(|| {
        let net = TestNet::shared();
        (net.info().clone(), net.config_path().to_owned())
    })
    .await
    .unwrap()
}

fn is_connected(e: &Event) -> bool {
    matches!(
        e,
        Event::State(ConnectionState::Connected {
            spki_sha256: Some(_)
        })
    )
}

fn body_from(e: &Event, who: &str) -> Option<String> {
    match e {
        Event::Message {
            from: Target::Direct(f),
            body,
            ..
        } if f == who => Some(body.clone()),
        _ => None,
    }
}

async fn send(c: &Client, to: &str, body: &str) {
    c.cmd(Command::Send {
        to: Target::Direct(to.into()),
        body: body.into(),
        kind: MessageKind::Normal,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_over_exit_and_onion_chat_talk_and_resume() {
    let (net, network_file) = testnet().await;
    let state = tempfile::tempdir().unwrap();
    let tor = arti(&network_file, state.path()).await;
    let via = |n: u32| -> Arc<dyn Connector> { Arc::new(TorConnector::new(&tor, AccountId(n))) };
    let ports: Vec<u16> = exit_port_index::XMPP
        .map(|i| net.exit_port(i).unwrap())
        .collect();
    let onion = net
        .onion_service("xmpp")
        .expect("xmpp onion service")
        .clone();
    // STARTTLS and direct TLS on exit ports; direct TLS on the onion target.
    let pr = Prosody::start_on(
        &[("ann", "pw-a"), ("ben", "pw-b"), ("cat", "pw-c")],
        ports[0],
        &[ports[1], onion.target_port],
    );
    // ann: direct TLS through a cuttable proxy on another exit port.
    let proxy = Proxy::start_on(ports[2], ports[1]).await;
    let server = |port, tls| ServerAddr {
        host: "127.0.0.1".into(),
        port,
        tls,
    };
    let mut a = spawn_with(
        &pr,
        "ann",
        "pw-a",
        server(ports[2], TlsMode::Direct),
        via(1),
    );
    let mut b = spawn_with(
        &pr,
        "ben",
        "pw-b",
        server(ports[0], TlsMode::StartTls),
        via(2),
    );
    let onion_addr = ServerAddr {
        host: onion.onion.clone(),
        port: onion.port,
        tls: TlsMode::Direct,
    };
    let mut c = spawn_with(&pr, "cat", "pw-c", onion_addr, via(3));
    for x in [&a, &b, &c] {
        x.cmd(Command::Connect).await;
    }
    a.wait("ann connected via exit", is_connected).await;
    b.wait("ben connected via exit (STARTTLS)", is_connected)
        .await;
    c.wait("cat connected via onion", is_connected).await;

    // Subscriptions between ann and ben.
    a.cmd(Command::AddContact {
        id: "ben@timb.test".into(),
    })
    .await;
    b.wait("request", |e| {
        matches!(e, Event::SubscriptionRequest { .. })
    })
    .await;
    b.cmd(Command::AnswerSubscription {
        from: "ann@timb.test".into(),
        approve: true,
    })
    .await;
    b.cmd(Command::AddContact {
        id: "ann@timb.test".into(),
    })
    .await;
    a.wait("request", |e| {
        matches!(e, Event::SubscriptionRequest { .. })
    })
    .await;
    a.cmd(Command::AnswerSubscription {
        from: "ben@timb.test".into(),
        approve: true,
    })
    .await;

    // Chat both ways, and with the onion-connected account.
    send(&a, "ben@timb.test", "ann to ben").await;
    b.wait("ann to ben", |e| {
        body_from(e, "ann@timb.test").as_deref() == Some("ann to ben")
    })
    .await;
    send(&b, "ann@timb.test", "ben to ann").await;
    a.wait("ben to ann", |e| {
        body_from(e, "ben@timb.test").as_deref() == Some("ben to ann")
    })
    .await;
    send(&c, "ann@timb.test", "cat via onion").await;
    a.wait("cat", |e| {
        body_from(e, "cat@timb.test").as_deref() == Some("cat via onion")
    })
    .await;
    send(&a, "cat@timb.test", "ann to onion").await;
    c.wait("ann", |e| {
        body_from(e, "ann@timb.test").as_deref() == Some("ann to onion")
    })
    .await;

    // A room across exit and onion.
    let room = format!("tor@{MUC}");
    a.cmd(Command::JoinGroup {
        room: room.clone(),
        nick: Some("ann".into()),
    })
    .await;
    a.wait("joined", |e| matches!(e, Event::GroupJoined { .. }))
        .await;
    c.cmd(Command::JoinGroup {
        room: room.clone(),
        nick: Some("cat".into()),
    })
    .await;
    c.wait("joined", |e| matches!(e, Event::GroupJoined { .. }))
        .await;
    c.cmd(Command::Send {
        to: Target::Group(room.clone()),
        body: "meow".into(),
        kind: MessageKind::Normal,
    })
    .await;
    a.wait(
        "room message",
        |e| matches!(e, Event::Message { from: Target::Group(_), body, .. } if body == "meow"),
    )
    .await;

    // The circuit dies with messages in flight both ways; XEP-0198 resumes.
    proxy.blackhole(true);
    send(&a, "ben@timb.test", "lost-1").await;
    send(&b, "ann@timb.test", "held-1").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.cut();
    a.wait("reconnecting", |e| {
        matches!(e, Event::State(ConnectionState::Reconnecting))
    })
    .await;
    a.wait("resumed", is_connected).await;
    a.wait("held-1", |e| {
        body_from(e, "ben@timb.test").as_deref() == Some("held-1")
    })
    .await;
    b.wait("lost-1", |e| {
        body_from(e, "ann@timb.test").as_deref() == Some("lost-1")
    })
    .await;
    assert_eq!(
        a.rec.sent().matches("<bind").count(),
        1,
        "resumed, not rebound"
    );

    for x in [&a, &b, &c] {
        x.cmd(Command::Disconnect).await;
    }
}
