//! IRC as a user drives it: the real window, controller and network backend on slint's
//! event loop (the testing platform), arti bootstrapping against the private Tor network,
//! a real ngircd reached through the network's exit with its key pinned.
//!
//! Through the window ann adds an IRC account, connects it, joins a channel by typing its
//! name, opens it from the contact list and talks there (in the clear, as every group is,
//! and the window says so), then talks to ben privately: the message waits until OTR is up
//! and reaches ben decrypted, and ben's answer appears. ben is a headless timb IRC account
//! wrapped in OTR on loopback: the test's peer, not the program under test.
//!
//! Uses exit port 15 of the network file (the GUI/bench reservation; `bench app` takes the
//! same port, and the bench never runs beside the suite).

mod support;

use std::sync::Arc;

use i_slint_backend_testing::{AccessibleRole, ElementHandle};
use slint::{ComponentHandle, Model};
use support::*;
use timb::{ConnState, MainWindow, OtrState};
use timb_core::{Command, Event, MessageKind, Target};
use timb_test_support::{free_port, Loopback, Ngircd, Redirect, IRC_HOST};
use timb_testnet::exit_port_index;

const CHANNEL: &str = "#timb";

#[test]
fn user_adds_an_irc_account_talks_in_a_channel_and_privately_with_otr_over_tor() {
    let net = timb_testnet::TestNet::shared();
    let exit_port = net
        .info()
        .exit_port(exit_port_index::GUI_BENCH.start + 3)
        .expect("exit port");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let tmp = tempfile::tempdir().expect("tempdir");
    // TLS on the exit port, with a certificate for irc.test and 127.0.0.1.
    let ng = Ngircd::start_on(&[free_port()], exit_port);
    let pin = ng.pki.leaf.spki_sha256().hex();

    // ben: TLS to ngircd over loopback, the key pinned, wrapped in OTR.
    let ben_store = timb_test_support::scratch(tmp.path(), "ben-otr");
    let (mut ben, mut ben_otr) = rt.block_on(async {
        let server = timb_irc::connect::IrcServer {
            host: IRC_HOST.into(),
            port: exit_port,
            tls: ng.policy(),
            allow_plaintext: false,
            client_identity: None,
        };
        let via = Redirect::new(Arc::new(Loopback), "127.0.0.1", exit_port);
        let h = timb_irc::spawn_account(
            timb_core::AccountId(99),
            server,
            timb_irc::session::IrcConfig::new("ben"),
            via,
        );
        h.commands
            .send(Command::Connect)
            .await
            .expect("ben running");
        let (mut h, c) = timb_otr::wrap::wrap(h, &ben_store, "ben@irc.test").expect("ben's OTR");
        timb_test_support::wait_event(&mut h, "ben connected", WAIT, |e| {
            matches!(
                e,
                Event::State(timb_core::ConnectionState::Connected { .. })
            )
        })
        .await;
        h.commands
            .send(Command::JoinGroup {
                room: CHANNEL.into(),
                nick: None,
            })
            .await
            .expect("ben joins");
        timb_test_support::wait_event(&mut h, "ben joined", WAIT, |e| {
            matches!(e, Event::GroupJoined { .. })
        })
        .await;
        (h, c)
    });

    i_slint_backend_testing::init_integration_test_with_system_time();
    let (window, app) = open_window(net, &timb_test_support::scratch(tmp.path(), "profile"));
    let w = window.as_weak();

    let ben_side = rt.spawn(async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        let (mut in_channel, mut privately) = (false, false);
        while !(in_channel && privately) {
            tokio::select! {
                e = ben.events.recv() => match e {
                    Some(Event::Message { from: Target::Group(room), sender, body, .. }) => {
                        assert_eq!(room, CHANNEL);
                        assert_eq!(sender.as_deref(), Some("ann"));
                        assert_eq!(body, "hello channel");
                        in_channel = true;
                        ben.commands.send(Command::Send {
                            to: Target::Group(CHANNEL.into()),
                            body: "hi from the channel".into(),
                            kind: MessageKind::Normal,
                        }).await.expect("ben's channel reply");
                    }
                    Some(Event::Message { from: Target::Direct(from), body, .. }) => {
                        assert_eq!(from, "ann");
                        assert_eq!(body, "hello ben, privately", "ben must read ann's words decrypted");
                        privately = true;
                        ben.commands.send(Command::Send {
                            to: Target::Direct("ann".into()),
                            body: "hi ann, over OTR".into(),
                            kind: MessageKind::Normal,
                        }).await.expect("ben's answer");
                    }
                    Some(_) => {}
                    None => panic!("ben's account ended"),
                },
                c = ben_otr.events.recv() => if c.is_none() { panic!("ben's OTR control closed") },
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("ben timed out (channel {in_channel}, private {privately})")
                }
            }
        }
        (ben, ben_otr)
    });

    run_driven(move || drive(&w, exit_port, &pin));
    let (_ben, _ben_otr) = rt.block_on(ben_side).expect("ben's side");
    drop(app);
    drop(window);
    drop(ng);
}

