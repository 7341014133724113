//! Two libotr userstates in one process talking through a recording wire.

mod common;

use std::time::Duration;

use common::*;
use timb_core::Target;
use timb_otr::{ConversationState, OtrError, OtrEvent, Problem, SmpEvent};

#[test]
fn v3_ake_and_messages_both_ways_with_held_first_message() {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    // Not yet encrypted: the message is held and only a bare query goes out.
    let out = a.send(&b.name, "first secret");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body, "?OTRv23?");
    assert!(a.has_event(|e| matches!(e, OtrEvent::Waiting { held: 1, .. })));
    assert_eq!(a.s.held_count(a.acct, &b.name), 1);
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);

    let ConversationState::Encrypted {
        version, instance, ..
    } = a.s.state(a.acct, &b.name)
    else {
        panic!("alice not encrypted")
    };
    assert_eq!(version, 3);
    assert!(instance >= 0x100, "v3 instance tag");
    assert!(a.has_event(|e| matches!(e, OtrEvent::GoneSecure { version: 3, .. })));
    assert!(b.has_event(|e| matches!(e, OtrEvent::GoneSecure { version: 3, .. })));
    assert!(b.has_event(|e| matches!(e, OtrEvent::NewFingerprint { .. })));
    assert_eq!(b.inbox.len(), 1);
    assert_eq!(b.inbox[0].0, "first secret");
    assert!(b.inbox[0].1.is_some());
    assert_eq!(a.s.held_count(a.acct, &b.name), 0);
    // Bob answered the query with a v3 DH commit: libotr asked (timer_control) to be polled
    // so the commit's secret is wiped if the AKE stalls.
    assert_eq!(b.s.poll_interval(), Some(Duration::from_secs(70)));
    b.s.poll().unwrap();

    let out = b.send(&a.name, "reply from bob ✓");
    pump(&mut a, &mut b, Vec::new(), out, &mut wire);
    assert_eq!(a.inbox.last().unwrap().0, "reply from bob ✓");
    let out = a.send(&b.name, "and again");
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert_eq!(b.inbox.last().unwrap().0, "and again");

    wire.assert_no_plaintext("secret");
    wire.assert_no_plaintext("reply from bob");
    assert_eq!(a.s.refused_injections() + b.s.refused_injections(), 0);

    // Fingerprints in libotr's human format: five groups of eight hex digits.
    let fp = a.s.fingerprint(a.acct).unwrap();
    assert_eq!(fp.len(), 44);
    assert_eq!(fp.split(' ').count(), 5);
    let seen = b.s.peer_fingerprints(b.acct, &a.name);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].fingerprint, fp);
    assert!(!seen[0].verified);
}

#[test]
fn fragments_are_small_and_reassembled() {
    let (mut a, mut b) = pair(Some(120));
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    let text = "x".repeat(1500) + " end of a long message";
    let out = a.send(&b.name, &text);
    assert!(out.len() > 5, "expected many fragments, got {}", out.len());
    for o in &out {
        assert!(o.body.len() <= 120, "fragment of {} bytes", o.body.len());
        assert!(o.body.starts_with("?OTR|"), "v3 fragment");
    }
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert_eq!(b.inbox.last().unwrap().0, text);
}

#[test]
fn irc_accounts_fragment_at_417_and_xmpp_not_at_all() {
    let mut a = peer("alice@example.test", None);
    let mut b = peer("bob@example.test", None);
    let mut irc = common::config("alice@example.test", None);
    irc.protocol = timb_core::Protocol::Irc;
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    let out = a.send(&b.name, &"y".repeat(2000));
    assert_eq!(out.len(), 1, "XMPP: no fragmentation");
    drop(out);
    // Same account as IRC: fragments of at most 417 bytes.
    a.s.add_account(irc).unwrap();
    let mut birc = common::config("bob@example.test", None);
    birc.protocol = timb_core::Protocol::Irc;
    b.s.add_account(birc).unwrap();
    // libotr keys are per (account, protocol): the IRC identity needs its own.
    a.s.generate_key_blocking(a.acct).unwrap();
    b.s.generate_key_blocking(b.acct).unwrap();
    secure(&mut a, &mut b, &mut wire);
    let out = a.send(&b.name, &"z".repeat(2000));
    assert!(out.len() > 1);
    assert!(out.iter().all(|o| o.body.len() <= 417));
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert_eq!(b.inbox.last().unwrap().0, "z".repeat(2000));
}

