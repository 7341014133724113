//! The private network comes up, its file matches the contract, and the c-tor
//! client carries streams through an exit and to an onion service. One
//! network serves every test here (`TestNet::shared`).

use std::time::Duration;
use timb_testnet::{
    echo_roundtrip, exit_port_index, socks5_connect, EchoServer, NetInfo, TestNet,
    ONION_SERVICE_NAMES,
};

fn is_hex40(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
}

fn is_ed25519_b64(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[test]
fn network_file_parses_and_matches_contract() {
    let net = TestNet::shared();
    let text = std::fs::read_to_string(net.config_path()).expect("network file readable");
    let info = NetInfo::parse(&text).expect("network file parses");
    assert_eq!(&info, net.info());

    assert_eq!(info.network.voting_interval_secs, 20);
    assert_eq!(
        info.network.hsdir_interval_minutes,
        24 * info.network.voting_interval_secs / 60
    );
    assert_eq!(info.authorities.len(), 3);
    assert!(info.relays.len() >= 7, "{} relays", info.relays.len());
    for a in &info.authorities {
        assert_eq!(a.address, "127.0.0.1");
        assert!(is_hex40(&a.v3ident), "v3ident {}", a.v3ident);
        assert!(is_hex40(&a.rsa_identity), "rsa {}", a.rsa_identity);
        assert!(is_ed25519_b64(&a.ed_identity), "ed {}", a.ed_identity);
        assert!(
            info.relays
                .iter()
                .any(|r| r.rsa_identity == a.rsa_identity && r.or_port == a.or_port),
            "authority {} is also listed as a relay",
            a.nickname
        );
    }
    for r in &info.relays {
        assert_eq!(r.address, "127.0.0.1");
        assert!(is_hex40(&r.rsa_identity));
        assert!(is_ed25519_b64(&r.ed_identity));
    }
    let h = &info.harness;
    assert!(h.exit_ports.len() >= 16);
    assert!(h.socks_port > 0);
    assert!(h.ready_secs > 0.0);
    assert!(h.data_dir.is_dir());
    for name in ONION_SERVICE_NAMES {
        let s = info.onion_service(name).expect("well-known onion service");
        assert!(
            s.onion.ends_with(".onion") && s.onion.len() == 62,
            "{}",
            s.onion
        );
        assert!(s.port > 0 && s.target_port > 0);
    }
    // Every port the file names is distinct.
    let mut ports: Vec<u16> = h.exit_ports.clone();
    ports.push(h.socks_port);
    ports.extend(info.relays.iter().map(|r| r.or_port));
    ports.extend(info.authorities.iter().map(|a| a.dir_port));
    ports.extend(h.onion_services.iter().map(|s| s.target_port));
    let n = ports.len();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), n, "ports collide");
    eprintln!(
        "network ready in {:.1} s; daemons used {:.1} CPU-s",
        h.ready_secs,
        net.daemons_cpu_secs()
    );
}

#[test]
fn client_reaches_loopback_server_through_an_exit() {
    let net = TestNet::shared();
    let info = net.info();
    let port = info.exit_port(exit_port_index::TESTNET.start).unwrap();
    let _server = EchoServer::bind(port).expect("bind exit port");
    let mut s = socks5_connect(info.harness.socks_port, "127.0.0.1", port).expect("socks connect");
    echo_roundtrip(&mut s, b"through an exit\n", Duration::from_secs(30)).expect("echo");
    // A larger payload, in both directions at once.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    echo_roundtrip(&mut s, &big, Duration::from_secs(60)).expect("echo 200 kB");
}

#[test]
fn refused_exit_connection_is_an_error() {
    let net = TestNet::shared();
    let info = net.info();
    // Nothing listens on this one.
    let port = info.exit_port(exit_port_index::TESTNET.start + 1).unwrap();
    let err = socks5_connect(info.harness.socks_port, "127.0.0.1", port)
        .expect_err("nothing listens there");
    assert!(err.to_string().contains("SOCKS5"), "{err}");
}

#[test]
fn client_reaches_onion_service() {
    let net = TestNet::shared();
    let info = net.info();
    let svc = info.onion_service("testnet").unwrap();
    let _server = EchoServer::bind(svc.target_port).expect("bind onion target port");
    let mut s =
        socks5_connect(info.harness.socks_port, &svc.onion, svc.port).expect("socks connect");
    echo_roundtrip(
        &mut s,
        b"through an onion service\n",
        Duration::from_secs(30),
    )
    .expect("echo");
}

#[test]
fn daemons_outlive_the_thread_that_started_them() {
    // PR_SET_PDEATHSIG fires when the forking *thread* exits; test threads
    // are short-lived, so this guards the dedicated spawner thread.
    let net = std::thread::spawn(TestNet::shared).join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    net.check_alive().expect("every daemon still runs");
}
