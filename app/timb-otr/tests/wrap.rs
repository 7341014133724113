//! The OTR layer between GUI and protocol, over an in-memory fake protocol that records
//! everything put on its "wire".

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use timb_core::{AccountHandle, AccountId, Command, Event, MessageKind, Protocol, Target};
use timb_otr::wrap::{wrap_with, ControlEvent, OtrControl};
use timb_otr::{AccountConfig, ConversationState, OtrEvent, OtrSession};
use tokio::sync::mpsc;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";

/// Everything the fake protocol carried: (sender, target, body).
type Log = Arc<Mutex<Vec<(String, Target, String)>>>;

fn scratch(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let p = std::env::temp_dir().join(format!("timb-otr-wrap-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A store folder holding `name`'s key, generated once per test process (it is slow).
fn store_with_key(name: &str) -> PathBuf {
    static KEYS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        [ALICE, BOB]
            .into_iter()
            .map(|n| {
                let d = scratch("keys");
                let cfg = AccountConfig {
                    id: AccountId(1),
                    protocol: Protocol::Xmpp,
                    name: n.into(),
                    max_message_size: None,
                };
                let mut s = OtrSession::open(&d, vec![cfg]).unwrap();
                s.generate_key_blocking(AccountId(1)).unwrap();
                drop(s);
                let k = std::fs::read(d.join("otr.private_key")).unwrap();
                std::fs::remove_dir_all(&d).unwrap();
                (n.to_string(), k)
            })
            .collect()
    });
    let d = scratch(name.split('@').next().unwrap());
    let key = &keys.iter().find(|(n, _)| n == name).unwrap().1;
    std::fs::write(d.join("otr.private_key"), key).unwrap();
    d
}

/// One side of the fake protocol: commands from this side become events on the other.
fn side(
    me: &'static str,
    log: Log,
    peer_events: mpsc::Sender<Event>,
) -> (mpsc::Sender<Command>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Command>(64);
    let task = tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            let Command::Send { to, body, kind } = c else {
                continue;
            };
            log.lock()
                .unwrap()
                .push((me.into(), to.clone(), body.clone()));
            let (from, sender) = match to {
                Target::Direct(_) => (Target::Direct(me.into()), None),
                Target::Group(room) => (Target::Group(room), Some(me.to_string())),
            };
            let ev = Event::Message {
                from,
                sender,
                body,
                kind,
                received_at: 0,
            };
            if peer_events.send(ev).await.is_err() {
                return;
            }
        }
    });
    (tx, task)
}

/// Two raw protocol accounts connected back to back.
fn fake_pair(log: &Log) -> (AccountHandle, AccountHandle) {
    let (a_ev_tx, a_ev_rx) = mpsc::channel(64);
    let (b_ev_tx, b_ev_rx) = mpsc::channel(64);
    let (a_cmd, _) = side(ALICE, log.clone(), b_ev_tx);
    let (b_cmd, _) = side(BOB, log.clone(), a_ev_tx);
    let h = |id, commands, events| AccountHandle {
        id: AccountId(id),
        protocol: Protocol::Xmpp,
        commands,
        events,
    };
    (h(1, a_cmd, a_ev_rx), h(2, b_cmd, b_ev_rx))
}

