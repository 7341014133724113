//! `cargo xtask bench flood`: memory and responsiveness under servers that flood (#17),
//! printed as a Markdown table.
//!
//! Each scenario runs in a child process of its own (so peak RSS is its own): the real
//! window and controller on slint's event loop (the testing backend: no pixels are drawn),
//! attached through [`timb::attach_backend`] to the window's own event queue as the program
//! is, and an account wrapped in OTR whose events reach the window through the program's
//! own loop step (`timb::net::next_for_window`: read only while the window has room). Only
//! the transport differs: an in-process pipe to a hostile server instead of Tor, so the
//! server can send as fast as the client reads. The server starts once the driver has
//! measured the connected process, and ends its flood with a group message; a scenario
//! ends when the window has handled that message and nothing waits, or the account ended.
//! The table gives the process's peak RSS (VmHWM) against its RSS once connected, the
//! longest the window took to answer a request from another thread during the flood, the
//! most events that ever waited for the window, and how the account ended.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slint::ComponentHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use support::*;
use timb::backend::{Backend, Request, Sink, UiEvent};
use timb::net::{next_for_window, Next};
use timb::MainWindow;
use timb_core::{Command, ConnectionState, Event};
use timb_fuzz_targets::hostile;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;

/// The scenarios, as `--scenario NAME` takes them, with what the table calls them.
const SCENARIOS: &[(&str, &str)] = &[
    ("roster", "XMPP: 100,000 roster pushes"),
    ("room", "XMPP: 10,000 occupants join a room"),
    (
        "messages",
        "XMPP: one message per millisecond for a minute (60,000)",
    ),
    ("stanza", "XMPP: one 100 MB stanza, as fast as it is read"),
    ("irc-lines", "IRC: 1 MB lines, 200 of them (200 MB)"),
];

/// Socket-sized pipe buffer: what a TCP connection would let the server get ahead by.
const PIPE: usize = 256 * 1024;

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--scenario"), Some(name)) => print!("{}", scenario(&name)),
        _ => table(),
    }
}

fn table() {
    println!("| server (hostile) | RSS connected | peak RSS | longest window answer | most events waiting | how it ended | time |");
    println!("|---|---|---|---|---|---|---|");
    for (name, what) in SCENARIOS {
        let out = Process::new(std::env::current_exe().expect("own path"))
            .args(["--scenario", name])
            .stderr(Stdio::inherit())
            .output()
            .expect("child");
        assert!(out.status.success(), "scenario {name} failed");
        println!("| {what} | {}", String::from_utf8_lossy(&out.stdout).trim());
    }
    println!(
        "\nThe window may hold {} events that wait for it (`timb::backend::MAX_WAITING_EVENTS`); \
         beyond that the account stops reading and the flood waits in the server's connection.",
        timb::backend::MAX_WAITING_EVENTS
    );
}

/// What the driver thread shares with the backend on the tokio runtime.
#[derive(Default)]
struct Shared {
    sink: Option<Sink>,
    /// The driver's go: the server starts its flood once the driver has measured.
    go: Option<oneshot::Sender<()>>,
    /// The server's last stanza (a group message "flood-end") was handed to the window:
    /// once nothing waits any more, the window has handled the whole flood.
    end_seen: Arc<AtomicBool>,
}

/// The group message each server sends after its flood.
const END: &str = "flood-end";

struct Flood {
    rt: tokio::runtime::Runtime,
    name: String,
    shared: Arc<Mutex<Shared>>,
    sink: Sink,
    /// Kept so the account lives as long as the backend.
    otr: Option<timb_otr::wrap::OtrControl>,
}

