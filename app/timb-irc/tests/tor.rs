//! Through the private Tor network (timb-testnet): TLS to ngircd via an exit
//! (exit_ports[8]), and plain text to the "irc" onion service.
//!
//! Every stream comes from timb-tor's embedded arti client, as in the app;
//! each account has its own isolation token.

mod common;

use std::sync::Arc;

use common::*;
use timb_core::{AccountId, Command, ConnectionState, Event, MessageKind, Target};
use timb_irc::{IrcConfig, IrcServer};
use timb_testnet::{exit_port_index, NetInfo, TestNet};
use timb_tls::{PinSet, TlsPolicy};
use timb_tor::TorConnector;

async fn testnet() -> (NetInfo, std::path::PathBuf) {
    tokio::task::spawn_blocking(|| {
        let net = TestNet::shared();
        (net.info().clone(), net.config_path().to_owned())
    })
    .await
    .unwrap()
}

async fn arti(network_file: &std::path::Path, state: &std::path::Path) -> timb_tor::Transport {
    let config = timb_tor::TorConfig::private_network(network_file, state).expect("network file");
    let (progress, _watch) = tokio::sync::watch::channel(Default::default());
    timb_tor::Transport::bootstrap(config, progress)
        .await
        .expect("arti bootstraps on the private network")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_via_exit_and_plain_via_onion_service() {
    let (net, network_file) = testnet().await;
    let state = tempfile::tempdir().unwrap();
    let tor = arti(&network_file, state.path()).await;
    let tls_port = net.exit_port(exit_port_index::IRC.start).unwrap();
    let onion = net.onion_service("irc").expect("irc onion service").clone();
    let ng = Ngircd::start_on(&[onion.target_port], tls_port);

    // Two accounts over TLS through an exit, pinned to the test CA.
    let server = IrcServer {
        host: "irc.test".into(),
        port: tls_port,
        tls: TlsPolicy::Pinned(PinSet::parse("test-ca", &ng.pki.ca_pem).unwrap()),
        allow_plaintext: false,
        client_identity: None,
    };
    let mut accounts = Vec::new();
    for (i, nick) in ["torA", "torB"].into_iter().enumerate() {
        let id = AccountId(i as u32);
        // The certificate is for irc.test; the exit reaches it at 127.0.0.1.
        let via = Redirect::new(Arc::new(TorConnector::new(&tor, id)), "127.0.0.1", tls_port);
        let mut h = start_via(id, &server, IrcConfig::new(nick), via).await;
        wait_for(&mut h, "Connected", |e| {
            matches!(
                e,
                Event::State(ConnectionState::Connected {
                    spki_sha256: Some(_)
                })
            )
        })
        .await;
        accounts.push(h);
    }
    let mut b = accounts.pop().unwrap();
    let mut a = accounts.pop().unwrap();
    for h in [&mut a, &mut b] {
        h.commands
            .send(Command::JoinGroup {
                room: "#tor".into(),
                nick: None,
            })
            .await
            .unwrap();
        wait_for(h, "joined", |e| matches!(e, Event::GroupJoined { .. })).await;
    }
    let long = (0..150)
        .map(|i| format!("t{i}✓"))
        .collect::<Vec<_>>()
        .join(" ");
    a.commands
        .send(Command::Send {
            to: Target::Group("#tor".into()),
            body: long.clone(),
            kind: MessageKind::Normal,
        })
        .await
        .unwrap();
    let mut pieces = Vec::new();
    while pieces.join(" ").len() < long.len() {
        match wait_for(&mut b, "channel text", |e| {
            matches!(e, Event::Message { .. })
        })
        .await
        {
            Event::Message { body, sender, .. } => {
                assert_eq!(sender.as_deref(), Some("torA"));
                pieces.push(body);
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(pieces.join(" "), long);
    b.commands
        .send(Command::Send {
            to: Target::Direct("torA".into()),
            body: "waves back".into(),
            kind: MessageKind::Action,
        })
        .await
        .unwrap();
    let e = wait_for(&mut a, "action", |e| matches!(e, Event::Message { .. })).await;
    assert!(
        matches!(&e, Event::Message { body, kind: MessageKind::Action, from: Target::Direct(f), .. }
            if body == "waves back" && f == "torB"),
        "{e:?}"
    );

    // Plain text is allowed to the onion service, and the onion's people
    // share the server with the TLS users.
    let onion_server = IrcServer {
        host: onion.onion.clone(),
        port: onion.port,
        tls: TlsPolicy::WebPki,
        allow_plaintext: true,
        client_identity: None,
    };
    let mut c = start_via(
        AccountId(3),
        &onion_server,
        IrcConfig::new("onionC"),
        Arc::new(TorConnector::new(&tor, AccountId(3))),
    )
    .await;
    wait_connected(&mut c).await;
    c.commands
        .send(Command::Send {
            to: Target::Direct("torA".into()),
            body: "hello from the onion".into(),
            kind: MessageKind::Normal,
        })
        .await
        .unwrap();
    let e = wait_for(&mut a, "onion PM", |e| matches!(e, Event::Message { .. })).await;
    assert!(
        matches!(&e, Event::Message { body, from: Target::Direct(f), .. }
            if body == "hello from the onion" && f == "onionC"),
        "{e:?}"
    );
    for h in [&a, &b, &c] {
        h.commands.send(Command::Disconnect).await.unwrap();
    }
    wait_for(&mut c, "Disconnected", |e| {
        matches!(e, Event::State(ConnectionState::Disconnected))
    })
    .await;
}