async fn next_event(h: &mut AccountHandle, what: &str) -> Event {
    tokio::time::timeout(Duration::from_secs(30), h.events.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("events channel open")
}

async fn wait_control(c: &mut OtrControl, what: &str, f: impl Fn(&ControlEvent) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let e = tokio::time::timeout_at(deadline, c.events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("control channel open");
        if f(&e) {
            return;
        }
    }
}

fn send(to: &str, body: &str, kind: MessageKind) -> Command {
    Command::Send {
        to: Target::Direct(to.into()),
        body: body.into(),
        kind,
    }
}

/// Long enough that it cannot turn up by chance inside base64 OTR data (a
/// three-letter secret did, about once in 25 runs).
const SMP_SECRET: &str = "rex, the dog with one ear";

fn assert_wire_clean(log: &Log, secrets: &[&str]) {
    for (from, to, body) in log.lock().unwrap().iter() {
        if to.is_group() {
            continue;
        }
        assert!(
            body.starts_with("?OTR"),
            "{from} put a non-OTR message on the wire"
        );
        for s in secrets {
            assert!(!body.contains(s), "{from} put plaintext on the wire");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_encrypted_both_ways_and_groups_pass_through() {
    let log = Log::default();
    let (a, b) = fake_pair(&log);
    let (da, db) = (store_with_key(ALICE), store_with_key(BOB));
    // Small fragments: each must be its own protocol message.
    let (mut a, mut ac) = wrap_with(a, &da, ALICE, Some(200)).unwrap();
    let (mut b, mut bc) = wrap_with(b, &db, BOB, Some(200)).unwrap();

    a.commands
        .send(send(BOB, "first secret", MessageKind::Normal))
        .await
        .unwrap();
    wait_control(&mut ac, "held", |e| {
        matches!(e, ControlEvent::Otr(OtrEvent::Waiting { held: 1, .. }))
    })
    .await;
    let e = next_event(&mut b, "first message").await;
    let Event::Message {
        from, body, kind, ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (from, body.as_str(), kind),
        (
            Target::Direct(ALICE.into()),
            "first secret",
            MessageKind::Normal
        )
    );
    wait_control(&mut ac, "alice secure", |e| {
        matches!(
            e,
            ControlEvent::Otr(OtrEvent::GoneSecure { version: 3, .. })
        )
    })
    .await;
    wait_control(&mut bc, "bob secure", |e| {
        matches!(e, ControlEvent::Otr(OtrEvent::GoneSecure { .. }))
    })
    .await;
    assert!(matches!(
        ac.state(BOB).await,
        ConversationState::Encrypted { version: 3, .. }
    ));
    assert_eq!(ac.held_count(BOB).await, 0);
    let fp_b = bc.fingerprint().await.unwrap();
    assert_eq!(ac.peer_fingerprints(BOB).await[0].fingerprint, fp_b);

    // Back, as an action, long enough to be fragmented.
    let long = "reply secret ".repeat(60);
    b.commands
        .send(send(ALICE, &long, MessageKind::Action))
        .await
        .unwrap();
    let e = next_event(&mut a, "reply").await;
    assert!(
        matches!(&e, Event::Message { body, kind: MessageKind::Action, .. } if *body == long),
        "{e:?}"
    );
    let fragments = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(f, _, body)| f == BOB && body.starts_with("?OTR|"))
        .count();
    assert!(fragments > 3, "{fragments} fragments");
    assert!(log.lock().unwrap().iter().all(|(_, _, b)| b.len() <= 200));

    // Groups are never OTR: plaintext both ways, untouched.
    a.commands
        .send(Command::Send {
            to: Target::Group("room@muc.example.test".into()),
            body: "hello room".into(),
            kind: MessageKind::Normal,
        })
        .await
        .unwrap();
    let e = next_event(&mut b, "group message").await;
    assert!(
        matches!(&e, Event::Message { from: Target::Group(_), sender: Some(s), body, .. }
            if body == "hello room" && s == ALICE),
        "{e:?}"
    );
    // Non-message commands pass through too (the fake ignores them).
    a.commands.send(Command::Disconnect).await.unwrap();

    assert_wire_clean(&log, &["first secret", "reply secret"]);
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|(_, t, b)| t.is_group() && b == "hello room"));

    // Ending: the peer is told, and bob's sends are then held (not sent) until a new AKE.
    ac.end(BOB).await.unwrap();
    wait_control(&mut bc, "ended", |e| {
        matches!(e, ControlEvent::Otr(OtrEvent::SessionEnded { .. }))
    })
    .await;
    b.commands
        .send(send(ALICE, "after the end", MessageKind::Normal))
        .await
        .unwrap();
    wait_control(&mut bc, "held", |e| {
        matches!(e, ControlEvent::Otr(OtrEvent::Waiting { .. }))
    })
    .await;
    assert_eq!(bc.held_count(ALICE).await, 1);
    assert_wire_clean(&log, &["after the end"]);
    let _ = std::fs::remove_dir_all(&da);
    let _ = std::fs::remove_dir_all(&db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_never_gets_plaintext_and_message_expires() {
    let log = Log::default();
    let (a, mut b) = fake_pair(&log);
    let da = store_with_key(ALICE);
    let (a, mut ac) = wrap_with(a, &da, ALICE, None).unwrap();
    ac.set_hold_timeout(Duration::from_secs(2)).await.unwrap();
    a.commands
        .send(send(BOB, "never in clear", MessageKind::Normal))
        .await
        .unwrap();
    // Bob is a client without OTR: all it ever receives is the query.
    let e = next_event(&mut b, "query").await;
    assert!(
        matches!(&e, Event::Message { body, .. } if body == "?OTRv23?"),
        "{e:?}"
    );
    assert_eq!(ac.held_count(BOB).await, 1);
    wait_control(&mut ac, "undelivered", |e| {
        matches!(e, ControlEvent::Otr(OtrEvent::Undelivered { count: 1, .. }))
    })
    .await;
    assert_eq!(ac.held_count(BOB).await, 0);
    assert_wire_clean(&log, &["never in clear"]);
    // The plaintext bob might answer with is flagged, never shown as private.
    b.commands
        .send(send(ALICE, "plain hello", MessageKind::Normal))
        .await
        .unwrap();
    wait_control(&mut ac, "unencrypted warning", |e| {
        matches!(
            e,
            ControlEvent::Otr(OtrEvent::Problem {
                problem: timb_otr::Problem::Unencrypted(_),
                ..
            })
        )
    })
    .await;
    drop(a);
    let _ = std::fs::remove_dir_all(&da);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smp_and_verification_through_the_control() {
    let log = Log::default();
    let (a, b) = fake_pair(&log);
    let (da, db) = (store_with_key(ALICE), store_with_key(BOB));
    let (a, mut ac) = wrap_with(a, &da, ALICE, None).unwrap();
    let (mut b, mut bc) = wrap_with(b, &db, BOB, None).unwrap();
    ac.start(BOB).await.unwrap();
    wait_control(&mut bc, "bob secure", |e| {
        matches!(e, ControlEvent::Otr(OtrEvent::GoneSecure { .. }))
    })
    .await;
    wait_control(&mut ac, "alice secure", |e| {
        matches!(
            e,
            ControlEvent::Otr(OtrEvent::GoneSecure {
                verified: false,
                ..
            })
        )
    })
    .await;
    ac.smp_start(BOB, Some("first pet?"), SMP_SECRET)
        .await
        .unwrap();
    wait_control(&mut bc, "question", |e| {
        matches!(e, ControlEvent::Otr(OtrEvent::Smp { event: timb_otr::SmpEvent::AskedQuestion(q), .. }) if q == "first pet?")
    })
    .await;
    bc.smp_respond(ALICE, SMP_SECRET).await.unwrap();
    for c in [&mut ac, &mut bc] {
        wait_control(c, "smp succeeded", |e| {
            matches!(
                e,
                ControlEvent::Otr(OtrEvent::Smp {
                    event: timb_otr::SmpEvent::Succeeded,
                    ..
                })
            )
        })
        .await;
    }
    assert!(matches!(
        ac.state(BOB).await,
        ConversationState::Encrypted { verified: true, .. }
    ));
    // Manual verification the other way round.
    let fp_a = ac.fingerprint().await.unwrap();
    bc.set_verified(ALICE, &fp_a, true).await.unwrap();
    assert!(bc.peer_fingerprints(ALICE).await[0].verified);
    assert_wire_clean(&log, &[SMP_SECRET, "first pet"]);
    // No message was sent: bob saw none.
    assert!(b.events.try_recv().is_err());
    drop(a);
    let _ = std::fs::remove_dir_all(&da);
    let _ = std::fs::remove_dir_all(&db);
}