fn smp(question: Option<&str>, secret_a: &str, secret_b: &str) -> (Peer, Peer) {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    let out = a.s.smp_start(a.acct, &b.name, question, secret_a).unwrap();
    let out = a.take(out);
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    let asked = b.events.iter().find_map(|e| match e {
        OtrEvent::Smp {
            event: SmpEvent::AskedQuestion(q),
            ..
        } => Some(Some(q.clone())),
        OtrEvent::Smp {
            event: SmpEvent::AskedSecret,
            ..
        } => Some(None),
        _ => None,
    });
    assert_eq!(asked, Some(question.map(str::to_string)));
    let out = b.s.smp_respond(b.acct, &a.name, secret_b).unwrap();
    let out = b.take(out);
    pump(&mut a, &mut b, Vec::new(), out, &mut wire);
    wire.assert_no_plaintext(secret_a);
    (a, b)
}

fn smp_result(p: &Peer) -> Option<SmpEvent> {
    p.events.iter().rev().find_map(|e| match e {
        OtrEvent::Smp {
            event: ev @ (SmpEvent::Succeeded | SmpEvent::Failed | SmpEvent::Aborted),
            ..
        } => Some(ev.clone()),
        _ => None,
    })
}

#[test]
fn smp_with_question_succeeds_and_marks_verified() {
    let (a, b) = smp(
        Some("Where did we meet?"),
        "the old library",
        "the old library",
    );
    assert_eq!(smp_result(&a), Some(SmpEvent::Succeeded));
    assert_eq!(smp_result(&b), Some(SmpEvent::Succeeded));
    assert!(matches!(
        a.s.state(a.acct, &b.name),
        ConversationState::Encrypted { verified: true, .. }
    ));
    // Verified fingerprints, and only those, are stored owner-only.
    let stored = std::fs::read_to_string(a.dir.join("otr.fingerprints")).unwrap();
    assert!(stored.contains("bob@example.test"));
    assert_eq!(mode(&a.dir.join("otr.fingerprints")), 0o600);
}

#[test]
fn smp_without_question_and_wrong_secret_fails() {
    let (a, b) = smp(None, "correct horse", "wrong horse");
    assert_eq!(smp_result(&a), Some(SmpEvent::Failed));
    assert_eq!(smp_result(&b), Some(SmpEvent::Failed));
    assert!(matches!(
        a.s.state(a.acct, &b.name),
        ConversationState::Encrypted {
            verified: false,
            ..
        }
    ));
    assert!(b
        .s
        .peer_fingerprints(b.acct, &a.name)
        .iter()
        .all(|f| !f.verified));
}

#[test]
fn manual_verification_is_stored_and_reloaded() {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    let fp = b.s.fingerprint(b.acct).unwrap();
    a.s.set_verified(a.acct, &b.name, &fp, true).unwrap();
    assert!(matches!(
        a.s.state(a.acct, &b.name),
        ConversationState::Encrypted { verified: true, .. }
    ));
    let dir = a.dir.clone();
    let name = a.name.clone();
    let acct = a.acct;
    let tmp = scratch("tmp");
    drop(std::mem::replace(
        &mut a.s,
        timb_otr::OtrSession::open(&tmp, vec![]).unwrap(),
    ));
    std::fs::remove_dir_all(&tmp).unwrap();
    let reopened = timb_otr::OtrSession::open(&dir, vec![common::config(&name, None)]).unwrap();
    let fps = reopened.peer_fingerprints(acct, &b.name);
    assert_eq!(fps.len(), 1);
    assert!(fps[0].verified);
    assert_eq!(fps[0].fingerprint, fp);
}

