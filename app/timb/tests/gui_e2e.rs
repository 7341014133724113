//! The whole program as a user drives it: the real window, controller and
//! network backend on slint's event loop (the testing platform, so no display
//! is needed), arti bootstrapping against the private Tor network, a real
//! prosody reached through the network's exit.
//!
//! Through the window, ann adds her XMPP account, connects it, opens a chat
//! with ben and writes to him; the message waits until OTR is up, the banner
//! reaches "private, unverified", SMP with a question verifies ben, and ben's
//! answer appears in the conversation. ben is a headless timb XMPP+OTR account
//! on loopback: the test's peer, not the program under test.
//!
//! Uses exit port 14 of the network file (the GUI/bench reservation).

mod support;

use slint::{ComponentHandle, Model};
use support::*;
use timb::{ConnState, MainWindow, OtrState};
use timb_core::{Command, Event, MessageKind, Target};
use timb_otr::wrap::ControlEvent;
use timb_otr::{OtrEvent, SmpEvent};
use timb_test_support::DOMAIN;
use timb_testnet::exit_port_index;

#[test]
fn user_adds_account_connects_over_tor_chats_privately_and_verifies_by_smp() {
    let world = XmppWorld::start(exit_port_index::GUI_BENCH.start + 2);
    let (exit_port, pin) = (world.exit_port, world.pin.clone());
    let ann_jid = format!("ann@{DOMAIN}");
    let (mut ben, mut ben_otr) = world.headless_peer("ben", "pw-ben");

    // The program, on this thread's event loop.
    i_slint_backend_testing::init_integration_test_with_system_time();
    let (window, app) = world.open_window();
    let w = window.as_weak();

    // ben's side runs on the tokio runtime while the window's loop runs here.
    let ben_side = world.rt.spawn(async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut got_hello = false;
        let mut verified = false;
        while !(got_hello && verified) {
            tokio::select! {
                e = ben.events.recv() => match e {
                    Some(Event::Message { body, from, .. }) => {
                        assert_eq!(body, "hello ben, over tor", "ben must read ann's words decrypted");
                        assert_eq!(from, Target::Direct(format!("ann@{DOMAIN}")));
                        got_hello = true;
                    }
                    Some(_) => {}
                    None => panic!("ben's account ended"),
                },
                e = ben_otr.events.recv() => match e {
                    Some(ControlEvent::Otr(OtrEvent::Smp { peer, event: SmpEvent::AskedQuestion(q), .. })) => {
                        assert_eq!(q, "Where did we meet?");
                        ben_otr.smp_respond(&peer, "at the library").await.unwrap();
                    }
                    Some(ControlEvent::Otr(OtrEvent::Smp { event: SmpEvent::Succeeded, .. })) => {
                        verified = true;
                    }
                    Some(_) => {}
                    None => panic!("ben's OTR control closed"),
                },
                _ = tokio::time::sleep_until(deadline) => panic!("ben timed out (hello {got_hello}, verified {verified})"),
            }
        }
        ben.commands
            .send(Command::Send {
                to: Target::Direct(format!("ann@{DOMAIN}")),
                body: "hi ann, verified".into(),
                kind: MessageKind::Normal,
            })
            .await
            .unwrap();
        (ben, ben_otr)
    });

    run_driven(move || drive(&w, &ann_jid, exit_port, &pin));
    let (_ben, _ben_otr) = world.rt.block_on(ben_side).expect("ben's side");
    drop(app);
    drop(window);
}

fn drive(w: &slint::Weak<MainWindow>, ann_jid: &str, exit_port: u16, pin: &str) {
    let t0 = std::time::Instant::now();
    // Nothing has started: Tor waits for the user.
    assert_eq!(
        on_ui(w, |w| w.get_tor_state()),
        timb::TorState::Idle,
        "Tor must not start before the user connects"
    );
    let (jid, pin) = (ann_jid.to_owned(), pin.to_owned());
    on_ui(w, move |w| {
        add_xmpp_account(w, "127.0.0.1", exit_port, &jid, &pin);
        connect_with_password(w, &jid, "pw-ann");
    });
    wait_ui(
        w,
        "the account to connect over Tor",
        |w| {
            w.get_accounts()
                .row_data(0)
                .is_some_and(|a| a.state == ConnState::Connected)
        },
        state,
    );
    assert_eq!(on_ui(w, |w| w.get_tor_state()), timb::TorState::Ready);
    eprintln!("connected over Tor after {:?}", t0.elapsed());

    // A chat with ben: the first message waits for encryption.
    let ben = format!("ben@{DOMAIN}");
    on_ui(w, move |w| {
        let id = w.get_accounts().row_data(0).expect("the account").id;
        w.invoke_open_conversation(id, ben.into(), false);
        assert_eq!(w.get_otr_state(), OtrState::NotPrivate);
        w.invoke_send("hello ben, over tor".into());
    });
    wait_ui(
        w,
        "private, unverified",
        |w| w.get_otr_state() == OtrState::PrivateUnverified,
        state,
    );
    // The held message went out once the conversation was private.
    wait_ui(
        w,
        "the first message to be sent",
        |w| {
            w.get_messages().iter().any(|m| {
                m.outgoing && m.body == "hello ben, over tor" && m.status == timb::MsgStatus::Sent
            })
        },
        state,
    );
    assert!(
        !on_ui(w, |w| w.get_their_fingerprint().to_string()).is_empty(),
        "ben's fingerprint is shown"
    );

    // Verify ben by SMP with a question, through the verification dialog.
    on_ui(w, |w| {
        w.invoke_open_verify();
        assert!(w.get_otr_open());
        w.invoke_start_smp("Where did we meet?".into(), "at the library".into());
    });
    wait_ui(
        w,
        "private, verified",
        |w| w.get_otr_state() == OtrState::PrivateVerified,
        state,
    );
    wait_ui(
        w,
        "ben's answer",
        |w| {
            w.get_messages()
                .iter()
                .any(|m| !m.outgoing && m.body == "hi ann, verified")
        },
        state,
    );
    eprintln!(
        "verified and answered after {:?}: {}",
        t0.elapsed(),
        on_ui(w, state)
    );
}
