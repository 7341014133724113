//! One function per fuzz target: bytes an attacker controls in, timb's parser run over
//! them, and nothing may panic, hang or grow without bound. `fuzz/` (cargo fuzz,
//! libFuzzer) calls these; `tests/replay.rs` replays every committed corpus and crash
//! input through them in `cargo xtask test`, so a fixed crash stays fixed.

use std::time::{Duration, Instant, SystemTime};

pub mod hostile;

/// A target: attacker's bytes in, nothing out.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/NAME.rs` and `fuzz/corpus/NAME/` call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("xmpp_stream", xmpp_stream),
    ("xmpp_session", xmpp_session),
    ("scram", scram),
    ("irc_line", irc_line),
    ("tuf", tuf),
    ("update_archive", update_archive),
    ("tofu_pins", tofu_pins),
    ("otr_inbound", otr_inbound),
    ("bridge_lines", bridge_lines),
    ("pt_output", pt_output),
];

/// A server's bytes after the stream header timb sent: the bounded XML parser hands
/// up frames until the stream ends or is refused (too large, malformed).
pub fn xmpp_stream(data: &[u8]) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    rt.block_on(async {
        // The server's side writes `data` and closes; timb's side parses.
        let (mut server, client) = tokio::io::duplex(data.len().max(1) + 64);
        let feed = async {
            use tokio::io::AsyncWriteExt;
            let _ = server.write_all(data).await;
            drop(server);
        };
        let parse = async {
            let mut s = timb_xmpp::stream::XmlStream::new(client, 64 * 1024);
            for _ in 0..10_000 {
                match s.next().await {
                    Ok(timb_xmpp::stream::Frame::StreamEnd) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        tokio::join!(feed, parse);
    });
}

/// A logged-in XMPP session (`timb_xmpp::spawn_account`, as the app runs it) that has
/// asked to join [`hostile::ROOM`], fed `data` as the server's stanzas, then the end of the
/// stream: the session's stanza handling (roster, presence, the room, iq answers) and
/// every event it reports, until the account says it is disconnected. The server offers
/// no stream management, so acks are only the refusal path.
pub fn xmpp_session(data: &[u8]) {
    let _ = xmpp_session_events(data);
}

/// [`xmpp_session`], returning the events the account reported (the harness's own test
/// checks that the login works and the data arrives as stanzas).
pub fn xmpp_session_events(data: &[u8]) -> Vec<timb_core::Event> {
    use timb_core::{Command, ConnectionState, Event};
    use tokio::io::AsyncWriteExt;
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return Vec::new();
    };
    let data = data.to_vec();
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut h = hostile::account(timb_core::AccountId(1), client);
        let server = tokio::spawn(async move {
            // The data goes out once the client has asked to join the room.
            let (wr, joined) = hostile::serve(server).await;
            let _ = joined.await;
            if let Some(mut wr) = wr {
                let _ = wr.write_all(&data).await;
                let _ = wr.shutdown().await;
            }
        });
        let _ = h.commands.send(Command::Connect).await;
        let mut events = Vec::new();
        for _ in 0..100_000 {
            match h.events.recv().await {
                None | Some(Event::State(ConnectionState::Disconnected)) => break,
                Some(e) => {
                    // In a room, as a user would be, so group stanzas reach the room's code.
                    if matches!(e, Event::State(ConnectionState::Connected { .. })) {
                        let join = Command::JoinGroup {
                            room: hostile::ROOM.into(),
                            nick: Some("me".into()),
                        };
                        let _ = h.commands.send(join).await;
                    }
                    if events.len() < 1000 {
                        events.push(e);
                    }
                }
            }
        }
        server.abort();
        events
    })
}

/// SCRAM's server-first and server-final messages, split at the first NUL.
pub fn scram(data: &[u8]) {
    use timb_xmpp::scram::{ChannelBinding, ScramClient, ScramHash};
    let text = String::from_utf8_lossy(data);
    let (first, last) = text.split_once('\0').unwrap_or((&text, ""));
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        let mut c = ScramClient::new(hash, "ann", "pw", ChannelBinding::None, "abc".into());
        // The nonce the fuzzer must echo is "abc", which it finds in the seed corpus.
        if c.handle_server_first(first).is_ok() {
            let _ = c.verify_server_final(last);
        }
    }
}

/// One IRC line as a server sends it: decoded as timb decodes it, parsed by irc-proto,
/// then a PRIVMSG/NOTICE body through the formatting filter and the CTCP policy.
pub fn irc_line(data: &[u8]) {
    let line = timb_irc::line::decode_line(data);
    let Ok(msg) = line.parse::<irc_proto::Message>() else {
        return;
    };
    let (body, notice, target) = match &msg.command {
        irc_proto::Command::PRIVMSG(t, b) => (b, false, t),
        irc_proto::Command::NOTICE(t, b) => (b, true, t),
        _ => return,
    };
    let _ = timb_irc::format::strip_formatting(body);
    let now = Instant::now();
    let mut policy = timb_irc::ctcp::CtcpPolicy::new(now);
    for i in 0..3 {
        let _ = policy.incoming(
            body,
            notice,
            target.starts_with('#'),
            now + Duration::from_millis(i),
            SystemTime::UNIX_EPOCH,
        );
    }
}