/// Bug 18.8: an account not remembered keeps its OTR key in memory only; it still makes a
/// key, goes private, stores a verification for the session, and writes no file.
#[test]
fn in_memory_store_talks_privately_and_writes_no_file() {
    let dir = scratch("memory");
    let s = timb_otr::OtrSession::open_in_memory(vec![common::config("alice@example.test", None)])
        .unwrap();
    assert!(s.in_memory());
    assert_eq!(s.dir(), std::path::Path::new(""));
    let mut a = Peer {
        s,
        acct: timb_core::AccountId(1),
        name: "alice@example.test".into(),
        dir: dir.clone(),
        events: Vec::new(),
        inbox: Vec::new(),
    };
    a.s.generate_key_blocking(a.acct).unwrap();
    let mut b = peer("bob@example.test", None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    let out = a.send(&b.name, "from memory");
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert_eq!(b.inbox.last().unwrap().0, "from memory");
    let fp = b.s.fingerprint(b.acct).unwrap();
    a.s.set_verified(a.acct, &b.name, &fp, true).unwrap();
    assert!(matches!(
        a.s.state(a.acct, &b.name),
        ConversationState::Encrypted { verified: true, .. }
    ));
    assert!(!dir.exists());
    // A second in-memory session starts empty: nothing was kept anywhere.
    let again =
        timb_otr::OtrSession::open_in_memory(vec![common::config("alice@example.test", None)])
            .unwrap();
    assert!(!again.has_key(timb_core::AccountId(1)));
}

#[test]
fn corrupted_data_message_is_rejected_and_session_survives() {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    let start = wire.log.len();
    wire.tamper = Some(Box::new(move |i, body: &str| {
        if i == start {
            // Flip one base64 character in the middle of the data message.
            let mut bytes = body.as_bytes().to_vec();
            let k = bytes.len() / 2;
            bytes[k] = if bytes[k] == b'A' { b'B' } else { b'A' };
            Some(String::from_utf8(bytes).unwrap())
        } else {
            Some(body.to_string())
        }
    }));
    let out = a.send(&b.name, "tampered");
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert!(b.inbox.is_empty(), "a forged message must not be delivered");
    assert!(b.has_event(|e| matches!(
        e,
        OtrEvent::Problem {
            problem: Problem::Unreadable | Problem::Malformed,
            ..
        }
    )));
    wire.tamper = None;
    let out = a.send(&b.name, "intact");
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert_eq!(b.inbox.last().unwrap().0, "intact");
}

#[test]
fn garbage_and_hostile_input_is_an_error_or_event_never_a_panic() {
    let (mut a, b) = pair(None);
    for junk in [
        "?OTR:",
        "?OTR:AAMD////",
        "?OTR|1|2,1,2,",
        "?OTR,65535,1,x,",
        "?OTRv9999999999?",
        "?OTR Error: \u{7}bell",
    ] {
        match a.s.receive(a.acct, &b.name, junk) {
            Ok(r) => assert!(r.message.is_none()),
            Err(e) => assert_eq!(e, OtrError::TooLarge, "{junk}"),
        }
    }
    assert_eq!(
        a.s.receive(a.acct, &b.name, "nul\0byte").unwrap_err(),
        OtrError::InvalidText
    );
    let big = "?OTR:".to_string() + &"A".repeat(300 * 1024);
    assert_eq!(
        a.s.receive(a.acct, &b.name, &big).unwrap_err(),
        OtrError::TooLarge
    );
    // A plaintext message is reported as unencrypted, never as a private message.
    let r = a.s.receive(a.acct, &b.name, "hello in clear").unwrap();
    assert!(r.message.is_none());
    assert!(r.output.events.iter().any(|e| matches!(
        e,
        OtrEvent::Problem {
            problem: Problem::Unencrypted(_),
            ..
        }
    )));
}

#[test]
fn fragment_floods_are_refused_not_buffered() {
    let (mut a, b) = pair(None);
    let piece = "A".repeat(200 * 1024);
    // A declared count beyond the cap is refused outright.
    let err =
        a.s.receive(a.acct, &b.name, &format!("?OTR|100|200,1,65535,{piece},"))
            .unwrap_err();
    assert_eq!(err, OtrError::TooLarge);
    // Pieces adding up past 1 MiB are refused, and libotr never sees them.
    let mut refused = false;
    for k in 1..=20 {
        match a
            .s
            .receive(a.acct, &b.name, &format!("?OTR|100|200,{k},20,{piece},"))
        {
            Ok(r) => assert!(r.message.is_none()),
            Err(e) => {
                assert_eq!(e, OtrError::TooLarge);
                refused = true;
                break;
            }
        }
    }
    assert!(refused);
}

#[test]
fn session_ended_by_the_peer_holds_until_reestablished() {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    let out = b.s.end(b.acct, &a.name).unwrap();
    let out = b.take(out);
    pump(&mut a, &mut b, Vec::new(), out, &mut wire);
    assert!(a.has_event(|e| matches!(e, OtrEvent::SessionEnded { .. })));
    assert_eq!(a.s.state(a.acct, &b.name), ConversationState::Finished);
    // Held, not sent, and no AKE starts by itself.
    let out = a.send(&b.name, "after end");
    assert!(out.is_empty());
    assert_eq!(a.s.held_count(a.acct, &b.name), 1);
    // Re-established: a new AKE delivers it, then sending works again.
    let out = a.s.start(a.acct, &b.name).unwrap();
    let out = a.take(out);
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert_eq!(b.inbox.last().unwrap().0, "after end");
    let out = a.send(&b.name, "after restart");
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert_eq!(b.inbox.last().unwrap().0, "after restart");
    wire.assert_no_plaintext("after end");
}

#[test]
fn ending_ourselves_is_reported_and_holds_until_the_user_starts_again() {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    a.events.clear();
    let out = a.s.end(a.acct, &b.name).unwrap();
    let out = a.take(out);
    // Our own end is an event like the peer's, and the state says so at once.
    assert!(
        a.has_event(|e| matches!(e, OtrEvent::SessionEnded { peer, .. } if *peer == b.name)),
        "{:?}",
        a.events
    );
    assert_eq!(a.s.state(a.acct, &b.name), ConversationState::Finished);
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert!(b.has_event(|e| matches!(e, OtrEvent::SessionEnded { .. })));

    // A new message is held, and no new AKE starts by itself.
    let out = a.send(&b.name, "typed after end");
    assert!(out.is_empty(), "nothing may go out: {out:?}");
    assert_eq!(a.s.held_count(a.acct, &b.name), 1);
    assert!(a.has_event(|e| matches!(e, OtrEvent::Waiting { held: 1, .. })));
    let out = a.s.poll().unwrap();
    assert!(a.take(out).is_empty());
    assert_eq!(a.s.state(a.acct, &b.name), ConversationState::Finished);
    assert!(b.inbox.iter().all(|(m, _)| m != "typed after end"));

    // The user starts it again: a new AKE, and the held message goes out encrypted.
    let out = a.s.start(a.acct, &b.name).unwrap();
    let out = a.take(out);
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert!(matches!(
        a.s.state(a.acct, &b.name),
        ConversationState::Encrypted { .. }
    ));
    assert_eq!(b.inbox.last().unwrap().0, "typed after end");
    wire.assert_no_plaintext("typed after end");
}

#[test]
fn peer_that_never_answers_gets_no_plaintext_ever() {
    let mut a = peer("alice@example.test", None);
    a.s.set_hold_timeout(Duration::from_millis(300));
    let secret = "meet at the north gate at 9";
    let mut emitted = a.send("bob@example.test", secret);
    emitted.extend(a.send("bob@example.test", "second"));
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        let out = a.s.poll().unwrap();
        emitted.extend(a.take(out));
    }
    assert!(!emitted.is_empty());
    for o in &emitted {
        assert_eq!(o.body, "?OTRv23?", "only bare queries may go out");
        assert!(!o.body.contains(secret));
    }
    assert!(a.has_event(|e| matches!(e, OtrEvent::Undelivered { count: 2, .. })));
    assert_eq!(a.s.held_count(a.acct, "bob@example.test"), 0);
    assert_eq!(a.s.refused_injections(), 0);
}

