//! The servers a test needs to drive the **real bundle's** window over the private Tor
//! network (tests/bundle/a11y/check_a11y.py `--connected`): the network, a prosody and an
//! ngircd behind two of its exit ports, and a headless timb account "ben" that waits in
//! an XMPP room and an IRC channel and says hello to whoever joins, accepts contact
//! requests and answers private (OTR) messages.
//!
//! With `--bridge` it also runs an obfs4 bridge (#16), its line and port in the JSON line
//! (empty and 0 without). With `--serve-updates DIR` it also serves DIR (a repository `cargo xtask release` wrote)
//! on the network's "app-update" onion service, for the update test between two real
//! bundles (tests/bundle `a_real_bundle_updates_itself_over_tor`).
//!
//! Prints one JSON line — the network file (for `TIMB_PRIVATE_TOR_NETWORK`), each
//! server's exit port and pinned key, the update mirror's address, the bridge's line and
//! port — then serves until its
//! standard input closes, printing `{"joined": "NICK"}` when someone joins the XMPP room
//! (a driver that cannot read the window, as under wine, learns it connected from that).

#[path = "../../../tests/update-client/tests/support/repo.rs"]
mod repo;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::sync::Arc;

use support::*;
use timb_core::{Command, Event, MessageKind, Target};
use timb_test_support::{free_port, Loopback, Ngircd, Redirect, IRC_HOST, MUC};
use timb_testnet::exit_port_index;

/// The room and channel ben waits in.
const ROOM: &str = "lobby";
const CHANNEL: &str = "#timb";
/// ben's answer to a private message.
const PEER_ANSWER: &str = "hi ann, this is private";

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let with_bridge = args.first().is_some_and(|a| a == "--bridge");
    if with_bridge {
        args.remove(0);
    }
    let updates = match args.as_slice() {
        [] => None,
        [flag, dir] if flag == "--serve-updates" => Some(std::path::PathBuf::from(dir)),
        _ => {
            eprintln!("usage: real_window_world [--bridge] [--serve-updates DIR]");
            std::process::exit(2);
        }
    };
    let world = XmppWorld::start(exit_port_index::REAL_WINDOW.start);
    let update_svc = world
        .net
        .info()
        .onion_service("app-update")
        .expect("the network's app-update onion service")
        .clone();
    let _update_server = updates.map(|dir| repo::Server::start_on(&dir, update_svc.target_port));
    let irc_exit = world
        .net
        .info()
        .exit_port(exit_port_index::REAL_WINDOW.start + 1)
        .expect("exit port");
    let ng = Ngircd::start_on(&[free_port()], irc_exit);
    // A bridge (#16) the driver may give the window: its obfs4 side is Debian's obfs4proxy,
    // the bundle's client side is the lyrebird it ships.
    let bridge = with_bridge.then(|| {
        world
            .net
            .start_bridge(std::net::Ipv4Addr::LOCALHOST.into())
            .expect("the private network's bridge")
    });
    let (bridge_line, bridge_port) = bridge
        .as_ref()
        .map_or((String::new(), 0), |b| (b.line.clone(), b.obfs4_port));
    let room = format!("{ROOM}@{MUC}");

    // ben in the XMPP room: greets each newcomer.
    let (mut xb, _otr) = world.headless_peer("ben", "pw-ben");
    let r = room.clone();
    world.rt.spawn(async move {
        let _ = xb
            .commands
            .send(Command::JoinGroup {
                room: r.clone(),
                nick: Some("ben".into()),
            })
            .await;
        while let Some(e) = xb.events.recv().await {
            let reply = match e {
                Event::MemberJoined { nick, .. } => {
                    println!("{{\"joined\": \"{nick}\"}}");
                    Command::Send {
                        to: Target::Group(r.clone()),
                        body: format!("Welcome, {nick}! This room is not encrypted."),
                        kind: MessageKind::Normal,
                    }
                }
                // A contact request is accepted; a private message answered (through OTR).
                Event::SubscriptionRequest { from } => Command::AnswerSubscription {
                    from,
                    approve: true,
                },
                Event::Message {
                    from: from @ Target::Direct(_),
                    ..
                } => Command::Send {
                    to: from,
                    body: PEER_ANSWER.into(),
                    kind: MessageKind::Normal,
                },
                _ => continue,
            };
            let _ = xb.commands.send(reply).await;
        }
    });

    // ben on IRC, over loopback with ngircd's key pinned: greets each newcomer too.
    let policy = ng.policy();
    world.rt.spawn(async move {
        let server = timb_irc::connect::IrcServer {
            host: IRC_HOST.into(),
            port: irc_exit,
            tls: policy,
            allow_plaintext: false,
            client_identity: None,
        };
        let via = Redirect::new(Arc::new(Loopback), "127.0.0.1", irc_exit);
        let mut h = timb_irc::spawn_account(
            timb_core::AccountId(99),
            server,
            timb_irc::session::IrcConfig::new("ben"),
            via,
        );
        let _ = h.commands.send(Command::Connect).await;
        let mut joined = false;
        while let Some(e) = h.events.recv().await {
            match e {
                Event::State(timb_core::ConnectionState::Connected { .. }) if !joined => {
                    joined = true;
                    let _ = h
                        .commands
                        .send(Command::JoinGroup {
                            room: CHANNEL.into(),
                            nick: None,
                        })
                        .await;
                }
                Event::MemberJoined { nick, .. } => {
                    let _ = h
                        .commands
                        .send(Command::Send {
                            to: Target::Group(CHANNEL.into()),
                            body: format!("hi {nick}, welcome to {CHANNEL}"),
                            kind: MessageKind::Normal,
                        })
                        .await;
                }
                _ => {}
            }
        }
    });

    println!(
        "{{\"network\": \"{}\", \"xmpp_port\": {}, \"xmpp_pin\": \"{}\", \"xmpp_user\": \"ann@{}\", \"xmpp_password\": \"pw-ann\", \"room\": \"{room}\", \"irc_port\": {irc_exit}, \"irc_pin\": \"{}\", \"channel\": \"{CHANNEL}\", \"peer\": \"ben@{}\", \"peer_answer\": \"{PEER_ANSWER}\", \"update_mirror\": \"http://{}/\", \"bridge_line\": \"{}\", \"bridge_port\": {}}}",
        world.net.config_path().display(),
        world.exit_port,
        world.pin,
        timb_test_support::DOMAIN,
        ng.pki.leaf.spki_sha256().hex(),
        timb_test_support::DOMAIN,
        update_svc.onion,
        bridge_line,
        bridge_port,
    );
    // Serve until the driver closes our standard input.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(bridge);
    drop(ng);
    drop(world);
}
