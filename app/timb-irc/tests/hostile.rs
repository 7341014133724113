//! Scripted fake servers: hostile input, SASL (ngircd 26 has no SASL, so
//! PLAIN and EXTERNAL are checked against a server speaking IRCv3 sasl-3.1
//! here), keep-alive and registration failures.

mod common;

use std::time::Duration;

use common::*;
use timb_core::{AccountError, ConnectionState, Event, MessageKind, Target};
use timb_irc::{IrcAuth, IrcConfig};

fn message_body(e: &Event) -> Option<&str> {
    match e {
        Event::Message { body, .. } => Some(body),
        _ => None,
    }
}

#[tokio::test]
async fn overlong_lines_invalid_utf8_and_formatting() {
    let (port, server) = fake_server(|mut c| async move {
        c.register_plain("me").await;
        // 1 MiB with no newline, then its end: skipped whole.
        let huge = vec![b'A'; 1 << 20];
        c.send_bytes(b":evil!e@h PRIVMSG me :").await.unwrap();
        c.send_bytes(&huge).await.unwrap();
        c.send_bytes(b"\r\n").await.unwrap();
        // Over 512 bytes but within the IRCv3 tag allowance: kept.
        let tags = format!("@x={} ", "t".repeat(600));
        c.send(&format!("{tags}:evil!e@h PRIVMSG me :tagged")).await;
        c.send_bytes(b":evil!e@h PRIVMSG me :caf\xe9 \xff\xfe ok\r\n")
            .await
            .unwrap();
        c.send(":evil!e@h PRIVMSG me :\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f \x16rev\x16")
            .await;
        c.send(":evil!e@h PRIVMSG me :\x01ACTION \x1fdances\x1f\x01")
            .await;
        // Garbage irc-proto cannot parse, then a marker.
        for junk in [":", "@", ": : :", ":x MODE #c +kkkk", "\x01\x01\x01"] {
            c.send(junk).await;
        }
        c.send(":evil!e@h PRIVMSG me :end").await;
        // Stay open until the client has read it all.
        let _ = c.line_within(Duration::from_secs(10)).await;
    })
    .await;
    let mut h = account(1, port, IrcConfig::new("me")).await;
    wait_connected(&mut h).await;
    let mut bodies = Vec::new();
    loop {
        let e = wait_for(&mut h, "messages", |e| matches!(e, Event::Message { .. })).await;
        let (b, kind) = match &e {
            Event::Message { body, kind, .. } => (body.clone(), *kind),
            _ => unreachable!(),
        };
        if b == "end" {
            break;
        }
        bodies.push((b, kind));
    }
    assert_eq!(
        bodies,
        vec![
            ("tagged".to_owned(), MessageKind::Normal),
            (
                "caf\u{fffd} \u{fffd}\u{fffd} ok".to_owned(),
                MessageKind::Normal
            ),
            ("bold red italic rev".to_owned(), MessageKind::Normal),
            ("dances".to_owned(), MessageKind::Action),
        ]
    );
    drop(h);
    server.abort();
}

#[tokio::test]
async fn ctcp_flood_gets_rate_limited_replies() {
    let (port, server) = fake_server(|mut c| async move {
        c.register_plain("me").await;
        let mut flood = String::new();
        for i in 0..300 {
            let what = ["VERSION", "TIME", "PING 1", "CLIENTINFO"][i % 4];
            flood.push_str(&format!(":f{i}!f@h PRIVMSG me :\x01{what}\x01\r\n"));
        }
        c.send_bytes(flood.as_bytes()).await.unwrap();
        c.send(":z!z@h PRIVMSG me :after the flood").await;
        let mut replies = 0;
        while let Some(l) = c.line_within(Duration::from_secs(4)).await {
            if l.starts_with("NOTICE ") {
                assert!(
                    l.contains("\x01VERSION timb\x01") || l.contains("\x01TIME "),
                    "{l}"
                );
                replies += 1;
            }
        }
        assert!(
            (1..=5).contains(&replies),
            "{replies} replies to 300 requests"
        );
    })
    .await;
    let mut h = account(1, port, IrcConfig::new("me")).await;
    wait_connected(&mut h).await;
    let e = wait_for(&mut h, "message after flood", |e| {
        matches!(e, Event::Message { .. })
    })
    .await;
    assert_eq!(message_body(&e), Some("after the flood"));
    server.await.unwrap();
}