#[test]
fn group_targets_are_refused() {
    let mut a = peer("alice@example.test", None);
    let err =
        a.s.send(a.acct, &Target::Group("#room".into()), "hi")
            .unwrap_err();
    assert_eq!(err, OtrError::GroupTarget);
}

#[test]
fn peer_restart_with_lost_session_recovers_without_plaintext() {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    // Bob restarts from the same profile: same key and instance tag, no session.
    let dir = b.dir.clone();
    let name = b.name.clone();
    let fresh = timb_otr::OtrSession::open(&dir, vec![common::config(&name, None)]).unwrap();
    drop(std::mem::replace(&mut b.s, fresh));
    b.events.clear();
    // Alice still thinks it is encrypted. libotr silently drops the first data message for
    // an instance it has no context for; the next one is reported, and Bob asks for a new AKE.
    let out = a.send(&b.name, "lost in restart 1");
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    let out = a.send(&b.name, "lost in restart 2");
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert!(b.has_event(|e| matches!(
        e,
        OtrEvent::Problem {
            problem: Problem::NotInPrivate,
            ..
        }
    )));
    assert!(b.inbox.is_empty());
    assert!(matches!(
        b.s.state(b.acct, &a.name),
        ConversationState::Encrypted { .. }
    ));
    let out = a.send(&b.name, "after recovery");
    pump(&mut a, &mut b, out, Vec::new(), &mut wire);
    assert_eq!(b.inbox.last().unwrap().0, "after recovery");
    wire.assert_no_plaintext("lost in restart");
    assert!(b.has_event(|e| matches!(e, OtrEvent::GoneSecure { .. })));
}

