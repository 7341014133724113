//! Two timb XMPP accounts, each wrapped in the OTR layer, talk through a real prosody that
//! they reach over arti (timb-tor) and the private Tor network's exits. The server must only
//! ever see `?OTR` data, and a contact without OTR only ever gets the query.
//!
//! Uses exit ports 12 and 13 of the network file (the GUI/bench reservation).

use std::sync::Arc;
use std::time::{Duration, Instant};

use timb_core::{AccountHandle, AccountId, Command, ConnectionState, Event, MessageKind, Target};
use timb_otr::wrap::{wrap, ControlEvent, OtrControl};
use timb_otr::{ConversationState, KeyGenState, OtrEvent};
use timb_test_support::*;
use timb_testnet::{exit_port_index, TestNet};
use timb_tor::{BootstrapProgress, TorConfig, TorConnector, Transport};
use timb_xmpp::{PolicyTls, ServerAddr, TlsMode, XmppConfig};

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

/// Every `<body>` in an XMPP stream recording.
fn bodies(stream: &str) -> Vec<String> {
    stream
        .split("<body>")
        .skip(1)
        .filter_map(|s| s.split("</body>").next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otr_over_xmpp_over_arti_server_sees_only_otr_data() {
    let net = tokio::task::spawn_blocking(TestNet::shared).await.unwrap();
    let exit_port = net
        .info()
        .exit_port(exit_port_index::E2E.start)
        .expect("exit port");
    let tmp = tempfile::tempdir().unwrap();

    let pr = Prosody::start_on(
        &[("ann", "pw-ann"), ("ben", "pw-ben"), ("cat", "pw-cat")],
        free_port(),
        &[free_port()],
    );
    // The recording point in front of prosody: everything that arrives from the exit.
    let proxy = Proxy::start_on(exit_port, pr.tls_port).await;

    let t0 = Instant::now();
    let cfg = TorConfig::private_network(net.config_path(), &scratch(tmp.path(), "tor")).unwrap();
    let (tx, _rx) = tokio::sync::watch::channel(BootstrapProgress::default());
    let tor = Transport::bootstrap(cfg, tx).await.expect("arti bootstrap");
    let bootstrap = t0.elapsed();

    let account = |n: u32, user: &str, pw: &str| {
        let rec = Recording::default();
        let mut cfg = XmppConfig::new(&format!("{user}@{DOMAIN}"), pw);
        cfg.server = Some(ServerAddr {
            host: "127.0.0.1".into(),
            port: exit_port,
            tls: TlsMode::Direct,
        });
        let tls = RecordingTls {
            inner: PolicyTls::new(pr.policy(), Some(exit_port), true),
            rec: rec.clone(),
        };
        let id = AccountId(n);
        let h = timb_xmpp::spawn_account(
            id,
            cfg,
            Arc::new(TorConnector::new(&tor, id)),
            Arc::new(tls),
        );
        (h, rec)
    };
    let wrapped = |n: u32, user: &str, pw: &str| {
        let (h, rec) = account(n, user, pw);
        let store = scratch(tmp.path(), &format!("otr-{user}"));
        let (h, c) = wrap(h, &store, &format!("{user}@{DOMAIN}")).expect("wrap");
        (h, c, rec)
    };
    let (mut ann, mut ann_otr, ann_rec) = wrapped(1, "ann", "pw-ann");
    let (mut ben, mut ben_otr, ben_rec) = wrapped(2, "ben", "pw-ben");
    // cat has no OTR at all: what timb sends her must never be readable.
    let (mut cat, cat_rec) = account(3, "cat", "pw-cat");
    let cat_jid = format!("cat@{DOMAIN}");
    let ann_jid = format!("ann@{DOMAIN}");
    let ben_jid = format!("ben@{DOMAIN}");

    // Keys are generated in the background as soon as an account is wrapped.
    for c in [&mut ann_otr, &mut ben_otr] {
        wait_control(c, "key generated", |e| {
            matches!(
                e,
                ControlEvent::Otr(OtrEvent::KeyGeneration {
                    state: KeyGenState::Done { .. },
                    ..
                })
            )
        })
        .await;
    }

    let t1 = Instant::now();
    for h in [&ann, &ben, &cat] {
        h.commands.send(Command::Connect).await.unwrap();
    }
    let connected = |e: &Event| matches!(e, Event::State(ConnectionState::Connected { .. }));
    wait_event(&mut ann, "ann connected", connected).await;
    wait_event(&mut ben, "ben connected", connected).await;
    wait_event(&mut cat, "cat connected", connected).await;
    let connect = t1.elapsed();

    // ann writes first: held, AKE over the server, then sent encrypted.
    let t2 = Instant::now();
    let secret1 = "ann's first secret, through tor";
    ann.commands.send(direct(&ben_jid, secret1)).await.unwrap();
    let e = wait_event(&mut ben, "ann's message", |e| {
        matches!(e, Event::Message { .. })
    })
    .await;
    let first = t2.elapsed();
    match e {
        Event::Message { from, body, .. } => {
            assert_eq!(from, Target::Direct(ann_jid.clone()));
            assert_eq!(body, secret1);
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        ann_otr.state(&ben_jid).await,
        ConversationState::Encrypted { version: 3, .. }
    ));
    assert!(matches!(
        ben_otr.state(&ann_jid).await,
        ConversationState::Encrypted { version: 3, .. }
    ));
    // Both see each other's real fingerprint.
    let fp_ann = ann_otr.fingerprint().await.unwrap();
    assert_eq!(
        ben_otr.peer_fingerprints(&ann_jid).await[0].fingerprint,
        fp_ann
    );

    // And back, then a few more each way once the session is up.
    let t3 = Instant::now();
    let secret2 = "ben's secret reply";
    ben.commands.send(direct(&ann_jid, secret2)).await.unwrap();
    let e = wait_event(&mut ann, "ben's reply", |e| {
        matches!(e, Event::Message { .. })
    })
    .await;
    let reply = t3.elapsed();
    assert!(
        matches!(&e, Event::Message { body, .. } if body == secret2),
        "{e:?}"
    );
    for i in 0..3 {
        let m = format!("secret ping {i}");
        ann.commands.send(direct(&ben_jid, &m)).await.unwrap();
        let e = wait_event(&mut ben, "ping", |e| matches!(e, Event::Message { .. })).await;
        assert!(
            matches!(&e, Event::Message { body, .. } if *body == m),
            "{e:?}"
        );
        let m = format!("secret pong {i}");
        ben.commands.send(direct(&ann_jid, &m)).await.unwrap();
        let e = wait_event(&mut ann, "pong", |e| matches!(e, Event::Message { .. })).await;
        assert!(
            matches!(&e, Event::Message { body, .. } if *body == m),
            "{e:?}"
        );
    }

    // To a peer without OTR: held, and all she gets is the query.
    ann.commands
        .send(direct(&cat_jid, "secret for cat"))
        .await
        .unwrap();
    let e = wait_event(&mut cat, "query", |e| matches!(e, Event::Message { .. })).await;
    assert!(
        matches!(&e, Event::Message { body, .. } if body == "?OTRv23?"),
        "{e:?}"
    );
    wait_control(
        &mut ann_otr,
        "held for cat",
        |e| matches!(e, ControlEvent::Otr(OtrEvent::Waiting { peer, .. }) if *peer == cat_jid),
    )
    .await;
    assert_eq!(ann_otr.held_count(&cat_jid).await, 1);
    let more = tokio::time::timeout(Duration::from_secs(2), cat.events.recv()).await;
    assert!(
        !matches!(&more, Ok(Some(Event::Message { body, .. })) if !body.starts_with("?OTR")),
        "{more:?}"
    );

    for h in [&ann, &ben, &cat] {
        h.commands.send(Command::Disconnect).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // What prosody read and wrote, for each client: XMPP inside TLS.
    let secrets = ["secret", "ann's first", "ben's"];
    for (who, rec) in [("ann", &ann_rec), ("ben", &ben_rec), ("cat", &cat_rec)] {
        let text = rec.text();
        let b = bodies(&text);
        // ann and ben: query, AKE, 8 data messages each way; cat: the query.
        let least = if who == "cat" { 1 } else { 8 };
        assert!(b.len() >= least, "{who}: only {} bodies recorded", b.len());
        for body in &b {
            assert!(
                body.starts_with("?OTR"),
                "{who}: non-OTR body on the server"
            );
        }
        for s in secrets {
            assert!(!text.contains(s), "{who}: plaintext reached the server");
        }
        assert!(text.contains("<body>?OTRv23?</body>"), "{who}: query");
        if who != "cat" {
            assert!(text.contains("<body>?OTR:AAMD"), "{who}: v3 data messages");
        }
    }
    assert!(ann_rec.text().contains("<body>?OTRv23?</body>"));
    // Bytes at the server's door (TLS from the exit) and in prosody's debug log.
    assert!(proxy.rec.len() > 1000, "proxy saw the traffic");
    let raw = proxy.rec.text();
    let log = pr.log();
    assert!(log.contains("ann@timb.test"), "prosody logged the session");
    for s in secrets {
        assert!(!raw.contains(s), "plaintext at the proxy");
        assert!(!log.contains(s), "plaintext in prosody's log");
    }
    eprintln!(
        "arti bootstrap {:.1} s; both accounts connected {:.1} s; first message incl. AKE {:.2} s; \
         reply {:.2} s",
        bootstrap.as_secs_f64(),
        connect.as_secs_f64(),
        first.as_secs_f64(),
        reply.as_secs_f64()
    );
}