#[tokio::test]
async fn server_closing_mid_registration_is_a_clear_error() {
    let (port, server) = fake_server(|mut c| async move {
        c.expect("USER ").await;
        // Closes without a word.
    })
    .await;
    let mut h = account(1, port, IrcConfig::new("me")).await;
    let events = drain_for(&mut h, Duration::from_secs(5)).await;
    server.await.unwrap();
    assert_eq!(
        events.first(),
        Some(&Event::State(ConnectionState::Connecting))
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Error(AccountError::Closed(m)) if m.contains("registration")
        )),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&Event::State(ConnectionState::Disconnected))
    );

    // ERROR before welcome carries the server's reason.
    let (port, server) = fake_server(|mut c| async move {
        c.expect("USER ").await;
        c.send("ERROR :Closing Link: too many connections").await;
    })
    .await;
    let mut h = account(1, port, IrcConfig::new("me")).await;
    let e = wait_for(&mut h, "error", |e| matches!(e, Event::Error(_))).await;
    assert_eq!(
        e,
        Event::Error(AccountError::Closed(
            "Closing Link: too many connections".into()
        ))
    );
    server.await.unwrap();
}

#[tokio::test]
async fn nick_collision_then_ping_pong_both_ways() {
    let (port, server) = fake_server(|mut c| async move {
        c.expect("CAP LS 302").await;
        c.expect("NICK me").await;
        c.send(":fake.test 433 * me :Nickname is already in use")
            .await;
        c.expect("NICK me_").await;
        c.send(":fake.test CAP * LS :").await;
        c.expect("CAP END").await;
        c.send(":fake.test 001 me_ :Welcome").await;
        c.send("PING :token-123").await;
        assert_eq!(c.line().await.as_deref(), Some("PONG token-123"));
        // Silence: the client pings us after ping_interval...
        let ping = c.expect("PING").await;
        c.send(&format!(":fake.test PONG fake.test :{}", &ping[5..]))
            .await;
        // ... and gives up when we stay silent past ping_timeout.
        let _ = c.expect("PING").await;
        assert_eq!(c.line_within(Duration::from_secs(5)).await, None);
    })
    .await;
    let mut cfg = IrcConfig::new("me");
    cfg.ping_interval = Duration::from_millis(500);
    cfg.ping_timeout = Duration::from_millis(1500);
    let mut h = account(1, port, cfg).await;
    wait_connected(&mut h).await;
    let e = wait_for(&mut h, "timeout", |e| matches!(e, Event::Error(_))).await;
    assert!(
        matches!(&e, Event::Error(AccountError::Transport(m)) if m.contains("stopped answering")),
        "{e:?}"
    );
    server.await.unwrap();
}

/// Reads AUTHENTICATE pieces until one shorter than 400 (or a lone "+").
async fn read_sasl_payload(c: &mut FakeConn) -> String {
    let mut b64 = String::new();
    loop {
        let l = c.expect("AUTHENTICATE ").await;
        let piece = &l["AUTHENTICATE ".len()..];
        assert!(piece.len() <= 400);
        if piece == "+" {
            break;
        }
        b64.push_str(piece);
        if piece.len() < 400 {
            break;
        }
    }
    b64
}

fn b64decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for ch in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in ch.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        for i in 0..ch.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[tokio::test]
async fn sasl_plain_with_chunked_payload() {
    let password = "p".repeat(350); // payload > 300 bytes: more than one piece
    let expected = format!("\0acct\0{password}").into_bytes();
    let (port, server) = fake_server(move |mut c| async move {
        c.expect("CAP LS 302").await;
        c.send(":fake.test CAP * LS * :multi-prefix").await;
        c.send(":fake.test CAP * LS :sasl=PLAIN,EXTERNAL account-notify")
            .await;
        assert_eq!(c.expect("CAP REQ").await, "CAP REQ sasl");
        c.send(":fake.test CAP * ACK :sasl").await;
        assert_eq!(c.expect("AUTHENTICATE").await, "AUTHENTICATE PLAIN");
        c.send("AUTHENTICATE +").await;
        let payload = read_sasl_payload(&mut c).await;
        assert!(payload.len() > 400, "chunking exercised");
        assert_eq!(b64decode(&payload), expected);
        c.send(":fake.test 900 me me!u@h acct :You are now logged in as acct")
            .await;
        c.send(":fake.test 903 me :SASL authentication successful")
            .await;
        c.expect("CAP END").await;
        c.send(":fake.test 001 me :Welcome").await;
        // No NickServ fallback after SASL succeeded.
        while let Some(l) = c.line_within(Duration::from_millis(500)).await {
            assert!(!l.contains("NickServ"), "{l}");
        }
    })
    .await;
    let mut cfg = IrcConfig::new("me");
    cfg.auth = IrcAuth::Password {
        account: "acct".into(),
        password,
        nickserv_fallback: true,
    };
    let mut h = account(1, port, cfg).await;
    wait_connected(&mut h).await;
    server.await.unwrap();
}

