//! Two timb IRC accounts, each wrapped in the OTR layer, talk through a real ngircd reached
//! over arti: one with TLS through an exit (exit port 13 of the network file), one in plain
//! text through the "gui" onion service. A recording relay in front of ngircd's plain port
//! sees every IRC line of the onion account, so it shows what the server gets: only `?OTR`,
//! each OTR fragment in its own PRIVMSG.

use std::sync::Arc;
use std::time::{Duration, Instant};

use timb_core::{AccountHandle, AccountId, Command, ConnectionState, Event, MessageKind, Target};
use timb_irc::{spawn_account, IrcConfig, IrcServer};
use timb_otr::wrap::{irc_fragment_size, wrap, ControlEvent, OtrControl};
use timb_otr::{ConversationState, KeyGenState, OtrEvent};
use timb_test_support::*;
use timb_testnet::{exit_port_index, TestNet};
use timb_tor::{BootstrapProgress, TorConfig, TorConnector, Transport};

const WAIT: Duration = Duration::from_secs(120);

async fn wait_event(h: &mut AccountHandle, what: &str, f: impl Fn(&Event) -> bool) -> Event {
    timb_test_support::wait_event(h, what, WAIT, f).await
}

async fn wait_control(c: &mut OtrControl, what: &str, f: impl Fn(&ControlEvent) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, c.events.recv()).await {
            Ok(Some(e)) if f(&e) => return,
            Ok(Some(_)) => {}
            Ok(None) => panic!("control closed waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

fn direct(to: &str, body: &str) -> Command {
    Command::Send {
        to: Target::Direct(to.into()),
        body: body.into(),
        kind: MessageKind::Normal,
    }
}

fn key_done(e: &ControlEvent) -> bool {
    matches!(
        e,
        ControlEvent::Otr(OtrEvent::KeyGeneration {
            state: KeyGenState::Done { .. },
            ..
        })
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otr_over_irc_over_arti_server_sees_only_otr_data() {
    let net = tokio::task::spawn_blocking(TestNet::shared).await.unwrap();
    let exit_port = net
        .info()
        .exit_port(exit_port_index::E2E.start + 1)
        .expect("exit port");
    let onion = net.info().onion_service("gui").expect("gui onion").clone();
    let tmp = tempfile::tempdir().unwrap();

    let ng = Ngircd::start_on(&[free_port()], exit_port);
    // Every line the onion account exchanges with ngircd passes here, in plain text.
    let proxy = Proxy::start_on(onion.target_port, ng.port).await;

    let cfg = TorConfig::private_network(net.config_path(), &scratch(tmp.path(), "tor")).unwrap();
    let (tx, _rx) = tokio::sync::watch::channel(BootstrapProgress::default());
    let tor = Transport::bootstrap(cfg, tx).await.expect("arti bootstrap");

    // ircA: TLS through an exit, pinned.
    let a_server = IrcServer {
        host: IRC_HOST.into(),
        port: exit_port,
        tls: ng.policy(),
        allow_plaintext: false,
        client_identity: None,
    };
    // The certificate is for IRC_HOST; the exit reaches ngircd at 127.0.0.1.
    let via = Redirect::new(
        Arc::new(TorConnector::new(&tor, AccountId(1))),
        "127.0.0.1",
        exit_port,
    );
    let a = spawn_account(AccountId(1), a_server, IrcConfig::new("ircA"), via);
    a.commands.send(Command::Connect).await.unwrap();
    // ircB: plain text to the onion service (allowed only for .onion).
    let b_server = IrcServer {
        host: onion.onion.clone(),
        port: onion.port,
        tls: ng.policy(),
        allow_plaintext: true,
        client_identity: None,
    };
    let b = spawn_account(
        AccountId(2),
        b_server,
        IrcConfig::new("ircB"),
        Arc::new(TorConnector::new(&tor, AccountId(2))),
    );
    b.commands.send(Command::Connect).await.unwrap();

    let (mut a, mut ac) = wrap(a, &scratch(tmp.path(), "otr-a"), "ircA@irc.test").unwrap();
    let (mut b, mut bc) = wrap(b, &scratch(tmp.path(), "otr-b"), "ircB@irc.test").unwrap();
    let connected = |e: &Event| matches!(e, Event::State(ConnectionState::Connected { .. }));
    wait_event(&mut a, "ircA connected", connected).await;
    wait_event(&mut b, "ircB connected", connected).await;
    wait_control(&mut ac, "key A", key_done).await;
    wait_control(&mut bc, "key B", key_done).await;

    // A group message passes in the clear (groups are never OTR) and proves both are on.
    for h in [&a, &b] {
        h.commands
            .send(Command::JoinGroup {
                room: "#e2e".into(),
                nick: None,
            })
            .await
            .unwrap();
    }
    wait_event(&mut a, "A joined", |e| {
        matches!(e, Event::GroupJoined { .. })
    })
    .await;
    wait_event(&mut b, "B joined", |e| {
        matches!(e, Event::GroupJoined { .. })
    })
    .await;

    let t = Instant::now();
    let secret1 = "secret one from A over TLS";
    a.commands.send(direct("ircB", secret1)).await.unwrap();
    let e = wait_event(&mut b, "A's message", |e| {
        matches!(
            e,
            Event::Message {
                from: Target::Direct(_),
                ..
            }
        )
    })
    .await;
    let first = t.elapsed();
    assert!(
        matches!(&e, Event::Message { from: Target::Direct(f), body, .. } if f == "ircA" && body == secret1),
        "{e:?}"
    );
    assert!(matches!(
        bc.state("ircA").await,
        ConversationState::Encrypted { version: 3, .. }
    ));

    // A long reply: fragments that fit one relayed line, each its own PRIVMSG.
    let secret2 = format!("secret reply from B {}", "над Tor ✓ ".repeat(120));
    b.commands.send(direct("ircA", &secret2)).await.unwrap();
    let e = wait_event(&mut a, "B's reply", |e| {
        matches!(
            e,
            Event::Message {
                from: Target::Direct(_),
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(&e, Event::Message { body, .. } if *body == secret2),
        "{e:?}"
    );

    for h in [&a, &b] {
        h.commands.send(Command::Disconnect).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let wire = proxy.rec.text();
    let mut privmsgs = 0;
    let mut fragments = 0;
    for line in wire.lines() {
        // Ours: `PRIVMSG nick body`; relayed: `:nick!user@host PRIVMSG nick :body`.
        let Some(i) = line.find("PRIVMSG ") else {
            continue;
        };
        let Some((target, rest)) = line[i + 8..].split_once(' ') else {
            continue;
        };
        if target != "ircA" && target != "ircB" {
            continue;
        }
        let body = rest.strip_prefix(':').unwrap_or(rest);
        privmsgs += 1;
        assert!(
            body.starts_with("?OTR"),
            "non-OTR private message at the server: {body:.40}"
        );
        assert!(line.len() + 2 <= 512, "line of {} bytes", line.len());
        if body.starts_with("?OTR|") {
            assert!(body.len() <= irc_fragment_size("ircB@irc.test"));
            assert!(body.ends_with(','), "a fragment was cut by the IRC layer");
            fragments += 1;
        }
    }
    assert!(privmsgs >= 6, "{privmsgs} private messages recorded");
    assert!(fragments >= 3, "{fragments} fragments recorded");
    assert!(wire.contains("JOIN #e2e"));
    for s in ["secret", "над Tor"] {
        assert!(!wire.contains(s), "plaintext at the server");
    }
    eprintln!(
        "IRC: first message incl. AKE {:.2} s; {privmsgs} PRIVMSGs at the server, {fragments} OTR fragments",
        first.as_secs_f64()
    );
}
