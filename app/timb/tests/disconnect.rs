//! Bug 18.5: Disconnect while "Connecting…" cancels at once. The real network
//! backend is pointed at a Tor network nobody answers (every port closed), so
//! the bootstrap would sit there for minutes; Disconnect must not wait for it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use timb::accounts::{validate, FormInput};
use timb::backend::{Backend, Request, Sink, UiEvent};
use timb::net::{Net, PRIVATE_NETWORK_ENV};
use timb_core::{AccountId, Command, ConnectionState, Event};

/// A network description whose authorities and relays all sit on a closed port.
fn dead_network(dir: &std::path::Path) -> std::path::PathBuf {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut text =
        String::from("[network]\nvoting_interval_secs = 20\nhsdir_interval_minutes = 8\n");
    for i in 1..=3 {
        let id = format!("{i:0>40}");
        text += &format!(
            "[[authority]]\nnickname = \"auth{i}\"\naddress = \"127.0.0.1\"\nor_port = {closed}\n\
             dir_port = {closed}\nv3ident = \"{id}\"\nrsa_identity = \"{id}\"\n\
             ed_identity = \"{}\"\n",
            "A".repeat(43)
        );
        text += &format!(
            "[[relay]]\nnickname = \"relay{i}\"\naddress = \"127.0.0.1\"\nor_port = {closed}\n\
             rsa_identity = \"{id}\"\ned_identity = \"{}\"\n",
            "A".repeat(43)
        );
    }
    let file = dir.join("dead-network.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn wait_for(
    rx: &mpsc::Receiver<UiEvent>,
    within: Duration,
    what: &str,
    f: impl Fn(&UiEvent) -> bool,
) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if f(&e) => return,
            Ok(e) => seen.push(e),
            Err(_) => panic!("no {what} within {within:?}; seen {seen:?}"),
        }
    }
}

#[test]
fn disconnect_while_connecting_cancels_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let network = dead_network(dir.path());
    // This test binary has this one test: nothing else reads the environment.
    std::env::set_var(PRIVATE_NETWORK_ENV, &network);
    let profile = dir.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let sink = Sink::new(move |e| {
        let _ = tx.lock().unwrap().send(e);
    });
    let mut net = Net::new(sink, &profile).unwrap();
    let account = validate(&FormInput {
        irc: false,
        server: "example.org".into(),
        port: String::new(),
        tls: 2,
        pin: String::new(),
        identity: "alice@example.org".into(),
        password_mode: 0,
        password: String::new(),
        remember: false,
    })
    .unwrap();
    let id = AccountId(1);
    net.request(Request::Connect {
        id,
        account,
        password: Some("pw".into()),
    });
    wait_for(
        &rx,
        Duration::from_secs(10),
        "Connecting",
        |e| matches!(e, UiEvent::Account(a, Event::State(ConnectionState::Connecting)) if *a == id),
    );
    // Tor is bootstrapping against nothing now.
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    net.request(Request::Command {
        id,
        command: Command::Disconnect,
    });
    wait_for(
        &rx,
        Duration::from_secs(3),
        "Disconnected",
        |e| matches!(e, UiEvent::Account(a, Event::State(ConnectionState::Disconnected)) if *a == id),
    );
    assert!(asked.elapsed() < Duration::from_secs(3));
}