#[tokio::test]
async fn sasl_external_sends_empty_response() {
    let (port, server) = fake_server(|mut c| async move {
        c.expect("CAP LS 302").await;
        c.send(":fake.test CAP * LS :sasl").await;
        assert_eq!(c.expect("CAP REQ").await, "CAP REQ sasl");
        c.send(":fake.test CAP me ACK :sasl").await;
        assert_eq!(c.expect("AUTHENTICATE").await, "AUTHENTICATE EXTERNAL");
        c.send("AUTHENTICATE +").await;
        assert_eq!(c.expect("AUTHENTICATE").await, "AUTHENTICATE +");
        c.send(":fake.test 903 me :SASL authentication successful")
            .await;
        c.expect("CAP END").await;
        c.send(":fake.test 001 me :Welcome").await;
        let _ = c.line_within(Duration::from_millis(500)).await;
    })
    .await;
    let mut cfg = IrcConfig::new("me");
    cfg.auth = IrcAuth::External;
    let mut h = account(1, port, cfg).await;
    wait_connected(&mut h).await;
    server.await.unwrap();
}

#[tokio::test]
async fn sasl_failure_is_an_auth_error() {
    let (port, server) = fake_server(|mut c| async move {
        c.expect("CAP LS 302").await;
        c.send(":fake.test CAP * LS :sasl").await;
        assert_eq!(c.expect("CAP REQ").await, "CAP REQ sasl");
        c.send(":fake.test CAP me ACK :sasl").await;
        c.expect("AUTHENTICATE PLAIN").await;
        c.send("AUTHENTICATE +").await;
        c.expect("AUTHENTICATE ").await;
        c.send(":fake.test 904 me :SASL authentication failed")
            .await;
        // The client gives up rather than registering unauthenticated.
        while let Some(l) = c.line_within(Duration::from_secs(2)).await {
            assert!(!l.starts_with("CAP END"), "{l}");
        }
    })
    .await;
    let mut cfg = IrcConfig::new("me");
    cfg.auth = IrcAuth::Password {
        account: "acct".into(),
        password: "wrong".into(),
        nickserv_fallback: true,
    };
    let mut h = account(1, port, cfg).await;
    let e = wait_for(&mut h, "auth error", |e| matches!(e, Event::Error(_))).await;
    assert!(matches!(e, Event::Error(AccountError::Auth(_))), "{e:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn nickserv_fallback_only_when_allowed() {
    // Allowed: IDENTIFY after the welcome.
    let (port, server) = fake_server(|mut c| async move {
        c.register_plain("me").await;
        assert_eq!(
            c.expect("PRIVMSG").await,
            "PRIVMSG NickServ :IDENTIFY acct secret"
        );
    })
    .await;
    let mut cfg = IrcConfig::new("me");
    cfg.auth = IrcAuth::Password {
        account: "acct".into(),
        password: "secret".into(),
        nickserv_fallback: true,
    };
    let mut h = account(1, port, cfg.clone()).await;
    wait_connected(&mut h).await;
    server.await.unwrap();

    // Not allowed: no SASL means an error, and the password is never sent.
    let (port, server) = fake_server(|mut c| async move {
        c.expect("CAP LS 302").await;
        c.send(":fake.test CAP * LS :multi-prefix").await;
        while let Some(l) = c.line_within(Duration::from_secs(2)).await {
            assert!(!l.contains("secret"), "{l}");
        }
    })
    .await;
    cfg.auth = IrcAuth::Password {
        account: "acct".into(),
        password: "secret".into(),
        nickserv_fallback: false,
    };
    let mut h = account(1, port, cfg).await;
    let e = wait_for(&mut h, "auth error", |e| matches!(e, Event::Error(_))).await;
    assert!(matches!(e, Event::Error(AccountError::Auth(_))), "{e:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn outgoing_text_cannot_inject_commands_or_dcc() {
    let (port, server) = fake_server(|mut c| async move {
        c.register_plain("me").await;
        let mut lines = Vec::new();
        while let Some(l) = c.line_within(Duration::from_secs(2)).await {
            lines.push(l);
        }
        assert_eq!(
            lines,
            vec![
                "PRIVMSG bob hi",
                "PRIVMSG bob :QUIT :x",
                "PRIVMSG bob :DCC SEND f 1 2 3",
            ]
        );
    })
    .await;
    let mut h = account(1, port, IrcConfig::new("me")).await;
    wait_connected(&mut h).await;
    h.commands
        .send(timb_core::Command::Send {
            to: Target::Direct("bob".into()),
            body: "hi\r\nQUIT :x\n\x01DCC SEND f 1 2 3\x01".into(),
            kind: MessageKind::Normal,
        })
        .await
        .unwrap();
    h.commands
        .send(timb_core::Command::Send {
            to: Target::Direct("bob\r\nQUIT".into()),
            body: "x".into(),
            kind: MessageKind::Normal,
        })
        .await
        .unwrap();
    let e = wait_for(&mut h, "refusal", |e| matches!(e, Event::Error(_))).await;
    assert!(matches!(
        e,
        Event::Error(AccountError::Notice(timb_core::Notice::InvalidTarget))
    ));
    server.await.unwrap();
}

#[tokio::test]
async fn silent_server_times_out_registration() {
    let (port, server) = fake_server(|mut c| async move {
        c.expect("USER ").await;
        // Never answers; waits for the client to give up and hang up.
        while c.line_within(Duration::from_secs(5)).await.is_some() {}
    })
    .await;
    let mut cfg = IrcConfig::new("me");
    cfg.register_timeout = Duration::from_secs(1);
    let mut h = account(1, port, cfg).await;
    let e = wait_for(&mut h, "timeout", |e| matches!(e, Event::Error(_))).await;
    assert!(
        matches!(&e, Event::Error(AccountError::Transport(m)) if m.contains("registration")),
        "{e:?}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn invented_members_are_capped() {
    let (port, server) = fake_server(|mut c| async move {
        c.register_plain("me").await;
        c.expect("JOIN #big").await;
        c.send(":me!u@h JOIN #big").await;
        // 60 000 invented members in NAMES replies, then the end marker.
        let mut burst = String::new();
        for chunk in 0..600 {
            let names: Vec<String> = (0..100).map(|i| format!("n{chunk}x{i}")).collect();
            burst.push_str(&format!(
                ":fake.test 353 me = #big :{}\r\n",
                names.join(" ")
            ));
        }
        burst.push_str(":fake.test 366 me #big :End of NAMES list\r\n");
        c.send_bytes(burst.as_bytes()).await.unwrap();
        let _ = c.line_within(Duration::from_secs(10)).await;
    })
    .await;
    let mut h = account(1, port, IrcConfig::new("me")).await;
    wait_connected(&mut h).await;
    h.commands
        .send(timb_core::Command::JoinGroup {
            room: "#big".into(),
            nick: None,
        })
        .await
        .unwrap();
    let e = wait_for(&mut h, "members", |e| {
        matches!(e, Event::GroupMembers { .. })
    })
    .await;
    let Event::GroupMembers { members, .. } = e else {
        unreachable!()
    };
    assert_eq!(members.len(), 20_000, "capped per channel");
    drop(h);
    server.abort();
}

#[tokio::test]
async fn server_text_makes_no_contact_and_quits_show_offline() {
    let (port, server) = fake_server(|mut c| async move {
        c.register_plain("me").await;
        // The server's own chatter: no person sent it.
        c.send(":fake.test NOTICE me :*** You are connected").await;
        c.send(":fake.test PRIVMSG me :\x01VERSION\x01").await;
        c.send(":bob!b@h PRIVMSG me :hi").await;
        c.send(":bob!b@h QUIT :gone").await;
        c.send(":bob!b@h JOIN #c").await;
        c.send(":bob!b@h NICK robert").await;
        c.send(":robert!b@h PRIVMSG me :end").await;
        let _ = c.line_within(Duration::from_secs(10)).await;
    })
    .await;
    let mut h = account(1, port, IrcConfig::new("me")).await;
    wait_connected(&mut h).await;
    let mut seen = Vec::new();
    loop {
        let e = wait_for(&mut h, "messages and presence", |e| {
            matches!(e, Event::Message { .. } | Event::Presence { .. })
        })
        .await;
        let done = message_body(&e) == Some("end");
        seen.push(match e {
            Event::Message { from, body, .. } => format!("{} says {body}", from.name()),
            Event::Presence { contact, presence } => format!("{contact} {presence:?}"),
            _ => unreachable!(),
        });
        if done {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "bob says hi",
            "bob Offline",
            "bob Available",
            "bob Offline",
            "robert Available",
            "robert says end"
        ]
    );
    drop(h);
    server.abort();
}

#[tokio::test]
async fn an_oversized_paste_is_refused_whole() {
    let (port, server) = fake_server(|mut c| async move {
        c.register_plain("me").await;
        let mut got = Vec::new();
        while let Some(l) = c.line_within(Duration::from_millis(2500)).await {
            got.push(l);
        }
        assert_eq!(
            got,
            vec!["PRIVMSG bob after"],
            "nothing of the paste is sent"
        );
    })
    .await;
    let mut h = account(1, port, IrcConfig::new("me")).await;
    wait_connected(&mut h).await;
    let send = |body: String| timb_core::Command::Send {
        to: Target::Direct("bob".into()),
        body,
        kind: MessageKind::Normal,
    };
    h.commands.send(send("line\n".repeat(2500))).await.unwrap();
    h.commands.send(send("after".into())).await.unwrap();
    let events = drain_for(&mut h, Duration::from_secs(2)).await;
    let errors = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Error(AccountError::Notice(timb_core::Notice::Backlog))
            )
        })
        .count();
    assert_eq!(errors, 1, "{events:?}");
    server.await.unwrap();
}