#[test]
fn new_instance_of_the_peer_is_told_apart() {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    let ConversationState::Encrypted {
        instance: first, ..
    } = a.s.state(a.acct, &b.name)
    else {
        panic!()
    };
    // Bob logs in from a second client: same account, new key store, new instance tag.
    let mut b2 = peer_in(&b.name.clone(), None, scratch("bob2"));
    b2.s.generate_key_blocking(b2.acct).unwrap();
    let out = b2.send(&a.name, "from my second device");
    pump(&mut a, &mut b2, Vec::new(), out, &mut wire);
    let Some((msg, inst)) = a.inbox.last().cloned() else {
        panic!(
            "alice got nothing; alice {:?} bob2 {:?}",
            a.events, b2.events
        )
    };
    assert_eq!(msg, "from my second device");
    let second = inst.unwrap();
    assert_ne!(
        first, second,
        "the two clients have different instance tags"
    );
    assert!(a.has_event(|e| matches!(e, OtrEvent::NewFingerprint { .. })));
    // Replies go to the instance that spoke most recently.
    let out = a.send(&b.name, "hello second device");
    pump(&mut a, &mut b2, out, Vec::new(), &mut wire);
    assert_eq!(b2.inbox.last().unwrap().0, "hello second device");
    wire.assert_no_plaintext("second device");
}

#[test]
fn key_store_is_owner_only() {
    let (mut a, mut b) = pair(None);
    let mut wire = Wire::default();
    secure(&mut a, &mut b, &mut wire);
    assert_eq!(mode(&a.dir), 0o700);
    assert_eq!(mode(&a.dir.join("otr.private_key")), 0o600);
    assert_eq!(mode(&a.dir.join("otr.instance_tags")), 0o600);
}

