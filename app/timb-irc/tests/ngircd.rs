//! End-to-end against a real ngircd (Debian's /usr/sbin/ngircd) on loopback.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use timb_core::{Command, ConnectionState, Event, MessageKind, Target};
use timb_irc::ctcp::VERSION_REPLY;
use timb_irc::IrcConfig;

/// Joins and returns the nick the server knows us by.
async fn join(h: &mut timb_core::AccountHandle, room: &str) -> String {
    h.commands
        .send(Command::JoinGroup {
            room: room.into(),
            nick: None,
        })
        .await
        .unwrap();
    match wait_for(
        h,
        "GroupJoined",
        |e| matches!(e, Event::GroupJoined { room: r, .. } if r == room),
    )
    .await
    {
        Event::GroupJoined { nick, .. } => nick,
        _ => unreachable!(),
    }
}

async fn send(h: &timb_core::AccountHandle, to: Target, body: &str, kind: MessageKind) {
    h.commands
        .send(Command::Send {
            to,
            body: body.into(),
            kind,
        })
        .await
        .unwrap();
}

/// Next message event, as (from, sender, body, kind).
async fn next_message(
    h: &mut timb_core::AccountHandle,
) -> (Target, Option<String>, String, MessageKind) {
    match wait_for(h, "a message", |e| matches!(e, Event::Message { .. })).await {
        Event::Message {
            from,
            sender,
            body,
            kind,
            ..
        } => (from, sender, body, kind),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn two_accounts_talk_in_a_channel_and_privately() {
    let server = Ngircd::start();
    let mut alice = account(1, server.port, IrcConfig::new("alice")).await;
    let mut bob = account(2, server.port, IrcConfig::new("bob")).await;
    wait_connected(&mut alice).await;
    wait_connected(&mut bob).await;

    join(&mut alice, "#timb").await;
    join(&mut bob, "#timb").await;
    let members = wait_for(&mut bob, "names", |e| {
        matches!(e, Event::GroupMembers { .. })
    })
    .await;
    let Event::GroupMembers { room, mut members } = members else {
        unreachable!()
    };
    members.sort();
    assert_eq!(room, "#timb");
    assert_eq!(members, vec!["alice", "bob"]);
    wait_for(
        &mut alice,
        "bob joined",
        |e| matches!(e, Event::MemberJoined { nick, .. } if nick == "bob"),
    )
    .await;

    // Channel message, with formatting that must arrive as plain text.
    send(
        &alice,
        Target::Group("#timb".into()),
        "hello \x02bob\x02, \x0304red\x03 ünïcode",
        MessageKind::Normal,
    )
    .await;
    let (from, sender, body, kind) = next_message(&mut bob).await;
    assert_eq!(from, Target::Group("#timb".into()));
    assert_eq!(sender.as_deref(), Some("alice"));
    assert_eq!(body, "hello bob, red ünïcode");
    assert_eq!(kind, MessageKind::Normal);

    // Action in the channel.
    send(
        &bob,
        Target::Group("#timb".into()),
        "waves",
        MessageKind::Action,
    )
    .await;
    let (from, sender, body, kind) = next_message(&mut alice).await;
    assert_eq!(
        (from, sender.as_deref(), body.as_str(), kind),
        (
            Target::Group("#timb".into()),
            Some("bob"),
            "waves",
            MessageKind::Action
        )
    );

    // Private message, private action, notice.
    send(
        &bob,
        Target::Direct("alice".into()),
        "psst",
        MessageKind::Normal,
    )
    .await;
    let (from, sender, body, kind) = next_message(&mut alice).await;
    assert_eq!(
        (from, sender, body.as_str(), kind),
        (
            Target::Direct("bob".into()),
            None,
            "psst",
            MessageKind::Normal
        )
    );
    send(
        &alice,
        Target::Direct("bob".into()),
        "nods",
        MessageKind::Action,
    )
    .await;
    let (from, _, body, kind) = next_message(&mut bob).await;
    assert_eq!(
        (from, body.as_str(), kind),
        (Target::Direct("alice".into()), "nods", MessageKind::Action)
    );
    send(
        &alice,
        Target::Direct("bob".into()),
        "fyi",
        MessageKind::Notice,
    )
    .await;
    let (_, _, body, kind) = next_message(&mut bob).await;
    assert_eq!((body.as_str(), kind), ("fyi", MessageKind::Notice));

    // A long message with multi-byte characters arrives whole and in order:
    // split at spaces (which are dropped) ...
    let long: String = (0..700)
        .map(|i| format!("{i}:é€😀"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(long.len() > 8000);
    send(
        &alice,
        Target::Group("#timb".into()),
        &long,
        MessageKind::Normal,
    )
    .await;
    let mut pieces: Vec<String> = Vec::new();
    while pieces.iter().map(|p| p.len() + 1).sum::<usize>() < long.len() + 1 {
        let (from, _, body, _) = next_message(&mut bob).await;
        assert_eq!(from, Target::Group("#timb".into()));
        pieces.push(body);
        let so_far = pieces.join(" ");
        assert!(
            long.starts_with(&so_far),
            "out of order or lost at piece {}",
            pieces.len()
        );
    }
    assert_eq!(pieces.join(" "), long, "long message reassembled in order");
    assert!(pieces.len() >= 20, "{} pieces", pieces.len());
    // ... or, with no space to split at, on character boundaries.
    let word = "ж😀".repeat(300);
    send(
        &bob,
        Target::Direct("alice".into()),
        &word,
        MessageKind::Normal,
    )
    .await;
    let mut got = String::new();
    while got.len() < word.len() {
        let (_, _, body, _) = next_message(&mut alice).await;
        got.push_str(&body);
        assert!(word.starts_with(&got));
    }
    assert_eq!(got, word);

    // Leaving is seen by the other side; QUIT is seen as leaving too.
    alice
        .commands
        .send(Command::LeaveGroup {
            room: "#timb".into(),
        })
        .await
        .unwrap();
    wait_for(&mut alice, "GroupLeft", |e| {
        matches!(e, Event::GroupLeft { .. })
    })
    .await;
    wait_for(
        &mut bob,
        "alice left",
        |e| matches!(e, Event::MemberLeft { nick, .. } if nick == "alice"),
    )
    .await;

    bob.commands.send(Command::Disconnect).await.unwrap();
    wait_for(&mut bob, "Disconnected", |e| {
        matches!(e, Event::State(ConnectionState::Disconnected))
    })
    .await;
}

#[tokio::test]
async fn nick_collision_picks_an_alternative_and_quit_is_empty() {
    let server = Ngircd::start();
    let mut first = account(1, server.port, IrcConfig::new("carol")).await;
    wait_connected(&mut first).await;
    let mut second = account(2, server.port, IrcConfig::new("carol")).await;
    wait_connected(&mut second).await;
    assert_eq!(join(&mut first, "#q").await, "carol");
    assert_eq!(join(&mut second, "#q").await, "carol_");

    let mut watcher = RawClient::register(server.port, "watcher").await;
    watcher.send("JOIN #q").await;
    watcher.expect(|l| l.contains(" 366 ")).await;
    second.commands.send(Command::Disconnect).await.unwrap();
    let quit = watcher.expect(|l| l.contains(" QUIT")).await;
    assert!(quit.starts_with(":carol_!"), "{quit}");
    // ngircd relays an empty QUIT message as empty or as its own default,
    // never anything from the client.
    let msg = quit.split_once(" QUIT").unwrap().1;
    assert!(
        msg.is_empty() || msg == " :" || msg == " :\"\"",
        "quit message leaked: {msg:?}"
    );
    let end = drain_for(&mut second, Duration::from_secs(3)).await;
    assert_eq!(
        end.last(),
        Some(&Event::State(ConnectionState::Disconnected)),
        "{end:?}"
    );
    assert!(!end.iter().any(|e| matches!(e, Event::Error(_))), "{end:?}");
}

#[tokio::test]
async fn topic_and_members_follow_the_channel() {
    let server = Ngircd::start();
    let mut dave = account(1, server.port, IrcConfig::new("dave")).await;
    wait_connected(&mut dave).await;
    // erin creates #t (so she is its operator) and sets a topic first.
    let mut other = RawClient::register(server.port, "erin").await;
    other.send("JOIN #t").await;
    other.expect(|l| l.contains(" 366 ")).await;
    other.send("TOPIC #t :\x02first\x02 topic").await;
    other.expect(|l| l.contains(" TOPIC #t ")).await;
    join(&mut dave, "#t").await;
    let e = wait_for(&mut dave, "topic on join", |e| {
        matches!(e, Event::Topic { .. })
    })
    .await;
    assert_eq!(
        e,
        Event::Topic {
            room: "#t".into(),
            topic: "first topic".into()
        }
    );
    let e = wait_for(&mut dave, "names", |e| {
        matches!(e, Event::GroupMembers { .. })
    })
    .await;
    let Event::GroupMembers { mut members, .. } = e else {
        unreachable!()
    };
    members.sort();
    assert_eq!(members, vec!["dave", "erin"], "operator prefix stripped");
    other.send("TOPIC #t :\x0304second\x03").await;
    let e = wait_for(&mut dave, "topic change", |e| {
        matches!(e, Event::Topic { .. })
    })
    .await;
    assert_eq!(
        e,
        Event::Topic {
            room: "#t".into(),
            topic: "second".into()
        }
    );
    other.send("NICK erin2").await;
    wait_for(
        &mut dave,
        "rename as leave",
        |e| matches!(e, Event::MemberLeft { nick, .. } if nick == "erin"),
    )
    .await;
    wait_for(
        &mut dave,
        "rename as join",
        |e| matches!(e, Event::MemberJoined { nick, .. } if nick == "erin2"),
    )
    .await;
    other.send("QUIT :bye").await;
    wait_for(
        &mut dave,
        "quit as leave",
        |e| matches!(e, Event::MemberLeft { nick, .. } if nick == "erin2"),
    )
    .await;
}

/// Parses "TIME <rfc2822>" and checks it is UTC and close to now.
fn assert_utc_now(reply: &str) {
    let stamp = reply.strip_prefix("TIME ").expect("TIME reply");
    let t = chrono::DateTime::parse_from_rfc2822(stamp).expect("RFC 2822 timestamp");
    assert_eq!(t.offset().local_minus_utc(), 0, "zone must be UTC: {stamp}");
    assert!(stamp.ends_with("+0000") || stamp.ends_with("GMT") || stamp.ends_with("UTC"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((t.timestamp() - now).abs() <= 5, "{stamp} vs now {now}");
}

#[tokio::test]
async fn ctcp_policy_seen_from_another_client() {
    let server = Ngircd::start();
    let mut fay = account(1, server.port, IrcConfig::new("fay")).await;
    wait_connected(&mut fay).await;
    let mut prober = RawClient::register(server.port, "prober").await;

    // A DCC offer pointing at a port we listen on: timb must never connect.
    let dcc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dcc_port = dcc_listener.local_addr().unwrap().port();
    let requests = [
        "\x01PING 1234567890\x01".to_owned(),
        "\x01FINGER\x01".to_owned(),
        "\x01USERINFO\x01".to_owned(),
        "\x01SOURCE\x01".to_owned(),
        "\x01CLIENTINFO\x01".to_owned(),
        format!("\x01DCC SEND secret.txt 2130706433 {dcc_port} 1000\x01"),
        format!("\x01DCC CHAT chat 2130706433 {dcc_port}\x01"),
    ];
    for r in &requests {
        prober.send(&format!("PRIVMSG fay :{r}")).await;
    }
    // Then the two answered ones; their replies are the fence proving the
    // earlier requests were processed without an answer.
    prober.send("PRIVMSG fay :\x01TIME\x01").await;
    prober.send("PRIVMSG fay :\x01VERSION\x01").await;

    let mut notices = Vec::new();
    while notices.len() < 2 {
        let l = prober
            .next_line(WAIT)
            .await
            .expect("CTCP replies for TIME and VERSION");
        if l.contains(" NOTICE prober ") || l.contains(" PRIVMSG prober ") {
            notices.push(l);
        }
    }
    let bodies: Vec<String> = notices
        .iter()
        .map(|l| {
            assert!(l.starts_with(":fay!"), "{l}");
            assert!(
                l.contains(" NOTICE prober :\x01"),
                "replies are NOTICEs: {l}"
            );
            let body = l.split_once(" :\x01").unwrap().1;
            body.trim_end_matches('\x01').to_owned()
        })
        .collect();
    assert_utc_now(&bodies[0]);
    assert_eq!(bodies[1], format!("VERSION {VERSION_REPLY}"));

    // Nothing else arrives afterwards either.
    let late = prober.collect(Duration::from_secs(2)).await;
    assert!(
        !late.iter().any(|l| l.contains("prober :")),
        "unexpected extra replies: {late:?}"
    );
    // No DCC connection, and no message shown for any CTCP request.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), dcc_listener.accept())
            .await
            .is_err(),
        "timb connected to a DCC offer"
    );
    let events = drain_for(&mut fay, Duration::from_millis(300)).await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::Message { .. })),
        "{events:?}"
    );

    // ACTION still passes through as an action.
    prober.send("PRIVMSG fay :\x01ACTION waves\x01").await;
    let e = wait_for(&mut fay, "action", |e| matches!(e, Event::Message { .. })).await;
    assert!(matches!(e, Event::Message { body, kind: MessageKind::Action, .. } if body == "waves"));
}