fn list_item(w: &MainWindow, label: &str) -> Option<ElementHandle> {
    ElementHandle::find_by_accessible_label(w, label)
        .find(|e| e.accessible_role() == Some(AccessibleRole::ListItem))
}

fn drive(w: &slint::Weak<MainWindow>, exit_port: u16, pin: &str) {
    let label = "ann @ 127.0.0.1";
    let pin = pin.to_owned();
    on_ui(w, move |w| {
        click(w, "Add account");
        // The protocol box's second entry.
        let mut form = w.get_account_form();
        form.irc = true;
        form.tls = 0;
        w.set_account_form(form);
        type_into(w, "Server or .onion address", "127.0.0.1");
        type_into(w, "Port", &exit_port.to_string());
        type_into(w, "Nickname", "ann");
        type_into(w, "Pinned key", &pin);
        click(w, "Save account");
        assert!(
            !w.get_account_dialog_open(),
            "form refused: {:?}",
            w.get_form_error()
        );
        // No server password: the prompt is answered empty.
        connect_with_password(w, label, "");
    });
    wait_ui(
        w,
        "the IRC account to connect over Tor",
        |w| {
            w.get_accounts()
                .row_data(0)
                .is_some_and(|a| a.state == ConnState::Connected)
        },
        state,
    );

    // Join by typing the channel's name; it appears in the list and one click opens it.
    on_ui(w, |w| {
        type_into(w, "Group to join", CHANNEL);
        click(w, "Join group");
    });
    let row = format!("Group {CHANNEL}");
    let r = row.clone();
    wait_ui(
        w,
        "the channel in the list",
        move |w| list_item(w, &r).is_some(),
        state,
    );
    let r = row.clone();
    on_ui(w, move |w| {
        list_item(w, &r)
            .expect("channel row")
            .invoke_accessible_default_action();
        assert!(w.get_conv_is_group(), "the channel is open");
        type_into(w, "Message", "hello channel");
        click(w, "Send");
    });
    wait_ui(
        w,
        "ben's words in the channel",
        |w| {
            w.get_messages()
                .iter()
                .any(|m| !m.outgoing && m.body == "hi from the channel")
        },
        state,
    );

    // Privately: "Talk" to ben; the first message waits until OTR is up.
    on_ui(w, |w| {
        type_into(w, "Nick to talk to", "ben");
        click(w, "Talk to this nick");
        assert!(!w.get_conv_is_group());
        assert_eq!(w.get_otr_state(), OtrState::NotPrivate);
        type_into(w, "Message", "hello ben, privately");
        click(w, "Send");
    });
    wait_ui(
        w,
        "private, unverified",
        |w| w.get_otr_state() == OtrState::PrivateUnverified,
        state,
    );
    wait_ui(
        w,
        "ben's answer over OTR",
        |w| {
            w.get_messages()
                .iter()
                .any(|m| !m.outgoing && m.body == "hi ann, over OTR")
        },
        state,
    );
    on_ui(w, |w| {
        assert!(
            w.get_messages().iter().any(|m| m.outgoing
                && m.body == "hello ben, privately"
                && m.status == timb::MsgStatus::Sent),
            "the held message went out once private: {}",
            state(w)
        );
    });
}