#[test]
fn background_key_generation_reports_progress_and_then_starts_the_ake() {
    let dir = scratch("kg");
    let mut a = peer_in("carol@example.test", None, dir);
    assert!(!a.s.has_key(a.acct));
    let out = a.send("bob@example.test", "waiting for my key");
    assert!(out.is_empty(), "no query before we have a key");
    assert!(a.has_event(|e| matches!(
        e,
        OtrEvent::KeyGeneration {
            state: timb_otr::KeyGenState::Started,
            ..
        }
    )));
    let mut emitted = Vec::new();
    for _ in 0..2000 {
        let out = a.s.poll().unwrap();
        emitted.extend(a.take(out));
        if a.has_event(|e| {
            matches!(
                e,
                OtrEvent::KeyGeneration {
                    state: timb_otr::KeyGenState::Done { .. },
                    ..
                }
            )
        }) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(a.s.has_key(a.acct));
    assert_eq!(
        emitted.iter().map(|o| o.body.as_str()).collect::<Vec<_>>(),
        vec!["?OTRv23?"]
    );
    assert_eq!(a.s.held_count(a.acct, "bob@example.test"), 1);
}

#[test]
fn actor_owns_the_session_on_its_own_thread() {
    let dir = scratch("actor");
    let actor = timb_otr::actor::OtrActor::spawn(
        dir.clone(),
        vec![common::config("dave@example.test", None)],
    )
    .unwrap();
    let acct = timb_core::AccountId(1);
    let fp = actor
        .handle
        .call(move |s| s.generate_key_blocking(acct))
        .unwrap()
        .unwrap();
    assert_eq!(fp.len(), 44);
    let out = actor
        .handle
        .call(move |s| s.send(acct, &Target::Direct("erin@example.test".into()), "held"))
        .unwrap()
        .unwrap();
    assert_eq!(out.outgoing.len(), 1);
    assert_eq!(out.outgoing[0].body, "?OTRv23?");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn actor_reports_background_key_generation_and_the_query_that_follows() {
    let dir = scratch("actor-bg");
    let actor = timb_otr::actor::OtrActor::spawn(
        dir.clone(),
        vec![common::config("frank@example.test", None)],
    )
    .unwrap();
    let acct = timb_core::AccountId(1);
    let out = actor
        .handle
        .call(move |s| s.send(acct, &Target::Direct("gina@example.test".into()), "soon"))
        .unwrap()
        .unwrap();
    assert!(out.outgoing.is_empty());
    assert!(out.events.iter().any(|e| matches!(
        e,
        OtrEvent::KeyGeneration {
            state: timb_otr::KeyGenState::Started,
            ..
        }
    )));
    let (mut done, mut query) = (false, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(done && query) && std::time::Instant::now() < deadline {
        if let Ok(o) = actor.background.recv_timeout(Duration::from_millis(500)) {
            done |= o.events.iter().any(|e| {
                matches!(
                    e,
                    OtrEvent::KeyGeneration {
                        state: timb_otr::KeyGenState::Done { .. },
                        ..
                    }
                )
            });
            query |= o.outgoing.iter().any(|m| m.body == "?OTRv23?");
            assert!(o.outgoing.iter().all(|m| m.body.starts_with("?OTR")));
        }
    }
    assert!(
        done && query,
        "key generation finished {done}, query sent {query}"
    );
    drop(actor);
    let _ = std::fs::remove_dir_all(dir);
}

/// A server inventing senders cannot make libotr keep a context for each: after
/// `MAX_PEERS_PER_ACCOUNT` different senders a new one is refused, while those already
/// seen (and the conversation that matters) go on working.
#[test]
fn senders_beyond_the_cap_are_refused_and_known_ones_still_get_through() {
    let mut me = peer("alice@example.test", None);
    let a = me.acct;
    for i in 0..timb_otr::MAX_PEERS_PER_ACCOUNT {
        me.s.receive(a, &format!("invented{i}@evil.test"), "hello")
            .unwrap_or_else(|e| panic!("sender {i} refused early: {e}"));
    }
    let refused = me.s.receive(a, "one-more@evil.test", "hello");
    assert!(
        matches!(refused, Err(timb_otr::OtrError::TooManySenders)),
        "{refused:?}"
    );
    // A sender seen before still gets through.
    me.s.receive(a, "invented7@evil.test", "hello again")
        .expect("a known sender is not refused");
}

/// Polls until `p`'s key generation ends: whether it made a key.
fn key_generation_ends(p: &mut Peer) -> bool {
    for _ in 0..3000 {
        let out = p.s.poll().unwrap();
        p.take(out);
        for e in &p.events {
            if let OtrEvent::KeyGeneration { state, .. } = e {
                match state {
                    timb_otr::KeyGenState::Done { .. } => return true,
                    timb_otr::KeyGenState::Failed => return false,
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the key generation never ended");
}

#[test]
fn a_key_that_cannot_be_saved_leaves_the_old_keys_and_can_be_made_again() {
    // A profile holding alice's key; carol, another account in it, has none yet.
    let alice = peer("alice@example.test", None);
    let dir = alice.dir.clone();
    let keys = dir.join("otr.private_key");
    let before = std::fs::read(&keys).unwrap();
    let mut c = peer_in("carol@example.test", None, dir.clone());
    // Every key is written to a temp file first: a folder in its place (as a full disk
    // would) makes the save fail.
    let tmp = dir.join("otr.private_key.tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = c.s.generate_key(c.acct).unwrap();
    c.take(out);
    assert!(
        !key_generation_ends(&mut c),
        "a key no file holds was reported made"
    );
    assert_eq!(
        std::fs::read(&keys).unwrap(),
        before,
        "alice's key was touched"
    );
    assert!(!c.s.has_key(c.acct));
    // libotr was told the key is abandoned, so the next attempt starts.
    std::fs::remove_dir(&tmp).unwrap();
    c.events.clear();
    let out = c.s.generate_key(c.acct).unwrap();
    c.take(out);
    assert!(key_generation_ends(&mut c));
    assert!(c.s.has_key(c.acct));
    // Bytes, not text: libgcrypt's S-expressions may hold a key's data as a raw string.
    let after = std::fs::read(&keys).unwrap();
    let holds = |name: &str| after.windows(name.len()).any(|w| w == name.as_bytes());
    assert!(holds("alice@example.test") && holds("carol@example.test"));
    assert!(!tmp.exists());
    drop(c);
    drop(alice);
}
