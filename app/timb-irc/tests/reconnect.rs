//! IRC reconnects after a dropped connection the way XMPP does: only after it was
//! connected, only for transient failures, with backoff, never after Disconnect. Against a
//! real ngircd behind a cuttable proxy, every connect counted by a scripted connector.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use timb_core::{
    AccountError, AccountHandle, AccountId, Backoff, Command, ConnectError, ConnectionState, Event,
};
use timb_irc::{IrcConfig, IrcServer};

struct Setup {
    _ng: Ngircd,
    proxy: Proxy,
    counted: Arc<Scripted>,
    h: AccountHandle,
}

/// An account (TLS pinned to the test CA) through a proxy in front of ngircd, with a
/// quick backoff so the tests run fast; not yet told to connect.
async fn setup(nick: &str, first_pause: Duration) -> Setup {
    let ng = Ngircd::start();
    let proxy = Proxy::start(ng.tls_port).await;
    let counted = Scripted::new(Arc::new(LoopConnector { port: proxy.port }));
    let server = IrcServer {
        host: "irc.test".into(),
        port: ng.tls_port,
        tls: ng.policy(),
        allow_plaintext: false,
        client_identity: None,
    };
    let mut cfg = IrcConfig::new(nick);
    cfg.reconnect = Backoff {
        attempts: 3,
        first: first_pause,
        max: first_pause * 2,
    };
    let h = timb_irc::spawn_account(AccountId(1), server, cfg, counted.clone());
    Setup {
        _ng: ng,
        proxy,
        counted,
        h,
    }
}

fn is_connected(e: &Event) -> bool {
    matches!(e, Event::State(ConnectionState::Connected { .. }))
}

fn is_state(e: &Event, s: ConnectionState) -> bool {
    matches!(e, Event::State(x) if *x == s)
}

async fn connect(s: &mut Setup) {
    s.h.commands.send(Command::Connect).await.unwrap();
    wait_for(&mut s.h, "Connected", is_connected).await;
}

#[tokio::test]
async fn reconnects_after_the_connection_is_cut_and_joins_its_channels_again() {
    let mut s = setup("recon", Duration::from_millis(100)).await;
    connect(&mut s).await;
    s.h.commands
        .send(Command::JoinGroup {
            room: "#back".into(),
            nick: None,
        })
        .await
        .unwrap();
    wait_for(&mut s.h, "joined", |e| {
        matches!(e, Event::GroupJoined { .. })
    })
    .await;
    assert_eq!(s.counted.attempts(), 1);

    s.proxy.cut();
    wait_for(&mut s.h, "Reconnecting", |e| {
        is_state(e, ConnectionState::Reconnecting)
    })
    .await;
    wait_for(&mut s.h, "Connected again", is_connected).await;
    let e = wait_for(&mut s.h, "joined again", |e| {
        matches!(e, Event::GroupJoined { .. })
    })
    .await;
    assert!(
        matches!(&e, Event::GroupJoined { room, .. } if room == "#back"),
        "{e:?}"
    );
    assert_eq!(s.counted.attempts(), 2);

    // And it is a working session: a line to the channel goes out and the server answers.
    let mut other = RawClient::register(s._ng.port, "watcher").await;
    other.send("JOIN #back").await;
    wait_for(
        &mut s.h,
        "watcher joined",
        |e| matches!(e, Event::MemberJoined { nick, .. } if nick == "watcher"),
    )
    .await;
}

#[tokio::test]
async fn no_reconnect_after_the_user_disconnects() {
    let mut s = setup("leaver", Duration::from_millis(50)).await;
    connect(&mut s).await;
    s.h.commands.send(Command::Disconnect).await.unwrap();
    wait_for(&mut s.h, "Disconnected", |e| {
        is_state(e, ConnectionState::Disconnected)
    })
    .await;
    s.proxy.cut();
    let after = drain_for(&mut s.h, Duration::from_millis(800)).await;
    assert!(
        !after.iter().any(|e| matches!(e, Event::State(_))),
        "{after:?}"
    );
    assert_eq!(s.counted.attempts(), 1);
}

#[tokio::test]
async fn disconnect_during_the_backoff_stops_reconnecting() {
    let mut s = setup("patient", Duration::from_secs(2)).await;
    connect(&mut s).await;
    s.counted.fail_with(Some(ConnectError::Timeout));
    s.proxy.cut();
    wait_for(&mut s.h, "Reconnecting", |e| {
        is_state(e, ConnectionState::Reconnecting)
    })
    .await;
    // The immediate attempt fails; the next waits two seconds. Disconnect now.
    while s.counted.attempts() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.h.commands.send(Command::Disconnect).await.unwrap();
    wait_for(&mut s.h, "Disconnected", |e| {
        is_state(e, ConnectionState::Disconnected)
    })
    .await;
    s.counted.fail_with(None);
    let after = drain_for(&mut s.h, Duration::from_secs(3)).await;
    assert!(!after.iter().any(is_connected), "{after:?}");
    assert_eq!(s.counted.attempts(), 2);
}

#[tokio::test]
async fn a_failed_first_connect_is_reported_not_retried() {
    let mut s = setup("starter", Duration::from_millis(50)).await;
    // Transient, yet not retried: at start-up the user is told, and decides.
    s.counted.fail_with(Some(ConnectError::Circuit));
    s.h.commands.send(Command::Connect).await.unwrap();
    let err = start_error(&mut s.h).await;
    assert_eq!(err, AccountError::Connect(ConnectError::Circuit));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.counted.attempts(), 1);
}

#[tokio::test]
async fn a_permanent_failure_after_a_drop_is_shown_once_not_retried() {
    let mut s = setup("blocked", Duration::from_millis(50)).await;
    connect(&mut s).await;
    s.counted.fail_with(Some(ConnectError::Forbidden));
    s.proxy.cut();
    wait_for(&mut s.h, "Reconnecting", |e| {
        is_state(e, ConnectionState::Reconnecting)
    })
    .await;
    let err = start_error(&mut s.h).await;
    assert_eq!(err, AccountError::Connect(ConnectError::Forbidden));
    assert!(!err.is_transient());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.counted.attempts(), 2);
}

#[tokio::test]
async fn transient_failures_use_up_the_attempts_then_give_up() {
    let mut s = setup("stubborn", Duration::from_millis(50)).await;
    connect(&mut s).await;
    s.counted.fail_with(Some(ConnectError::Timeout));
    s.proxy.cut();
    let err = start_error(&mut s.h).await;
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(s.counted.attempts(), 1 + 3);
}