impl Backend for Flood {
    fn request(&mut self, r: Request) {
        let Request::Connect { id, .. } = r else {
            return;
        };
        let (go_tx, go_rx) = oneshot::channel();
        let end_seen = {
            let mut shared = self.shared.lock().unwrap();
            shared.go = Some(go_tx);
            shared.end_seen.clone()
        };
        let _guard = self.rt.enter();
        let (client, server) = tokio::io::duplex(PIPE);
        let xmpp = self.name != "irc-lines";
        let handle = if xmpp {
            self.rt.spawn(xmpp_server(self.name.clone(), server, go_rx));
            hostile::account(id, client)
        } else {
            self.rt.spawn(irc_server(server, go_rx));
            let mut cfg = timb_irc::IrcConfig::new("me");
            cfg.reconnect = timb_core::Backoff::NEVER;
            timb_irc::spawn(id, client, cfg)
        };
        let (mut handle, mut control) =
            timb_otr::wrap::wrap_in_memory(handle, "me@evil.test").expect("OTR");
        let mut otr_events =
            std::mem::replace(&mut control.events, tokio::sync::mpsc::channel(1).1);
        self.otr = Some(control);
        let sink = self.sink.clone();
        self.rt.spawn(async move {
            let _ = handle.commands.send(Command::Connect).await;
            // The program's own loop (net.rs), without Tor and without the window's requests.
            loop {
                let events = match next_for_window(&sink, id, &mut handle.events, &mut otr_events).await {
                    Next::Show(events) => events,
                    Next::AccountEnded | Next::OtrEnded => break,
                };
                for e in events {
                    let connected = matches!(
                        e,
                        UiEvent::Account(_, Event::State(ConnectionState::Connected { .. }))
                    );
                    let end = matches!(&e, UiEvent::Account(_, Event::Message { body, .. }) if body == END);
                    sink.send(e);
                    end_seen.fetch_or(end, Ordering::SeqCst);
                    if connected && xmpp {
                        let _ = handle
                            .commands
                            .send(Command::JoinGroup {
                                room: ROOM.into(),
                                nick: Some("me".into()),
                            })
                            .await;
                    }
                }
            }
            sink.send(UiEvent::Account(
                id,
                Event::State(ConnectionState::Disconnected),
            ));
        });
    }
}

const ROOM: &str = hostile::ROOM;