/// TUF metadata: the first 4 bytes split the rest into a root and a timestamp; the root
/// is trusted as shipped, then the timestamp, a root update and a snapshot are checked.
pub fn tuf(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let cut = usize::from(u16::from_le_bytes([data[0], data[1]])) % (data.len() - 3);
    let (root, rest) = data[4..].split_at(cut.min(data.len() - 4));
    let Ok(mut set) = timb_release::tuf::TrustedSet::new(root, 1_700_000_000) else {
        return;
    };
    let _ = set.update_root(rest);
    let _ = set.update_timestamp(rest);
    let _ = set.load_local_timestamp(rest);
}

/// An update archive (`.tar.xz`) extracted into a scratch bundle with small limits:
/// refused or installed, never written outside the scratch folder.
pub fn update_archive(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let layout = timb_launcher::Layout::at(dir.path());
    let archive = dir.path().join("update.tar.xz");
    if std::fs::create_dir_all(layout.app_dir()).is_err() || std::fs::write(&archive, data).is_err()
    {
        return;
    }
    let limits = timb_update::Limits {
        max_files: 100,
        max_bytes: 1 << 20,
    };
    let _ = timb_update::install(&layout, &archive, "9.9.9", limits, None);
}

/// A TOFU pin file (`host:port spki-sha256` lines) as found on disk.
pub fn tofu_pins(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("pins");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(store) = timb_tls::TofuStore::open(&path) {
        let _ = store.get("example.org:5222");
    }
}

/// A peer's messages to an XMPP account with an OTR key, one per line, through
/// `OtrSession::receive` (libotr's `otrl_message_receiving` and timb's callbacks: what
/// `wrap` does with each). Each input talks to a peer of its own so inputs do not share a
/// conversation; every few thousand inputs the session (and with it the key and the
/// instance tag) is made anew so peers do not pile up. Messages addressed to another
/// instance tag (the seeds' data messages: their conversation had other tags) stop at
/// libotr's instance check; the query, the AKE's first messages and anything with tag 0
/// go further. libotr itself is C built without coverage instrumentation: the fuzzer is
/// guided by timb's side only; libotr is exercised, not measured.
pub fn otr_inbound(data: &[u8]) {
    let _ = otr_inbound_replies(data);
}

/// [`otr_inbound`], saying how many messages libotr answered with (`None`: no session with
/// a key could be made), so a test can see the target reaches libotr at all.
pub fn otr_inbound_replies(data: &[u8]) -> Option<usize> {
    use std::cell::RefCell;
    use timb_otr::{AccountConfig, OtrSession};
    const ACCOUNT: timb_core::AccountId = timb_core::AccountId(1);
    const INPUTS_PER_SESSION: u32 = 5_000;
    thread_local! {
        static SESSION: RefCell<Option<(OtrSession, u32)>> = const { RefCell::new(None) };
    }
    SESSION.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(_, n)| *n >= INPUTS_PER_SESSION) {
            *cell = None;
            let cfg = AccountConfig {
                id: ACCOUNT,
                protocol: timb_core::Protocol::Xmpp,
                name: "me@evil.test".into(),
                max_message_size: None,
            };
            let mut s = OtrSession::open_in_memory(vec![cfg]).ok()?;
            s.generate_key_blocking(ACCOUNT).ok()?;
            *cell = Some((s, 0));
        }
        let (session, n) = cell.as_mut()?;
        *n += 1;
        let peer = format!("peer{n}@evil.test/r");
        let text = String::from_utf8_lossy(data);
        let mut replies = 0;
        for wire in text.split('\n').take(64) {
            if let Ok(r) = session.receive(ACCOUNT, &peer, wire) {
                replies += r.output.outgoing.len();
            }
        }
        Some(replies)
    })
}

/// Text pasted into the Bridges dialog (or read back from the profile): checked line by
/// line, then each bridge given to arti's own parser, as the next Tor start does.
pub fn bridge_lines(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(bridges) = timb_tor::Bridge::parse_lines(&text) {
        for b in &bridges {
            let again = timb_tor::Bridge::parse(b.line());
            assert_eq!(again.as_ref(), Ok(b), "a checked line must check again");
        }
    }
}

/// What a pluggable-transport program prints on its stdout until it is ready: timb reads
/// a SOCKS address from it, which must be on loopback whatever the program says.
pub fn pt_output(data: &[u8]) {
    if let Ok(addr) = timb_tor::pt::read_socks_addr(data, "obfs4") {
        assert!(addr.ip().is_loopback(), "{addr}");
    }
}
