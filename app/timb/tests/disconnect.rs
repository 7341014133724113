//! The real network backend pointed at a Tor network nobody answers (every
//! port closed), so a bootstrap would sit there for minutes.
//! Bug 18.5: Disconnect while "Connecting…" cancels at once.
//! Bug 18.7: "no relay reachable" is said within ~30 s, the same way every time.

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

/// The Net backend on the dead network, with its events.
fn dead_net(dir: &std::path::Path) -> (Net, mpsc::Receiver<UiEvent>) {
    static NETWORK: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let network = NETWORK.get_or_init(|| {
        let keep = std::env::temp_dir().join(format!("timb-dead-net-{}", std::process::id()));
        std::fs::create_dir_all(&keep).unwrap();
        let file = dead_network(&keep);
        // Set once, before any Net exists; every test here uses the same value.
        std::env::set_var(PRIVATE_NETWORK_ENV, &file);
        file
    });
    assert!(network.exists());
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let sink = Sink::new(move |e| {
        let _ = tx.lock().unwrap().send(e);
    });
    (Net::new(sink, &profile).unwrap(), rx)
}

fn connect(net: &mut Net, id: AccountId) {
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
        create: false,
    })
    .unwrap();
    net.request(Request::Connect {
        id,
        account,
        password: Some("pw".into()),
    });
}

#[test]
fn disconnect_while_connecting_cancels_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut net, rx) = dead_net(dir.path());
    let id = AccountId(1);
    connect(&mut net, id);
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

#[test]
fn no_relay_reachable_is_said_within_30_seconds_the_same_way_each_time() {
    use timb::backend::{TorFailureKind, TorStatus};
    let dir = tempfile::tempdir().unwrap();
    let (mut net, rx) = dead_net(dir.path());
    let take_failure = |rx: &mpsc::Receiver<UiEvent>| {
        let deadline = Instant::now() + Duration::from_secs(50);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(UiEvent::Tor(TorStatus::Failed { kind, detail })) => return (kind, detail),
                Ok(_) => {}
                Err(_) => panic!("Tor did not give up within 50 s"),
            }
        }
    };
    let t0 = Instant::now();
    connect(&mut net, AccountId(1));
    let first = take_failure(&rx);
    assert!(t0.elapsed() < Duration::from_secs(45), "{:?}", t0.elapsed());
    assert_eq!(first.0, TorFailureKind::NoNetwork, "{first:?}");
    let t1 = Instant::now();
    net.request(Request::RetryTor);
    let again = take_failure(&rx);
    assert!(t1.elapsed() < Duration::from_secs(45), "{:?}", t1.elapsed());
    assert_eq!(again, first, "the same words on every attempt");
}