/// A PLAIN login and resource binding, then the flood `name` names; the client's own
/// stanzas are read (and dropped) all along, as a server would.
async fn xmpp_server(name: String, server: DuplexStream, go: oneshot::Receiver<()>) {
    // The client's roster request, its presence and its room join come first.
    let (wr, joined) = hostile::serve(server).await;
    let mut wr = wr.expect("the server's write half");
    let _ = joined.await;
    let room = ROOM;
    let _ = wr
        .write_all(format!("<presence from='{room}/me'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x></presence>").as_bytes())
        .await;
    let _ = go.await;
    match name.as_str() {
        "roster" => {
            for i in 0..100_000 {
                let push = format!("<iq type='set' id='push{i}'><query xmlns='jabber:iq:roster'><item jid='contact{i}@evil.test' subscription='both' name='Contact {i}'/></query></iq>");
                if wr.write_all(push.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
        "room" => {
            for i in 0..10_000 {
                let p = format!("<presence from='{room}/occupant{i}'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>");
                if wr.write_all(p.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
        "messages" => {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for i in 0..60_000 {
                tick.tick().await;
                let m = format!("<message from='peer@evil.test/r' type='chat' id='m{i}'><body>message {i}: {}</body></message>", "lorem ipsum ".repeat(8));
                if wr.write_all(m.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
        "stanza" => {
            let _ = wr
                .write_all(b"<message from='peer@evil.test/r' type='chat'><body>")
                .await;
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..(100 * 1024 * 1024 / chunk.len()) {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        }
        other => panic!("no scenario {other}"),
    }
    let end =
        format!("<message from='{room}/server' type='groupchat'><body>{END}</body></message>");
    let _ = wr.write_all(end.as_bytes()).await;
    let _ = wr.flush().await;
    // Keep the connection open: ending it is the client's decision.
    std::future::pending::<()>().await;
}

/// Registration, then 1 MB lines to a channel.
async fn irc_server(server: DuplexStream, go: oneshot::Receiver<()>) {
    let (rd, mut wr) = tokio::io::split(server);
    let (registered_tx, registered_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(rd).lines();
        let mut registered = Some(registered_tx);
        while let Ok(Some(l)) = lines.next_line().await {
            if l.starts_with("USER ") {
                if let Some(r) = registered.take() {
                    let _ = r.send(());
                }
            }
        }
    });
    let _ = registered_rx.await;
    let _ = wr
        .write_all(b":evil.test 001 me :Welcome\r\n:evil.test 376 me :End of MOTD\r\n:me!me@evil.test JOIN #flood\r\n")
        .await;
    let _ = go.await;
    let long = format!(
        ":peer!p@evil.test PRIVMSG #flood :{}\r\n",
        "x".repeat(1 << 20)
    );
    for _ in 0..200 {
        if wr.write_all(long.as_bytes()).await.is_err() {
            break;
        }
    }
    let end = format!(":server!s@evil.test PRIVMSG #flood :{END}\r\n");
    let _ = wr.write_all(end.as_bytes()).await;
    let _ = wr.flush().await;
    std::future::pending::<()>().await;
}

/// Runs one scenario and returns its table row (without the first column).
fn scenario(name: &str) -> String {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MainWindow::new().expect("window");
    window.show().expect("show");
    let shared = Arc::new(Mutex::new(Shared::default()));
    let s = shared.clone();
    let name_owned = name.to_owned();
    let app = timb::attach_backend(&window, None, Default::default(), move |sink| {
        s.lock().unwrap().sink = Some(sink.clone());
        Ok(Box::new(Flood {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
            name: name_owned,
            shared: s,
            sink,
            otr: None,
        }))
    })
    .expect("attach");
    app.borrow_mut().set_language("en");
    let w = window.as_weak();
    let row = run_driven(move || drive(&w, &shared));
    drop(app);
    row
}

fn drive(w: &slint::Weak<MainWindow>, shared: &Arc<Mutex<Shared>>) -> String {
    let jid = "me@evil.test";
    on_ui(w, move |w| {
        add_xmpp_account(w, "evil.test", 5223, jid, "");
        connect_with_password(w, jid, "pw");
    });
    let connected = |w: &MainWindow| state(w).contains("Connected");
    wait_ui(w, "connected", connected, state);
    let rss_connected = status_kib("VmRSS:");
    let (sink, go, end_seen) = {
        let mut shared = shared.lock().unwrap();
        let go = shared.go.take().expect("connected");
        (
            shared.sink.clone().expect("sink"),
            go,
            shared.end_seen.clone(),
        )
    };
    let start = Instant::now();
    let _ = go.send(());
    let mut slowest = Duration::ZERO;
    // Until the window has handled everything up to the server's last message, or the
    // account ended.
    let ended = loop {
        let t = Instant::now();
        let st = on_ui(w, state);
        slowest = slowest.max(t.elapsed());
        if !st.contains("Connected") {
            break st;
        }
        if end_seen.load(Ordering::SeqCst) && sink.waiting() == 0 {
            break st;
        }
        assert!(start.elapsed() < Duration::from_secs(900), "no end: {st}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let most_waiting = sink.most_waiting();
    let took = start.elapsed();
    let outcome = outcome(&ended);
    format!(
        "{} | {} | {:.0} ms | {most_waiting} | {outcome} | {:.1} s |\n",
        mib(rss_connected),
        mib(status_kib("VmHWM:")),
        slowest.as_secs_f64() * 1000.0,
        took.as_secs_f64()
    )
}

/// The account's line of the window's state, shortened to what ended it.
fn outcome(state: &str) -> String {
    let account = state
        .split("accounts [")
        .nth(1)
        .and_then(|s| s.split("];").next())
        .unwrap_or(state);
    if account.contains("Connected") {
        "still connected, everything shown".into()
    } else {
        account.replace('|', "/").chars().take(160).collect()
    }
}
